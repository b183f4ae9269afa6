"""The public API: API Gateway (REST, proxy) -> Powertools resolver -> helpdesk use cases.

Customers are anonymous: each ticket is reached with its unguessable access token, and a wrong
token answers exactly as a missing ticket does (404). Every request gets an answer in the API's
error shape when it fails: a body the API cannot read is refused before routing (``body.admit``),
and an error nobody foresaw is a logged 500, never a bare Lambda failure.
"""

import functools
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.json_encoder import Encoder

from functions.api import agent, body, pages, routing
from functions.api.schemas import (
    ErrorBody,
    MessageAdded,
    NewMessageRequest,
    NewTicketRequest,
    Rated,
    SurveyRequest,
    TicketCreated,
    TicketView,
)
from helpdesk import clock, settings, tickets
from helpdesk.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionRequired,
    RateLimited,
    Stale,
)
from helpdesk.agents import Unauthenticated

FORM = body.FORM

logger = Logger()
metrics = Metrics()


def _cors() -> CORSConfig | None:
    """Other sites allowed to call the API from a browser (the form itself is same-origin)."""
    origins = [o for o in settings.get(settings.Env.ALLOWED_ORIGINS).split(",") if o]
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:],
                      allow_headers=["Idempotency-Key", "X-Access-Token"])


class _Json(Encoder):
    """The one serialiser of every JSON answer: a time is always UTC ending in Z (``clock.to_iso``)."""

    def default(self, o):
        return clock.to_iso(o) if isinstance(o, datetime) else super().default(o)


CORS = _cors()
_dumps = functools.partial(json.dumps, separators=(",", ":"), cls=_Json)
app = APIGatewayRestResolver(enable_validation=True, cors=CORS, serializer=_dumps)
# Each domain error's status (a subclass answers as its nearest listed ancestor).
_STATUS = {NotFound: 404, Conflict: 409, InvalidRequest: 400, Forbidden: 403, PreconditionRequired: 428,
           RateLimited: 429, Unauthenticated: 401}


# -- plumbing: base URL, content negotiation, one error shape ---------------------------------------

def _base_url() -> str:
    """The API root customers see (``HELPDESK_PUBLIC_BASE_URL`` behind a custom domain)."""
    configured = settings.get(settings.Env.PUBLIC_BASE_URL)
    if configured:
        return configured.rstrip("/") + "/"
    event = app.current_event
    host = event.headers.get("Host") or event.headers.get("host") or "localhost"
    stage = event.request_context.stage
    return f"https://{host}/{stage}/" if stage and stage != "$default" else f"https://{host}/"


def _wants_html(headers: Mapping[str, str] | None = None) -> bool:
    """A browser: the plain HTML form posts form-encoded, and a page load accepts text/html."""
    headers = {k.lower(): v for k, v in (app.current_event.headers if headers is None else headers).items()}
    return (headers.get("content-type") or "").startswith(FORM) or "text/html" in (headers.get("accept") or "")


def _html(status: int, page: str, headers: dict | None = None) -> Response:
    return Response(status, content_types.TEXT_HTML + "; charset=utf-8", page, headers=headers)


def _error(status: int, code: str, message: str, details: list | None = None, *,
           headers: Mapping[str, str] | None = None) -> Response:
    details = details or []
    if _wants_html(headers):
        return _html(status, pages.error_page(status, message, details))
    return Response(status, content_types.APPLICATION_JSON, ErrorBody(error=code, message=message, details=details))


@app.exception_handler(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response:
    problems = error.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return _error(400, "malformed_json", "The request body is not valid JSON.")
    details = [{"field": ".".join(str(part) for part in p.get("loc", ())[1:]) or "body",
                "message": p.get("msg", ""), "type": p.get("type", "")} for p in problems]
    return _error(422, "validation_failed", "Some fields are missing or invalid.", details)


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported(_: RequestUnsupportedContentType) -> Response:
    return _error(415, "unsupported_media_type", f"Send {body.JSON} or {FORM}, in UTF-8.")


@app.exception_handler(DomainError)
def _domain(error: DomainError) -> Response:
    status = next((_STATUS[kind] for kind in type(error).__mro__ if kind in _STATUS), 400)
    response = _error(status, error.code, error.message, error.details)
    if isinstance(error, RateLimited) and error.retry_after:
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Stale):  # the client sees which version is current (and can act on it)
        response.headers["ETag"] = f'"{error.current_version}"'
        if isinstance(response.body, ErrorBody):
            response.body = response.body.model_dump() | {"current_version": error.current_version}
    return response


def _reused_key(_: Exception) -> Response:  # IdempotencyValidationError, registered with the idempotency (_open_once)
    if _wants_html():  # the form was sent, then changed and sent again from a page the browser kept
        return _error(422, "idempotency_key_reused", "This form was already sent. Reload the page to send a new request.")
    return _error(422, "idempotency_key_reused", "This Idempotency-Key was used for a different request.")


def _key_in_use(_: Exception) -> Response:  # IdempotencyAlreadyInProgressError, registered with _open_once
    response = _error(409, "conflict", "A request with this Idempotency-Key is still being answered; retry shortly.")
    response.headers["Retry-After"] = "1"
    return response


@app.exception_handler(Exception)
def _unforeseen(error: Exception) -> Response:
    """The last resort: logged with the correlation id, answered in the error shape."""
    logger.exception("unhandled error answered 500", extra={"error_type": type(error).__name__})
    metrics.add_metric(name="ApiUnhandledErrors", unit=MetricUnit.Count, value=1)
    return _error(500, "internal_error", "Something went wrong on our side; please try again later.")


@app.not_found
def _no_route(_: Exception) -> Response:
    """404 for a path no route has; for a path that has routes, 405 (or OPTIONS) with what it allows."""
    allowed = routing.allowed_methods(app.current_event.path)
    if not allowed:
        return _error(404, "not_found", "No such resource.")
    allow = {"Allow": ", ".join(allowed)}
    if app.current_event.http_method.upper() == "OPTIONS":
        return Response(204, None, "", headers=allow)
    response = _error(405, "method_not_allowed", f"This resource answers {', '.join(allowed)}.")
    response.headers.update(allow)
    return response


# -- routes: each documents every status it can answer, errors with the error shape -----------------

route = functools.partial(routing.route, app)


_PAGE = {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
Token = Annotated[str | None, Query(max_length=128, description="The ticket's access token (from its private link)")]
TokenHeader = Annotated[str | None, Header(alias="X-Access-Token", max_length=128,
                                           description="The access token, instead of the `token` query parameter")]
TicketId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,32}$", description="The ticket's reference, e.g. HD-7KQ2M9")]
# What a client can do next with a ticket it opened (generated clients and fuzzers follow these).
_TICKET_LINKS = {name: {"operationId": operation, "parameters": {
    "ticket_id": "$response.body#/id", "token": "$response.body#/access_token"}}
    for name, operation in (("GetTicket", "get_ticket"), ("AddMessage", "add_message"),
                            ("SurveyForm", "survey_form"), ("Rate", "rate"))}


@route("GET", "/", ok={200: _PAGE}, summary="The support form (HTML)", enable_validation=False)
def support_form():
    # no-store (every response): a form the browser kept would post its used submission key again
    return _html(200, pages.support_form(_base_url()))


def _open(request: NewTicketRequest) -> dict:
    opened = tickets.open_ticket(tickets.NewTicket(
        channel="web", customer_email=str(request.email), customer_name=request.name,
        customer_phone=request.phone, subject=request.subject, description=request.description,
        category=request.category, customer_time_zone=request.time_zone))
    metrics.add_metric(name="TicketsOpened", unit=MetricUnit.Count, value=1)
    ticket = opened.ticket
    logger.info("ticket opened", extra={"ticket_id": ticket.ticket_id, "priority": ticket.priority})
    view = tickets.customer_view(ticket)
    return {key: view[key] for key in ("id", "status", "priority", "department", "tier",
                                       "first_response_due_at", "resolution_due_at")} | {
        "access_token": opened.access_token}


@functools.cache
def _open_once() -> Callable[..., dict]:
    """Open a ticket once per Idempotency-Key: a retried request gets the first answer again.

    Built on the first keyed request, not at import: Powertools' idempotency utility and its
    DynamoDB client cost ~50 ms of cold start, which ticket pages and unkeyed API calls never need.
    """
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    app.exception_handler(IdempotencyValidationError)(_reused_key)
    app.exception_handler(IdempotencyAlreadyInProgressError)(_key_in_use)
    config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="request")
    persistence = DynamoDBPersistenceLayer(table_name=settings.get(settings.Env.IDEMPOTENCY_TABLE))

    @idempotent_function(data_keyword_argument="data", persistence_store=persistence, config=config)
    def open_from(data: dict) -> dict:
        return _open(NewTicketRequest.model_validate(data["request"]))

    def once(data: dict) -> dict:
        config.register_lambda_context(app.lambda_context)  # in-progress records expire with the invocation
        return open_from(data=data)
    return once


@route("POST", "/tickets", ok={201: routing.json_body(TicketCreated, "Opened (the form gets an HTML confirmation)")
                              | {"links": _TICKET_LINKS}},
       errors=(*routing.WITH_BODY, 409), summary="Open a ticket")
def open_ticket(request: Annotated[NewTicketRequest, Body()],
                idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None):
    idempotency_key = idempotency_key or request.idempotency_key
    if idempotency_key:
        created = _open_once()(data={"key": idempotency_key, "request": request.model_dump(mode="json")})
    else:
        created = _open(request)
    base = _base_url()
    created["links"] = {"self": base + pages.ticket_link(created["id"], created["access_token"])}
    if _wants_html():
        return _html(201, pages.confirmation(created, base, request.time_zone))
    return Response(201, content_types.APPLICATION_JSON, TicketCreated(**created),
                    headers={"Location": created["links"]["self"]})


@route("GET", "/tickets/<ticket_id>", ok={200: routing.json_body(TicketView, "The ticket (a browser gets its HTML page)")},
       errors=(*routing.WITH_TOKEN, 400), summary="A ticket with one page of its public timeline")
def get_ticket(ticket_id: TicketId, token: Token = None, access_token: TokenHeader = None,
               cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description=(
                   "The `next` of the page after the one wanted: its earlier entries"))] = None):
    token = token or access_token
    ticket = tickets.load_for_customer(ticket_id, token)
    view = tickets.customer_view(ticket, tickets.timeline_page(ticket_id, cursor))
    if _wants_html():
        return _html(200, pages.ticket_page(view, token, _base_url(), cursor=cursor))
    return Response(200, content_types.APPLICATION_JSON, TicketView(**view))


@route("POST", "/tickets/<ticket_id>/messages", ok={201: routing.json_body(MessageAdded, "Added (the page's form is sent back to the page: 303)")},
       errors=(*routing.WITH_BODY, *routing.WITH_TOKEN, 409), summary="The customer adds a message")
def add_message(ticket_id: TicketId, message: Annotated[NewMessageRequest, Body()],
                token: Token = None, access_token: TokenHeader = None):
    token = token or access_token
    event = tickets.add_customer_message(ticket_id, token, message.body)
    if _wants_html():  # the page's own form: back to the page, now showing the message
        location = _base_url() + pages.ticket_link(ticket_id, token)
        return Response(303, content_types.TEXT_HTML, "", headers={"Location": location})
    return Response(201, content_types.APPLICATION_JSON, MessageAdded(type=event.type, at=event.at))


@route("GET", "/tickets/<ticket_id>/survey", ok={200: _PAGE}, errors=routing.WITH_TOKEN,
       summary="The satisfaction survey (HTML): the form once the ticket is resolved")
def survey_form(ticket_id: TicketId, token: Token = None):
    ticket = tickets.load_for_customer(ticket_id, token)
    return _html(200, pages.survey_page(tickets.customer_view(ticket), token, _base_url()))


@route("POST", "/tickets/<ticket_id>/survey", ok={201: routing.json_body(Rated, "Rated (the form gets an HTML thank-you)")},
       errors=(*routing.WITH_BODY, *routing.WITH_TOKEN, 409), summary="Rate a resolved ticket")
def rate(ticket_id: TicketId, rating: Annotated[SurveyRequest, Body()],
         token: Token = None, access_token: TokenHeader = None):
    token = token or access_token
    tickets.rate(ticket_id, token, rating.score, rating.comment or "")
    metrics.add_metric(name="SurveyAnswered", unit=MetricUnit.Count, value=1)
    if _wants_html():
        return _html(201, pages.thanks_page(ticket_id, token, _base_url()))
    return Response(201, content_types.APPLICATION_JSON, Rated(score=rating.score))


app.include_router(agent.router, prefix="/agent")


@route("GET", "/openapi.json", ok={200: {"description": "This document"}}, summary="The OpenAPI document",
       enable_validation=False)
def openapi():
    return Response(200, content_types.APPLICATION_JSON, openapi_document())


@functools.cache
def openapi_document() -> dict:
    """The OpenAPI document, without the 422 Powertools lists for routes that take no input (its
    HTTPValidationError shape is never answered: our 422 is ErrorBody, documented where it occurs)."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn  # ~100 ms: not at cold start

    # The agents' routes carry the ID token of the agents' Cognito user pool (API Gateway's Cognito
    # authorizer checks it before the function runs).
    agent_token = APIKey(name="Authorization", in_=APIKeyIn.header, description=(
        "An agent's ID token from the agents' Cognito user pool (InitiateAuth), as it is, or after 'Bearer '"))
    document = json.loads(app.get_openapi_json_schema(title="Helpdesk API", version="1",
                                                     security_schemes={"agentIdToken": agent_token}))
    for item in document["paths"].values():
        for operation in item.values():
            if "HTTPValidationError" in json.dumps(operation["responses"].get("422", {})):
                del operation["responses"]["422"]
    for unused in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(unused, None)
    return document


# -- entry point -----------------------------------------------------------------------------------

@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    try:
        try:
            readable = body.admit(event)
        except body.Refused as refused:
            response = _refusal(event, refused)
        else:
            response = app.resolve(_head_as_get(readable), context)
    except Exception:  # outside the resolver (its own last resort is _unforeseen)
        logger.exception("unhandled error answered 500")
        metrics.add_metric(name="ApiUnhandledErrors", unit=MetricUnit.Count, value=1)
        response = {"statusCode": 500, "headers": {"Content-Type": content_types.APPLICATION_JSON},
                    "body": ErrorBody(error="internal_error", message="Something went wrong on our side; "
                                      "please try again later.").model_dump_json()}
    return _secured(response)


def _refusal(event: dict, refused: body.Refused) -> dict:
    """A body refused before routing, answered like any error (JSON, or a page for a browser)."""
    headers = event.get("headers") or {}
    response = _error(refused.status, refused.code, refused.message, headers=headers)
    origin = next((v for k, v in headers.items() if k.lower() == "origin"), None)
    cors = CORS.to_dict(origin) if CORS else {}
    payload = response.body if isinstance(response.body, str) else _dumps(response.body)
    return {"statusCode": response.status_code, "body": payload,
            "headers": {"Content-Type": response.headers["Content-Type"], **cors}}


def _head_as_get(event: dict) -> dict:
    """HEAD is answered as GET (API Gateway sends the headers only)."""
    if (event.get("httpMethod") or "").upper() != "HEAD":
        return event
    context = (event.get("requestContext") or {}) | {"httpMethod": "GET"}
    return event | {"httpMethod": "GET", "requestContext": context}


# -- Lambda SnapStart (an option: -c snapStart=true) -------------------------------------------------
# The managed Python runtime ships snapshot_restore_py; elsewhere (tests, make dev) there is no snapshot.
try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:
    def register_before_snapshot(hook):
        return hook

    register_after_restore = register_before_snapshot


@register_before_snapshot
def prime() -> None:
    """Before the snapshot: load what requests otherwise load on first use (the idempotency utility, the
    secret's and the chains' SDK, the policy, the address checker), so no restored copy pays for it.
    Nothing here talks to AWS or draws a random number: clients, secrets and tokens come after restore."""
    import boto3  # noqa: F401  (made into clients on first use, after restore)
    from aws_lambda_powertools.utilities import idempotency, parameters  # noqa: F401

    from helpdesk import addresses
    from helpdesk.config import load_policy

    load_policy()
    addresses.is_deliverable("prime@example.com")  # compiles the address checker's patterns


@register_after_restore
def renew() -> None:
    """After a restore: this copy's own connections, credentials and secret, and its own random state."""
    import random

    from helpdesk import lifecycle

    random.seed()  # libraries drawing from `random` (retry jitter) must not repeat the snapshot's sequence
    lifecycle.forget()
    _open_once.cache_clear()


def _secured(response: dict) -> dict:
    """Every response, routed or not, carries the security headers (``pages.SECURITY_HEADERS``)."""
    if "multiValueHeaders" in response:
        for name, value in pages.SECURITY_HEADERS.items():
            response["multiValueHeaders"].setdefault(name, [value])
    else:
        response.setdefault("headers", {}).update(
            {k: v for k, v in pages.SECURITY_HEADERS.items() if k not in response["headers"]})
    return response
