"""What agents do to a ticket, and what each transition does to its SLA clock and escalation chain.

No AWS: the ticket lives in a dict (``ledger.load``/``ledger.commit`` swapped for it, with the same version check
PynamoDB makes), starting and stopping chains is recorded, and the clock is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from helpdesk import chains, clock, ledger, sla, tickets
from helpdesk.config import DEFAULT_POLICY_FILE, parse_policy
from helpdesk.errors import Conflict, InvalidRequest, NotFound
from helpdesk.models import Ticket, TicketEvent, due_shard, ticket_pk

POLICY = parse_policy(DEFAULT_POLICY_FILE.read_text())  # business hours, Europe/Berlin
MONDAY_10_BERLIN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@dataclass
class Store:
    tickets: dict[str, dict] = field(default_factory=dict)
    events: list[TicketEvent] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    conflicts: int = 0  # commits to fail as if someone (the state machine) wrote first

    def load(self, ticket_id: str) -> Ticket:
        if ticket_id not in self.tickets:
            raise NotFound(ticket_id)
        return Ticket.from_raw_data(self.tickets[ticket_id])

    def commit(self, ticket: Ticket, event: TicketEvent, *, new: bool = False) -> None:
        stored = self.tickets.get(ticket.ticket_id)
        if self.conflicts or (stored and int(stored["version"]["N"]) != ticket.version):
            self.conflicts = max(0, self.conflicts - 1)
            if stored:
                stored["version"] = {"N": str(int(stored["version"]["N"]) + 1)}
            raise ledger.Collision("version condition failed")
        ticket.version = (ticket.version or 0) + 1
        self.tickets[ticket.ticket_id] = ticket.serialize()
        self.events.append(event)

    def get(self, ticket_id: str) -> Ticket:
        return self.load(ticket_id)


@pytest.fixture
def store(monkeypatch) -> Store:
    s = Store()
    monkeypatch.setattr(ledger, "load", s.load)
    monkeypatch.setattr(ledger, "commit", s.commit)
    monkeypatch.setattr(chains, "start", lambda ticket_id, name: s.started.append(name) or True)
    monkeypatch.setattr(chains, "stop", lambda name, cause: s.stopped.append(name))
    return s


def opened(store: Store, *, priority: str = "normal", tier: str = "L1", at: datetime = MONDAY_10_BERLIN,
           ticket_id: str = "HD-TEST01") -> Ticket:
    """A ticket as open_ticket writes it (routing aside), in the store."""
    due = sla.deadlines(POLICY, priority, at)
    ticket = Ticket(ticket_pk(ticket_id), ticket_id=ticket_id, token_hash="x", channel="web",
                    customer_email="ada@example.com", subject="Help", description="It broke.", category="technical",
                    priority=priority, department="technical", tier=tier, status="new", created_at=at, updated_at=at,
                    first_response_due_at=due.first_response_due_at, resolution_due_at=due.resolution_due_at)
    with clock.frozen(at):
        ledger.apply_plan(ticket, POLICY)
    ticket.version = 1
    store.tickets[ticket_id] = ticket.serialize()
    return ticket


def at(moment: datetime):
    return clock.frozen(moment)


# -- reply -------------------------------------------------------------------------------------------

def test_the_first_public_reply_meets_the_first_response_target_and_moves_the_clock_on(store):
    ticket = opened(store)  # normal: first response 8h, resolution 24h of business time

    with at(MONDAY_10_BERLIN + timedelta(hours=1)):
        answered, event = tickets.reply(ticket.ticket_id, "dana", "We are on it.", policy=POLICY)

    assert (answered.status, answered.first_responded_at) == ("open", MONDAY_10_BERLIN + timedelta(hours=1))
    assert (answered.due_kind, answered.next_due_at, answered.escalate_to) == ("resolution", ticket.resolution_due_at, "L2")
    assert answered.escalation_plan.as_dict()["L2"]["at"] > clock.to_iso(ticket.resolution_due_at)
    assert (event.type, event.actor, event.public, event.body) == ("reply", "agent:dana", True, "We are on it.")
    assert event.data.as_dict() == {"first_response": True}
    assert store.started == store.stopped == []  # the deadline moved later: the running chain sleeps on


def test_later_and_internal_replies_do_not_touch_the_clock(store):
    ticket = opened(store)
    with at(MONDAY_10_BERLIN + timedelta(minutes=5)):
        internal, event = tickets.reply(ticket.ticket_id, "dana", "Asking billing.", public=False, policy=POLICY)
    assert (internal.status, internal.first_responded_at, internal.next_due_at) == ("new", None, ticket.next_due_at)
    assert event.public is False and event.data is None

    with at(MONDAY_10_BERLIN + timedelta(minutes=10)):
        tickets.reply(ticket.ticket_id, "dana", "First.", policy=POLICY)
    with at(MONDAY_10_BERLIN + timedelta(minutes=20)):
        again, event = tickets.reply(ticket.ticket_id, "dana", "Second.", policy=POLICY)
    assert again.first_responded_at == MONDAY_10_BERLIN + timedelta(minutes=10) and event.data is None


def test_a_reply_needs_text_and_an_open_ticket(store):
    ticket = opened(store)
    with pytest.raises(InvalidRequest):
        tickets.reply(ticket.ticket_id, "dana", "   ", policy=POLICY)
    with pytest.raises(InvalidRequest):
        tickets.reply(ticket.ticket_id, "", "Hi", policy=POLICY)
    store.tickets[ticket.ticket_id]["status"] = {"S": "closed"}
    with pytest.raises(Conflict):
        tickets.reply(ticket.ticket_id, "dana", "Hello?", policy=POLICY)


def test_a_reply_that_brings_the_deadline_forward_hands_the_ticket_to_a_new_chain(store):
    # Given a ticket climbed to L3 whose next climb is later than its resolution deadline
    ticket = opened(store, priority="urgent")  # 24/7: first response 30m, resolution 4h, tier window 30m
    late = ticket.resolution_due_at + timedelta(hours=1)
    store.tickets[ticket.ticket_id].update(tier={"S": "L3"}, next_due_at={"S": clock.to_iso(late)},
                                           escalate_to={"S": "management"}, escalation_plan={"M": {}})

    # When the first answer comes (the clock switches to the earlier resolution deadline)
    with at(MONDAY_10_BERLIN + timedelta(hours=2)):
        answered, _ = tickets.reply(ticket.ticket_id, "dana", "Found it.", policy=POLICY)

    # Then a new chain owns the ticket; the old one is stopped
    assert answered.next_due_at == ticket.resolution_due_at < late
    assert answered.escalation_chain == f"{ticket.ticket_id}-r2" == chains.name(answered)
    assert (store.started, store.stopped) == ([f"{ticket.ticket_id}-r2"], [ticket.ticket_id])


def test_a_transition_racing_the_state_machine_applies_again_on_what_it_wrote(store):
    ticket = opened(store)
    store.conflicts = 1  # the chain's escalation bumped the version between load and commit

    with at(MONDAY_10_BERLIN + timedelta(minutes=1)):
        answered, _ = tickets.reply(ticket.ticket_id, "dana", "Hello.", policy=POLICY)

    assert answered.version == 3 and len(store.events) == 1 and answered.first_responded_at is not None


# -- notes -------------------------------------------------------------------------------------------

def test_a_note_is_internal_and_changes_nothing_else(store):
    ticket = opened(store)

    with at(MONDAY_10_BERLIN + timedelta(minutes=3)):
        noted, event = tickets.add_note(ticket.ticket_id, "dana", "Customer called too.")

    assert (event.type, event.public, event.body) == ("note", False, "Customer called too.")
    assert (noted.status, noted.next_due_at, noted.tier) == (ticket.status, ticket.next_due_at, ticket.tier)
    with pytest.raises(InvalidRequest):
        tickets.add_note(ticket.ticket_id, "dana", "")


# -- pause / resume ----------------------------------------------------------------------------------

def test_pausing_stops_the_clock_and_leaves_the_due_index(store):
    ticket = opened(store)
    assert ticket.due_shard == due_shard(ticket.ticket_id)

    with at(MONDAY_10_BERLIN + timedelta(hours=1)):
        paused, event = tickets.pause(ticket.ticket_id, "dana")

    assert (paused.status, paused.paused_at, paused.due_shard) == ("pending_customer", MONDAY_10_BERLIN + timedelta(hours=1), None)
    assert paused.next_due_at == ticket.next_due_at  # the plan stays (resume shifts it); the chain stops
    assert event.data.as_dict() == {"from": "new", "to": "pending_customer"}
    with pytest.raises(Conflict):
        tickets.pause(ticket.ticket_id, "dana")


def test_resuming_moves_every_deadline_by_the_business_time_spent_waiting(store):
    ticket = opened(store)  # Monday 10:00 Berlin: first response due Tuesday 10:00 (8h of business time)
    monday_1600, tuesday_1000 = utc(2026, 11, 23, 15, 0), utc(2026, 11, 24, 9, 0)
    with at(monday_1600):
        tickets.pause(ticket.ticket_id, "dana")

    with at(tuesday_1000):
        resumed, event = tickets.resume(ticket.ticket_id, "dana", policy=POLICY)

    waited = timedelta(hours=2)  # Monday 16-17 and Tuesday 9-10 in Berlin; the night does not count
    calendar = POLICY.calendars["business"]
    assert resumed.first_response_due_at == sla.add_business_time(ticket.first_response_due_at, waited, calendar)
    assert resumed.resolution_due_at == sla.add_business_time(ticket.resolution_due_at, waited, calendar)
    assert (resumed.status, resumed.paused_at, resumed.due_shard) == ("open", None, due_shard(ticket.ticket_id))
    assert resumed.next_due_at == resumed.first_response_due_at == utc(2026, 11, 24, 11, 0)  # Tuesday 12:00
    assert event.data.as_dict() == {"from": "pending_customer", "to": "open"}
    with pytest.raises(Conflict):
        tickets.resume(ticket.ticket_id, "dana", policy=POLICY)


# -- priority ----------------------------------------------------------------------------------------

def test_raising_the_priority_recomputes_the_deadlines_from_creation_and_restarts_the_chain(store):
    ticket = opened(store, priority="normal")

    with at(MONDAY_10_BERLIN + timedelta(minutes=30)):
        raised, event = tickets.change_priority(ticket.ticket_id, "dana", "high", policy=POLICY)

    due = sla.deadlines(POLICY, "high", MONDAY_10_BERLIN)
    assert (raised.priority, raised.first_response_due_at, raised.resolution_due_at) == ("high", due.first_response_due_at, due.resolution_due_at)
    assert raised.next_due_at == due.first_response_due_at < ticket.next_due_at
    assert event.data.as_dict() == {"from": "normal", "to": "high"}
    assert (store.started, store.stopped) == ([f"{ticket.ticket_id}-r2"], [ticket.ticket_id])


def test_a_priority_change_still_credits_the_earlier_wait_on_the_customer(store):
    ticket = opened(store, priority="normal")  # Monday 10:00 Berlin
    monday_1600, tuesday_1000 = utc(2026, 11, 23, 15, 0), utc(2026, 11, 24, 9, 0)
    with at(monday_1600):
        tickets.pause(ticket.ticket_id, "dana")
    with at(tuesday_1000):
        tickets.resume(ticket.ticket_id, "dana", policy=POLICY)

    with at(tuesday_1000 + timedelta(minutes=5)):
        raised, _ = tickets.change_priority(ticket.ticket_id, "dana", "high", policy=POLICY)

    waited = timedelta(hours=2)  # Monday 16-17 and Tuesday 9-10 in Berlin
    calendar, due = POLICY.calendars[POLICY.sla["high"].calendar], sla.deadlines(POLICY, "high", MONDAY_10_BERLIN)
    assert raised.first_response_due_at == sla.add_business_time(due.first_response_due_at, waited, calendar)
    assert raised.resolution_due_at == sla.add_business_time(due.resolution_due_at, waited, calendar)


def test_lowering_the_priority_lets_the_running_chain_sleep_on(store):
    ticket = opened(store, priority="high")

    with at(MONDAY_10_BERLIN + timedelta(minutes=30)):
        lowered, _ = tickets.change_priority(ticket.ticket_id, "dana", "low", policy=POLICY)

    assert lowered.next_due_at > ticket.next_due_at and lowered.escalation_chain is None
    assert store.started == store.stopped == []


def test_a_priority_change_must_change_something_known_on_a_live_ticket(store):
    ticket = opened(store)
    with pytest.raises(InvalidRequest):
        tickets.change_priority(ticket.ticket_id, "dana", "critical", policy=POLICY)
    with pytest.raises(Conflict):
        tickets.change_priority(ticket.ticket_id, "dana", "normal", policy=POLICY)
    with at(MONDAY_10_BERLIN):
        tickets.resolve(ticket.ticket_id, "dana", "Done.", policy=POLICY)
    with pytest.raises(Conflict):
        tickets.change_priority(ticket.ticket_id, "dana", "urgent", policy=POLICY)


# -- resolve -----------------------------------------------------------------------------------------

def test_resolving_clears_the_clock_and_stops_the_chain(store):
    ticket = opened(store)

    with at(MONDAY_10_BERLIN + timedelta(hours=3)):
        resolved, event = tickets.resolve(ticket.ticket_id, "dana", "Cleared the cache.", policy=POLICY)

    assert (resolved.status, resolved.resolved_at) == ("resolved", MONDAY_10_BERLIN + timedelta(hours=3))
    assert resolved.next_due_at is resolved.due_shard is resolved.escalate_to is resolved.escalation_plan is None
    assert (event.type, event.body, event.data.as_dict()) == ("status_changed", "Cleared the cache.", {"from": "new", "to": "resolved"})
    assert store.stopped == [ticket.ticket_id]
    with pytest.raises(Conflict):
        tickets.resolve(ticket.ticket_id, "dana", "Again.", policy=POLICY)


def test_resolving_needs_a_summary(store):
    ticket = opened(store)
    with pytest.raises(InvalidRequest):
        tickets.resolve(ticket.ticket_id, "dana", "", policy=POLICY)


# -- manual escalation ------------------------------------------------------------------------------

def test_an_agent_escalates_to_the_next_tier_with_a_summary(store):
    ticket = opened(store)

    with at(MONDAY_10_BERLIN + timedelta(hours=1)):
        escalated, event = tickets.escalate(ticket.ticket_id, "dana", "Needs a database fix.", policy=POLICY)

    assert (escalated.tier, escalated.escalation_count) == ("L2", 1)
    assert (escalated.next_due_at, escalated.escalate_to) == (ticket.next_due_at, "L3")  # the SLA deadline stands
    assert event.type == "escalated" and event.actor == "agent:dana"
    assert event.data.as_dict() == {"from_tier": "L1", "to_tier": "L2", "reason": "manual", "auto": False,
                                    "summary": "Needs a database fix.", "due_kind": "first_response",
                                    "department": "technical"}
    assert store.started == store.stopped == []


def test_escalating_after_the_deadline_gives_the_next_tier_a_window_not_an_instant_climb(store):
    ticket = opened(store)
    late = ticket.next_due_at + timedelta(hours=1)
    store.tickets[ticket.ticket_id].update(tier={"S": "L2"})  # the chain escalated at the deadline

    with at(late):
        escalated, _ = tickets.escalate(ticket.ticket_id, "dana", "L2 cannot fix it.", policy=POLICY)

    window = POLICY.sla["normal"].tier_window
    assert (escalated.tier, escalated.escalate_to) == ("L3", "management")
    assert escalated.next_due_at == sla.add_business_time(late, window, POLICY.calendars["business"])


def test_escalating_to_management_stops_the_clock_and_the_chain(store):
    ticket = opened(store, tier="L3")

    with at(MONDAY_10_BERLIN + timedelta(hours=1)):
        escalated, _ = tickets.escalate(ticket.ticket_id, "dana", "Contract question.", policy=POLICY)

    assert (escalated.tier, escalated.next_due_at, escalated.due_shard, escalated.breached) == ("management", None, None, False)
    assert store.stopped == [ticket.ticket_id]
    with pytest.raises(Conflict):
        tickets.escalate(ticket.ticket_id, "dana", "Higher?", policy=POLICY)


def test_an_escalation_that_lost_the_race_to_the_chain_is_refused_not_repeated(store):
    ticket = opened(store)
    store.tickets[ticket.ticket_id].update(tier={"S": "L2"})  # the chain escalated while the agent typed

    with pytest.raises(Conflict):
        tickets.escalate(ticket.ticket_id, "dana", "Please look.", expected_tier="L1", policy=POLICY)


def test_a_functional_escalation_transfers_to_another_department_on_the_same_clock(store):
    ticket = opened(store)

    with at(MONDAY_10_BERLIN + timedelta(hours=1)):
        moved, event = tickets.escalate(ticket.ticket_id, "dana", "It is a refund.", to_department="billing", policy=POLICY)

    assert (moved.department, moved.transfer_count, moved.tier, moved.next_due_at) == ("billing", 1, "L1", ticket.next_due_at)
    assert (event.type, event.public) == ("transferred", False)
    assert event.data.as_dict() == {"from_department": "technical", "to_department": "billing",
                                    "summary": "It is a refund.", "tier": "L1"}


@pytest.mark.parametrize(
    ("summary", "department", "error"),
    [("", None, InvalidRequest), ("Why", "nowhere", InvalidRequest), ("Why", "technical", Conflict)],
)
def test_an_escalation_needs_a_summary_and_a_real_other_department(store, summary, department, error):
    ticket = opened(store)
    with pytest.raises(error):
        tickets.escalate(ticket.ticket_id, "dana", summary, to_department=department, policy=POLICY)


def test_a_resolved_ticket_cannot_be_escalated_or_paused(store):
    ticket = opened(store)
    with at(MONDAY_10_BERLIN):
        tickets.resolve(ticket.ticket_id, "dana", "Done.", policy=POLICY)
    with pytest.raises(Conflict):
        tickets.escalate(ticket.ticket_id, "dana", "Hm.", policy=POLICY)
    with pytest.raises(Conflict):
        tickets.pause(ticket.ticket_id, "dana")
