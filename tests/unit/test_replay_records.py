"""helpdesk.replay reads AWS's own dead-letter records (events/dlq/, the shapes AWS documents) and says
what failed without customer text or addresses; what it replays to the publisher is what the stream
would have given it. No AWS here: a queue in memory, functions that record their events."""

from __future__ import annotations

import json

import pytest

from helpdesk import notify, replay
from tests.conftest import sample_event


class Queue:
    """Just enough of SQS for one queue: receive (hiding what was received), change visibility, delete."""

    def __init__(self, *bodies: dict):
        self.messages = {f"m{n}": json.dumps(b) for n, b in enumerate(bodies)}
        self.hidden: set[str] = set()

    def receive_message(self, *, QueueUrl, MaxNumberOfMessages, VisibilityTimeout, WaitTimeSeconds):  # noqa: N803
        ids = [i for i in self.messages if i not in self.hidden][:MaxNumberOfMessages]
        self.hidden.update(ids)
        return {"Messages": [{"MessageId": i, "ReceiptHandle": f"r-{i}", "Body": self.messages[i]} for i in ids]}

    def change_message_visibility(self, *, QueueUrl, ReceiptHandle, VisibilityTimeout):  # noqa: N803
        self.hidden.discard(ReceiptHandle.removeprefix("r-"))

    def delete_message(self, *, QueueUrl, ReceiptHandle):  # noqa: N803
        self.messages.pop(ReceiptHandle.removeprefix("r-"))


def target(queue: Queue, invoke=None, items=()) -> replay.Target:
    class Table:
        def scan(self, **request):
            return {"Items": list(items) if request["Segment"] == 0 else [], "ScannedCount": len(items)}

    return replay.Target(sqs=queue, queue_urls={q: q for q in replay.QUEUES}, invoke=invoke or (lambda q, e: {}),
                         dynamodb=Table(), table="tickets", wait_seconds=0)


def failed_delivery() -> dict:
    return sample_event("dlq/delivery.json")


def test_a_stream_failure_is_read_as_its_arrival_window_widened_by_the_margin():
    record = sample_event("dlq/publisher.json")

    w = replay.window(replay.Message("m", "r", record))

    assert (w.start, w.end) == ("2026-11-24T08:45:01Z", "2026-11-24T09:15:01Z")
    assert (w.batch_size, w.sequence_numbers) == (1, ("800000000003126276362", "800000000003126276362"))
    assert w.stream_arn.startswith("arn:aws:dynamodb:us-east-1:123456789012:table/")


def test_a_replayed_event_reaches_the_publisher_as_the_stream_gave_it():
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    [original] = sample_event("stream/created.json")["Records"]
    item = original["dynamodb"]["NewImage"]

    [record] = replay.stream_records([item], "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x")

    replayed, streamed = (notify.stream_event(DynamoDBRecord(r)) for r in (record, original))
    assert replayed.serialize() == streamed.serialize()
    assert notify.routes(replayed) == (notify.CUSTOMER,)
    assert record["dynamodb"]["Keys"] == original["dynamodb"]["Keys"]


def test_the_publisher_replays_the_events_of_the_window_and_finds_them_with_one_scan():
    [original] = sample_event("stream/created.json")["Records"]
    seen = []
    queue = Queue(sample_event("dlq/publisher.json"))

    result = replay.replay("publisher", target(queue, lambda q, e: seen.append((q, e)) or {"batchItemFailures": []},
                                               items=[original["dynamodb"]["NewImage"]]))

    assert (result["replayed"], result["failed"]) == (1, [])
    [(function, event)] = seen
    assert function == "publisher" and [r["eventName"] for r in event["Records"]] == ["INSERT"]
    assert queue.messages == {}


def test_a_window_without_any_notifying_event_is_kept_not_dropped():
    queue = Queue(sample_event("dlq/publisher.json"))

    result = replay.replay("publisher", target(queue))

    assert result["replayed"] == 0 and "no notifying timeline event" in result["failed"][0]["error"]
    assert list(queue.messages) == ["m0"] and queue.hidden == set()  # visible again for the next run


def test_showing_a_failed_delivery_names_ticket_and_event_never_the_customer():
    record = failed_delivery()

    shown = replay.show("delivery", target(Queue(record)))

    [message] = shown["messages"]
    assert (message["condition"], message["attempts"], message["error"]) == (
        "RetriesExhausted", 3, "NotSent: email not sent: MessageRejected")
    assert message["updates"] == [{"ticket_id": "HD-7KQ2M9", "event_type": "created",
                                   "event_id": "18eb08a73df00ebf4aae", "channel": "web"}]
    printed = json.dumps(shown) + replay.render_show(shown)
    assert "ann@example.com" not in printed and "double charged" not in printed and "+1555" not in printed


def test_showing_a_failed_email_masks_the_sender_and_the_error():
    shown = replay.show("email", target(Queue(sample_event("dlq/email.json"))))

    [message] = shown["messages"]
    assert message["emails"] == [{"ses_message_id": sample_event("ses/inbound.json")["Records"][0]["ses"]["mail"]["messageId"],
                                  "received_at": "2026-11-24T09:00:00.128Z", "sender": "a***@example.com"}]
    assert "a***@example.com's ticket" in message["error"] and "ann@" not in message["error"]


def test_a_replay_that_fails_again_keeps_the_message_and_says_why():
    queue = Queue(failed_delivery())

    def fails(queue_name, event):
        raise replay.ReplayFailed("Helpdesk-Delivery failed again: NotSent: email not sent: MessageRejected")

    result = replay.replay("delivery", target(queue, fails))

    assert result == {"queue": "delivery", "replayed": 0, "scan": None, "failed": [
        {"message_id": "m0", "error": "Helpdesk-Delivery failed again: NotSent: email not sent: MessageRejected"}]}
    assert list(queue.messages) == ["m0"] and queue.hidden == set()


def test_a_replayed_delivery_hands_the_function_its_original_event_and_leaves_the_queue():
    record, seen = failed_delivery(), []
    queue = Queue(record)

    result = replay.replay("delivery", target(queue, lambda q, e: seen.append((q, e))))

    assert seen == [("delivery", record["requestPayload"])]
    assert result["replayed"] == 1 and queue.messages == {}


@pytest.mark.parametrize(("text", "masked"), [
    ("Ann <ann.lee@example.com>", "Ann <a***@example.com>"),
    ("to b@x.org, c.d@y.net", "to b***@x.org, c***@y.net"),
    ("no address here", "no address here"),
])
def test_addresses_are_masked(text, masked):
    assert replay.mask(text) == masked
