"""Ticket use cases: what customers, agents and the system do to a ticket.

Every change is one DynamoDB transaction: the ticket (optimistically locked by its version) and
the timeline event that tells the story. Notifications follow from the event through the table's
stream; nothing here publishes by hand.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from helpdesk import clock, escalation, ids, routing, settings, sla
from helpdesk.config import Policy, load_policy
from helpdesk.errors import Conflict, NotFound
from helpdesk.models import Ticket, TicketEvent, due_shard, event_sk, opened_shard, ticket_pk

SUBJECT_MAX = 200
DESCRIPTION_MAX = 20_000
MESSAGE_MAX = 20_000
CATEGORIES = ("billing", "technical", "account", "general")
ACTIVE = ("new", "open")  # statuses whose SLA clock runs
PAUSED = "pending_customer"  # waiting on the customer: the clock stands still
CLOSED = ("resolved", "closed")
_ATTEMPTS = 5  # optimistic-locking retries before a change gives up with Conflict


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


@functools.cache
def _connection() -> Connection:
    return Connection()


@functools.cache
def _stepfunctions():
    import boto3

    return boto3.client("stepfunctions")


def _event(ticket: Ticket, type_: str, actor: str, *, body: str | None = None, public: bool = True,
           at: datetime | None = None, **data) -> TicketEvent:
    at = at or clock.now()
    event_id = f"{time.time_ns():016x}{secrets.token_hex(2)}"  # orders events within one second
    return TicketEvent(
        ticket_pk(ticket.ticket_id), event_sk(at, event_id), ticket_id=ticket.ticket_id,
        event_id=event_id, type=type_, at=at, actor=actor, public=public, body=body,
        data={k: v for k, v in data.items() if v is not None} or None,
    )


def _commit(ticket: Ticket, event: TicketEvent, *, new: bool = False) -> None:
    """Write the ticket and its event as one transaction (the ticket's version guards races)."""
    with TransactWrite(connection=_connection()) as transaction:
        transaction.save(ticket, condition=Ticket.pk.does_not_exist() if new else None)
        transaction.save(event, condition=TicketEvent.sk.does_not_exist())


def _apply_plan(ticket: Ticket, policy: Policy) -> None:
    """Point the SLA clock and the escalation plan at the ticket's current deadline."""
    if ticket.status not in ACTIVE and ticket.status != PAUSED:
        ticket.next_due_at = ticket.due_kind = ticket.escalate_to = ticket.escalation_plan = None
        ticket.due_shard = None
        return
    due_kind = "resolution" if ticket.first_responded_at else "first_response"
    due_at = ticket.resolution_due_at if ticket.first_responded_at else ticket.first_response_due_at
    steps = escalation.plan(policy, priority=ticket.priority, tier=ticket.tier, due_at=due_at,
                            created_at=ticket.created_at)
    if steps is None:  # with management already: nothing left to climb to
        ticket.next_due_at = ticket.due_kind = ticket.escalate_to = ticket.escalation_plan = None
        ticket.due_shard = None
        return
    ticket.next_due_at, ticket.escalate_to, ticket.due_kind = steps.next_due_at, steps.escalate_to, due_kind
    ticket.escalation_plan = steps.steps
    # Only running clocks are in the sparse due index the sweep reads.
    ticket.due_shard = due_shard(ticket.ticket_id) if ticket.status in ACTIVE else None


def open_ticket(request: NewTicket, policy: Policy | None = None) -> Opened:
    """Route, set the SLA clock, write the ticket with its ``created`` event, start its chain."""
    policy = policy or load_policy()
    now = clock.now()
    tier_of_customer = routing.customer_tier(policy, request.customer_email)
    rule, route = routing.route(policy, routing.Request(
        channel=request.channel, category=request.category, subject=request.subject,
        description=request.description, customer_tier=tier_of_customer))
    due = sla.deadlines(policy, route.priority, now)
    for _ in range(_ATTEMPTS):  # a reference collision (1 in 1e9) just draws another
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
        _apply_plan(ticket, policy)
        event = _event(ticket, "created", "customer", at=now, body=request.description, rule=rule,
                       channel=request.channel, priority=route.priority, department=route.department,
                       tier=route.tier, source_message_id=request.source_message_id,
                       related_ticket_id=request.related_ticket_id,
                       attachments=[dict(a) for a in request.attachments] or None)
        try:
            _commit(ticket, event, new=True)
        except TransactWriteError:
            continue
        start_escalation(ticket_id)
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


def start_escalation(ticket_id: str) -> None:
    """Start the ticket's escalation chain, named after the ticket: a repeated start is harmless.

    A failure here never fails the customer's request: the scheduled sweep restarts any chain that
    is missing.
    """
    arn = settings.get(settings.Env.ESCALATION_STATE_MACHINE_ARN)
    if not arn:
        return
    client = _stepfunctions()
    try:
        client.start_execution(stateMachineArn=arn, name=ticket_id, input=json.dumps({"ticket_id": ticket_id}))
    except client.exceptions.ExecutionAlreadyExists:
        pass


def load(ticket_id: str) -> Ticket:
    try:
        return Ticket.get(ticket_pk(ticket_id), "TICKET")
    except Ticket.DoesNotExist:
        raise NotFound(f"ticket {ticket_id} not found") from None


def load_for_customer(ticket_id: str, token: str | None) -> Ticket:
    """The ticket, if ``token`` is its access token; otherwise exactly what a missing ticket gives."""
    try:
        ticket = load(ticket_id)
    except NotFound:
        ticket = None
    if ticket is None or not ids.tokens_match(token, ticket.token_hash):
        raise NotFound("no ticket with this reference and access token")
    return ticket


def timeline(ticket_id: str, *, public_only: bool = True) -> list[TicketEvent]:
    events = TicketEvent.query(ticket_pk(ticket_id), TicketEvent.sk.startswith("EVENT#"))
    return [e for e in events if e.public or not public_only]


def change(ticket_id: str, apply: Callable[[Ticket], TicketEvent]) -> tuple[Ticket, TicketEvent]:
    """Load, apply, commit; on a concurrent change (version conflict) reload and apply again.

    ``apply`` mutates the ticket and returns the event that records the change; it raises a
    domain error when the change is not allowed in the ticket's current state.
    """
    for _ in range(_ATTEMPTS):
        ticket = load(ticket_id)
        event = apply(ticket)
        ticket.updated_at = event.at
        try:
            _commit(ticket, event)
            return ticket, event
        except TransactWriteError:
            continue
    raise Conflict(f"ticket {ticket_id} is changing too fast; please retry")


REOPEN_DAYS = 7  # a customer's message reopens a resolved ticket within this; later it needs a new one


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
        _apply_plan(ticket, policy)
        return True
    return False


def add_customer_message(ticket_id: str, token: str | None, body: str,
                         policy: Policy | None = None) -> TicketEvent:
    """The customer writes on their ticket through its private link."""
    load_for_customer(ticket_id, token)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if not reopenable(ticket, clock.now()):
            raise Conflict("this request is closed; please open a new one")
        reopened = customer_wrote(ticket, policy)
        return _event(ticket, "message", "customer", body=body, reopened=reopened or None)

    # _transition: a reopened ticket's clock gets a new escalation chain
    _, event = _transition(ticket_id, apply)
    return event


def rate(ticket_id: str, token: str | None, score: int, comment: str = "") -> TicketEvent:
    """The customer's satisfaction rating (1-5) once the ticket is resolved; a new rating replaces
    the old one in the report (the latest ``survey`` event counts)."""
    load_for_customer(ticket_id, token)

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status not in CLOSED:
            raise Conflict("a request can be rated once it is resolved")
        return _event(ticket, "survey", "customer", body=comment or None, public=False, score=score)

    _, event = change(ticket_id, apply)
    return event


def _resume(ticket: Ticket, policy: Policy) -> None:
    """Restart a paused clock: every due time moves by the business time spent waiting."""
    now = clock.now()
    waited = (ticket.paused_at or now, now)
    ticket.pauses = [*(ticket.pauses or []), "/".join(clock.to_iso(t) for t in waited)]
    _credit_waits(ticket, policy, [waited])
    ticket.status, ticket.paused_at = "open", None
    _apply_plan(ticket, policy)


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


def customer_view(ticket: Ticket, events: list[TicketEvent]) -> dict:
    """What the customer may see of their ticket (never the token hash or internal notes)."""
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
    }


# ==================================================================================================
# Agent and system transitions, and the escalation chain's lifecycle.
#
# Each goes through change(): the ticket (version-checked) and its timeline event in one transaction,
# so a transition racing the escalation state machine (which bumps the version too) reloads and
# applies again on what the machine wrote. A transition that moves the deadline earlier than the one
# the running chain sleeps until hands the ticket to a new chain (``escalation_chain``); one that
# stops the clock stops the chain (best effort: a chain also ends by itself at its next wake).
# ==================================================================================================

import logging  # noqa: E402

from helpdesk.errors import InvalidRequest  # noqa: E402

_log = logging.getLogger(__name__)
SUMMARY_MAX = 5_000


def chain_name(ticket: Ticket) -> str:
    """The name of the escalation execution that owns the ticket's clock."""
    return ticket.escalation_chain or ticket.ticket_id


def _execution_arn(name: str) -> str | None:
    machine = settings.get(settings.Env.ESCALATION_STATE_MACHINE_ARN)
    if not machine:
        return None
    return f"{machine.replace(':stateMachine:', ':execution:', 1)}:{name}"


def _start_chain(ticket_id: str, name: str) -> bool:
    """Start the chain ``name`` for the ticket (a repeat is harmless). The change it follows is
    committed already: a failure is logged, and the sweep's :func:`ensure_escalation` recovers."""
    arn = settings.get(settings.Env.ESCALATION_STATE_MACHINE_ARN)
    if not arn:
        return False
    client = _stepfunctions()
    try:
        client.start_execution(stateMachineArn=arn, name=name, input=json.dumps({"ticket_id": ticket_id}))
    except client.exceptions.ExecutionAlreadyExists:
        pass
    except Exception:  # noqa: BLE001 -- never fail an agent's committed change over it
        _log.exception("could not start escalation chain %s", name)
        return False
    return True


def _stop_chain(name: str, cause: str) -> None:
    """Best effort: a chain that is not stopped ends by itself when it next reads the ticket."""
    arn = _execution_arn(name)
    if not arn:
        return
    try:
        _stepfunctions().stop_execution(executionArn=arn, cause=cause[:256])
    except Exception:  # noqa: BLE001 -- gone already, never started, throttled: it ends by itself
        _log.info("could not stop escalation chain %s", name, exc_info=True)


def ensure_escalation(ticket_id: str) -> None:
    """(Re)start the chain the ticket names, e.g. from the sweep when a running clock has none."""
    ticket = load(ticket_id)
    if _running_deadline(ticket) is not None:
        _start_chain(ticket_id, chain_name(ticket))


def _running_deadline(ticket: Ticket) -> datetime | None:
    """The deadline an escalation chain sleeps until: none while the clock is stopped (paused included)."""
    return None if ticket.status == PAUSED else ticket.next_due_at


def _transition(ticket_id: str, apply: Callable[[Ticket], TicketEvent]) -> tuple[Ticket, TicketEvent]:
    """``change()``, then keep the escalation chain in step with the clock the change left."""
    before: dict = {}

    def wrapped(ticket: Ticket) -> TicketEvent:
        due, chain = _running_deadline(ticket), chain_name(ticket)
        event = apply(ticket)
        after = _running_deadline(ticket)
        if after is not None and (due is None or after < due):
            # The running chain sleeps until the old, later deadline (or has ended, e.g. when the
            # ticket was paused or resolved): a new one takes over.
            ticket.escalation_chain = f"{ticket.ticket_id}-r{(ticket.version or 0) + 1}"
        before.update(due=due, chain=chain)
        return event

    ticket, event = change(ticket_id, wrapped)
    if chain_name(ticket) != before["chain"]:
        if _start_chain(ticket_id, chain_name(ticket)):
            _stop_chain(before["chain"], f"superseded by {chain_name(ticket)}")
    elif _running_deadline(ticket) is None and before["due"] is not None:
        _stop_chain(before["chain"], f"clock stopped: {event.type}")
    return ticket, event


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
    return _event(ticket, "status_changed", actor, body=body, **{"from": old_status, "to": ticket.status})


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
            _apply_plan(ticket, policy)
        return _event(ticket, "reply", actor, body=body, public=public, first_response=True if first else None)

    return _transition(ticket_id, apply)


def add_note(ticket_id: str, agent: str, body: str) -> tuple[Ticket, TicketEvent]:
    """An internal note: never shown to the customer, changes nothing else."""
    actor, body = _actor(agent), _required(body, "the note", MESSAGE_MAX)
    return _transition(ticket_id, lambda ticket: _event(ticket, "note", actor, body=body, public=False))


def pause(ticket_id: str, agent: str) -> tuple[Ticket, TicketEvent]:
    """Waiting on the customer: the SLA clock stops (out of the due index) and so does its chain."""
    actor = _actor(agent)

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status not in ACTIVE:
            raise Conflict(f"a {ticket.status} ticket cannot wait on its customer")
        old, ticket.status = ticket.status, PAUSED
        ticket.paused_at, ticket.due_shard = clock.now(), None  # the plan stays: resume shifts it
        return _status_changed(ticket, actor, old)

    return _transition(ticket_id, apply)


def resume(ticket_id: str, agent: str, policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """The clock runs again; every due time moves by the business time spent waiting."""
    actor = _actor(agent)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status != PAUSED:
            raise Conflict(f"a {ticket.status} ticket is not waiting on its customer")
        _resume(ticket, policy)  # status -> open, deadlines shifted, plan recomputed
        return _status_changed(ticket, actor, PAUSED)

    return _transition(ticket_id, apply)


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
        _apply_plan(ticket, policy)  # a paused ticket stays out of the due index
        return _event(ticket, "priority_changed", actor, **{"from": old, "to": priority})

    return _transition(ticket_id, apply)


def resolve(ticket_id: str, agent: str, summary: str, policy: Policy | None = None) -> tuple[Ticket, TicketEvent]:
    """Resolved: the clock and the escalation chain stop. The summary is what the customer reads."""
    actor, summary = _actor(agent), _required(summary, "the resolution summary", MESSAGE_MAX)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status in CLOSED:
            raise Conflict(f"the ticket is already {ticket.status}")
        old, ticket.status = ticket.status, "resolved"
        ticket.resolved_at, ticket.paused_at = clock.now(), None
        _apply_plan(ticket, policy)  # a resolved ticket has no clock
        event = _status_changed(ticket, actor, old, body=summary)
        from helpdesk import sweep  # the event schedules the auto-close in the due index (not the ticket)
        sweep.schedule_auto_close(event, ticket)
        return event

    return _transition(ticket_id, apply)


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
            return _event(ticket, "transferred", actor, public=False, from_department=old,
                          to_department=to_department, summary=summary, tier=ticket.tier)
        if ticket.tier == escalation.MANAGEMENT:
            raise Conflict("the ticket is with management already")
        old, ticket.tier = ticket.tier, escalation.next_tier(ticket.tier)
        ticket.escalation_count = (ticket.escalation_count or 0) + 1
        _apply_plan(ticket, policy)
        return _event(ticket, "escalated", actor, from_tier=old, to_tier=ticket.tier, reason="manual",
                      auto=False, summary=summary, due_kind=ticket.due_kind)

    return _transition(ticket_id, apply)
