"""The escalation chain: the real ASL file, executed by moto, on tickets the use cases write.

Deadlines are seconds apart (see conftest.POLICY_TOML); the fixture makes moto's Wait wake at or
after its timestamp, as AWS does (moto alone wakes up to a second early).
"""

from __future__ import annotations

import threading
from datetime import timedelta

from helpdesk import chains, clock, ledger, tickets
from helpdesk.models import Ticket
from tests.statemachine.conftest import dumps, events_of, new_ticket, wait_for

AGENT = "dana"


def escalations(ticket_id: str) -> list:
    return events_of(ticket_id, "escalated")


def slept_until(chain, name: str, deadline) -> bool:
    """The execution is asleep until ``deadline`` (its latest state is a Sleep on it)."""
    history = chain.history(name)
    entered = [e for e in history if e["type"] == "WaitStateEntered"]
    exited = [e for e in history if e["type"] == "WaitStateExited"]
    if not entered or len(exited) >= len(entered):
        return False
    return f'"next_due_at":{{"S":"{clock.to_iso(deadline)}"}}' in entered[-1]["stateEnteredEventDetails"]["input"] and \
        entered[-1]["stateEnteredEventDetails"]["name"] == "Sleep"


def test_unanswered_tickets_climb_the_ladder_to_management_side_by_side(sfn_aws, chain, policy):
    # Given three urgent tickets nobody answers (one chain each, running side by side)
    opened = [new_ticket(policy, category="account") for _ in range(3)]

    # When their chains run to the end
    for ticket in opened:
        assert chain.wait_until_done(ticket.ticket_id) == "SUCCEEDED"

    # Then each climbed L1 -> L2 -> L3 -> management on its plan, one event per step, and breached
    for ticket in opened:
        plan = ticket.escalation_plan.as_dict()
        final = ledger.load(ticket.ticket_id)
        assert (final.tier, final.breached, final.escalation_count, final.status) == ("management", True, 3, "new")
        assert final.next_due_at is final.due_shard is final.escalate_to is final.escalation_plan is None
        assert final.version == ticket.version + 3
        steps = escalations(ticket.ticket_id)
        assert [(e.data["from_tier"], e.data["to_tier"]) for e in steps] == [("L1", "L2"), ("L2", "L3"), ("L3", "management")]
        assert [e.data["due_at"] for e in steps] == [clock.to_iso(ticket.next_due_at), plan["L2"]["at"], plan["L3"]["at"]]
        assert [e.data["reason"] for e in steps] == [f"first_response overdue at {t}" for t in ("L1", "L2", "L3")]
        assert [e.sk for e in steps] == [f"EVENT#{e.data['due_at']}#esc-{e.data['to_tier']}" for e in steps]
        assert all(e.actor == "system" and e.public and e.data["auto"] is True for e in steps)
        assert all(e.at >= clock.from_iso(e.data["due_at"]) for e in steps)
        assert [e.type for e in events_of(ticket.ticket_id)] == ["created", "escalated", "escalated", "escalated"]
        assert chain.states_entered(ticket.ticket_id)[-1] == "EscalateToManagement"


def test_a_ticket_answered_in_time_never_escalates(sfn_aws, chain, policy):
    # Given a new ticket an agent answers at once
    ticket = new_ticket(policy)
    answered, _ = tickets.reply(ticket.ticket_id, AGENT, "Thanks, looking into it.", policy=policy)
    assert (answered.status, answered.due_kind, answered.next_due_at) == ("open", "resolution", answered.resolution_due_at)

    # When the first-response deadline passes, the chain wakes, sees the later deadline, sleeps again
    wait_for(lambda: slept_until(chain, ticket.ticket_id, answered.resolution_due_at), what="the chain to sleep until resolution")

    # Then nothing escalated; resolving stops the chain
    assert ledger.load(ticket.ticket_id).tier == "L1" and not escalations(ticket.ticket_id)
    tickets.resolve(ticket.ticket_id, AGENT, "Fixed the cache.", policy=policy)
    assert chain.wait_until_done(ticket.ticket_id) == "ABORTED"
    assert "Escalate" not in chain.states_entered(ticket.ticket_id)


def test_a_ticket_resolved_while_the_chain_sleeps_is_not_escalated(sfn_aws, chain, policy):
    ticket = new_ticket(policy)
    wait_for(lambda: slept_until(chain, ticket.ticket_id, ticket.next_due_at), what="the chain to sleep")

    resolved, event = tickets.resolve(ticket.ticket_id, AGENT, "Duplicate of HD-000001.", policy=policy)

    assert chain.wait_until_done(ticket.ticket_id) == "ABORTED"  # stopped at once
    assert (resolved.status, resolved.next_due_at, resolved.due_shard) == ("resolved", None, None)
    assert event.data.as_dict() == {"from": "new", "to": "resolved"} and event.body == "Duplicate of HD-000001."
    assert not escalations(ticket.ticket_id)


def test_a_chain_whose_stop_was_lost_ends_by_itself_at_its_next_wake(sfn_aws, chain, policy, monkeypatch):
    ticket = new_ticket(policy)
    monkeypatch.setattr(chains, "stop", lambda name, cause: None)  # StopExecution never arrives

    tickets.resolve(ticket.ticket_id, AGENT, "Solved on the phone.", policy=policy)

    assert chain.wait_until_done(ticket.ticket_id) == "SUCCEEDED"
    assert chain.states_entered(ticket.ticket_id)[-3:] == ["Read", "Decide", "Done"]
    assert not escalations(ticket.ticket_id) and ledger.load(ticket.ticket_id).tier == "L1"


def test_a_paused_ticket_escalates_only_after_its_deadline_moved_by_the_pause(sfn_aws, chain, policy):
    # Given a ticket waiting on its customer past its first-response deadline: its chain has stopped
    ticket = new_ticket(policy)
    wait_for(lambda: slept_until(chain, ticket.ticket_id, ticket.next_due_at), what="the chain to sleep")
    paused, _ = tickets.pause(ticket.ticket_id, AGENT)
    assert (paused.status, paused.due_shard, paused.next_due_at) == ("pending_customer", None, ticket.next_due_at)
    assert chain.wait_until_done(ticket.ticket_id) == "ABORTED"
    wait_for(lambda: clock.now() >= ticket.next_due_at, what="the first-response deadline to pass")
    assert not escalations(ticket.ticket_id)

    # When the customer answers (the agent resumes the clock)
    resumed, event = tickets.resume(ticket.ticket_id, AGENT, policy=policy)

    # Then every deadline moved by the time spent waiting; a new chain climbs at the new deadline, on time
    assert resumed.escalation_chain == f"{ticket.ticket_id}-r{resumed.version}"
    waited = resumed.updated_at - paused.paused_at  # whole seconds, as every stored time
    assert waited >= timedelta(seconds=1)
    assert resumed.first_response_due_at == ticket.first_response_due_at + waited
    assert resumed.resolution_due_at == ticket.resolution_due_at + waited
    assert (resumed.status, resumed.next_due_at, resumed.due_shard) == ("open", ticket.next_due_at + waited, ticket.due_shard)
    assert event.data.as_dict() == {"from": "pending_customer", "to": "open"}
    [escalated] = wait_for(lambda: escalations(ticket.ticket_id), what="the escalation")
    assert escalated.data["due_at"] == clock.to_iso(resumed.next_due_at)
    assert escalated.at >= resumed.next_due_at  # not at the deadline the pause moved
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)


def test_raising_the_priority_brings_the_escalation_forward_under_a_new_chain(sfn_aws, chain, policy):
    # Given a low-priority ticket (first response due in 8 s), its chain asleep until then
    ticket = new_ticket(policy, category="billing")
    assert ticket.priority == "low"
    wait_for(lambda: slept_until(chain, ticket.ticket_id, ticket.next_due_at), what="the chain to sleep")

    # When an agent raises it to normal (3 s from creation)
    raised, event = tickets.change_priority(ticket.ticket_id, AGENT, "normal", policy=policy)

    # Then a new chain owns the earlier deadline, the old one is stopped, and the ticket climbs early
    assert raised.next_due_at < ticket.next_due_at and raised.escalation_chain == f"{ticket.ticket_id}-r2"
    assert event.data.as_dict() == {"from": "low", "to": "normal"}
    assert chain.wait_until_done(ticket.ticket_id) == "ABORTED"
    [escalated] = wait_for(lambda: escalations(ticket.ticket_id), what="the early escalation")
    assert escalated.data["due_at"] == clock.to_iso(raised.next_due_at)
    assert escalated.at < ticket.next_due_at
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)
    assert chain.wait_until_done(raised.escalation_chain) == "ABORTED"
    assert "Escalate" not in chain.states_entered(ticket.ticket_id)


def test_a_chain_that_is_not_the_tickets_own_ends_without_touching_it(sfn_aws, chain, policy):
    # Given a ticket whose clock a restarted chain owns
    ticket = new_ticket(policy, category="billing")
    raised, _ = tickets.change_priority(ticket.ticket_id, AGENT, "normal", policy=policy)

    # When a stale chain of the ticket runs (a start that raced the hand-over)
    chain.client.start_execution(stateMachineArn=chain.machine_arn, name=f"{ticket.ticket_id}-stale",
                                 input=f'{{"ticket_id": "{ticket.ticket_id}"}}')

    # Then it ends at its first read
    assert chain.wait_until_done(f"{ticket.ticket_id}-stale") == "SUCCEEDED"
    assert chain.states_entered(f"{ticket.ticket_id}-stale") == ["Read", "Decide", "Done"]
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)


def test_starting_a_tickets_chain_twice_runs_one_execution(sfn_aws, chain, policy):
    ticket = new_ticket(policy)

    chains.start(ticket.ticket_id, ticket.ticket_id)
    chains.start(ticket.ticket_id, ticket.ticket_id)
    chains.start(ticket.ticket_id, chains.name(ledger.load(ticket.ticket_id)))

    assert [e["name"] for e in chain.executions()] == [ticket.ticket_id]
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)


def test_a_reply_landing_between_the_chains_read_and_its_write_wins_alone(sfn_aws, chain, policy, monkeypatch):
    """The transaction's condition fails (TransactionCanceled), the chain reads again and sleeps on."""
    from moto.dynamodb.models import DynamoDBBackend

    ticket = new_ticket(policy)
    original, raced = DynamoDBBackend.transact_write_items, threading.Event()

    def reply_first(backend, transact_items):
        update = transact_items[0].get("Update") or {}
        if not raced.is_set() and "escalate_to = :to" in update.get("ConditionExpression", ""):
            tickets.reply(ticket.ticket_id, AGENT, "Here is the answer.", policy=policy)  # commits first
            raced.set()
        return original(backend, transact_items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", reply_first)

    wait_for(raced.is_set, what="the chain's escalation attempt")
    answered = ledger.load(ticket.ticket_id)
    wait_for(lambda: slept_until(chain, ticket.ticket_id, answered.resolution_due_at), what="the chain to sleep on")

    history = chain.history(ticket.ticket_id)
    assert any(e["type"] == "TaskFailed" and "TransactionCanceledException" in e["taskFailedEventDetails"]["error"]
               for e in history)
    assert (answered.tier, answered.escalation_count, answered.version) == ("L1", 0, ticket.version + 1)
    assert not escalations(ticket.ticket_id) and len(events_of(ticket.ticket_id, "reply")) == 1
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)


def test_an_escalation_landing_during_a_reply_is_kept_and_the_reply_applies_on_top(sfn_aws, chain, policy, monkeypatch):
    """The reply's version check fails; change() reloads the escalated ticket and answers it."""
    ticket = new_ticket(policy)
    original, attempts = ledger.commit, []

    def commit_after_the_escalation(t: Ticket, event, **kw):
        attempts.append(t.tier)
        if len(attempts) == 1:  # the reply loaded L1; let the chain escalate before it commits
            wait_for(lambda: escalations(ticket.ticket_id), what="the chain's escalation")
        return original(t, event, **kw)

    monkeypatch.setattr(ledger, "commit", commit_after_the_escalation)

    answered, reply = tickets.reply(ticket.ticket_id, AGENT, "Here is the answer.", policy=policy)

    assert attempts == ["L1", "L2"]  # the first commit lost to the chain's version bump
    assert (answered.tier, answered.escalation_count, answered.version) == ("L2", 1, ticket.version + 2)
    assert (answered.due_kind, answered.next_due_at, answered.escalate_to) == ("resolution", answered.resolution_due_at, "L3")
    [escalated], [answer] = escalations(ticket.ticket_id), events_of(ticket.ticket_id, "reply")
    assert answer.at >= escalated.at and answer.event_id == reply.event_id
    wait_for(lambda: slept_until(chain, ticket.ticket_id, answered.resolution_due_at), what="the chain to sleep on")
    assert len(escalations(ticket.ticket_id)) == 1
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)


def test_a_chain_that_died_of_a_runtime_error_is_repaired_by_the_sweep_and_escalates_on_time(sfn_aws, chain, policy,
                                                                                              monkeypatch):
    """An error States.Runtime cannot be retried or caught: the execution fails. On AWS a path that finds
    nothing raises it; in moto any Python exception in an aws-sdk task does (the unlocked emulator's
    "dictionary changed size during iteration" did). The sweep's chain repair is the net."""
    from moto.dynamodb.models import DynamoDBBackend

    from helpdesk import sweep

    transact, broken = DynamoDBBackend.transact_write_items, threading.Event()

    def fails_once_in_the_chain(backend, transact_items):
        if threading.current_thread() is not threading.main_thread() and not broken.is_set():
            broken.set()
            raise RuntimeError("dictionary changed size during iteration")
        return transact(backend, transact_items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", fails_once_in_the_chain)
    ticket = new_ticket(policy)  # its chain's escalation at the deadline fails

    assert chain.wait_until_done(ticket.ticket_id) == "FAILED"
    assert "States.Runtime" in dumps(chain.failures(ticket.ticket_id))
    assert not escalations(ticket.ticket_id)

    # When the sweep runs once the deadline has passed by its grace
    grace = timedelta(seconds=1)
    wait_for(lambda: clock.now() >= ticket.next_due_at + grace, what="the deadline and the grace to pass")
    result = sweep.Sweep(policy=policy, grace=grace).run()

    # Then a new chain owns the ticket and escalates it at its first wake (its deadline has passed)
    assert result.chains_repaired == 1
    repaired = ledger.load(ticket.ticket_id).escalation_chain
    assert repaired == f"{ticket.ticket_id}-s{ticket.version + 1}"
    [escalated] = wait_for(lambda: escalations(ticket.ticket_id), what="the repaired chain's escalation")
    assert escalated.data["due_at"] == clock.to_iso(ticket.next_due_at)
    assert chain.states_entered(repaired)[:6] == ["Read", "Decide", "Sleep", "Read", "Decide", "Escalate"]
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)


def test_a_failure_that_repeats_is_not_handed_to_chain_after_chain_the_sweep_escalates_itself(sfn_aws, chain, policy,
                                                                                                  monkeypatch):
    """A chain that dies, and the chain the sweep started in its place dies the same way: the next sweep
    escalates the ticket itself instead of starting a third chain that would die too."""
    from moto.dynamodb.models import DynamoDBBackend

    from helpdesk import sweep

    transact = DynamoDBBackend.transact_write_items

    def fails_in_every_chain(backend, transact_items):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("a failure that repeats")
        return transact(backend, transact_items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", fails_in_every_chain)
    ticket = new_ticket(policy)
    assert chain.wait_until_done(ticket.ticket_id) == "FAILED"
    grace = timedelta(seconds=1)
    wait_for(lambda: clock.now() >= ticket.next_due_at + grace, what="the deadline and the grace to pass")

    first = sweep.Sweep(policy=policy, grace=grace).run()  # hands the ticket to a new chain, which dies too
    repaired = ledger.load(ticket.ticket_id).escalation_chain
    assert first.chains_repaired == 1 and chain.wait_until_done(repaired) == "FAILED"
    second = sweep.Sweep(policy=policy, grace=grace).run()

    assert (second.chains_repaired, second.escalated_directly) == (0, 1)
    [escalated] = escalations(ticket.ticket_id)
    assert escalated.data["by"] == "sla-sweep" and escalated.data["to_tier"] == "L2"
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", transact)
    tickets.resolve(ticket.ticket_id, AGENT, "Done.", policy=policy)
