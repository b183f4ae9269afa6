"""The pumps: what AWS does between the resources and the functions, done in-process on the local stack.

Each pump is a :class:`~infra.local.services.Poller` (every :data:`POLL_INTERVAL` seconds):

- **stream** -- the ticket table's DynamoDB stream -> ``functions.publisher.handler``, as the event
  source mapping of ``infra/constructs/notifications.py`` delivers it: records in the Lambda event
  shape, only those matching ``notify.stream_filter_pattern()``, in order; failed records reported in
  ``batchItemFailures`` come back from the first failed one, and after ``STREAM_RETRY_ATTEMPTS``
  retries are given up: their place in the stream goes to the publisher's dead-letter queue, as the
  cloud's on-failure destination writes it (``infra.local.dead_letters``).
- **delivery** -- ``customer-updates`` (its SQS stand-in subscription, filter
  ``notify.CUSTOMER_DELIVERY_FILTER``) -> ``functions.delivery.handler`` with the SNS event Lambda gets;
  a failed invocation is retried ``DELIVERY_RETRY_ATTEMPTS`` times, then given up: its invocation record
  goes to the delivery's dead-letter queue.
- **team alerts** -- ``team-alerts`` (one stand-in subscription per department and for management,
  with ``notify.team_filter`` / ``notify.MANAGEMENT_FILTER``) -> the outbox, channel ``team-alert``,
  with the plain-text email a team's address would receive.

And :class:`OutboxRecorder` hooks ``notify.send_email`` / ``notify.send_sms`` (the sending seams): every
email and SMS the delivery function sends really goes through moto's SES v2 / SNS and is recorded in
the outbox (channel, recipient, subject, text body, ticket id, event type, time).

:func:`stream_pump`, :func:`delivery_pump` and :func:`team_alert_pump` make them services for
``infra/local/stack.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from email import policy as email_policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3

from helpdesk import settings
from helpdesk.settings import Env
from infra.local import resources
from infra.local.api_gateway import LambdaContext
from infra.local.outbox import Outbox
from infra.local.services import Poller

log = logging.getLogger("infra.local")

POLL_INTERVAL = 0.2  # seconds: escalation lag (deadline -> team alert in the outbox) stays well under 1 s
STREAM_BATCH_SIZE = 100  # as infra/constructs/notifications.py
STREAM_RETRY_ATTEMPTS = 5
DELIVERY_RETRY_ATTEMPTS = 2

Handler = Callable[[dict, Any], Any]
GiveUp = Callable[[list[dict], int], None]  # (the records given up, invocations made)


# -- event filtering (the subset of Lambda's filter syntax the stack uses, and a little more) ----------

def matches(pattern: dict, event: object) -> bool:
    """Whether ``event`` matches a Lambda event filter ``pattern`` (every key; any value of a list).

    Values: literals, ``{"prefix": ...}``, ``{"suffix": ...}``, ``{"exists": bool}``,
    ``{"anything-but": [...]}``, ``{"equals-ignore-case": ...}``; nested objects recurse.
    """
    for key, rule in pattern.items():
        present = isinstance(event, dict) and key in event
        value = event.get(key) if present else None
        if isinstance(rule, dict):
            if not (present and matches(rule, value)):
                return False
        elif isinstance(rule, list):
            if not any(_matches_value(r, present, value) for r in rule):
                return False
        else:
            raise ValueError(f"filter pattern {key!r}: expected an object or a list, got {rule!r}")
    return True


def _matches_value(rule: object, present: bool, value: object) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(rule, dict):
        return present and rule in values
    ((operator, argument),) = rule.items()
    if operator == "exists":
        return present is bool(argument)
    if not present:
        return False
    strings = [v for v in values if isinstance(v, str)]
    if operator == "prefix":
        return any(v.startswith(argument) for v in strings)
    if operator == "suffix":
        return any(v.endswith(argument) for v in strings)
    if operator == "equals-ignore-case":
        return any(v.lower() == argument.lower() for v in strings)
    if operator == "anything-but":
        excluded = argument if isinstance(argument, list) else [argument]
        return all(v not in excluded for v in values)
    raise ValueError(f"filter operator {operator!r} is not supported locally")


# -- the ticket table's stream ---------------------------------------------------------------------------

class TableStream:
    """The ticket table's DynamoDB stream, read like the Lambda event source mapping reads it: every
    shard from its oldest record, each to its end on every call, records in the Lambda event shape
    (``eventSourceARN`` added, times as epoch seconds).

    It says in the log what it cannot read: an iterator that expired (it reads on after the last
    record it read), records trimmed before it read them (lost: it reads on from the oldest kept), a
    shard that appeared or went away.
    """

    def __init__(self, table_name: str):
        ddb = boto3.client("dynamodb")
        table = ddb.describe_table(TableName=table_name)["Table"]
        if not table.get("StreamSpecification", {}).get("StreamEnabled"):
            raise RuntimeError(f"table {table_name} has no stream (resources.ticket_table streams it)")
        self.arn = table["LatestStreamArn"]
        self.client = boto3.client("dynamodbstreams")
        self.iterators: dict[str, str] = {}  # shard id -> the iterator of its next read
        self.checkpoints: dict[str, str] = {}  # shard id -> the sequence number of the last record read

    def records(self) -> list[dict]:
        """The records written since the last call, oldest first."""
        shards = [s["ShardId"] for s in self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]]
        for gone in set(self.iterators) - set(shards):
            log.warning("stream: shard %s is gone; records after %s may not have been read", gone,
                        self.checkpoints.get(gone, "its start"))
            del self.iterators[gone]
        out = []
        for shard in shards:
            if self.checkpoints and shard not in self.iterators and shard not in self.checkpoints:
                log.warning("stream: new shard %s, read from its oldest record", shard)
            out += [self._lambda_shape(r) for r in self._drain(shard)]
        return out

    def read(self) -> dict:
        """The records written since the last read, as the publisher's Lambda event (unfiltered)."""
        return {"Records": self.records()}

    def rewind(self) -> None:
        """Read again from the oldest record the stream keeps."""
        self.iterators.clear()
        self.checkpoints.clear()

    def _drain(self, shard: str) -> list[dict]:
        records: list[dict] = []
        while True:
            try:
                page = self.client.get_records(ShardIterator=self._iterator(shard))
            except self.client.exceptions.ExpiredIteratorException:
                log.warning("stream: the iterator of shard %s expired; reading on after %s", shard,
                            self.checkpoints.get(shard, "its start"))
                del self.iterators[shard]
                continue
            except self.client.exceptions.TrimmedDataAccessException:
                log.error("stream: records of shard %s after %s were trimmed before they were read (lost); "
                          "reading on from the oldest kept", shard, self.checkpoints.get(shard, "its start"))
                del self.iterators[shard]
                self.checkpoints.pop(shard, None)
                continue
            self.iterators[shard] = page["NextShardIterator"]
            if not page["Records"]:
                return records
            records += page["Records"]
            self.checkpoints[shard] = page["Records"][-1]["dynamodb"]["SequenceNumber"]

    def _iterator(self, shard: str) -> str:
        if shard not in self.iterators:
            after = self.checkpoints.get(shard)
            position = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                        else {"ShardIteratorType": "TRIM_HORIZON"})
            self.iterators[shard] = self.client.get_shard_iterator(StreamArn=self.arn, ShardId=shard,
                                                                   **position)["ShardIterator"]
        return self.iterators[shard]

    def _lambda_shape(self, record: dict) -> dict:
        record = json.loads(json.dumps(record, default=lambda d: d.timestamp()))  # datetimes -> epoch
        return record | {"eventSourceARN": self.arn}


class StreamPump:
    """The stream -> the publisher, as the event source mapping does it (filter, batches, retries)."""

    def __init__(self, handler: Handler, stream: TableStream, *, pattern: dict | None = None,
                 function_name: str = "helpdesk-publisher", batch_size: int = STREAM_BATCH_SIZE,
                 retry_attempts: int = STREAM_RETRY_ATTEMPTS, dead_letter: GiveUp | None = None):
        self.handler, self.stream, self.pattern = handler, stream, pattern
        self.function_name, self.batch_size, self.retry_attempts = function_name, batch_size, retry_attempts
        self.pending: list[dict] = []
        self.attempts = 0
        self.given_up: list[dict] = []  # what the cloud's on-failure destination would hold
        self.dead_letter = dead_letter  # told of each batch given up (DeadLetters.stream_batch)

    def tick(self) -> int:
        """Hand the next batch over (reading the stream to its end when nothing waits); its size."""
        if not self.pending:
            self.pending = [r for r in self.stream.records() if self.pattern is None or matches(self.pattern, r)]
            self.attempts = 0
        batch = self.pending[: self.batch_size]
        if not batch:
            return 0
        failed = self._invoke(batch)
        if not failed:
            self.pending, self.attempts = self.pending[len(batch):], 0
            return len(batch)
        first = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
        self.pending = self.pending[first:]  # the mapping resumes from the first failed record
        self.attempts += 1
        if self.attempts > self.retry_attempts:
            dropped = [r for r in batch if r["dynamodb"]["SequenceNumber"] in failed]
            self.given_up += dropped
            if self.dead_letter:
                self.dead_letter(dropped, self.attempts)
            log.error("stream: gave up on %d record(s) after %d retries (the cloud's DLQ): %s", len(dropped),
                      self.retry_attempts, [r["dynamodb"]["SequenceNumber"] for r in dropped])
            self.pending = [r for r in self.pending if r not in dropped]
            self.attempts = 0
        return len(batch)

    def _invoke(self, batch: list[dict]) -> set[str]:
        """The sequence numbers that failed (all of them if the handler raised)."""
        context = LambdaContext(self.function_name, memory_limit_in_mb=256, timeout_s=30)
        try:
            response = self.handler({"Records": batch}, context) or {}
        except Exception:
            log.exception("stream: the publisher failed a batch of %d", len(batch))
            return {r["dynamodb"]["SequenceNumber"] for r in batch}
        return {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}


# -- SNS (through its SQS stand-in subscriptions) ---------------------------------------------------------

class SnsQueue:
    """A queue subscribed to a topic without raw delivery: each message is SNS's JSON envelope."""

    def __init__(self, name: str):
        self.sqs = boto3.client("sqs")
        self.name = name
        self.url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def receive(self) -> list[tuple[dict, str, int]]:
        """``(envelope, receipt handle, receive count)`` of up to 10 waiting messages."""
        page = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                        AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
        return [(json.loads(m["Body"]), m["ReceiptHandle"], int(m["Attributes"]["ApproximateReceiveCount"]))
                for m in page]

    def delete(self, receipt: str) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt)

    def release(self, receipt: str) -> None:
        """Visible again at once (a retry on the next tick, not after the visibility timeout)."""
        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=receipt, VisibilityTimeout=0)


def attributes(envelope: dict) -> dict[str, str]:
    return {k: v.get("Value") for k, v in (envelope.get("MessageAttributes") or {}).items()}


def sns_lambda_event(envelope: dict) -> dict:
    """The event SNS invokes a subscribed function with (one record), from the envelope SQS got."""
    subscription = parse_qs(urlsplit(envelope.get("UnsubscribeURL", "")).query).get("SubscriptionArn", [""])[0]
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription,
        "Sns": {
            "Type": envelope.get("Type", "Notification"),
            "MessageId": envelope["MessageId"],
            "TopicArn": envelope["TopicArn"],
            "Subject": envelope.get("Subject"),
            "Message": envelope["Message"],
            "Timestamp": envelope["Timestamp"],
            "SignatureVersion": envelope.get("SignatureVersion", "1"),
            "Signature": envelope.get("Signature", ""),
            "SigningCertUrl": envelope.get("SigningCertURL", ""),
            "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
            "MessageAttributes": {k: {"Type": v.get("Type", "String"), "Value": v.get("Value")}
                                  for k, v in (envelope.get("MessageAttributes") or {}).items()},
        },
    }]}


_delivering = threading.local()  # what the delivery pump is handling now: the outbox's event type


@contextlib.contextmanager
def delivering(**facts: str | None) -> Iterator[None]:
    _delivering.facts = facts
    try:
        yield
    finally:
        _delivering.facts = {}


def current_delivery() -> dict[str, str | None]:
    return getattr(_delivering, "facts", {})


class DeliveryPump:
    """customer-updates -> the delivery function, one SNS event per message (Lambda's async retries)."""

    def __init__(self, handler: Handler, queue: SnsQueue, *, function_name: str = "helpdesk-delivery",
                 retry_attempts: int = DELIVERY_RETRY_ATTEMPTS, dead_letter: Callable | None = None):
        self.handler, self.queue = handler, queue
        self.function_name, self.retry_attempts = function_name, retry_attempts
        self.given_up: list[dict] = []
        self.dead_letter = dead_letter  # told of each event given up (DeadLetters.invocation)

    def tick(self) -> int:
        """Deliver the messages of one receive (a failed one is released for the next); how many."""
        messages = self.queue.receive()
        for envelope, receipt, count in messages:
            self._deliver(envelope, receipt, count)
        return len(messages)

    def _deliver(self, envelope: dict, receipt: str, count: int) -> None:
        facts = attributes(envelope)
        event_type, ticket_id = facts.get("event_type"), facts.get("ticket_id")
        context = LambdaContext(self.function_name, memory_limit_in_mb=256, timeout_s=30)
        event = sns_lambda_event(envelope)
        try:
            with delivering(event_type=event_type, ticket_id=ticket_id):
                self.handler(event, context)
        except Exception as error:
            log.exception("delivery: %s of %s failed (attempt %d)", event_type, ticket_id, count)
            if count <= self.retry_attempts:
                self.queue.release(receipt)  # Lambda retries an asynchronous invocation
                return
            self.given_up.append(envelope)
            if self.dead_letter:
                self.dead_letter("delivery", event, error, count)
            log.error("delivery: gave up on %s of %s (the cloud's DLQ)", event_type, ticket_id)
        self.queue.delete(receipt)


class TeamAlertPump:
    """team-alerts -> the outbox: what each stand-in subscriber's mailbox would receive."""

    def __init__(self, outbox: Outbox, queues: dict[str, SnsQueue]):
        self.outbox, self.queues = outbox, queues

    def tick(self) -> int:
        """Record one receive of every mailbox; how many messages."""
        recorded = 0
        for subscriber, queue in self.queues.items():
            messages = queue.receive()
            for envelope, receipt, _ in messages:
                self.record(subscriber, envelope)
                queue.delete(receipt)
            recorded += len(messages)
        return recorded

    def record(self, subscriber: str, envelope: dict) -> None:
        facts = attributes(envelope)
        self.outbox.append(channel="team-alert", recipient=f"team:{subscriber}", subject=envelope.get("Subject"),
                           body=alert_email_text(envelope["Message"]), ticket_id=facts.get("ticket_id"),
                           event_type=facts.get("event_type"))
        log.info("outbox: team-alert %s %s -> team:%s", facts.get("event_type"), facts.get("ticket_id"), subscriber)


def alert_email_text(message: str) -> str:
    """The ``email`` variant of a team alert (what an email subscriber reads), from the ``default``
    variant queues get (``{"text", "alert"}``, see ``notify.team_request``)."""
    from helpdesk import messages

    try:
        return messages.alert_text(messages.TeamAlert.from_dict(json.loads(message)["alert"]))
    except (ValueError, KeyError, TypeError):
        return message


# -- the sending seams -> the outbox ------------------------------------------------------------------------

class OutboxRecorder:
    """Wraps ``notify.send_email`` / ``notify.send_sms``: send through moto as usual, then record."""

    name = "outbox-recorder"

    def __init__(self, outbox: Outbox):
        self.outbox = outbox
        self._saved: tuple | None = None

    def start(self) -> None:
        from helpdesk import notify

        if self._saved is not None:
            return
        self._saved = send_email, send_sms = notify.send_email, notify.send_sms

        def recorded_email(raw: bytes, to: str) -> str:
            message_id = send_email(raw, to)  # a refusal (NotSent) raises before anything is recorded
            self.record_email(raw, to)
            return message_id

        def recorded_sms(phone: str, text: str) -> str:
            message_id = send_sms(phone, text)
            facts = current_delivery()
            self.outbox.append(channel="sms", recipient=phone, body=text, ticket_id=facts.get("ticket_id"),
                               event_type=facts.get("event_type"))
            log.info("outbox: sms %s %s", facts.get("event_type"), facts.get("ticket_id"))
            return message_id

        notify.send_email, notify.send_sms = recorded_email, recorded_sms

    def record_email(self, raw: bytes, to: str) -> None:
        message = BytesParser(policy=email_policy.default).parsebytes(raw)
        part = message.get_body(preferencelist=("plain",))
        facts = current_delivery()
        self.outbox.append(channel="email", recipient=to, subject=str(message["Subject"] or ""),
                           body=part.get_content() if part is not None else "",
                           ticket_id=facts.get("ticket_id") or message["X-Helpdesk-Ticket"],
                           event_type=facts.get("event_type"))
        log.info("outbox: email %s %s", facts.get("event_type"), facts.get("ticket_id"))

    def stop(self) -> None:
        from helpdesk import notify

        if self._saved is not None:
            notify.send_email, notify.send_sms = self._saved
            self._saved = None


# -- the pumps as services, for infra/local/stack.py ---------------------------------------------------------

def stream_pump(dead_letter: GiveUp | None = None) -> Poller:
    from functions.publisher import handler  # reads its table names when imported
    from helpdesk import notify

    pump = StreamPump(handler.handler, TableStream(settings.get(Env.TICKETS_TABLE)),
                      pattern=notify.stream_filter_pattern(), dead_letter=dead_letter)
    return Poller("stream-pump", pump.tick, interval=POLL_INTERVAL)


def delivery_pump(dead_letter: Callable | None = None) -> Poller:
    from functions.delivery import handler

    pump = DeliveryPump(handler.handler, SnsQueue(resources.DELIVERY_QUEUE), dead_letter=dead_letter)
    return Poller("delivery-pump", pump.tick, interval=POLL_INTERVAL)


def team_alert_pump(outbox: Outbox) -> Poller:
    queues = {s: SnsQueue(resources.team_queue_name(s)) for s in resources.team_alert_subscribers()}
    return Poller("team-alert-pump", TeamAlertPump(outbox, queues).tick, interval=POLL_INTERVAL)
