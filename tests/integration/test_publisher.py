"""The outbox relay on moto: real stream records of the ticket table -> SNS -> subscriber queues
(subscribed with helpdesk.notify's filter policies, raw delivery)."""

import copy
import json

import pytest
from botocore.exceptions import ClientError

from helpdesk import clock, notify, tickets
from tests.conftest import sample_event
from tests.integration.conftest import BASE_URL, TUESDAY, captured_logs


@pytest.fixture
def publisher(notifications):
    from functions.publisher import handler

    return handler


def open_ticket(**changes) -> tickets.Opened:
    request = dict(channel="web", customer_email="Ana.Lima@Example.com", customer_name="Ana Lima",
                   customer_phone="+4915112345678", subject="Refund for a double charge",
                   description="I was charged twice for invoice 2026-118.", category="billing") | changes
    with clock.frozen(TUESDAY):
        return tickets.open_ticket(tickets.NewTicket(**request))


def sequence_numbers(batch: dict, ticket_id: str, event_type: str | None = None) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in batch["Records"]
            if r["dynamodb"]["Keys"]["pk"]["S"] == f"TICKET#{ticket_id}"
            and r["dynamodb"]["Keys"]["sk"]["S"].startswith("EVENT#")
            and (event_type is None or r["dynamodb"]["NewImage"]["type"]["S"] == event_type)]


def test_a_new_ticket_tells_its_customer_it_was_received(publisher, notifications, lambda_context):
    ticket = open_ticket().ticket
    batch = notifications.stream.read()

    response = publisher.handler(batch, lambda_context)

    [message] = notifications.customer.drain()
    update = json.loads(message["body"])
    assert response == {"batchItemFailures": []}
    # the ticket's INSERT and its `created` event's INSERT (the rest: helpdesk.limits' counters)
    assert len([r for r in batch["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == f"TICKET#{ticket.ticket_id}"]) == 2
    assert message["attributes"] == {"event_type": "created", "ticket_id": ticket.ticket_id, "channel": "web"}
    assert update["subject"] == "Refund for a double charge"
    assert (update["customer_email"], update["customer_name"], update["customer_phone"]) == (
        "ana.lima@example.com", "Ana Lima", "+4915112345678")
    assert update["due_at"] == "2026-11-24T11:00:00Z" and update["due_kind"] == "first_response"
    assert update["link"].startswith(f"{BASE_URL}/tickets/{ticket.ticket_id}?token=")
    assert "text" not in update  # what the requester wrote is never sent back (the form is no relay)
    assert notifications.billing.drain() == [] and notifications.management.drain() == []


def test_the_customer_reads_times_in_their_own_zone_and_the_team_in_its_own(publisher, notifications, lambda_context):
    from helpdesk import messages
    from helpdesk.config import load_policy

    ticket = open_ticket(customer_time_zone="America/New_York").ticket
    with clock.frozen(TUESDAY.replace(hour=11)):
        tickets.escalate(ticket.ticket_id, "dana", "Refund needs a senior's approval.")

    publisher.handler(notifications.stream.read(), lambda_context)

    updates = [json.loads(m["body"]) for m in notifications.customer.drain()]
    [alert] = [json.loads(m["body"])["alert"] for m in notifications.billing.drain()]
    assert {u["time_zone"] for u in updates} == {"America/New_York"}
    assert alert["time_zone"] == load_policy().time_zone
    email = messages.customer_email(messages.CustomerUpdate.from_dict(updates[0]))
    assert "06:00 EST" in email.text  # 11:00 UTC, the first-response deadline


def test_an_escalation_alerts_the_team_and_tells_the_customer(publisher, notifications, lambda_context):
    ticket = open_ticket().ticket
    with clock.frozen(TUESDAY.replace(hour=11)):  # the first response was due at 11:00
        tickets.escalate(ticket.ticket_id, "dana", "Refund needs a senior's approval.")
    batch = notifications.stream.read()

    publisher.handler(batch, lambda_context)

    [alert] = notifications.billing.drain()
    payload = json.loads(alert["body"])  # the `default` variant: what webhooks and queues get
    customer = [json.loads(m["body"]) for m in notifications.customer.drain()]
    assert alert["attributes"] == {"event_type": "escalated", "ticket_id": ticket.ticket_id,
                                   "department": "billing", "priority": "high", "tier": "L2"}
    assert payload["text"] == f"{ticket.ticket_id} escalated from L1 to L2 (billing, high priority)"
    assert payload["alert"]["due_at"] == "2026-11-24T11:00:00Z"
    assert payload["alert"]["next_due_at"] == "2026-11-24T13:00:00Z"
    assert [(u["event_type"], u.get("tier"), u.get("due_at")) for u in customer] == [
        ("created", None, "2026-11-24T11:00:00Z"), ("escalated", "L2", "2026-11-24T13:00:00Z")]
    assert notifications.management.drain() == []  # L2 is not management's business


def test_management_hears_of_escalations_that_reach_it(publisher, notifications, lambda_context):
    tid = open_ticket().ticket.ticket_id
    for tier in ("L1", "L2", "L3"):
        tickets.escalate(tid, "dana", f"Stuck at {tier}.", expected_tier=tier)
    publisher.handler(notifications.stream.read(), lambda_context)

    [alert] = notifications.management.drain()

    assert alert["attributes"]["tier"] == "management"
    assert json.loads(alert["body"])["alert"]["summary"] == "Stuck at L3."
    assert len(notifications.billing.drain()) == 3  # the department hears of every climb


def test_internal_notes_and_the_customers_own_messages_never_reach_the_customer(publisher, notifications, lambda_context):
    opened = open_ticket()
    tid = opened.ticket.ticket_id
    notifications.stream.read()  # the `created` records: not this test's business
    tickets.add_note(tid, "dana", "Customer was double charged by the PSP; refund queued.")
    tickets.reply(tid, "dana", "Checking with the PSP first.", public=False)
    tickets.add_customer_message(tid, opened.access_token, "Any news?")
    batch = notifications.stream.read()

    response = publisher.handler(batch, lambda_context)

    assert {r["eventName"] for r in batch["Records"]} == {"INSERT", "MODIFY"}  # ticket MODIFYs ride along
    assert response == {"batchItemFailures": []}
    assert notifications.everything.drain() == []  # not even an unfiltered subscriber sees them
    assert notifications.billing.drain() == []


def test_an_agent_reply_and_the_resolution_reach_the_customer(publisher, notifications, lambda_context):
    tid = open_ticket().ticket.ticket_id
    notifications.stream.read()
    tickets.reply(tid, "dana", "We have refunded the second charge.")
    tickets.pause(tid, "dana")  # waiting on the customer: not news to them
    tickets.resolve(tid, "dana", "Refunded the duplicate charge of 49 EUR.")

    publisher.handler(notifications.stream.read(), lambda_context)

    updates = [json.loads(m["body"]) for m in notifications.customer.drain()]
    assert [u["event_type"] for u in updates] == ["reply", "status_changed"]
    assert updates[0]["text"] == "We have refunded the second charge."
    assert (updates[1]["status"], updates[1]["text"]) == ("resolved", "Refunded the duplicate charge of 49 EUR.")
    assert updates[1]["survey_link"].startswith(f"{BASE_URL}/tickets/{tid}/survey?token=")


def test_the_same_batch_delivered_twice_publishes_each_message_once(publisher, notifications, lambda_context):
    tid = open_ticket().ticket.ticket_id
    tickets.escalate(tid, "dana", "Needs approval.")
    batch = notifications.stream.read()

    first = publisher.handler(batch, lambda_context)
    second = publisher.handler(copy.deepcopy(batch), lambda_context)

    assert first == second == {"batchItemFailures": []}
    assert [m["attributes"]["event_type"] for m in notifications.customer.drain()] == ["created", "escalated"]
    assert len(notifications.billing.drain()) == 1


def test_a_failed_publish_is_reported_and_its_retry_repeats_nothing_else(publisher, notifications,
                                                                         lambda_context, monkeypatch):
    ids = [open_ticket(subject=f"Refund {n}").ticket.ticket_id for n in range(3)]
    batch = notifications.stream.read()
    real_publish = notify.publish

    def flaky(request):
        if ids[1] in request["Message"]:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Publish")
        return real_publish(request)

    monkeypatch.setattr(notify, "publish", flaky)
    failed = publisher.handler(batch, lambda_context)
    first = {m["attributes"]["ticket_id"] for m in notifications.customer.drain()}
    monkeypatch.setattr(notify, "publish", real_publish)
    retried = publisher.handler(copy.deepcopy(batch), lambda_context)  # the mapping sends the batch again
    second = [m["attributes"]["ticket_id"] for m in notifications.customer.drain()]

    assert failed == {"batchItemFailures": [{"itemIdentifier": s} for s in sequence_numbers(batch, ids[1])]}
    assert first == {ids[0], ids[2]}
    assert retried == {"batchItemFailures": []}
    assert second == [ids[1]]


def test_a_poison_record_fails_alone(publisher, notifications, lambda_context):
    tid = open_ticket().ticket.ticket_id
    batch = notifications.stream.read()
    [good] = [r for r in batch["Records"] if r["dynamodb"]["Keys"]["sk"]["S"].startswith("EVENT#")]
    poison = copy.deepcopy(good)
    poison["dynamodb"]["SequenceNumber"] = "1" + good["dynamodb"]["SequenceNumber"]
    poison["dynamodb"]["NewImage"] = {"pk": {"S": f"TICKET#{tid}"}, "sk": good["dynamodb"]["Keys"]["sk"],
                                      "at": {"N": "17"}, "type": {"BOOL": True}}
    batch["Records"].insert(0, poison)

    response = publisher.handler(batch, lambda_context)
    alone = publisher.handler({"Records": [poison]}, lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]}]}
    assert alone == response  # a batch of nothing but poison is reported too, not raised
    assert [m["attributes"]["event_type"] for m in notifications.customer.drain()] == ["created"]


def test_the_sample_stream_events_say_what_their_names_say():
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBStreamEvent

    def events(name):
        return [notify.stream_event(r) for r in DynamoDBStreamEvent(sample_event(f"stream/{name}.json")).records]

    assert [(e.type, notify.routes(e)) for e in events("created")] == [("created", (notify.CUSTOMER,))]
    assert [(e.type, notify.routes(e)) for e in events("escalated")] == [("escalated", (notify.CUSTOMER, notify.TEAM))]
    assert events("ticket_modified") == [None]


def test_the_logs_name_the_ticket_but_never_the_customer_or_the_text(publisher, notifications, lambda_context):
    opened = open_ticket()

    with captured_logs(publisher.logger) as out:
        publisher.handler(notifications.stream.read(), lambda_context)

    [log] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (log["message"], log["ticket_id"], log["topic"]) == ("published", opened.ticket.ticket_id, "customer-updates")
    text = out.getvalue().lower()
    assert "example.com" not in text and "charged twice" not in text and opened.access_token.lower() not in text
