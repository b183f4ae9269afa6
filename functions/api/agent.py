"""The agent API (``/agent/...``): the support team's half, behind the Cognito authorizer.

API Gateway's Cognito authorizer has verified the agent's ID token before a request gets here (the
local API front does the same); its claims name the agent. The domain (helpdesk.desk) checks again
what this agent may see and do. Changes carry the version the agent saw in ``If-Match`` (the ETag of
``GET /agent/tickets/{id}``) and answer the new one in ``ETag``.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query

from functions.api import routing
from functions.api.agent_schemas import (
    AssignRequest,
    CustomerRequest,
    EscalateRequest,
    MergeRequest,
    NoteRequest,
    PriorityRequest,
    ReopenRequest,
    ReplyRequest,
    PresenceRequest,
    ResolveRequest,
    ReturnRequest,
)
from helpdesk import customers, desk, queue, tickets
from helpdesk.addresses import deliverable
from helpdesk.agents import Agent, require_manager
from helpdesk.config import load_policy
from helpdesk.errors import InvalidRequest

router = Router()
PREFIX = "/agent"  # where functions.api.handler includes the router
route = functools.partial(routing.route, router, prefix=PREFIX, operation_prefix="agent_",
                          security=[{"agentIdToken": []}])
_READ, _CHANGE = routing.AGENT, (*routing.AGENT_CHANGE, *routing.WITH_BODY)
_ANSWER = {200: routing.json_body(None, "The answer")}
_TICKET = {200: routing.json_body(None, "The ticket after the change and its event (the new version in ETag)")}
TicketId = Annotated[str, Path(max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=64,
                                       description="the ticket's version the change was made on (its ETag)")]
_VERSION = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')


def agent() -> Agent:
    """The signed-in agent, from the authorizer's claims (Unauthenticated without them)."""
    return Agent.from_claims(router.current_event.request_context.authorizer.claims, load_policy())


def version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    found = _VERSION.match(if_match)
    if not found:
        raise InvalidRequest('If-Match is the ticket\'s version as its ETag gives it, e.g. "7"',
                             details=[{"field": "If-Match", "message": "not a version", "type": "value_error"}])
    return int(found.group(1))


def _json(body: dict, *, etag: int | None = None, status: int = 200) -> Response:
    headers = {"ETag": f'"{etag}"'} if etag is not None else None
    return Response(status, content_types.APPLICATION_JSON, body, headers=headers)


def _changed(result: dict) -> Response:
    return _json(result, etag=result["ticket"]["version"])


def _list(value: str | None, allowed: tuple[str, ...] | frozenset[str], name: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip() for v in (value or "").split(",") if v.strip()))
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise InvalidRequest(f"unknown {name}: {', '.join(unknown)}",
                             details=[{"field": name, "message": f"one of {', '.join(sorted(allowed))}",
                                       "type": "enum"}])
    return items


# -- who I am, what I work on -------------------------------------------------------------------------

@route("GET", "/me", ok=_ANSWER, errors=_READ, summary="The signed-in agent: tier, departments, manager or not")
def me():
    return _json(desk.me(agent(), load_policy()))


@route("GET", "/queue", ok=_ANSWER, errors=_READ, summary="The tier case view, soonest deadline first")
def queue_view(
    status: Annotated[str | None, Query(max_length=200, description="comma-separated: new, open, pending_customer, resolved (default: all but resolved)")] = None,
    priority: Annotated[str | None, Query(max_length=200, description="comma-separated priorities")] = None,
    department: Annotated[str | None, Query(max_length=500, description="comma-separated departments (default: mine)")] = None,
    tier: Annotated[str | None, Query(max_length=200, description="comma-separated tiers (default: mine)")] = None,
    assignee: Annotated[str | None, Query(max_length=128, description='"me", "none" or a username')] = None,
    at_risk: Annotated[bool, Query(description="only tickets past the at-risk share of their window")] = False,
    breached: Annotated[bool, Query(description="only tickets past their deadline (or with management)")] = False,
    capped: Annotated[bool, Query(description="only tickets at the transfer cap (a manager's to move)")] = False,
    limit: Annotated[int, Query(ge=1, le=queue.PAGE_MAX)] = queue.PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=4096, description="the previous page's cursor")] = None,
):
    policy = load_policy()
    filters = _filters(policy, status, priority, department, tier, assignee, at_risk, breached, capped)
    return _json(desk.queue_page(agent(), policy, filters, limit=limit, cursor=cursor))


def _filters(policy, status, priority, department, tier, assignee, at_risk, breached, capped) -> queue.Filters:
    return queue.Filters(
        status=_list(status, queue.STATUSES, "status"), priority=_list(priority, tuple(policy.sla), "priority"),
        department=_list(department, policy.department_names, "department"),
        tier=_list(tier, ("L1", "L2", "L3", "management"), "tier"),
        assignee=assignee.strip() if assignee and assignee.strip() else None, at_risk=at_risk, breached=breached,
        capped=capped)


@route("GET", "/queue/counts", ok=_ANSWER, errors=_READ,
       summary="How many tickets of each status the view covers (its filters but status)")
def queue_counts(
    priority: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=500)] = None,
    tier: Annotated[str | None, Query(max_length=200)] = None,
    assignee: Annotated[str | None, Query(max_length=128)] = None,
    capped: Annotated[bool, Query()] = False,
):
    policy = load_policy()
    filters = _filters(policy, None, priority, department, tier, assignee, False, False, capped)
    return _json(desk.queue_counts(agent(), policy, filters))


@route("GET", "/tickets/<ticket_id>", ok=_ANSWER, errors=_READ,
       summary="The ticket: customer panel first, hand-off, SLA clocks, escalations, whole timeline")
def ticket(ticket_id: TicketId,
           cursor: Annotated[str | None, Query(max_length=200, description="the timeline's next page")] = None):
    view = desk.ticket_view(agent(), ticket_id, load_policy(), cursor=cursor)
    return _json(view, etag=view["ticket"]["version"])


@route("GET", "/tickets/<ticket_id>/assignees", ok=_ANSWER, errors=_READ, summary="Who may be assigned this ticket")
def assignees(ticket_id: TicketId):
    return _json({"agents": desk.assignees(agent(), ticket_id, load_policy())})


@route("POST", "/tickets/<ticket_id>/presence", ok=_ANSWER, errors=(*routing.AGENT, *routing.WITH_BODY),
       summary="I have the ticket open or am writing on it (or left it); who else has it open")
def presence(ticket_id: TicketId, request: Annotated[PresenceRequest, Body()]):
    return _json(desk.presence(agent(), ticket_id, request.state))


# -- what I do to a ticket ------------------------------------------------------------------------------

@route("POST", "/tickets/<ticket_id>/assign", ok=_TICKET, errors=_CHANGE,
       summary="Assign to me, to a colleague, or to nobody")
def assign(ticket_id: TicketId, request: Annotated[AssignRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.assign(agent(), ticket_id, version(if_match), request.assignee, load_policy()))


@route("POST", "/tickets/<ticket_id>/replies", ok=_TICKET, errors=_CHANGE,
             summary="A public reply to the customer (and wait for them, or resolve)")
def reply(ticket_id: TicketId, request: Annotated[ReplyRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.reply(agent(), ticket_id, version(if_match), request.body, load_policy(), then=request.then))


@route("POST", "/tickets/<ticket_id>/notes", ok=_TICKET, errors=_CHANGE,
       summary="An internal note; @name alerts a colleague")
def note(ticket_id: TicketId, request: Annotated[NoteRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.note(agent(), ticket_id, version(if_match), request.body, load_policy()))


@route("POST", "/tickets/<ticket_id>/escalate", ok=_TICKET, errors=_CHANGE,
             summary="To the next tier, or to another department, with a hand-off summary")
def escalate(ticket_id: TicketId, request: Annotated[EscalateRequest, Body()], if_match: IfMatch = None):
    handoff = tickets.Handoff(request.handoff.need, request.handoff.tried, request.handoff.next_step)
    to_department = None if request.to == "next" else request.to
    return _changed(desk.escalate(agent(), ticket_id, version(if_match), handoff, load_policy(),
                                  to_department=to_department))


@route("POST", "/tickets/<ticket_id>/wait", ok=_TICKET, errors=_CHANGE,
       summary="Wait for the customer (the clock stops)")
def wait(ticket_id: TicketId, if_match: IfMatch = None):
    return _changed(desk.wait(agent(), ticket_id, version(if_match)))


@route("POST", "/tickets/<ticket_id>/resume", ok=_TICKET, errors=_CHANGE,
       summary="The clock runs again")
def resume(ticket_id: TicketId, if_match: IfMatch = None):
    return _changed(desk.resume(agent(), ticket_id, version(if_match), load_policy()))


@route("POST", "/tickets/<ticket_id>/priority", ok=_TICKET, errors=_CHANGE,
       summary="A new priority, with a reason")
def priority(ticket_id: TicketId, request: Annotated[PriorityRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.change_priority(agent(), ticket_id, version(if_match), request.priority, request.reason,
                                         load_policy()))


@route("POST", "/tickets/<ticket_id>/resolve", ok=_TICKET, errors=_CHANGE,
             summary="Resolve, with the note the customer reads (and the survey)")
def resolve(ticket_id: TicketId, request: Annotated[ResolveRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.resolve(agent(), ticket_id, version(if_match), request.note, load_policy()))


@route("POST", "/tickets/<ticket_id>/reopen", ok=_TICKET, errors=_CHANGE,
       summary="Take a resolved ticket up again")
def reopen(ticket_id: TicketId, request: Annotated[ReopenRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.reopen(agent(), ticket_id, version(if_match), request.reason, load_policy()))


@route("POST", "/tickets/<ticket_id>/merge", ok=_TICKET, errors=_CHANGE,
             summary="Close as a duplicate of another ticket of the same customer")
def merge(ticket_id: TicketId, request: Annotated[MergeRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.merge(agent(), ticket_id, version(if_match), request.into.upper(), request.note))


@route("POST", "/tickets/<ticket_id>/return", ok=_TICKET, errors=_CHANGE,
             summary="Managers: hand a ticket with management back to a tier, with a note")
def return_to_tier(ticket_id: TicketId, request: Annotated[ReturnRequest, Body()], if_match: IfMatch = None):
    return _changed(desk.return_to_tier(agent(), ticket_id, version(if_match), request.tier, request.note,
                                        load_policy()))


# -- customers ------------------------------------------------------------------------------------------

Email = Annotated[str, Path(max_length=254)]


@route("GET", "/customers", ok=_ANSWER, errors=_READ, summary="Managers: every customer record, a page at a time")
def customer_records(cursor: Annotated[str | None, Query(max_length=254)] = None,
                     limit: Annotated[int, Query(ge=1, le=100)] = 50):
    return _json(customers.records(agent(), load_policy(), cursor=cursor, limit=limit))


@route("GET", "/report", ok=_ANSWER, errors=_READ,
       summary="Managers: the SLA report's rows and what each agent did, for a range of days")
def sla_report(start: Annotated[str | None, Query(alias="from", max_length=10)] = None,
               end: Annotated[str | None, Query(alias="to", max_length=10)] = None,
               by: Annotated[str | None, Query(max_length=100, description="columns: day,priority,department,tier")] = None):
    from helpdesk import report  # only managers' report pages need it (not at cold start)

    require_manager(agent(), "read the SLA report")
    try:
        first, last, columns = report.parse_range(start, end, by)
    except ValueError as error:
        raise InvalidRequest(str(error), details=[{"field": "from"}]) from None
    rows, by_agent = report.report_with_agents(first, last, by=columns)
    return _json({"from": first.isoformat(), "to": last.isoformat(), "by": columns,
                  "rows": [r.to_dict() for r in rows], "agents": [r.to_dict() for r in by_agent]})


@route("GET", "/customers/<email>", ok=_ANSWER, errors=_READ, summary="Managers: a customer's value, notes and tickets")
def customer(email: Email):
    policy, manager = load_policy(), agent()
    require_manager(manager, "look up a customer's record (agents see it on the customer's tickets)")
    view = customers.panel(manager, deliverable(email), policy)
    return _json(view, etag=view["version"])


@route("PUT", "/customers/<email>", ok=_ANSWER, errors=(*routing.AGENT, 409, *routing.WITH_BODY),
       summary="Managers: set a customer's value tier, lifetime value, notes")
def set_customer(email: Email, request: Annotated[CustomerRequest, Body()], if_match: IfMatch = None):
    policy = load_policy()
    view = customers.set_profile(agent(), deliverable(email), policy, value_tier=request.value_tier,
                                 lifetime_value=request.lifetime_value, notes=request.notes,
                                 expected_version=version(if_match))
    return _json(view, etag=view["version"])
