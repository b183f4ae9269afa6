"""The SLA sweep on moto, with a clock the test controls (EventBridge schedules never fire in moto: the
sweep is called directly, as the scheduled function calls it)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from helpdesk import chains, clock, sweep, tickets
from helpdesk.config import parse_policy
from helpdesk.models import Ticket, TicketEvent, ticket_pk
from helpdesk.settings import Env
from infra.local.testing import wait_for

# Open around the clock, so windows are plain arithmetic: normal = 4 h to first response, 2 days to resolve.
POLICY = parse_policy("""
time_zone = "UTC"
[calendars.always]
timezone = "UTC"
always_open = true
[sla.urgent]
calendar = "always"
first_response = "1h"
resolution = "8h"
tier_window = "1h"
[sla.high]
calendar = "always"
first_response = "2h"
resolution = "24h"
tier_window = "2h"
[sla.normal]
calendar = "always"
first_response = "4h"
resolution = "48h"
tier_window = "4h"
[sla.low]
calendar = "always"
first_response = "8h"
resolution = "96h"
tier_window = "8h"
[[routing]]
name = "default"
set = { department = "support", priority = "normal", tier = "L1" }
""")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # in the real past: no chain runs (no state machine here)


def open_at(at: datetime, email: str = "ada@example.com") -> tickets.Opened:
    with clock.frozen(at):
        return tickets.open_ticket(tickets.NewTicket(channel="web", customer_email=email, subject="Help",
                                                     description="It broke."), POLICY)


def sweep_at(at: datetime) -> sweep.Result:
    with clock.frozen(at):
        return sweep.Sweep(policy=POLICY).run()


def events(ticket_id: str, type_: str | None = None) -> list[TicketEvent]:
    found = tickets.timeline(ticket_id, public_only=False)
    return [e for e in found if type_ is None or e.type == type_]


def load(ticket_id: str) -> Ticket:
    return Ticket.get(ticket_pk(ticket_id), "TICKET", consistent_read=True)


# -- at risk ----------------------------------------------------------------------------------------

def test_a_ticket_past_75_percent_of_its_window_is_warned_once(aws):
    ticket = open_at(T0).ticket

    assert sweep_at(T0 + timedelta(hours=2, minutes=59)).at_risk_warnings == 0  # 74 % of 4 h
    first = sweep_at(T0 + timedelta(hours=3, minutes=1))
    again = sweep_at(T0 + timedelta(hours=3, minutes=6))

    assert (first.at_risk_warnings, again.at_risk_warnings) == (1, 0)
    (warning,) = events(ticket.ticket_id, "at_risk")
    assert warning.public is False and warning.actor == "system"
    assert warning.sk == f"EVENT#{clock.to_iso(ticket.first_response_due_at)}#at-risk-first_response"
    assert warning.data.as_dict()["due_kind"] == "first_response"
    assert first.metrics()["AtRiskWarnings"] == 1


def test_the_next_deadline_gets_its_own_warning_and_resolved_tickets_none(aws):
    ticket = open_at(T0).ticket
    sweep_at(T0 + timedelta(hours=3, minutes=30))
    with clock.frozen(T0 + timedelta(hours=3, minutes=40)):
        tickets.reply(ticket.ticket_id, "dana", "Looking into it.", policy=POLICY)  # clock -> resolution (48 h)

    assert sweep_at(T0 + timedelta(hours=30)).at_risk_warnings == 0  # 62 % of 48 h
    assert sweep_at(T0 + timedelta(hours=37)).at_risk_warnings == 1  # 77 %
    kinds = [e.data.as_dict()["due_kind"] for e in events(ticket.ticket_id, "at_risk")]
    assert kinds == ["first_response", "resolution"]

    other = open_at(T0, "bob@example.com").ticket
    with clock.frozen(T0 + timedelta(hours=1)):
        tickets.resolve(other.ticket_id, "dana", "Fixed.", policy=POLICY)
    assert sweep_at(T0 + timedelta(hours=3, minutes=30)).at_risk_warnings == 0  # the resolved one is out


# -- 30 days ----------------------------------------------------------------------------------------

def test_a_ticket_open_30_days_goes_to_management_once(aws):
    ticket = open_at(T0).ticket
    with clock.frozen(T0 + timedelta(hours=1)):
        tickets.reply(ticket.ticket_id, "dana", "On it.", policy=POLICY)
    # The chain is gone and nothing climbed: the deadline the plan capped at 30 days is all that is left.
    boto3.client("dynamodb").update_item(
        TableName=aws[Env.TICKETS_TABLE], Key={"pk": {"S": ticket_pk(ticket.ticket_id)}, "sk": {"S": "TICKET"}},
        UpdateExpression="SET next_due_at = :due, escalate_to = :to",
        ExpressionAttributeValues={":due": {"S": clock.to_iso(T0 + timedelta(days=30))}, ":to": {"S": "management"}})

    before = sweep_at(T0 + timedelta(days=29, hours=23))
    result = sweep_at(T0 + timedelta(days=30, minutes=2))
    again = sweep_at(T0 + timedelta(days=30, minutes=7))

    assert (before.thirty_day_escalations, result.thirty_day_escalations, again.thirty_day_escalations) == (0, 1, 0)
    stored = load(ticket.ticket_id)
    assert (stored.tier, stored.breached, stored.due_shard, stored.next_due_at) == ("management", True, None, None)
    (climb,) = events(ticket.ticket_id, "escalated")
    data = climb.data.as_dict()
    assert (data["auto"], data["to_tier"], data["breached"]) == (True, "management", True)
    assert climb.sk == f"EVENT#{clock.to_iso(T0 + timedelta(days=30))}#esc-management"  # as the chain keys it
    assert result.metrics()["ThirtyDayEscalations"] == 1


# -- auto-close -------------------------------------------------------------------------------------

def test_a_resolved_ticket_closes_7_days_later_not_before(aws):
    ticket = open_at(T0).ticket
    resolved_at = T0 + timedelta(hours=2)
    with clock.frozen(resolved_at):
        tickets.resolve(ticket.ticket_id, "dana", "Fixed.", policy=POLICY)

    assert sweep_at(resolved_at + timedelta(days=6, hours=23)).auto_closed == 0
    assert load(ticket.ticket_id).status == "resolved"
    closed = sweep_at(resolved_at + timedelta(days=7, minutes=1))
    again = sweep_at(resolved_at + timedelta(days=7, minutes=6))

    assert (closed.auto_closed, again.auto_closed) == (1, 0)
    assert load(ticket.ticket_id).status == "closed"
    changes = [e.data.as_dict() for e in events(ticket.ticket_id, "status_changed")]
    assert changes[-1] == {"from": "resolved", "to": "closed", "auto": True,
                           "reason": "no reply from the customer 7 days after the resolution"}
    entries = [e for e in events(ticket.ticket_id) if e.due_shard is not None]
    assert entries == []  # the entry left the due index with the close
    assert again.items_read == 0


def test_a_customer_message_in_between_keeps_the_ticket_open(aws):
    opened = open_at(T0)
    ticket = opened.ticket
    resolved_at = T0 + timedelta(hours=2)
    with clock.frozen(resolved_at):
        tickets.resolve(ticket.ticket_id, "dana", "Fixed.", policy=POLICY)
    with clock.frozen(resolved_at + timedelta(days=3)):
        tickets.add_customer_message(ticket.ticket_id, opened.access_token, "Still broken.", policy=POLICY)

    result = sweep_at(resolved_at + timedelta(days=7, minutes=1))

    assert result.auto_closed == 0 and result.stale_entries_removed == 1
    assert load(ticket.ticket_id).status == "open"


# -- the safety net: dead chains ---------------------------------------------------------------------

FUTURE = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)  # chains sleep, never escalate here


@pytest.fixture
def machine(aws, monkeypatch):
    """The escalation state machine, run as the local stack runs it (every execution stopped after)."""
    from helpdesk import statemachine
    from infra.local.emulator import AwsLikeEmulator
    from infra.local.executor import AwsLikeExecutor

    client = boto3.client("stepfunctions")
    definition = statemachine.render_definition(statemachine.substitutions(aws[Env.TICKETS_TABLE]))
    arn = client.create_state_machine(name="helpdesk-escalation-sweep-test", definition=definition, type="STANDARD",
                                      roleArn="arn:aws:iam::123456789012:role/escalation")["stateMachineArn"]
    monkeypatch.setenv(Env.ESCALATION_STATE_MACHINE_ARN.value, arn)
    with AwsLikeEmulator(), AwsLikeExecutor():
        yield client


def _execution(client, name: str) -> dict:
    arn = chains.execution_arn(name)
    return client.describe_execution(executionArn=arn)


def _wait_status(client, name: str, wanted: str) -> None:
    wait_for(lambda: _execution(client, name)["status"] == wanted, what=f"{name} to be {wanted}")


def test_a_failed_chain_is_handed_to_a_new_execution(machine, monkeypatch):
    broken = machine.create_state_machine(  # a chain that dies at once, as a failed execution would
        name="helpdesk-escalation-broken", type="STANDARD", roleArn="arn:aws:iam::123456789012:role/escalation",
        definition=json.dumps({"StartAt": "Broken", "States": {"Broken": {"Type": "Fail", "Error": "Broken"}}}),
    )["stateMachineArn"]
    monkeypatch.setenv(Env.ESCALATION_STATE_MACHINE_ARN.value, broken)
    ticket = open_at(FUTURE).ticket  # its chain starts (named after the ticket) and fails
    _wait_status(machine, ticket.ticket_id, "FAILED")

    assert sweep_at(FUTURE + timedelta(hours=4)).chains_repaired == 0  # on time: within the grace
    result = sweep_at(FUTURE + timedelta(hours=4, minutes=2))

    assert result.chains_repaired == 1
    stored = load(ticket.ticket_id)
    assert stored.escalation_chain == f"{ticket.ticket_id}-s{ticket.version + 1}"
    assert _execution(machine, stored.escalation_chain)  # the new chain was started
    (repair,) = events(ticket.ticket_id, "chain_repaired")
    assert repair.data.as_dict()["dead_status"] == "FAILED" and repair.public is False
    assert result.metrics()["ChainsRepaired"] == 1


def test_a_missing_chain_is_started(machine, monkeypatch):
    monkeypatch.delenv(Env.ESCALATION_STATE_MACHINE_ARN.value)
    ticket = open_at(FUTURE).ticket  # the start failed (here: no ARN yet): no execution at all
    monkeypatch.setenv(Env.ESCALATION_STATE_MACHINE_ARN.value, machine.list_state_machines()["stateMachines"][0]["stateMachineArn"])

    result = sweep_at(FUTURE + timedelta(hours=5))

    assert result.chains_repaired == 1
    (repair,) = events(ticket.ticket_id, "chain_repaired")
    assert repair.data.as_dict()["dead_status"] == chains.MISSING
    _wait_status(machine, load(ticket.ticket_id).escalation_chain, "RUNNING")


@pytest.mark.parametrize("refusal", ["ExecutionLimitExceeded", "ThrottlingException"])
def test_a_chain_that_cannot_start_leaves_the_ticket_correct_and_the_sweep_escalates_it_on_time(
        machine, monkeypatch, refusal):
    # Given Step Functions refuses new executions: the account's 1,000,000 open Standard executions are
    # reached, or StartExecution is throttled
    client = chains.stepfunctions()
    start = client.start_execution

    def refuse(**request):
        raise ClientError({"Error": {"Code": refusal, "Message": "refused"}}, "StartExecution")

    monkeypatch.setattr(client, "start_execution", refuse)

    # When a customer opens a ticket
    ticket = open_at(FUTURE).ticket

    # Then it is stored as any other: its deadlines, its place in the due index, its `created` event
    stored = load(ticket.ticket_id)
    assert (stored.status, stored.tier, stored.escalate_to) == ("new", "L1", "L2")
    assert stored.next_due_at == stored.first_response_due_at == FUTURE + timedelta(hours=4)
    assert stored.due_shard and [e.type for e in events(ticket.ticket_id)] == ["created"]
    assert chains.status(ticket.ticket_id) == chains.MISSING

    # When the sweeps run (every 5 minutes) while Step Functions still refuses
    on_time = stored.next_due_at + sweep.GRACE + timedelta(minutes=5)  # the first run past the grace, at the latest
    before = sweep_at(stored.next_due_at + sweep.GRACE - timedelta(seconds=1))
    after = sweep_at(on_time)

    # Then the first run past the deadline's grace escalates it itself, as the chain would have
    assert (before.escalated_directly, after.escalated_directly) == (0, 1)
    escalated = load(ticket.ticket_id)
    assert (escalated.tier, escalated.escalation_count) == ("L2", 1)
    assert escalated.next_due_at == on_time + timedelta(hours=4)  # L2's window, from when it got the ticket
    (climb,) = events(ticket.ticket_id, "escalated")
    assert climb.sk == f"EVENT#{clock.to_iso(stored.next_due_at)}#esc-L2"  # the key the chain would have used
    assert climb.at == on_time and climb.data.as_dict()["auto"] is True

    # And once Step Functions accepts executions again, the next deadline's sweep hands the ticket to a chain
    monkeypatch.setattr(client, "start_execution", start)
    repaired = sweep_at(escalated.next_due_at + sweep.GRACE + timedelta(minutes=1))
    assert repaired.chains_repaired == 1
    _wait_status(machine, load(ticket.ticket_id).escalation_chain, "RUNNING")


def test_without_a_state_machine_the_sweep_escalates_itself(aws):
    ticket = open_at(T0).ticket
    result = sweep_at(T0 + timedelta(hours=4, minutes=2))
    again = sweep_at(T0 + timedelta(hours=4, minutes=7))

    assert (result.escalated_directly, again.escalated_directly) == (1, 0)
    stored = load(ticket.ticket_id)
    assert (stored.tier, stored.escalation_count) == ("L2", 1)
    (climb,) = events(ticket.ticket_id, "escalated")
    assert climb.sk == f"EVENT#{clock.to_iso(ticket.next_due_at)}#esc-L2" and climb.data.as_dict()["auto"] is True


# -- overlapping runs -------------------------------------------------------------------------------

def _scenario() -> tuple[str, str, str]:
    risky = open_at(T0).ticket
    closing = open_at(T0 - timedelta(days=8), "bob@example.com").ticket
    with clock.frozen(T0 - timedelta(days=8) + timedelta(hours=1)):
        tickets.resolve(closing.ticket_id, "dana", "Fixed.", policy=POLICY)
    old = open_at(T0 - timedelta(days=31), "cy@example.com").ticket
    return risky.ticket_id, closing.ticket_id, old.ticket_id


def test_interleaved_sweeps_act_once(aws):
    risky, closing, old = _scenario()
    now = T0 + timedelta(hours=3, minutes=30)
    with clock.frozen(now):
        slow = sweep.Sweep(policy=POLICY).read()  # a slow run has read the index...
        fast = sweep.Sweep(policy=POLICY).run()  # ...when the next tick runs through
        late = slow.act()

    assert (fast.at_risk_warnings, fast.auto_closed, fast.thirty_day_escalations) == (1, 1, 1)
    assert (late.at_risk_warnings, late.auto_closed, late.thirty_day_escalations) == (0, 0, 0)
    assert len(events(risky, "at_risk")) == 1
    assert [e.data.as_dict()["to"] for e in events(closing, "status_changed")] == ["resolved", "closed"]
    assert len(events(old, "escalated")) == 1


def test_the_handler_runs_a_sweep_and_reports_its_counts(aws, lambda_context, monkeypatch):
    from tests.conftest import sample_event

    monkeypatch.setattr(sweep, "load_policy", lambda: POLICY)
    open_at(T0)
    from functions.sla_sweep import handler

    with clock.frozen(T0 + timedelta(hours=3, minutes=30)):
        summary = handler.handler(sample_event("schedule/sla_sweep.json"), lambda_context)
    assert summary["at_risk_warnings"] == 1 and summary["queries"] == 8


# -- the daily report (its data comes from the same table) ------------------------------------------

def test_the_report_function_writes_yesterdays_json_and_the_table_shows_it(aws, lambda_context, monkeypatch):
    import json

    from helpdesk import report

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="helpdesk-reports")
    monkeypatch.setenv(Env.REPORT_BUCKET.value, "helpdesk-reports")
    answered = open_at(T0).ticket
    open_at(T0, "bob@example.com")
    with clock.frozen(T0 + timedelta(hours=1)):
        tickets.reply(answered.ticket_id, "dana", "Hello.", policy=POLICY)
    from functions.sla_report import handler

    with clock.frozen(T0 + timedelta(days=1, hours=1)):
        out = handler.handler({"time": "2026-11-03T00:15:00Z"}, lambda_context)
        printed = report.table(report.report(date(2026, 11, 1), date(2026, 11, 3)))

    body = json.loads(s3.get_object(Bucket="helpdesk-reports", Key=out["key"])["Body"].read())
    assert out["key"] == "reports/daily/2026-11-02.json" and body["day"] == "2026-11-02"
    total = body["rows"][-1]
    assert (total["opened"], total["first_response_met"], total["breaches"]) == (2, 50.0, 1)
    assert total["first_response_p50"] == 3600.0
    assert "2026-11-02" in printed and "FR met" in printed


def test_the_report_counts_each_ticket_on_the_utc_day_it_was_opened_with_its_escalations(aws):
    from helpdesk import report

    midnight = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
    late, early = open_at(midnight - timedelta(seconds=1)).ticket, open_at(midnight, "bob@example.com").ticket
    with clock.frozen(midnight + timedelta(hours=1)):
        tickets.escalate(late.ticket_id, "dana", "Needs a senior look.")

    days = {row.day: row for row in report.report(date(2026, 11, 2), date(2026, 11, 3), by=("day",), now=midnight)}

    assert (days["2026-11-02"].opened, days["2026-11-03"].opened) == (1, 1)
    assert (days["2026-11-02"].escalations_manual, days["2026-11-03"].escalations_manual) == (1, 0)
    assert early.ticket_id not in {f.ticket_id for f in report.facts_for(date(2026, 11, 2), date(2026, 11, 2))}
