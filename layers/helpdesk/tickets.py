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
from datetime import datetime

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from helpdesk import clock, escalation, ids, routing, settings, sla
from helpdesk.config import Policy, load_policy
from helpdesk.errors import Conflict, NotFound
from helpdesk.models import Ticket, TicketEvent, due_shard, event_sk, ticket_pk

SUBJECT_MAX = 200
DESCRIPTION_MAX = 20_000
MESSAGE_MAX = 20_000
CATEGORIES = ("billing", "technical", "account", "general")
ACTIVE = ("new", "open")  # statuses whose SLA clock runs
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
    if ticket.status not in ACTIVE and ticket.status != "pending_customer":
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
            customer_tier=tier_of_customer, subject=request.subject, description=request.description,
            category=request.category, priority=route.priority, department=route.department,
            tier=route.tier, status="new", created_at=now, updated_at=now,
            first_response_due_at=due.first_response_due_at, resolution_due_at=due.resolution_due_at,
        )
        _apply_plan(ticket, policy)
        event = _event(ticket, "created", "customer", at=now, body=request.description, rule=rule,
                       channel=request.channel, priority=route.priority, department=route.department,
                       tier=route.tier)
        try:
            _commit(ticket, event, new=True)
        except TransactWriteError:
            continue
        start_escalation(ticket_id)
        return Opened(ticket, token)
    raise Conflict("could not allocate a ticket reference; please retry")


def access_token(ticket_id: str) -> str:
    """The ticket's access token, recomputed from the secret (the table holds only its hash)."""
    from aws_lambda_powertools.utilities import parameters

    arn = settings.get(settings.Env.TOKEN_SECRET_ARN)
    secret = parameters.get_secret(arn, max_age=3600) if arn else ""
    if not secret:
        raise RuntimeError(f"{settings.Env.TOKEN_SECRET_ARN} names no secret: cannot issue access tokens")
    return ids.access_token(ticket_id, secret.encode() if isinstance(secret, str) else secret)


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


def add_customer_message(ticket_id: str, token: str | None, body: str,
                         policy: Policy | None = None) -> TicketEvent:
    """The customer writes on their ticket: a waiting clock resumes, a recently resolved one reopens."""
    load_for_customer(ticket_id, token)
    policy = policy or load_policy()

    def apply(ticket: Ticket) -> TicketEvent:
        if ticket.status == "closed":
            raise Conflict("this ticket is closed; please open a new request")
        if ticket.status == "pending_customer":
            _resume(ticket, policy)
        elif ticket.status == "resolved":
            ticket.status, ticket.resolved_at = "open", None
            _apply_plan(ticket, policy)
        return _event(ticket, "message", "customer", body=body)

    _, event = change(ticket_id, apply)
    return event


def _resume(ticket: Ticket, policy: Policy) -> None:
    """Restart a paused clock: every due time moves by the business time spent waiting."""
    now = clock.now()
    calendar = policy.calendars[policy.sla[ticket.priority].calendar]
    paused = sla.business_time_between(ticket.paused_at or now, now, calendar)
    if not ticket.first_responded_at:
        ticket.first_response_due_at = sla.add_business_time(ticket.first_response_due_at, paused, calendar)
    ticket.resolution_due_at = sla.add_business_time(ticket.resolution_due_at, paused, calendar)
    ticket.status, ticket.paused_at = "open", None
    _apply_plan(ticket, policy)


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
        "timeline": [
            {"type": e.type, "at": clock.to_iso(e.at), "actor": e.actor.split(":")[0], "body": e.body}
            for e in events if e.public
        ],
    }
