"""The scheduled SLA sweep: the safety net around the escalation chains, and housekeeping.

Every few minutes (EventBridge) the sweep reads the sparse ``due-index`` shard by shard -- one Query
per shard for the entries due before ``now + lookahead`` -- and never the table. Each entry is one of:

- a ticket whose SLA clock runs (``new``/``open``; ``due_kind`` first_response | resolution):
  * **at risk**: past ``HELPDESK_AT_RISK_SHARE`` (75 %) of the window of its current deadline, measured
    in *business time* on the priority's calendar. The window is the SLA target itself while the
    deadline is the ticket's first-response or resolution deadline (elapsed = target - business time
    left, so time spent waiting on the customer does not count), else the tier window an escalation
    gave. One ``at_risk`` event (internal) per ticket and deadline: its sort key is deterministic
    (``EVENT#<deadline>#at-risk-<kind>``), written with ``attribute_not_exists`` in one transaction
    with a condition check on the ticket (still active, same deadline). The team hears of it through
    the stream publisher, like of every event.
  * **overdue** by more than :data:`GRACE` while its escalation execution (``chains.name``) is
    missing, failed, timed out, aborted or ended: a healthy chain would have moved the deadline on. The
    sweep hands the ticket to a new chain (``escalation_chain = <id>-s<version>``: execution names are
    unique per state machine for 90 days, so the dead name cannot be reused), version-checked, with an
    internal ``chain_repaired`` event, and starts it; the new chain escalates at once (its deadline has
    passed). Without a state machine, or if the start fails, the sweep escalates directly through the
    domain (``escalated``, ``auto``), with the sort key the state machine would use
    (``EVENT#<deadline>#esc-<tier>``): the chain and the sweep can never both record one climb.
  * **30 days** after creation and not with management: straight to management (breached, clock
    stopped, chain stopped), whatever the chain's state.
- a ``resolved`` status change (``due_kind`` auto_close, ``tickets.schedule_auto_close``): 7 days after the
  resolution, a ticket still resolved (a customer message reopens it) is closed (``status_changed``
  resolved -> closed, ``auto``) and the entry leaves the index in the same transaction; an entry
  whose ticket was reopened or resolved again since is just removed. The satisfaction survey went
  out with the resolution's customer update (``notify.customer_update``), so closing sends nothing.

Every action is a conditional write (deterministic event key or the ticket's version): overlapping
sweeps, retries and the chains themselves never act twice.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from helpdesk import chains, clock, escalation, ledger, queue, settings, sla
from helpdesk.config import Policy, load_policy
from helpdesk.errors import Conflict, NotFound
from helpdesk.models import (
    ACTIVE,
    DUE_SHARDS,
    EVENT_SK_PREFIX,
    TICKET_SK,
    Ticket,
    TicketEvent,
    due_partition,
    query_pages,
    ticket_pk,
)
from helpdesk.tickets import AUTO_CLOSE, auto_close_after

log = logging.getLogger(__name__)

GRACE = timedelta(minutes=1)  # a chain escalates at the deadline; this late, it is not coming


@dataclass
class Result:
    at_risk_warnings: int = 0
    chains_repaired: int = 0
    escalated_directly: int = 0  # the fallback when no chain could be started
    thirty_day_escalations: int = 0
    auto_closed: int = 0
    stale_entries_removed: int = 0
    lost_races: int = 0  # a conditional write that another actor won: nothing to do
    items_read: int = 0
    read_units: float = 0.0
    queries: int = 0
    actions: list[dict] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """The EMF metrics (Powertools) the handler emits."""
        return {
            "AtRiskWarnings": self.at_risk_warnings,
            "ChainsRepaired": self.chains_repaired + self.escalated_directly,
            "AutoClosed": self.auto_closed,
            "ThirtyDayEscalations": self.thirty_day_escalations,
            "SweepItemsRead": self.items_read,
        }

    def record(self, action: str, ticket_id: str, **facts) -> None:
        self.actions.append({"action": action, "ticket_id": ticket_id, **facts})
        log.info("sweep %s %s %s", action, ticket_id, facts)


class _Skip(Exception):
    """The ticket changed since the sweep read it: the action no longer applies."""


@functools.cache
def _dynamodb():
    import boto3

    return boto3.client("dynamodb")


def due_entries(until: datetime, result: Result | None = None) -> list[dict]:
    """Every due-index entry with ``next_due_at <= until``: one paginated Query per shard (raw items)."""
    result = result if result is not None else Result()
    table = settings.get(settings.Env.TICKETS_TABLE)
    index = Ticket.due_index.Meta.index_name
    items: list[dict] = []
    for shard in range(DUE_SHARDS):
        request = {
            "TableName": table, "IndexName": index,
            "KeyConditionExpression": "due_shard = :shard AND next_due_at <= :until",
            "ExpressionAttributeValues": {":shard": {"S": due_partition(shard)}, ":until": {"S": clock.to_iso(until)}},
            "ReturnConsumedCapacity": "TOTAL",
        }
        for page in query_pages(_dynamodb(), request):
            result.queries += 1
            result.items_read += page.get("ScannedCount", len(page["Items"]))
            result.read_units += float((page.get("ConsumedCapacity") or {}).get("CapacityUnits") or 0)
            items += page["Items"]
    return items


class Sweep:
    """One run: :meth:`read` the due index, then :meth:`act` on what it found (tests interleave runs)."""

    def __init__(self, *, now: datetime | None = None, policy: Policy | None = None,
                 share: float | None = None, grace: timedelta = GRACE):
        self.now = now or clock.now()
        self.policy = policy or load_policy()
        self.share = sla.at_risk_share() if share is None else share
        self.grace = grace
        self.result = Result()
        self.entries: list[dict] = []

    def read(self) -> Sweep:
        self.entries = due_entries(sla.lookahead_until(self.now, self.policy, self.share), self.result)
        return self

    def act(self) -> Result:
        for item in self.entries:
            ticket_id = item.get("ticket_id", {}).get("S", "?")
            try:
                if item["sk"]["S"].startswith(EVENT_SK_PREFIX):
                    if item.get("due_kind", {}).get("S") == AUTO_CLOSE:
                        self._auto_close(item)
                elif item["sk"]["S"] == TICKET_SK:
                    self._ticket(Ticket.from_raw_data(item))
            except (_Skip, Conflict, NotFound):
                self.result.lost_races += 1
            except Exception:  # noqa: BLE001 -- one bad ticket must not stop the sweep; the next run retries
                log.exception("sweep failed on %s", ticket_id)
        return self.result

    def run(self) -> Result:
        return self.read().act()

    # -- running clocks ----------------------------------------------------------------------------

    def _ticket(self, ticket: Ticket) -> None:
        if ticket.status not in ACTIVE or ticket.next_due_at is None or ticket.due_kind == AUTO_CLOSE:
            return  # the index lags the table (GSIs are eventually consistent)
        if ticket.tier != escalation.MANAGEMENT and self.now >= ticket.created_at + escalation.ESCALATION_LIMIT + self.grace:
            self._escalate(ticket, thirty_days=True)
        elif self.now >= ticket.next_due_at + self.grace:
            self._check_chain(ticket)
        elif sla.at_risk(self.policy, ticket, self.now, self.share):
            self._warn(ticket)

    def _warn(self, ticket: Ticket) -> None:
        due = clock.to_iso(ticket.next_due_at)
        sk = f"{EVENT_SK_PREFIX}{due}#at-risk-{ticket.due_kind}"
        pk = ticket_pk(ticket.ticket_id)
        try:  # the common case, cheaply: warned on an earlier run
            TicketEvent.get(pk, sk, attributes_to_get=["sk"])
            return
        except TicketEvent.DoesNotExist:
            pass
        window = sla.window(self.policy, ticket)
        event = TicketEvent(
            pk, sk, ticket_id=ticket.ticket_id, event_id=f"at-risk-{ticket.due_kind}-{due}", type="at_risk",
            at=self.now, actor="system", public=False,
            data={"due_kind": ticket.due_kind, "due_at": due, "tier": ticket.tier, "share": self.share,
                  "window_seconds": int(window.total_seconds()),
                  "reason": f"{int(self.share * 100)}% of the {ticket.due_kind.replace('_', ' ')} window has passed"},
        )
        try:
            with TransactWrite(connection=ledger.connection()) as transaction:
                transaction.condition_check(Ticket, pk, TICKET_SK, condition=(
                    (Ticket.next_due_at == ticket.next_due_at) & Ticket.status.is_in(*ACTIVE)))
                transaction.save(event, condition=TicketEvent.sk.does_not_exist())
        except TransactWriteError:
            raise _Skip from None
        self.result.at_risk_warnings += 1
        self.result.record("at_risk", ticket.ticket_id, due_kind=ticket.due_kind, due_at=due)

    # -- the safety net ----------------------------------------------------------------------------

    def _check_chain(self, ticket: Ticket) -> None:
        name = chains.name(ticket)
        status = chains.status(name)
        if status == chains.RUNNING:
            return
        if status is None or (status != chains.MISSING and _repaired_before(ticket, name)):
            # No state machine in this deployment, or the chain the sweep started ran and died too (a
            # failure that repeats: another chain would die the same way): the sweep escalates itself.
            self._escalate(ticket)
            return
        new_name = self._hand_over(ticket, name, status)
        if chains.start(ticket.ticket_id, new_name):
            self.result.chains_repaired += 1
            self.result.record("chain_repaired", ticket.ticket_id, dead=name, status=status, chain=new_name)
        else:
            self._escalate(ledger.load(ticket.ticket_id))

    def _hand_over(self, seen: Ticket, dead: str, status: str) -> str:
        """Name a new chain on the ticket (version-checked), if nothing changed since the sweep read it."""
        def apply(ticket: Ticket) -> TicketEvent:
            if (ticket.status not in ACTIVE or ticket.next_due_at != seen.next_due_at
                    or chains.name(ticket) != dead):
                raise _Skip
            ticket.escalation_chain = f"{ticket.ticket_id}-s{(ticket.version or 0) + 1}"
            return ledger.event(ticket, "chain_repaired", "system", public=False, at=self.now,
                                  dead_chain=dead, dead_status=status, chain=ticket.escalation_chain,
                                  due_at=clock.to_iso(ticket.next_due_at))

        ticket, _ = ledger.change(seen.ticket_id, apply)
        return ticket.escalation_chain

    def _escalate(self, seen: Ticket, *, thirty_days: bool = False) -> None:
        """The climb the chain did not make, through the domain (``auto``), keyed as the chain keys it."""
        limit = seen.created_at + escalation.ESCALATION_LIMIT

        def apply(ticket: Ticket) -> TicketEvent:
            if (ticket.status not in ACTIVE or ticket.tier != seen.tier or ticket.next_due_at != seen.next_due_at
                    or ticket.tier == escalation.MANAGEMENT):
                raise _Skip
            due = limit if thirty_days else ticket.next_due_at
            to = escalation.MANAGEMENT if thirty_days else (ticket.escalate_to or escalation.next_tier(ticket.tier))
            old, kind = ticket.tier, ticket.due_kind
            ticket.tier = to
            ticket.escalation_count = (ticket.escalation_count or 0) + 1
            if to == escalation.MANAGEMENT:  # as the chain's last step: breached, the clock stops
                ticket.breached = True
                ticket.next_due_at = ticket.due_shard = ticket.due_kind = ticket.escalate_to = None
                ticket.escalation_plan = None
            else:
                ledger.apply_plan(ticket, self.policy)
            reason = ("open 30 days without management" if thirty_days
                      else f"{kind} overdue at {old} (escalated by the SLA sweep)")
            data = {"from_tier": old, "to_tier": to, "reason": reason, "due_kind": kind,
                    "due_at": clock.to_iso(due), "auto": True, "by": "sla-sweep"}
            if to == escalation.MANAGEMENT:
                data["breached"] = True
            return TicketEvent(ticket_pk(ticket.ticket_id), f"{EVENT_SK_PREFIX}{clock.to_iso(due)}#esc-{to}",
                               ticket_id=ticket.ticket_id, event_id=f"esc-{to}-{clock.to_iso(due)}",
                               type="escalated", at=self.now, actor="system", public=True, data=data)

        try:
            ticket, _ = ledger.change(seen.ticket_id, apply)
        except Conflict:  # the event key exists: the chain (or another sweep) made this climb
            raise _Skip from None
        if thirty_days:
            self.result.thirty_day_escalations += 1
            chains.stop(chains.name(seen), "with management after 30 days")
        else:
            self.result.escalated_directly += 1
        self.result.record("thirty_days" if thirty_days else "escalated", ticket.ticket_id,
                           from_tier=seen.tier, to_tier=ticket.tier)

    # -- housekeeping ------------------------------------------------------------------------------

    def _auto_close(self, item: dict) -> None:
        entry = TicketEvent.from_raw_data(item)
        if entry.next_due_at > self.now:
            return
        ticket = ledger.load(entry.ticket_id)
        current = ticket.status == "resolved" and ticket.resolved_at is not None and (
            ticket.resolved_at + auto_close_after() == entry.next_due_at)
        if not current or _customer_wrote_since(ticket.ticket_id, ticket.resolved_at):
            self._drop_entry(entry)  # reopened (or resolved again: that resolution has its own entry)
            return
        due = clock.to_iso(entry.next_due_at)
        ticket.status, ticket.updated_at = "closed", self.now
        event = TicketEvent(
            ticket_pk(ticket.ticket_id), f"{EVENT_SK_PREFIX}{due}#auto-close", ticket_id=ticket.ticket_id,
            event_id=f"auto-close-{due}", type="status_changed", at=self.now, actor="system", public=True,
            data={"from": "resolved", "to": "closed", "auto": True,
                  "reason": f"no reply from the customer {auto_close_after().days or auto_close_after()} days after the resolution"},
            version=(ticket.version or 0) + 1,
        )
        queue.place(ticket)  # closed: out of the tier case views
        try:
            with TransactWrite(connection=ledger.connection()) as transaction:
                transaction.save(ticket)  # version-checked: a customer message in between wins
                transaction.save(event, condition=TicketEvent.sk.does_not_exist())
                transaction.update(entry, actions=[TicketEvent.due_shard.remove(), TicketEvent.next_due_at.remove(),
                                                   TicketEvent.due_kind.remove()],
                                   condition=TicketEvent.due_shard.exists())
        except TransactWriteError:
            raise _Skip from None
        self.result.auto_closed += 1
        self.result.record("auto_closed", ticket.ticket_id, resolved_at=clock.to_iso(ticket.resolved_at))

    def _drop_entry(self, entry: TicketEvent) -> None:
        try:
            entry.update(actions=[TicketEvent.due_shard.remove(), TicketEvent.next_due_at.remove(),
                                  TicketEvent.due_kind.remove()], condition=TicketEvent.due_shard.exists())
        except (UpdateError, PutError):
            raise _Skip from None
        self.result.stale_entries_removed += 1


def _repaired_before(ticket: Ticket, chain: str) -> bool:
    """Whether ``chain`` is one a sweep started (``<id>-s<version>``, see :meth:`Sweep._hand_over`)."""
    suffix = chain.removeprefix(f"{ticket.ticket_id}-s")
    return suffix != chain and suffix.isdigit()


def _customer_wrote_since(ticket_id: str, since: datetime) -> bool:
    events = TicketEvent.query(ticket_pk(ticket_id), TicketEvent.sk > f"{EVENT_SK_PREFIX}{clock.to_iso(since)}",
                               filter_condition=TicketEvent.type == "message")
    return any(True for _ in events)


def run(now: datetime | None = None, policy: Policy | None = None) -> Result:
    """One sweep (what the scheduled function calls)."""
    return Sweep(now=now, policy=policy).run()
