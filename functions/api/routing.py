"""Declaring a route: the statuses it can answer (OpenAPI, with the error shape) and its method (the 405).

Both the customers' routes (functions.api.handler) and the agents' (functions.api.agent) are declared
here, so /openapi.json documents every status every route really answers, and a method a path does
not answer gets 405 with what it allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from functions.api.schemas import ErrorBody

# The statuses each kind of route can answer besides its own (see README, "The customer's side").
ANY_ROUTE = (429, 500)  # throttled by the stage (API Gateway) or a per-sender limit; the last resort
WITH_BODY = (400, 413, 415, 422)  # unreadable, too large, another media type, invalid fields
WITH_TOKEN = (404, 422)  # no ticket with this reference and token; a parameter out of bounds
AGENT = (400, 401, 403, 404, 422)  # unreadable filter or cursor; no agent's ID token; not theirs to do or see; out of bounds
AGENT_CHANGE = (*AGENT, 409, 428)  # a version that moved on (with the current one); no If-Match
ERRORS = {400: "Malformed request: the body or a parameter cannot be read",
          401: "No valid ID token of the agents' user pool",
          403: "Not this agent's to do (a manager's step, the transfer cap)",
          404: "No such ticket (or one this caller may not see), or a wrong token",
          409: "Conflict with the ticket's state, or a stale If-Match: `current_version` and `details` say what changed",
          413: "Request body too large",
          415: "Unsupported media type: send JSON or form-encoded, in UTF-8", 422: "Invalid fields",
          428: "If-Match is required: the version (ETag) the change was made on",
          429: "Too many requests", 500: "Unexpected error"}
_ROUTES: list[tuple[str, re.Pattern]] = []  # (method, path pattern) of every route: the 405's Allow


def documented(ok: dict[int, dict], *errors: int) -> dict[int, dict]:
    """OpenAPI responses: ``ok`` plus each of ``errors`` and ``ANY_ROUTE``, with the error shape."""
    error_content = {"application/json": {"model": ErrorBody}}
    return ok | {status: {"description": ERRORS[status], "content": error_content}
                 for status in sorted({*errors, *ANY_ROUTE})}


def json_body(model: type | None, description: str) -> dict:
    """A successful JSON answer, by its model (or any object)."""
    schema = {"model": model} if model is not None else {"schema": {"type": "object"}}
    return {"description": description, "content": {"application/json": schema}}


def route(owner, method: str, rule: str, *, ok: dict[int, dict], errors: tuple[int, ...] = (), prefix: str = "",
          operation_prefix: str = "", **options) -> Callable:
    """Declare a route on ``owner`` (the resolver, or a router included at ``prefix``): its OpenAPI
    responses from :func:`documented`, its method known to the 405."""
    pattern = re.compile(re.sub(r"<\w+>", "[^/]+", re.escape(prefix + rule)) + "/?")
    _ROUTES.append((method, pattern))
    if method == "GET":
        _ROUTES.append(("HEAD", pattern))  # answered as the GET (API Gateway sends no body back)

    def register(function: Callable) -> Callable:  # the operation id is the function's name (links use it)
        return owner.route(rule, method, responses=documented(ok, *errors),
                           operation_id=operation_prefix + function.__name__, **options)(function)
    return register


def allowed_methods(path: str) -> list[str]:
    found = {method for method, pattern in _ROUTES if pattern.fullmatch(path)}
    return sorted(found | {"OPTIONS"} if found else found)
