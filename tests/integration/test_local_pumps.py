"""The local stack's pumps on moto (infra/local/pumps.py): what AWS does between the resources and the
functions, in-process: the stream's event source mapping, SNS invoking the delivery function, team
mailboxes, and the outbox that records what was sent."""

import json

import pytest

from helpdesk import clock, notify, tickets
from infra.local import pumps, resources
from infra.local.outbox import Outbox
from tests.conftest import sample_event
from tests.integration.conftest import TUESDAY


def open_ticket(phone: str | None = None, **changes) -> tickets.Opened:
    request = dict(channel="web", customer_email="ana@example.com", customer_name="Ana Lima", customer_phone=phone,
                   subject="Refund for a double charge", description="I was charged twice.", category="billing")
    with clock.frozen(TUESDAY):
        return tickets.open_ticket(tickets.NewTicket(**request | changes))


class Recording:
    """A stand-in handler: the events it got; fails the sequence numbers it is told to."""

    def __init__(self, fail: set[str] = frozenset()):
        self.events: list[dict] = []
        self.fail = set(fail)

    def __call__(self, event: dict, context) -> dict:
        self.events.append(event)
        sequence = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        failed = [s for s in sequence if s in self.fail]
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}


@pytest.fixture
def outbox(notifications):
    """An outbox recording what notify sends, for the duration of the test."""
    box = Outbox()
    recorder = pumps.OutboxRecorder(box)
    recorder.start()
    yield box
    recorder.stop()


# -- filtering ------------------------------------------------------------------------------------------

def test_the_stream_filter_lets_only_inserted_timeline_events_through():
    pattern = notify.stream_filter_pattern()
    [created] = sample_event("stream/created.json")["Records"]
    [modified] = sample_event("stream/ticket_modified.json")["Records"]
    ticket_insert = json.loads(json.dumps(created))
    ticket_insert["dynamodb"]["Keys"]["sk"]["S"] = "TICKET"

    assert pumps.matches(pattern, created) is True
    assert pumps.matches(pattern, modified) is False  # a MODIFY of the ticket item
    assert pumps.matches(pattern, ticket_insert) is False  # an INSERT, but not an event


def test_filter_operators_behave_like_lambda_event_filtering():
    event = {"a": "Hello", "n": 3, "tags": ["x", "y"], "nested": {"k": "v"}}

    assert pumps.matches({"a": [{"prefix": "He"}], "nested": {"k": ["v"]}}, event)
    assert pumps.matches({"tags": ["y"], "n": [3]}, event)  # a list matches if any element does
    assert pumps.matches({"missing": [{"exists": False}], "a": [{"exists": True}]}, event)
    assert pumps.matches({"a": [{"equals-ignore-case": "hello"}], "n": [{"anything-but": [4]}]}, event)
    assert not pumps.matches({"a": [{"suffix": "x"}]}, event)
    assert not pumps.matches({"nested": {"k": ["w"]}}, event)
    with pytest.raises(ValueError, match="numeric"):
        pumps.matches({"n": [{"numeric": [">", 1]}]}, event)


# -- the stream pump ------------------------------------------------------------------------------------

def test_the_stream_pump_hands_the_publisher_only_event_inserts_in_lambda_shape(notifications):
    tid = open_ticket().ticket.ticket_id
    tickets.reply(tid, "dana", "We are on it.")
    handler = Recording()
    pump = pumps.StreamPump(handler, notifications.stream, pattern=notify.stream_filter_pattern())

    pump.tick()
    pump.tick()  # nothing new: no second invocation

    [event] = handler.events
    records = event["Records"]
    assert [r["dynamodb"]["NewImage"]["type"]["S"] for r in records] == ["created", "reply"]
    assert {r["eventName"] for r in records} == {"INSERT"}
    assert all(r["eventSourceARN"] == notifications.stream.arn for r in records)
    assert all(isinstance(r["dynamodb"]["ApproximateCreationDateTime"], float) for r in records)


def test_a_failed_record_comes_back_from_where_it_failed_then_is_given_up(notifications):
    ids = [open_ticket(subject=f"Refund {n}").ticket.ticket_id for n in range(3)]
    records = notifications.stream.records()
    notifications.stream.rewind()  # read them again from the start
    keys = [(r["dynamodb"]["SequenceNumber"], r["dynamodb"]["Keys"]) for r in records]
    second = next(s for s, k in keys if k["pk"]["S"] == f"TICKET#{ids[1]}" and k["sk"]["S"] != "TICKET")
    handler = Recording(fail={second})
    pump = pumps.StreamPump(handler, notifications.stream, pattern=notify.stream_filter_pattern(), retry_attempts=2)

    for _ in range(4):
        pump.tick()

    batches = [[r["dynamodb"]["Keys"]["pk"]["S"] for r in e["Records"]] for e in handler.events]
    assert batches[0] == [f"TICKET#{i}" for i in ids]
    assert batches[1] == batches[2] == [f"TICKET#{i}" for i in ids[1:]]  # resumed from the failed record
    assert [r["dynamodb"]["SequenceNumber"] for r in pump.given_up] == [second]  # the cloud's DLQ
    assert batches[3] == [f"TICKET#{ids[2]}"] and pump.pending == []  # the rest went on


# -- SNS -> the delivery function -> the outbox ---------------------------------------------------------------

def publish_stream(notifications, lambda_context) -> None:
    from functions.publisher import handler

    assert handler.handler(notifications.stream.read(), lambda_context) == {"batchItemFailures": []}


def test_the_delivery_pump_invokes_the_function_and_the_outbox_records_what_was_sent(notifications, outbox,
                                                                                     lambda_context):
    from functions.delivery import handler

    tid = open_ticket(phone="+4915112345678").ticket.ticket_id
    publish_stream(notifications, lambda_context)
    pump = pumps.DeliveryPump(handler.handler, pumps.SnsQueue(resources.DELIVERY_QUEUE))

    pump.tick()

    email, sms = outbox.as_json()
    assert (email["channel"], email["recipient"], email["ticket_id"], email["event_type"]) == (
        "email", "ana@example.com", tid, "created")
    assert email["subject"] == f"[{tid}] Refund for a double charge"
    assert "We have received your request" in email["body"] and "<" not in email["body"][:20]  # the text part
    assert (sms["channel"], sms["recipient"], sms["ticket_id"], sms["event_type"]) == ("sms", "+4915112345678", tid,
                                                                                       "created")
    assert len(notifications.sent_emails()) == 1 and len(notifications.sent_sms()) == 1  # really sent, on moto
    assert notifications.customer.drain() == []  # consumed


def test_sns_events_built_from_the_queue_have_the_shape_lambda_gets(notifications, lambda_context):
    open_ticket()
    publish_stream(notifications, lambda_context)
    [(envelope, _, _)] = pumps.SnsQueue(resources.DELIVERY_QUEUE).receive()

    event = pumps.sns_lambda_event(envelope)

    sample = sample_event("sns/created.json")
    assert event["Records"][0].keys() == sample["Records"][0].keys()
    assert event["Records"][0]["Sns"].keys() == sample["Records"][0]["Sns"].keys()
    assert event["Records"][0]["Sns"]["MessageAttributes"]["event_type"] == {"Type": "String", "Value": "created"}
    assert event["Records"][0]["EventSubscriptionArn"].startswith(notifications.customer_topic + ":")


def test_a_failing_delivery_is_retried_on_the_next_tick_then_given_up(notifications, lambda_context):
    open_ticket()
    publish_stream(notifications, lambda_context)
    calls = []

    def broken(event, context):
        calls.append(event)
        raise RuntimeError("SES is down")

    pump = pumps.DeliveryPump(broken, pumps.SnsQueue(resources.DELIVERY_QUEUE), retry_attempts=1)

    pump.tick()
    first = len(calls)
    pump.tick()
    pump.tick()

    assert (first, len(calls), len(pump.given_up)) == (1, 2, 1)  # one try, one retry, then the "DLQ"
    assert notifications.customer.drain() == []


# -- team alerts ----------------------------------------------------------------------------------------------

def test_team_alerts_reach_the_department_and_management_as_their_email_reads(notifications, lambda_context):
    tid = open_ticket().ticket.ticket_id
    for tier in ("L1", "L2", "L3"):
        tickets.escalate(tid, "dana", f"Stuck at {tier}.", expected_tier=tier)
    publish_stream(notifications, lambda_context)
    box = Outbox()
    queues = {s: pumps.SnsQueue(resources.team_queue_name(s)) for s in resources.team_alert_subscribers()}

    pumps.TeamAlertPump(box, queues).tick()

    alerts = box.as_json()
    assert sorted(a["recipient"] for a in alerts) == ["team:billing"] * 3 + ["team:management"]
    [management] = [a for a in alerts if a["recipient"] == "team:management"]
    assert management["channel"] == "team-alert" and management["ticket_id"] == tid
    assert management["event_type"] == "escalated"
    assert management["subject"].startswith(f"[{tid}] Escalated from L3 to management")
    assert "Summary:   Stuck at L3." in management["body"] and management["body"].startswith(f"{tid} escalated")


def test_local_team_subscribers_are_every_department_and_management():
    subscribers = resources.team_alert_subscribers()

    assert subscribers["management"] == notify.MANAGEMENT_FILTER
    assert subscribers["billing"] == notify.team_filter("billing")
    assert set(subscribers) >= {"billing", "technical", "accounts", "support", "management"}


# -- a known bug, kept visible -----------------------------------------------------------------------------

def test_two_tickets_escalated_at_the_same_second_both_alert_their_team(notifications, lambda_context):
    from helpdesk import sweep

    with clock.frozen(TUESDAY):  # same moment, same policy: the same first-response deadline
        first, second = (open_ticket(customer_email=f"c{n}@example.com").ticket for n in range(2))
    assert first.first_response_due_at == second.first_response_due_at
    with clock.frozen(first.first_response_due_at + (first.first_response_due_at - TUESDAY)):
        sweep.Sweep().run()  # the sweep escalates both, as the chains would
    publish_stream(notifications, lambda_context)

    alerts = notifications.billing.drain()

    assert sorted(a["attributes"]["ticket_id"] for a in alerts) == sorted([first.ticket_id, second.ticket_id])
