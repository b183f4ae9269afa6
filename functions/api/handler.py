"""The public API: API Gateway (REST, proxy) -> Powertools resolver -> helpdesk use cases.

Customers are anonymous: each ticket is reached with its unguessable access token, and a wrong
token answers exactly as a missing ticket does (404).
"""

import functools
from collections.abc import Callable
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

from functions.api import pages
from functions.api.schemas import (
    ErrorBody,
    NewMessageRequest,
    NewTicketRequest,
    SurveyRequest,
    TicketCreated,
    TicketView,
)
from helpdesk import ledger, settings, tickets
from helpdesk.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionRequired,
    RateLimited,
)

MAX_BODY_BYTES = 64 * 1024
FORM = "application/x-www-form-urlencoded"

logger = Logger()
metrics = Metrics()

def _cors() -> CORSConfig | None:
    """Other sites allowed to call the API from a browser (the form itself is same-origin)."""
    origins = [o for o in settings.get(settings.Env.ALLOWED_ORIGINS).split(",") if o]
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:],
                      allow_headers=["Idempotency-Key", "X-Access-Token"])


app = APIGatewayRestResolver(enable_validation=True, cors=_cors())
# Each domain error's status (a subclass answers as its nearest listed ancestor).
_STATUS = {NotFound: 404, Conflict: 409, InvalidRequest: 400, Forbidden: 403, PreconditionRequired: 428,
           RateLimited: 429}


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


def _wants_html() -> bool:
    """A browser: the plain HTML form posts form-encoded, and a page load accepts text/html."""
    headers = {k.lower(): v for k, v in app.current_event.headers.items()}
    return headers.get("content-type", "").startswith(FORM) or "text/html" in headers.get("accept", "")


def _html(status: int, body: str, headers: dict | None = None) -> Response:
    return Response(status, content_types.TEXT_HTML + "; charset=utf-8", body, headers=headers)


def _error(status: int, code: str, message: str, details: list | None = None) -> Response:
    details = details or []
    if _wants_html():
        return _html(status, pages.error_page(status, message, details))
    return Response(status, content_types.APPLICATION_JSON,
                    ErrorBody(error=code, message=message, details=details).model_dump())


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
    return _error(415, "unsupported_media_type", f"Send application/json or {FORM}.")


@app.exception_handler(DomainError)
def _domain(error: DomainError) -> Response:
    status = next((_STATUS[kind] for kind in type(error).__mro__ if kind in _STATUS), 400)
    response = _error(status, error.code, error.message, error.details)
    if isinstance(error, RateLimited) and error.retry_after:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _reused_key(_: Exception) -> Response:  # IdempotencyValidationError, registered with the idempotency (_open_once)
    if _wants_html():  # the form was sent, then changed and sent again from a page the browser kept
        return _error(422, "idempotency_key_reused", "This form was already sent. Reload the page to send a new request.")
    return _error(422, "idempotency_key_reused", "This Idempotency-Key was used for a different request.")


@app.not_found
def _no_route(_: Exception) -> Response:
    return _error(404, "not_found", "No such resource.")


# -- routes ----------------------------------------------------------------------------------------

@app.get("/", include_in_schema=False)
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
    view = tickets.customer_view(ticket, [])
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
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError

    app.exception_handler(IdempotencyValidationError)(_reused_key)
    config = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="request")
    persistence = DynamoDBPersistenceLayer(table_name=settings.get(settings.Env.IDEMPOTENCY_TABLE))

    @idempotent_function(data_keyword_argument="data", persistence_store=persistence, config=config)
    def open_from(data: dict) -> dict:
        return _open(NewTicketRequest.model_validate(data["request"]))

    def once(data: dict) -> dict:
        config.register_lambda_context(app.lambda_context)  # in-progress records expire with the invocation
        return open_from(data=data)
    return once


@app.post("/tickets", responses={201: {"description": "Created", "content": {"application/json": {"model": TicketCreated}}},
                                 422: {"description": "Invalid", "content": {"application/json": {"model": ErrorBody}}}})
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
    return Response(201, content_types.APPLICATION_JSON, TicketCreated(**created).model_dump(),
                    headers={"Location": created["links"]["self"]})


@app.get("/tickets/<ticket_id>", responses={200: {"content": {"application/json": {"model": TicketView}}}})
def get_ticket(ticket_id: Annotated[str, Path(max_length=32)],
               token: Annotated[str | None, Query(max_length=128)] = None,
               access_token: Annotated[str | None, Header(alias="X-Access-Token", max_length=128)] = None):
    token = token or access_token
    ticket = tickets.load_for_customer(ticket_id, token)
    view = tickets.customer_view(ticket, tickets.timeline(ticket_id))
    if _wants_html():
        return _html(200, pages.ticket_page(view, token, _base_url()))
    return Response(200, content_types.APPLICATION_JSON, TicketView(**view).model_dump())


@app.post("/tickets/<ticket_id>/messages", responses={201: {"description": "Added"}})
def add_message(ticket_id: Annotated[str, Path(max_length=32)], message: Annotated[NewMessageRequest, Body()],
                token: Annotated[str | None, Query(max_length=128)] = None,
                access_token: Annotated[str | None, Header(alias="X-Access-Token", max_length=128)] = None):
    token = token or access_token
    event = tickets.add_customer_message(ticket_id, token, message.body)
    if _wants_html():  # the page's own form: back to the page, now showing the message
        location = _base_url() + pages.ticket_link(ticket_id, token)
        return Response(303, content_types.TEXT_HTML, "", headers={"Location": location})
    return Response(201, content_types.APPLICATION_JSON, {"type": event.type, "at": event.at.isoformat()})


@app.get("/tickets/<ticket_id>/survey", include_in_schema=False)
def survey_form(ticket_id: Annotated[str, Path(max_length=32)], token: Annotated[str | None, Query(max_length=128)] = None):
    ticket = tickets.load_for_customer(ticket_id, token)
    return _html(200, pages.survey_page(tickets.customer_view(ticket, []), token, _base_url()))


@app.post("/tickets/<ticket_id>/survey", responses={201: {"description": "Rated"}})
def rate(ticket_id: Annotated[str, Path(max_length=32)], rating: Annotated[SurveyRequest, Body()],
         token: Annotated[str | None, Query(max_length=128)] = None,
         access_token: Annotated[str | None, Header(alias="X-Access-Token", max_length=128)] = None):
    token = token or access_token
    tickets.rate(ticket_id, token, rating.score, rating.comment or "")
    metrics.add_metric(name="SurveyAnswered", unit=MetricUnit.Count, value=1)
    if _wants_html():
        view = tickets.customer_view(ledger.load(ticket_id), [])
        return _html(201, pages.survey_page(view, token, _base_url(), thanks=True))
    return Response(201, content_types.APPLICATION_JSON, {"score": rating.score})


@app.get("/openapi.json", include_in_schema=False)
def openapi():
    return Response(200, content_types.APPLICATION_JSON,
                    app.get_openapi_json_schema(title="Helpdesk API", version="1"))


# -- entry point -----------------------------------------------------------------------------------

@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def handler(event: dict, context) -> dict:
    if len((event.get("body") or "").encode()) > MAX_BODY_BYTES:  # before any parsing
        body = ErrorBody(error="payload_too_large", message=f"The request body is over {MAX_BODY_BYTES // 1024} KB.")
        response = {"statusCode": 413, "headers": {"Content-Type": content_types.APPLICATION_JSON},
                    "body": body.model_dump_json()}
    else:
        response = app.resolve(event, context)
    return _secured(response)


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
