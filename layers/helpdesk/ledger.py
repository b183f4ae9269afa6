"""The ticket's write path: load, change, commit with its timeline event, keep the chain in step.

Every change to a ticket is one DynamoDB transaction: the ticket, optimistically locked by its
version, and the timeline event that tells the story. Notifications follow from the event through
the table's stream; nothing here publishes. The use cases (``helpdesk.tickets``), the email intake
and the sweep all write through here.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from helpdesk import chains, clock, escalation, queue
from helpdesk.config import Policy
from helpdesk.errors import Conflict, NotFound
from helpdesk.models import ACTIVE, PAUSED, TICKET_SK, Ticket, TicketEvent, due_shard, event_sk, ticket_pk

ATTEMPTS = 5  # optimistic-locking retries before a change gives up with Conflict


class Collision(Exception):
    """A commit's condition failed: someone changed the ticket first, or the key exists already.
    Anything else that fails a write (a throttle, an invalid item) is not a collision and raises as it is."""


@functools.cache
def connection() -> Connection:
    return Connection()


def load(ticket_id: str) -> Ticket:
    try:
        return Ticket.get(ticket_pk(ticket_id), TICKET_SK)
    except Ticket.DoesNotExist:
        raise NotFound(f"ticket {ticket_id} not found") from None


def event(ticket: Ticket, type_: str, actor: str, *, body: str | None = None, public: bool = True,
          at: datetime | None = None, **data) -> TicketEvent:
    """A timeline event of ``ticket`` (not written yet); ``None`` values in ``data`` are left out."""
    at = at or clock.now()
    event_id = f"{time.time_ns():016x}{secrets.token_hex(2)}"  # orders events within one second
    return TicketEvent(
        ticket_pk(ticket.ticket_id), event_sk(at, event_id), ticket_id=ticket.ticket_id,
        event_id=event_id, type=type_, at=at, actor=actor, public=public, body=body,
        data={k: v for k, v in data.items() if v is not None} or None,
    )


def commit(ticket: Ticket, *events: TicketEvent, new: bool = False) -> None:
    """Write the ticket and its events as one transaction (the ticket's version guards races). Each
    event records the version its change makes, so a client holding an older version can be told
    what changed since; the ticket takes its place in the tier case views (helpdesk.queue).

    Raises :class:`Collision` when a condition failed (the version moved on, or ``new`` and the
    ticket exists); any other failure raises as it came.
    """
    commit_all((ticket, events), new=new)


def commit_all(*changes: tuple[Ticket, tuple[TicketEvent, ...]], new: bool = False) -> None:
    """:func:`commit` for several tickets at once (a merge changes two), all or nothing."""
    for ticket, events in changes:
        queue.place(ticket)
        for change_event in events:
            change_event.version = (ticket.version or 0) + 1
    try:
        with TransactWrite(connection=connection()) as transaction:
            for ticket, events in changes:
                transaction.save(ticket, condition=Ticket.pk.does_not_exist() if new else None)
                for change_event in events:
                    transaction.save(change_event, condition=TicketEvent.sk.does_not_exist())
    except TransactWriteError as error:
        if conditions_failed(error):
            raise Collision(str(error)) from None
        raise


def conditions_failed(error: TransactWriteError) -> bool:
    """Whether a transaction was cancelled because one of its conditions failed."""
    return any(reason is not None and reason.code == "ConditionalCheckFailed"
               for reason in error.cancellation_reasons)


Apply = Callable[[Ticket], "TicketEvent | tuple[TicketEvent, ...]"]
Check = Callable[[Ticket], None]


def change(ticket_id: str, apply: Apply, *, check: Check | None = None) -> tuple[Ticket, TicketEvent]:
    """Load, check, apply, commit; on a concurrent change (a :class:`Collision`) reload and go again.

    ``check`` (the caller's precondition: who may act, on which version) sees the ticket as loaded.
    ``apply`` mutates the ticket and returns the event that records the change (or several, written
    together: the first is the one returned); it raises a domain error when the change is not
    allowed in the ticket's current state.
    """
    for _ in range(ATTEMPTS):
        ticket = load(ticket_id)
        if check is not None:
            check(ticket)
        result = apply(ticket)
        events = result if isinstance(result, tuple) else (result,)
        ticket.updated_at = events[0].at
        try:
            commit(ticket, *events)
            return ticket, events[0]
        except Collision:
            continue
    raise Conflict(f"ticket {ticket_id} is changing too fast; please retry")


def apply_plan(ticket: Ticket, policy: Policy) -> None:
    """Point the SLA clock and the escalation plan at the ticket's current deadline."""
    if ticket.status not in ACTIVE and ticket.status != PAUSED:
        _no_clock(ticket)
        return
    due_kind = "resolution" if ticket.first_responded_at else "first_response"
    due_at = ticket.resolution_due_at if ticket.first_responded_at else ticket.first_response_due_at
    steps = escalation.plan(policy, priority=ticket.priority, tier=ticket.tier, due_at=due_at,
                            created_at=ticket.created_at)
    if steps is None:  # with management already: nothing left to climb to
        _no_clock(ticket)
        return
    ticket.next_due_at, ticket.escalate_to, ticket.due_kind = steps.next_due_at, steps.escalate_to, due_kind
    # Each step carries the queue position the tier it reaches takes (the state machine sets it).
    ticket.escalation_plan = {tier: {**step, "sort": queue.running_sort(step["at"])} for tier, step in steps.steps.items()}
    # Only running clocks are in the sparse due index the sweep reads.
    ticket.due_shard = due_shard(ticket.ticket_id) if ticket.status in ACTIVE else None


def _no_clock(ticket: Ticket) -> None:
    ticket.next_due_at = ticket.due_kind = ticket.escalate_to = ticket.escalation_plan = None
    ticket.due_shard = None


def running_deadline(ticket: Ticket) -> datetime | None:
    """The deadline an escalation chain sleeps until: none while the clock is stopped (paused included)."""
    return None if ticket.status == PAUSED else ticket.next_due_at


def transition(ticket_id: str, apply: Apply, *, check: Check | None = None) -> tuple[Ticket, TicketEvent]:
    """:func:`change`, then keep the escalation chain in step with the clock the change left.

    A change that moves the deadline earlier than the one the running chain sleeps until (or starts
    a stopped clock) hands the ticket to a new chain (``escalation_chain``); one that stops the
    clock stops the chain (best effort: a chain also ends by itself at its next read).
    """
    before: dict = {}

    def wrapped(ticket: Ticket):
        due, chain = running_deadline(ticket), chains.name(ticket)
        change_event = apply(ticket)
        after = running_deadline(ticket)
        if after is not None and (due is None or after < due):
            # The running chain sleeps until the old, later deadline (or has ended, e.g. when the
            # ticket was paused or resolved): a new one takes over.
            ticket.escalation_chain = f"{ticket.ticket_id}-r{(ticket.version or 0) + 1}"
        before.update(due=due, chain=chain)
        return change_event

    ticket, change_event = change(ticket_id, wrapped, check=check)
    if chains.name(ticket) != before["chain"]:
        if chains.start(ticket_id, chains.name(ticket)):
            chains.stop(before["chain"], f"superseded by {chains.name(ticket)}")
    elif running_deadline(ticket) is None and before["due"] is not None:
        chains.stop(before["chain"], f"clock stopped: {change_event.type}")
    return ticket, change_event
