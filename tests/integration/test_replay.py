"""The dead-letter queues on moto: a publish, a delivery and an email intake that fail every retry land
in their queue in AWS's own record shape (written by the local stack's pumps and SMTP intake), ``show``
says what failed without customer text or addresses, and ``replay`` sends each thing exactly once,
however often it runs; the publisher's replay reads the table, never the stream."""

from __future__ import annotations

import json
import secrets

import boto3
import pytest
from botocore.exceptions import ClientError

from helpdesk import intake, notify, replay, tickets
from helpdesk.models import Ticket
from helpdesk.settings import Env
from tests.integration.conftest import SUPPORT
from tests.integration.test_email_intake import email

CUSTOMER = "ana.lima@example.com"
TEXT = "I was charged twice for invoice 2026-118."


@pytest.fixture
def dead_letters(notifications):
    """The three queues (``resources.dead_letter_queues``) and the writer the local stack fills them with."""
    from infra.local import dead_letters, resources

    resources.create_resources([resources.dead_letter_queues])
    return dead_letters.DeadLetters()


@pytest.fixture
def target(dead_letters):
    """``helpdesk.replay`` against this moto account, the functions called in-process (as the console does)."""
    from infra.local.dead_letters import local_target

    return local_target()


def throttled(*args, **kwargs):
    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Publish")


def open_ticket() -> tickets.Opened:
    # The real clock: a stream record arrives when its event was written, and the replay relies on it.
    return tickets.open_ticket(tickets.NewTicket(
        channel="web", customer_email=CUSTOMER, customer_name="Ana Lima", subject="Refund for a double charge",
        description=TEXT, category="billing"))


def waiting(queue: str) -> list[dict]:
    """The bodies waiting in a dead-letter queue (left there)."""
    from infra.local.dead_letters import queue_urls

    sqs, url = boto3.client("sqs"), queue_urls()[queue]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


def put_back(queue: str, body: dict) -> None:
    """A replay cut short after its function ran but before the message was deleted."""
    from infra.local.dead_letters import queue_urls

    boto3.client("sqs").send_message(QueueUrl=queue_urls()[queue], MessageBody=json.dumps(body))


def test_a_publish_that_failed_every_retry_is_replayed_from_the_table_once_the_stream_has_lost_it(
        notifications, dead_letters, target, monkeypatch):
    from functions.publisher import handler
    from infra.local.pumps import StreamPump

    # Given SNS refused the acknowledgement of a new ticket on every retry of the stream event source
    monkeypatch.setattr(notify, "publish", throttled)
    ticket = open_ticket().ticket
    pump = StreamPump(handler.handler, notifications.stream, pattern=notify.stream_filter_pattern(),
                      retry_attempts=2, dead_letter=dead_letters.stream_batch)
    for _ in range(3):
        pump.tick()
    [record] = waiting("publisher")

    # When the operator looks at the queue
    shown = replay.show("publisher", target)

    # Then it tells where the batch was and which event it held, never the customer or their text
    assert record["DDBStreamBatchInfo"]["batchSize"] == 1 and record["requestContext"]["approximateInvokeCount"] == 3
    [message] = shown["messages"]
    assert message["condition"] == "RetryAttemptsExhausted" and message["batch_size"] == 1
    assert [(e["ticket_id"], e["type"]) for e in message["events"]] == [(ticket.ticket_id, "created")]
    assert CUSTOMER not in json.dumps(shown) and "charged twice" not in json.dumps(shown)
    assert shown["scan"]["items_read"] >= 2
    assert waiting("publisher") == [record]  # showing removes nothing

    # Given the stream's records are gone (24 hours later) and the cause is fixed
    boto3.client("dynamodb").update_table(TableName=Ticket.Meta.table_name,
                                          StreamSpecification={"StreamEnabled": False})
    monkeypatch.undo()

    # When the queue is replayed
    result = replay.replay("publisher", target)

    # Then the customer's acknowledgement goes out once, and the message leaves the queue
    [published] = notifications.customer.drain()
    assert published["attributes"] == {"event_type": "created", "ticket_id": ticket.ticket_id, "channel": "web"}
    assert (result["replayed"], result["failed"]) == (1, [])
    assert waiting("publisher") == []

    # And replaying again, even the same record (a replay cut short before its delete), sends nothing more
    assert replay.replay("publisher", target)["replayed"] == 0
    put_back("publisher", record)
    assert replay.replay("publisher", target)["replayed"] == 1
    assert notifications.customer.drain() == [] and waiting("publisher") == []


def test_a_publish_still_failing_stays_in_the_queue_with_its_reason(notifications, dead_letters, target, monkeypatch):
    from functions.publisher import handler
    from infra.local.pumps import StreamPump

    # Given a failed publish whose cause is not fixed yet
    monkeypatch.setattr(notify, "publish", throttled)
    open_ticket()
    pump = StreamPump(handler.handler, notifications.stream, pattern=notify.stream_filter_pattern(),
                      retry_attempts=0, dead_letter=dead_letters.stream_batch)
    pump.tick()

    # When it is replayed
    result = replay.replay("publisher", target)

    # Then it is kept, with the reason, and nothing was published
    assert result["replayed"] == 0
    [failed] = result["failed"]
    assert "failed again" in failed["error"]
    assert len(waiting("publisher")) == 1 and notifications.customer.drain() == []


def test_an_update_that_could_not_be_emailed_is_replayed_and_sent_exactly_once(
        notifications, dead_letters, target, monkeypatch, lambda_context):
    from functions.delivery import handler
    from functions.publisher import handler as publisher
    from infra.local import resources
    from infra.local.pumps import DeliveryPump, SnsQueue

    # Given SES refused the acknowledgement on the delivery's first try and both retries
    ticket = open_ticket().ticket
    assert publisher.handler(notifications.stream.read(), lambda_context) == {"batchItemFailures": []}

    def refused(raw: bytes, to: str) -> str:
        raise notify.NotSent("email not sent: MessageRejected")

    monkeypatch.setattr(notify, "send_email", refused)
    pump = DeliveryPump(handler.handler, SnsQueue(resources.DELIVERY_QUEUE), dead_letter=dead_letters.invocation)
    for _ in range(3):
        pump.tick()
    [record] = waiting("delivery")

    # When the operator looks
    shown = replay.show("delivery", target)

    # Then they see which ticket and event, and why, never the customer's address or text
    [message] = shown["messages"]
    assert (message["condition"], message["attempts"]) == ("RetriesExhausted", 3)
    assert message["error"] == "NotSent: email not sent: MessageRejected"
    [update] = message["updates"]
    assert (update["ticket_id"], update["event_type"], update["channel"]) == (ticket.ticket_id, "created", "web")
    assert CUSTOMER not in json.dumps(shown) and "charged twice" not in json.dumps(shown)

    # When the cause is fixed and the queue replayed, twice, and the same record once more
    monkeypatch.undo()
    first = replay.replay("delivery", target)
    second = replay.replay("delivery", target)
    put_back("delivery", record)
    third = replay.replay("delivery", target)

    # Then the customer got exactly one email
    assert (first["replayed"], second["replayed"], third["replayed"]) == (1, 0, 1)
    [sent] = notifications.sent_emails()
    assert CUSTOMER in sent.destinations
    assert waiting("delivery") == []


def test_an_email_the_intake_could_not_take_is_replayed_into_one_ticket(
        dead_letters, target, aws, monkeypatch, lambda_context):
    from functions.email_intake import handler
    from tests.integration.test_email_intake import Mailroom

    # Given the intake failed on an email (an outage: DynamoDB throttled every write)
    monkeypatch.setenv(Env.SUPPORT_ADDRESS, SUPPORT)
    monkeypatch.setattr(handler, "store", intake.S3MailStore(aws[Env.MAIL_BUCKET]))
    mailroom, ses_id = Mailroom(handler, lambda_context), secrets.token_hex(20)
    raw = email(sender=f"Ana Lima <{CUSTOMER}>", body=TEXT)
    boto3.client("s3").put_object(Bucket=mailroom.bucket, Key=intake.RAW_PREFIX + ses_id, Body=raw.as_bytes())
    with monkeypatch.context() as outage:
        outage.setattr(intake, "receive", throttled)
        with pytest.raises(ClientError):
            dead_letters.guard("email", handler.handler)(mailroom.event(ses_id=ses_id), lambda_context)
    [record] = waiting("email")

    # When the operator looks
    shown = replay.show("email", target)

    # Then they see the SES message and a masked sender, not who wrote or what
    [message] = shown["messages"]
    [mail] = message["emails"]
    assert mail["ses_message_id"] == ses_id and mail["sender"] == "a***@example.com"  # the envelope sender, masked
    assert "ThrottlingException" in message["error"]
    assert CUSTOMER not in json.dumps(shown) and "Refund" not in json.dumps(shown)

    # When the queue is replayed, again, and the same record once more
    results = [replay.replay("email", target)["replayed"]]
    results.append(replay.replay("email", target)["replayed"])
    put_back("email", record)
    results.append(replay.replay("email", target)["replayed"])

    # Then the email became exactly one ticket
    assert results == [1, 0, 1]
    [opened] = [t for t in Ticket.scan(Ticket.sk == "TICKET")]
    assert (opened.channel, opened.customer_email, opened.subject) == ("email", CUSTOMER, "Refund for a double charge")


def test_send_once_records_outlive_every_failure_a_replay_can_meet():
    # A failure waits on the stream (at most its maximum record age), then in the queue (its retention):
    # a send-once record that expired before a replay would let that replay send a second time.
    from functions.email_intake import handler

    longest_wait = (replay.STREAM_MAX_RECORD_AGE + replay.RETENTION).total_seconds()
    for config in (notify.dedupe()[1], handler.once):
        assert config.expires_after_seconds > longest_wait
