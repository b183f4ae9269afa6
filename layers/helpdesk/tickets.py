"""Ticket use cases: what customers, agents and the system do to a ticket.

Every change goes through :mod:`helpdesk.ledger`: one DynamoDB transaction of the ticket
(optimistically locked by its version) and the timeline event that tells the story, with the
escalation chain kept in step. Notifications follow from the event through the table's stream;
nothing here publishes by hand.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk import addresses, chains, clock, customers, escalation, ids, ledger, limits, routing, settings, sla
from helpdesk.config import Policy, load_policy, policy_as_written
from helpdesk.errors import Conflict, InvalidRequest, NotFound, RateLimited
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
CATEGORIES = policy_as_written().category_names  # the form's topics, from the policy file
DEFAULT_CATEGORY = policy_as_written().default_category


@dataclass(frozen=True)
class NewTicket:
    channel: str
    customer_email: str
    subject: str
    description: str
    category: str = DEFAULT_CATEGORY
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


def open_ticket(request: NewTicket, policy: Policy | None = None, *,
                files: Callable[[], Iterable[dict]] | None = None) -> Opened:
    """Route, set the SLA clock, write the ticket with its ``created`` event, start its chain.

    Raises :class:`~helpdesk.addresses.Undeliverable` for an address we cannot write to, and
    :class:`~helpdesk.errors.RateLimited` past the hour's new tickets for its address or phone
    number (``helpdesk.limits``: each ticket sends an acknowledgement, whatever the channel).
    ``files`` (the email channel storing its attachments) runs only once the ticket is allowed, so
    a refused request leaves nothing behind; what it returns joins ``request.attachments``.
    """
    policy = policy or load_policy()
    now = clock.now()
    customer_email = addresses.deliverable(request.customer_email)
    if request.category not in policy.category_names:
        raise InvalidRequest(f"unknown category {request.category!r}", details=list(policy.category_names))
    with limits.spend(limits.NEW_TICKETS, customer_email, request.customer_phone, at=now):
        if files is not None:
            request = dataclasses.replace(request, attachments=(*request.attachments, *files()))
        return _open(request, customer_email, policy, now)


def _open(request: NewTicket, customer_email: str, policy: Policy, now: datetime) -> Opened:
    tier_of_customer = customers.value_tier(customer_email, policy)
    rule, route = routing.route(policy, routing.Request(
        channel=request.channel, category=request.category, subject=request.subject,
        description=request.description, customer_tier=tier_of_customer))
    due = sla.deadlines(policy, route.priority, now)
    for _ in range(ledger.ATTEMPTS):  # a reference collision (1 in 1e9) just draws another
        ticket_id = ids.new_ticket_id()
        token = access_token(ticket_id)
        ticket = Ticket(
            ticket_pk(ticket_id), ticket_id=ticket_id, token_hash=ids.hash_token(token),
            channel=request.channel, customer_email=customer_email,
            customer_name=request.customer_name or None, customer_phone=request.customer_phone or None,
            requester=request.customer_name or customer_email,
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
# Event ids: hex for people's entries; esc-L2, at-risk-..., auto-close for the chain's and the sweep's.
_CURSOR = re.compile(rf"{EVENT_SK_PREFIX}\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ#[0-9A-Za-z_-]{{1,60}}")


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
    _, event = customer_message(load_for_customer(ticket_id, token), body, policy=policy)
    return event


class TicketClosed(Conflict):
    """The ticket takes no more messages (closed, or resolved too long ago): a new request follows it up."""


def customer_message(ticket: Ticket, body: str | None, *, sender: str | None = None, policy: Policy | None = None,
                     files: Callable[[], Iterable[dict]] | None = None, **data) -> tuple[Ticket, TicketEvent]:
    """A message from the customer (or ``sender``, someone writing on their behalf) on ``ticket``,
    from any channel: a waiting clock resumes, a recently resolved ticket reopens (``reopened`` in
    the event's data). ``files`` (the email channel storing its attachments) runs only once the
    message is allowed; they are listed on the event and the ticket. ``data`` joins the event's.

    What one ticket and one sender can add is capped (a spoofed reply stream included): raises
    :class:`~helpdesk.errors.RateLimited` past ``HELPDESK_MESSAGES_PER_TICKET`` customer messages on
    the ticket or ``HELPDESK_MESSAGES_PER_HOUR`` from the sender this clock hour
    (``helpdesk.limits``), and :class:`TicketClosed` when the ticket takes no more messages.
    """
    policy = policy or load_policy()
    now = clock.now()
    sender = sender or ticket.customer_email
    _admit(ticket, now)  # before spending a slot or storing a file
    with limits.spend(limits.MESSAGES, sender, at=now):
        attachments = [dict(f) for f in files()] if files is not None else []

        def apply(current: Ticket) -> TicketEvent:  # may run again on a fresh copy after a concurrent change
            _admit(current, now)
            current.customer_messages = (current.customer_messages or 0) + 1
            reopened = customer_wrote(current, policy)
            if attachments:
                current.attachments = [*(current.attachments or []), *attachments]
            return ledger.event(current, "message", "customer", body=body, reopened=reopened or None,
                                sender=sender if sender != current.customer_email else None,
                                attachments=attachments or None, **data)

        # a transition: a reopened ticket's clock gets a new escalation chain
        return ledger.transition(ticket.ticket_id, apply)


def messages_per_ticket() -> int:
    return int(settings.get(settings.Env.MESSAGES_PER_TICKET) or 0)


def _admit(ticket: Ticket, now: datetime) -> None:
    if not reopenable(ticket, now):
        raise TicketClosed("this request is closed; please open a new one")
    cap = messages_per_ticket()
    if cap and (ticket.customer_messages or 0) >= cap:
        raise RateLimited(f"this request has reached {cap} messages; please open a new one")


def rate(ticket_id: str, token: str | None, score: int, comment: str = "") -> TicketEvent:
    """The customer's satisfaction rating (1-5) once the ticket is resolved; a new rating replaces
    the old one in the report (the latest ``survey`` event counts)."""
    check_access(ticket_id, token)

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status not in CLOSED:
            raise Conflict("a request can be rated once it is resolved")
        ticket.csat_score = score  # the latest rating: the customer panel and the report read it
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
# Each is a ledger.transition: the ticket (version-checked) and its events in one transaction, so a
# transition racing the escalation state machine (which bumps the version too) reloads and applies
# again on what the machine wrote, and the escalation chain follows the clock the change left.
# ``check`` is the caller's precondition on the loaded ticket (helpdesk.desk: may this agent act, on
# the version they saw); ``agent`` names them on the timeline (their Cognito username).

THEN = ("wait", "resolve")  # what a reply may do besides answering: wait for the customer, or resolve


@dataclass(frozen=True)
class Handoff:
    """What the next person needs when a ticket changes hands: shown first to the receiving team and
    carried in their alert."""

    need: str  # what the customer needs
    tried: str  # what was tried
    next_step: str  # what the receiving team should do next

    def text(self) -> str:
        return f"Needs: {self.need}\nTried: {self.tried}\nNext step: {self.next_step}"

    def as_data(self) -> dict:
        return {"need": self.need, "tried": self.tried, "next_step": self.next_step}


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


def _status_changed(ticket: Ticket, actor: str, old_status: str, *, body: str | None = None, public: bool = True,
                    **data) -> TicketEvent:
    return ledger.event(ticket, "status_changed", actor, body=body, public=public,
                        **{"from": old_status, "to": ticket.status}, **data)


def _pause(ticket: Ticket, actor: str) -> TicketEvent:
    if ticket.status not in ACTIVE:
        raise Conflict(f"a {ticket.status} ticket cannot wait on its customer")
    old, ticket.status = ticket.status, PAUSED
    ticket.paused_at, ticket.due_shard = clock.now(), None  # the plan stays: resume shifts it
    return _status_changed(ticket, actor, old)


def _resolve(ticket: Ticket, actor: str, summary: str | None, policy: Policy, **data) -> TicketEvent:
    if ticket.status in CLOSED:
        raise Conflict(f"the ticket is already {ticket.status}")
    old, ticket.status = ticket.status, "resolved"
    ticket.resolved_at, ticket.paused_at = clock.now(), None
    ledger.apply_plan(ticket, policy)  # a resolved ticket has no clock
    event = _status_changed(ticket, actor, old, body=summary, **data)
    schedule_auto_close(event, ticket)
    return event


def reply(ticket_id: str, agent: str, body: str, public: bool = True, policy: Policy | None = None, *,
          then: str | None = None, check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """An agent answers. The first public reply meets the first-response target: the ticket opens and
    its clock moves on to the resolution deadline. A non-public reply is for colleagues only.

    ``then="wait"`` also waits for the customer (the clock stops); ``then="resolve"`` also resolves
    the ticket, and the customer gets one email: the answer, as the resolution, with the survey.
    """
    actor, body = _actor(agent), _required(body, "the reply", MESSAGE_MAX)
    policy = policy or load_policy()
    if then is not None and (then not in THEN or not public):
        raise InvalidRequest(f"a public reply can then {' or '.join(THEN)}", details=[{"field": "then"}])

    def apply(ticket: Ticket):
        if ticket.status == "closed":
            raise Conflict("this ticket is closed")
        first = public and ticket.first_responded_at is None and ticket.status not in CLOSED
        if first:
            ticket.first_responded_at = clock.now()
            if ticket.status == "new":
                ticket.status = "open"
            ledger.apply_plan(ticket, policy)
        answer = ledger.event(ticket, "reply", actor, body=body, public=public,
                              first_response=True if first else None, then=then)
        if then == "wait":
            return answer, _pause(ticket, actor)
        if then == "resolve":  # the resolution carries the answer: the customer reads it once
            return answer, _resolve(ticket, actor, body, policy, with_reply=answer.event_id)
        return answer

    return ledger.transition(ticket_id, apply, check=check)


MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9._-]{0,63})")


def mentioned(body: str) -> list[str]:
    """The ``@names`` a note mentions, in order, once each."""
    return list(dict.fromkeys(name.rstrip(".") for name in MENTION.findall(body or "")))


def add_note(ticket_id: str, agent: str, body: str, *, mentions: tuple[dict, ...] = (),
             check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """An internal note: never shown to the customer, changes nothing else. ``mentions`` are the agents
    it alerts (``{"username", "email"}``, resolved by the caller): each gets a team alert by email."""
    actor, body = _actor(agent), _required(body, "the note", MESSAGE_MAX)
    return ledger.transition(ticket_id, lambda ticket: ledger.event(
        ticket, "note", actor, body=body, public=False, mentions=[dict(m) for m in mentions] or None), check=check)


def pause(ticket_id: str, agent: str, *, check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """Waiting on the customer: the SLA clock stops (out of the due index) and so does its chain."""
    actor = _actor(agent)
    return ledger.transition(ticket_id, lambda ticket: _pause(ticket, actor), check=check)


def resume(ticket_id: str, agent: str, policy: Policy | None = None, *,
           check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """The clock runs again; every due time moves by the business time spent waiting."""
    actor = _actor(agent)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status != PAUSED:
            raise Conflict(f"a {ticket.status} ticket is not waiting on its customer")
        _resume(ticket, policy)  # status -> open, deadlines shifted, plan recomputed
        return _status_changed(ticket, actor, PAUSED)

    return ledger.transition(ticket_id, apply, check=check)


def change_priority(ticket_id: str, agent: str, priority: str, policy: Policy | None = None, *,
                    reason: str | None = None, check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
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
        return ledger.event(ticket, "priority_changed", actor, public=False, reason=reason,
                            **{"from": old, "to": priority})

    return ledger.transition(ticket_id, apply, check=check)


def resolve(ticket_id: str, agent: str, summary: str, policy: Policy | None = None, *,
            check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """Resolved: the clock and the escalation chain stop. The summary is what the customer reads."""
    actor, summary = _actor(agent), _required(summary, "the resolution summary", MESSAGE_MAX)
    policy = policy or load_policy()
    return ledger.transition(ticket_id, lambda ticket: _resolve(ticket, actor, summary, policy), check=check)


def reopen(ticket_id: str, agent: str, reason: str, policy: Policy | None = None, *,
           check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """An agent takes a resolved ticket up again: its clock runs again with a new chain (a closed
    ticket stays closed: the customer's follow-up opens a new one that refers to it)."""
    actor, reason = _actor(agent), _required(reason, "the reason", SUMMARY_MAX)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status != "resolved":
            raise Conflict(f"only a resolved ticket can be reopened; this one is {ticket.status}")
        ticket.status, ticket.resolved_at = "open", None
        ledger.apply_plan(ticket, policy)
        return _status_changed(ticket, actor, "resolved", body=reason, public=False)

    return ledger.transition(ticket_id, apply, check=check)


def assign(ticket_id: str, agent: str, assignee: str | None, *,
           check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """Who works the ticket (a username; None: nobody). The caller has checked the assignee may."""
    actor = _actor(agent)

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status == "closed":
            raise Conflict("this ticket is closed")
        if ticket.assignee == assignee:
            raise Conflict(f"the ticket is assigned to {assignee} already" if assignee else "the ticket is not assigned")
        old, ticket.assignee = ticket.assignee, assignee
        return ledger.event(ticket, "assigned", actor, public=False, **{"from": old, "to": assignee})

    return ledger.transition(ticket_id, apply, check=check)


def escalate(ticket_id: str, agent: str, summary: str | Handoff, to_department: str | None = None, *,
             expected_tier: str | None = None, policy: Policy | None = None,
             check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """A manual escalation, with a hand-off summary for the next person.

    Hierarchical (no ``to_department``): the next tier takes the ticket (``escalated``). If its
    deadline has passed already, that tier gets one tier window (see :func:`escalation.plan`).
    ``expected_tier`` (the tier the agent saw) turns a race with an automatic escalation into a
    Conflict instead of a second climb. Functional (``to_department``): another department takes it
    at the same tier, on the same clock (``transferred``, internal; the receiving team is alerted).
    Either way the ticket leaves its assignee: the receiving team's queue has it.
    """
    actor = _actor(agent)
    handoff = summary if isinstance(summary, Handoff) else None
    text = _required(handoff.text() if handoff else summary, "a summary for the next person", SUMMARY_MAX)
    policy = policy or load_policy()
    if to_department is not None and to_department not in policy.department_names:
        raise InvalidRequest(f"unknown department {to_department!r}", details=sorted(policy.department_names))

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status in CLOSED:
            raise Conflict(f"a {ticket.status} ticket cannot be escalated")
        if expected_tier is not None and ticket.tier != expected_tier:
            raise Conflict(f"the ticket is with {ticket.tier} now, not {expected_tier}")
        extra = {"summary": text, "handoff": handoff.as_data() if handoff else None,
                 "previous_assignee": ticket.assignee}
        if to_department is not None:
            if to_department == ticket.department:
                raise Conflict(f"the ticket is with {to_department} already")
            old, ticket.department, ticket.assignee = ticket.department, to_department, None
            ticket.transfer_count = (ticket.transfer_count or 0) + 1
            return ledger.event(ticket, "transferred", actor, public=False, from_department=old,
                                to_department=to_department, tier=ticket.tier, **extra)
        if ticket.tier == escalation.MANAGEMENT:
            raise Conflict("the ticket is with management already")
        old, ticket.tier, ticket.assignee = ticket.tier, escalation.next_tier(ticket.tier), None
        ticket.escalation_count = (ticket.escalation_count or 0) + 1
        ledger.apply_plan(ticket, policy)
        return ledger.event(ticket, "escalated", actor, from_tier=old, to_tier=ticket.tier, reason="manual",
                            auto=False, due_kind=ticket.due_kind, department=ticket.department, **extra)

    return ledger.transition(ticket_id, apply, check=check)


def return_to_tier(ticket_id: str, agent: str, tier: str, note: str, policy: Policy | None = None, *,
                   check: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """Management hands a ticket back to a tier, with a note for it: that tier gets one tier window
    from now (the SLA stays breached: it was)."""
    actor, note = _actor(agent), _required(note, "a note for the tier", SUMMARY_MAX)
    policy = policy or load_policy()
    if tier not in escalation.ESCALATION_LADDER[:-1]:
        raise InvalidRequest(f"a ticket returns to L1, L2 or L3, not {tier!r}", details=[{"field": "tier"}])

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.tier != escalation.MANAGEMENT or ticket.status in CLOSED:
            raise Conflict(f"the ticket is not with management (it is {ticket.status} at {ticket.tier})")
        ticket.tier, ticket.assignee = tier, None
        ledger.apply_plan(ticket, policy)
        return ledger.event(ticket, "returned", actor, public=False, from_tier=escalation.MANAGEMENT, to_tier=tier,
                            summary=note, department=ticket.department, due_kind=ticket.due_kind)

    return ledger.transition(ticket_id, apply, check=check)


def merge(ticket_id: str, agent: str, into: str, note: str | None = None, *,
          check: ledger.Check | None = None, check_target: ledger.Check | None = None) -> tuple[Ticket, TicketEvent]:
    """Close ``ticket_id`` as a duplicate of ``into`` (the same customer's), with a link both ways in
    one transaction; the customer is told where the conversation goes on."""
    actor = _actor(agent)
    if into == ticket_id:
        raise InvalidRequest("a ticket cannot be merged into itself", details=[{"field": "into"}])
    for _ in range(ledger.ATTEMPTS):
        duplicate, target = ledger.load(ticket_id), ledger.load(into)
        if check is not None:
            check(duplicate)
        if check_target is not None:
            check_target(target)
        if duplicate.status == "closed" or target.status == "closed":
            raise Conflict("a closed ticket cannot be merged, nor merged into")
        if duplicate.customer_email != target.customer_email:
            raise Conflict("only tickets of the same customer can be merged", details=[{"field": "into"}])
        old, duplicate.status, duplicate.merged_into = duplicate.status, "closed", into
        ledger.apply_plan(duplicate, load_policy())  # no clock any more
        closed = _status_changed(duplicate, actor, old, body=note, merged_into=into)
        linked = ledger.event(target, "merged", actor, public=False, body=note, merged_from=ticket_id,
                              subject=duplicate.subject)
        duplicate.updated_at = target.updated_at = closed.at
        try:
            ledger.commit_all((duplicate, (closed,)), (target, (linked,)))
        except ledger.Collision:
            continue
        chains.stop(chains.name(duplicate), f"merged into {into}")
        return duplicate, closed
    raise Conflict(f"ticket {ticket_id} is changing too fast; please retry")
