"""Ticket use cases: what customers, agents and the system do to a ticket.

Every change goes through :mod:`helpdesk.ledger`: one DynamoDB transaction of the ticket
(optimistically locked by its version) and the timeline event that tells the story, with the
escalation chain kept in step. Notifications follow from the event through the table's stream;
nothing here publishes by hand.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk import chains, clock, escalation, ids, ledger, routing, settings, sla
from helpdesk.config import Policy, load_policy
from helpdesk.errors import Conflict, InvalidRequest, NotFound
from helpdesk.models import (
    ACTIVE,
    CLOSED,
    EVENT_SK_PREFIX,
    PAUSED,
    Ticket,
    TicketEvent,
    due_shard,
    opened_shard,
    ticket_pk,
)


SUBJECT_MAX = 200
DESCRIPTION_MAX = 20_000
MESSAGE_MAX = 20_000
SUMMARY_MAX = 5_000
CATEGORIES = ("billing", "technical", "account", "general")


@dataclass(frozen=True)
class NewTicket:
    channel: str
    customer_email: str
    subject: str
    description: str
    category: str = "general"
    customer_name: str | None = None
    customer_phone: str | None = None
    customer_time_zone: str | None = None  # IANA; the customer's pages and messages show times in it
    # The email channel (helpdesk.intake): the customer's Message-ID (the acknowledgement answers
    # it), the older ticket this one follows up, the files that came with the email.
    source_message_id: str | None = None
    related_ticket_id: str | None = None
    attachments: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Opened:
    ticket: Ticket
    access_token: str  # shown once to the customer; only its hash is stored


def open_ticket(request: NewTicket, policy: Policy | None = None) -> Opened:
    """Route, set the SLA clock, write the ticket with its ``created`` event, start its chain."""
    policy = policy or load_policy()
    now = clock.now()
    tier_of_customer = routing.customer_tier(policy, request.customer_email)
    rule, route = routing.route(policy, routing.Request(
        channel=request.channel, category=request.category, subject=request.subject,
        description=request.description, customer_tier=tier_of_customer))
    due = sla.deadlines(policy, route.priority, now)
    for _ in range(ledger.ATTEMPTS):  # a reference collision (1 in 1e9) just draws another
        ticket_id = ids.new_ticket_id()
        token = access_token(ticket_id)
        ticket = Ticket(
            ticket_pk(ticket_id), ticket_id=ticket_id, token_hash=ids.hash_token(token),
            channel=request.channel, customer_email=request.customer_email.strip().lower(),
            customer_name=request.customer_name or None, customer_phone=request.customer_phone or None,
            customer_tier=tier_of_customer, customer_time_zone=request.customer_time_zone or None,
            subject=request.subject, description=request.description,
            category=request.category, priority=route.priority, department=route.department,
            tier=route.tier, status="new", created_at=now, updated_at=now,
            opened_shard=opened_shard(ticket_id, now),
            first_response_due_at=due.first_response_due_at, resolution_due_at=due.resolution_due_at,
            source_message_id=request.source_message_id, related_ticket_id=request.related_ticket_id,
            attachments=[dict(a) for a in request.attachments] or None,
        )
        ledger.apply_plan(ticket, policy)
        event = ledger.event(ticket, "created", "customer", at=now, body=request.description, rule=rule,
                       channel=request.channel, priority=route.priority, department=route.department,
                       tier=route.tier, source_message_id=request.source_message_id,
                       related_ticket_id=request.related_ticket_id,
                       attachments=[dict(a) for a in request.attachments] or None)
        try:
            ledger.commit(ticket, event, new=True)
        except ledger.Collision:
            continue
        chains.start(ticket_id, chains.name(ticket))  # a failure is logged; the sweep starts it later
        return Opened(ticket, token)
    raise Conflict("could not allocate a ticket reference; please retry")


def access_token(ticket_id: str) -> str:
    """The ticket's access token, recomputed from the secret (the table holds only its hash)."""
    return ids.access_token(ticket_id, _token_key())


def reply_token(ticket_id: str) -> str:
    """The tag of the ticket's reply address (``support+<token>@domain``): lower case, derived from
    the same secret as the access token but distinct from it (see ``ids.reply_token``)."""
    return ids.reply_token(ticket_id, _token_key())


def _token_key() -> bytes:
    from aws_lambda_powertools.utilities import parameters

    arn = settings.get(settings.Env.TOKEN_SECRET_ARN)
    secret = parameters.get_secret(arn, max_age=3600) if arn else ""
    if not secret:
        raise RuntimeError(f"{settings.Env.TOKEN_SECRET_ARN} names no secret: cannot issue access tokens")
    return secret.encode() if isinstance(secret, str) else secret


def private_link(ticket_id: str, base_url: str | None = None) -> str:
    """The customer's private link to the ticket page."""
    from urllib.parse import quote

    base = (base_url or settings.get(settings.Env.PUBLIC_BASE_URL)).rstrip("/")
    return f"{base}/tickets/{quote(ticket_id)}?token={quote(access_token(ticket_id))}"


def check_access(ticket_id: str, token: str | None) -> None:
    """NotFound unless ``token`` is the ticket's access token.

    The token is recomputed from the ticket id and the token key (``ids.access_token``) and compared in
    constant time: a wrong token costs no read, and takes the same time whether the ticket exists or
    not, so neither the answer nor its time tells a stranger that it does.
    """
    given = (token or "").encode("utf-8", "surrogatepass")
    if not given or not secrets.compare_digest(given, access_token(ticket_id).encode()):
        raise NotFound("no ticket with this reference and access token")


def load_for_customer(ticket_id: str, token: str | None) -> Ticket:
    """The ticket, read only once ``token`` proved to be its access token (see :func:`check_access`)."""
    check_access(ticket_id, token)
    ticket = ledger.load(ticket_id)
    if not ids.tokens_match(token, ticket.token_hash):  # the stored hash agrees (it always should)
        raise NotFound("no ticket with this reference and access token")
    return ticket


def timeline(ticket_id: str, *, public_only: bool = True) -> list[TicketEvent]:
    """The whole timeline, oldest first (reports and tests; people read it a page at a time)."""
    events = TicketEvent.query(ticket_pk(ticket_id), TicketEvent.sk.startswith(EVENT_SK_PREFIX))
    return [e for e in events if e.public or not public_only]


# A page of a timeline: a bounded number of entries and of characters, so that a page is well under
# Lambda's 6 MB response limit however the ticket grew (each character costs at most 14 bytes once
# JSON-escaped twice: by the API, then by the Lambda runtime's envelope).
PAGE_ENTRIES = 50
PAGE_CHARACTERS = 200_000  # ten messages of the longest kind
_CURSOR = re.compile(rf"{EVENT_SK_PREFIX}\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ#[0-9a-f]{{1,40}}")


@dataclass(frozen=True)
class TimelinePage:
    events: list[TicketEvent]  # oldest first, as a conversation reads
    earlier: str | None  # the cursor of the entries before these; None: the page starts at the beginning


def timeline_page(ticket_id: str, cursor: str | None = None, *, public_only: bool = True,
                  entries: int = PAGE_ENTRIES, characters: int = PAGE_CHARACTERS) -> TimelinePage:
    """One page of the ticket's timeline, going back in time: the latest entries without a cursor,
    those before the previous page with its ``earlier`` cursor (opaque; it can only name a place in
    this ticket's own timeline). One Query of the ticket's partition, newest first, read one entry
    past the page to know whether earlier ones exist.
    """
    query = TicketEvent.query(
        ticket_pk(ticket_id), TicketEvent.sk.startswith(EVENT_SK_PREFIX), scan_index_forward=False,
        filter_condition=(TicketEvent.public == True) if public_only else None,  # noqa: E712 - a condition
        last_evaluated_key=_cursor_key(ticket_id, cursor) if cursor else None, page_size=entries + 1)
    page: list[TicketEvent] = []
    size = 0
    for event in query:
        size += len(event.body or "")
        if len(page) == entries or (page and size > characters):
            return TimelinePage(page[::-1], _cursor(page[-1]))
        page.append(event)
    return TimelinePage(page[::-1], None)


def _cursor(event: TicketEvent) -> str:
    return base64.urlsafe_b64encode(event.sk.encode()).decode().rstrip("=")


def _cursor_key(ticket_id: str, cursor: str) -> dict:
    try:
        sk = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        sk = ""
    if not _CURSOR.fullmatch(sk):
        raise InvalidRequest("the cursor is not one this timeline gave")
    return {"pk": {"S": ticket_pk(ticket_id)}, "sk": {"S": sk}}


REOPEN_DAYS = 7  # a customer's message reopens a resolved ticket within this; later it needs a new one
AUTO_CLOSE = "auto_close"  # the due-index entry of a resolution: the sweep closes the ticket then


def auto_close_after() -> timedelta:
    """7 days after the resolution, compressed like the SLA on the local stack (``HELPDESK_TIME_SCALE``)."""
    return timedelta(days=REOPEN_DAYS) / float(settings.get(settings.Env.TIME_SCALE) or 1)


def schedule_auto_close(event: TicketEvent, ticket: Ticket) -> None:
    """A resolution's ``status_changed`` event enters the due index, due :func:`auto_close_after`
    (the sweep closes the ticket then, unless the customer wrote since).

    The event rather than the ticket carries the entry: the ticket's ``next_due_at`` is the escalation
    chain's clock, and a resolved ticket has none.
    """
    event.due_shard = due_shard(ticket.ticket_id)
    event.next_due_at = ticket.resolved_at + auto_close_after()
    event.due_kind = AUTO_CLOSE


def reopenable(ticket: Ticket, now: datetime) -> bool:
    """Whether a customer's message may still land on the ticket (closed ones and old resolutions not)."""
    if ticket.status == "closed":
        return False
    if ticket.status == "resolved":
        return now - (ticket.resolved_at or ticket.updated_at) <= timedelta(days=REOPEN_DAYS)
    return True


def customer_wrote(ticket: Ticket, policy: Policy) -> bool:
    """What a customer's message does to the clock: a waiting one resumes, a resolved ticket reopens.

    Returns whether the ticket reopened; the caller has checked :func:`reopenable`.
    """
    if ticket.status == PAUSED:
        _resume(ticket, policy)
    elif ticket.status == "resolved":
        ticket.status, ticket.resolved_at = "open", None
        ledger.apply_plan(ticket, policy)
        return True
    return False


def add_customer_message(ticket_id: str, token: str | None, body: str,
                         policy: Policy | None = None) -> TicketEvent:
    """The customer writes on their ticket through its private link."""
    check_access(ticket_id, token)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if not reopenable(ticket, clock.now()):
            raise Conflict("this request is closed; please open a new one")
        reopened = customer_wrote(ticket, policy)
        return ledger.event(ticket, "message", "customer", body=body, reopened=reopened or None)

    # a transition: a reopened ticket's clock gets a new escalation chain
    _, event = ledger.transition(ticket_id, apply)
    return event


def rate(ticket_id: str, token: str | None, score: int, comment: str = "") -> TicketEvent:
    """The customer's satisfaction rating (1-5) once the ticket is resolved; a new rating replaces
    the old one in the report (the latest ``survey`` event counts)."""
    check_access(ticket_id, token)

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status not in CLOSED:
            raise Conflict("a request can be rated once it is resolved")
        return ledger.event(ticket, "survey", "customer", body=comment or None, public=False, score=score)

    _, event = ledger.change(ticket_id, apply)
    return event


def _resume(ticket: Ticket, policy: Policy) -> None:
    """Restart a paused clock: every due time moves by the business time spent waiting."""
    now = clock.now()
    waited = (ticket.paused_at or now, now)
    ticket.pauses = [*(ticket.pauses or []), "/".join(clock.to_iso(t) for t in waited)]
    _credit_waits(ticket, policy, [waited])
    ticket.status, ticket.paused_at = "open", None
    ledger.apply_plan(ticket, policy)


def _waits(ticket: Ticket) -> list[tuple[datetime, datetime]]:
    return [(clock.from_iso(start), clock.from_iso(end)) for start, end in (p.split("/") for p in ticket.pauses or [])]


def _credit_waits(ticket: Ticket, policy: Policy, waits: list[tuple[datetime, datetime]]) -> None:
    """Move the due times by the business time of ``waits`` in the priority's calendar. The
    first-response target is moved only by waits that began before the first response."""
    calendar = policy.calendars[policy.sla[ticket.priority].calendar]

    def business(periods) -> timedelta:
        return sum((sla.business_time_between(start, end, calendar) for start, end in periods), timedelta(0))

    responded = ticket.first_responded_at
    before_response = business(w for w in waits if responded is None or w[0] < responded)
    if before_response:
        ticket.first_response_due_at = sla.add_business_time(ticket.first_response_due_at, before_response, calendar)
    if total := business(waits):
        ticket.resolution_due_at = sla.add_business_time(ticket.resolution_due_at, total, calendar)


def customer_view(ticket: Ticket, page: TimelinePage | None = None) -> dict:
    """What the customer may see of their ticket (never the token hash or internal notes), with one
    page of its timeline (``next``: the cursor of the page before it)."""
    events = page.events if page else []
    return {
        "id": ticket.ticket_id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "department": ticket.department,
        "tier": ticket.tier,
        "category": ticket.category,
        "created_at": clock.to_iso(ticket.created_at),
        "updated_at": clock.to_iso(ticket.updated_at),
        "first_response_due_at": clock.to_iso(ticket.first_response_due_at),
        "resolution_due_at": clock.to_iso(ticket.resolution_due_at),
        "first_responded_at": clock.to_iso(ticket.first_responded_at) if ticket.first_responded_at else None,
        "time_zone": ticket.customer_time_zone,  # None: the team's
        "timeline": [
            {"type": e.type, "at": clock.to_iso(e.at), "actor": e.actor.split(":")[0], "body": e.body}
            for e in events if e.public
        ],
        "next": page.earlier if page else None,
    }


# -- agent transitions ------------------------------------------------------------------------------
#
# Each is a ledger.transition: the ticket (version-checked) and its event in one transaction, so a
# transition racing the escalation state machine (which bumps the version too) reloads and applies
# again on what the machine wrote, and the escalation chain follows the clock the change left.


def _actor(agent: str) -> str:
    name = (agent or "").strip()
    if not name:
        raise InvalidRequest("the agent is required")
    return name if name.startswith("agent:") else f"agent:{name}"


def _required(text: str | None, what: str, limit: int) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidRequest(f"{what} is required")
    if len(text) > limit:
        raise InvalidRequest(f"{what} is longer than {limit} characters")
    return text


def _status_changed(ticket: Ticket, actor: str, old_status: str, *, body: str | None = None) -> TicketEvent:
    return ledger.event(ticket, "status_changed", actor, body=body, **{"from": old_status, "to": ticket.status})


def reply(ticket_id: str, agent: str, body: str, public: bool = True,
          policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """An agent answers. The first public reply meets the first-response target: the ticket opens and
    its clock moves on to the resolution deadline. A non-public reply is for colleagues only."""
    actor, body = _actor(agent), _required(body, "the reply", MESSAGE_MAX)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status == "closed":
            raise Conflict("this ticket is closed")
        first = public and ticket.first_responded_at is None and ticket.status not in CLOSED
        if first:
            ticket.first_responded_at = clock.now()
            if ticket.status == "new":
                ticket.status = "open"
            ledger.apply_plan(ticket, policy)
        return ledger.event(ticket, "reply", actor, body=body, public=public, first_response=True if first else None)

    return ledger.transition(ticket_id, apply)


def add_note(ticket_id: str, agent: str, body: str) -> tuple[Ticket, TicketEvent]:
    """An internal note: never shown to the customer, changes nothing else."""
    actor, body = _actor(agent), _required(body, "the note", MESSAGE_MAX)
    return ledger.transition(ticket_id, lambda ticket: ledger.event(ticket, "note", actor, body=body, public=False))


def pause(ticket_id: str, agent: str) -> tuple[Ticket, TicketEvent]:
    """Waiting on the customer: the SLA clock stops (out of the due index) and so does its chain."""
    actor = _actor(agent)

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status not in ACTIVE:
            raise Conflict(f"a {ticket.status} ticket cannot wait on its customer")
        old, ticket.status = ticket.status, PAUSED
        ticket.paused_at, ticket.due_shard = clock.now(), None  # the plan stays: resume shifts it
        return _status_changed(ticket, actor, old)

    return ledger.transition(ticket_id, apply)


def resume(ticket_id: str, agent: str, policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """The clock runs again; every due time moves by the business time spent waiting."""
    actor = _actor(agent)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status != PAUSED:
            raise Conflict(f"a {ticket.status} ticket is not waiting on its customer")
        _resume(ticket, policy)  # status -> open, deadlines shifted, plan recomputed
        return _status_changed(ticket, actor, PAUSED)

    return ledger.transition(ticket_id, apply)


def change_priority(ticket_id: str, agent: str, priority: str,
                    policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """New SLA targets from the policy, counted from the ticket's creation (earlier waits on the
    customer credited again, in the new priority's calendar); the plan follows."""
    actor = _actor(agent)
    policy = policy or load_policy()
    if priority not in policy.sla:
        raise InvalidRequest(f"unknown priority {priority!r}", details=sorted(policy.sla))

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status in CLOSED:
            raise Conflict(f"a {ticket.status} ticket has no SLA to change")
        if ticket.priority == priority:
            raise Conflict(f"the ticket's priority is already {priority}")
        old, ticket.priority = ticket.priority, priority
        due = sla.deadlines(policy, priority, ticket.created_at)
        ticket.first_response_due_at, ticket.resolution_due_at = due.first_response_due_at, due.resolution_due_at
        _credit_waits(ticket, policy, _waits(ticket))
        ledger.apply_plan(ticket, policy)  # a paused ticket stays out of the due index
        return ledger.event(ticket, "priority_changed", actor, **{"from": old, "to": priority})

    return ledger.transition(ticket_id, apply)


def resolve(ticket_id: str, agent: str, summary: str, policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """Resolved: the clock and the escalation chain stop. The summary is what the customer reads."""
    actor, summary = _actor(agent), _required(summary, "the resolution summary", MESSAGE_MAX)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status in CLOSED:
            raise Conflict(f"the ticket is already {ticket.status}")
        old, ticket.status = ticket.status, "resolved"
        ticket.resolved_at, ticket.paused_at = clock.now(), None
        ledger.apply_plan(ticket, policy)  # a resolved ticket has no clock
        event = _status_changed(ticket, actor, old, body=summary)
        schedule_auto_close(event, ticket)
        return event

    return ledger.transition(ticket_id, apply)


def departments(policy: Policy) -> set[str]:
    """The departments tickets can be routed or transferred to (those the routing rules name)."""
    return {rule.set.department for rule in policy.routing}


def escalate(ticket_id: str, agent: str, summary: str, to_department: str | None = None, *,
             expected_tier: str | None = None, policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """A manual escalation, with a summary for the next person.

    Hierarchical (no ``to_department``): the next tier takes the ticket (``escalated``). If its
    deadline has passed already, that tier gets one tier window (see :func:`escalation.plan`).
    ``expected_tier`` (the tier the agent saw) turns a race with an automatic escalation into a
    Conflict instead of a second climb. Functional (``to_department``): another department takes it
    at the same tier, on the same clock (``transferred``, internal).
    """
    actor, summary = _actor(agent), _required(summary, "a summary for the next person", SUMMARY_MAX)
    policy = policy or load_policy()
    if to_department is not None and to_department not in departments(policy):
        raise InvalidRequest(f"unknown department {to_department!r}", details=sorted(departments(policy)))

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status in CLOSED:
            raise Conflict(f"a {ticket.status} ticket cannot be escalated")
        if expected_tier is not None and ticket.tier != expected_tier:
            raise Conflict(f"the ticket is with {ticket.tier} now, not {expected_tier}")
        if to_department is not None:
            if to_department == ticket.department:
                raise Conflict(f"the ticket is with {to_department} already")
            old, ticket.department = ticket.department, to_department
            ticket.transfer_count = (ticket.transfer_count or 0) + 1
            return ledger.event(ticket, "transferred", actor, public=False, from_department=old,
                          to_department=to_department, summary=summary, tier=ticket.tier)
        if ticket.tier == escalation.MANAGEMENT:
            raise Conflict("the ticket is with management already")
        old, ticket.tier = ticket.tier, escalation.next_tier(ticket.tier)
        ticket.escalation_count = (ticket.escalation_count or 0) + 1
        ledger.apply_plan(ticket, policy)
        return ledger.event(ticket, "escalated", actor, from_tier=old, to_tier=ticket.tier, reason="manual",
                      auto=False, summary=summary, due_kind=ticket.due_kind)

    return ledger.transition(ticket_id, apply)
