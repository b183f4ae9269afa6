"""Replay what failed: the dead-letter queues of the publisher, the delivery and the email intake.

Each queue holds what Lambda gave up on, in AWS's own shapes (samples in ``events/dlq/``):

- **publisher**: the stream event source's on-failure record says *where* the failed records were in
  the ticket table's stream (shard, sequence numbers, approximate arrival times), not what they were.
  Stream records expire after 24 hours, so the replay reads the table instead: the timeline events
  whose ``at`` falls in the batch's arrival window (widened by :data:`MARGIN`), found by one Scan for
  all the messages (see the README for what it reads), go to the publisher function as the stream
  would have given them (INSERT records with their new image).
- **delivery**, **email**: the asynchronous invocation record carries the request (the SNS event, the
  SES event); the replay hands it to the function again.

The functions do the work, so a replay runs exactly the code that failed, with its permissions, and
sends nothing twice: every send-once step (an SNS message per event and topic, an email or SMS per
event, one outcome per SES message) is an idempotency record kept longer than a failure can wait here
(:data:`DEDUPE_SECONDS`). A message leaves its queue only once its replay succeeded.

    python -m helpdesk.replay publisher --show     # what failed, when, which tickets and events
    python -m helpdesk.replay publisher --replay   # once the cause is fixed
    ... --stack NAME (a deployed stack, default Helpdesk) | --local [URL] (make dev)

What is shown never holds customer text or an address in full.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from helpdesk import deployment
from helpdesk.deployment import OpsError, Output

RETENTION = timedelta(days=14)  # SQS's maximum: how long a dead-letter queue keeps a failure
STREAM_MAX_RECORD_AGE = timedelta(hours=6)  # the stream event source gives a record up after this
# How long a send-once step remembers what it did: longer than a failure can wait for its replay (its
# hours on the stream, then the queue's 14 days), or a replay on day 3 would send a second time.
DEDUPE_SECONDS = int((RETENTION + timedelta(days=1)).total_seconds())
MARGIN = timedelta(minutes=15)  # an event's `at` is taken before its write, and no function runs longer
REPLAY_BATCH = 100  # records per publisher invocation: the event source mapping's batch size
SCAN_SEGMENTS = 4  # a parallel Scan: minutes, not hours, on a large table, without hogging its throughput
VISIBILITY_SECONDS = 900  # messages being shown or replayed stay hidden from a second run meanwhile

QUEUES = ("publisher", "delivery", "email")
_OUTPUTS = {  # each queue and the function that replays it, as the stack names them
    "publisher": (Output.PUBLISHER_FAILURES, Output.PUBLISHER_FUNCTION),
    "delivery": (Output.DELIVERY_FAILURES, Output.DELIVERY_FUNCTION),
    "email": (Output.EMAIL_FAILURES, Output.EMAIL_FUNCTION),
}


class ReplayFailed(Exception):
    """The function failed again (or there was nothing to replay): the message stays in its queue."""


@dataclass
class Target:
    """Where the queues, the ticket table and the functions are, and how to run a function with an event."""

    sqs: Any
    queue_urls: dict[str, str]
    invoke: Callable[[str, dict], Any]  # (queue, event) -> the function's answer; raises ReplayFailed
    dynamodb: Any
    table: str
    wait_seconds: int = 1  # long polling: an empty answer means an empty queue


def deployed(stack_name: str = deployment.STACK_NAME) -> Target:
    """A deployed stack's queues, table and functions, from its outputs; functions run by ``lambda:Invoke``."""
    values = deployment.outputs(stack_name)
    functions = {q: deployment.output(values, f, stack_name) for q, (_, f) in _OUTPUTS.items()}
    lambda_ = deployment.aws_client("lambda", read_timeout=900, retries={"max_attempts": 1})

    def invoke(queue: str, event: dict) -> Any:
        response = lambda_.invoke(FunctionName=functions[queue], Payload=json.dumps(event).encode())
        answer = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise ReplayFailed(f"{functions[queue]} failed again: {error_line(answer)}")
        return answer

    return Target(
        sqs=deployment.aws_client("sqs"),
        queue_urls={q: deployment.output(values, o, stack_name) for q, (o, _) in _OUTPUTS.items()},
        invoke=invoke,
        dynamodb=deployment.aws_client("dynamodb"),
        table=deployment.output(values, Output.TICKETS_TABLE, stack_name),
    )


# -- reading a queue ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    id: str
    receipt: str
    body: dict


def receive(target: Target, queue: str, limit: int) -> list[Message]:
    """Up to ``limit`` messages, each once (hidden for :data:`VISIBILITY_SECONDS` while we hold them)."""
    url, found = target.queue_urls[queue], {}
    while len(found) < limit:
        page = target.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(found)), VisibilityTimeout=VISIBILITY_SECONDS,
            WaitTimeSeconds=target.wait_seconds).get("Messages", [])
        if not page:
            break
        for m in page:
            try:
                body = json.loads(m["Body"])
            except ValueError:
                body = {}
            found[m["MessageId"]] = Message(m["MessageId"], m["ReceiptHandle"], body if isinstance(body, dict) else {})
    return list(found.values())


def release(target: Target, queue: str, messages: Iterable[Message]) -> None:
    """Visible again at once: shown, or not replayed this time."""
    for m in messages:
        target.sqs.change_message_visibility(QueueUrl=target.queue_urls[queue], ReceiptHandle=m.receipt,
                                             VisibilityTimeout=0)


# -- what a message says (never customer text, never a whole address) --------------------------------

_ADDRESS = re.compile(r"([^\s@<>\"'(),;:]?)[^\s@<>\"'(),;:]*@([^\s@<>\"'(),;:]+)")


def mask(text: str | None) -> str | None:
    """Every email address in ``text`` as ``a***@example.com``."""
    return _ADDRESS.sub(r"\1***@\2", text) if text else text


def error_line(answer: Any) -> str:
    """A function error's type and message (addresses masked, shortened)."""
    if not isinstance(answer, dict):
        return ""
    kind, message = answer.get("errorType") or "", mask(str(answer.get("errorMessage") or ""))
    return ": ".join(p for p in (kind, message[:160]) if p)


def _common(message: Message) -> dict:
    body = message.body
    context = body.get("requestContext") or {}
    return {
        "message_id": message.id,
        "failed_at": body.get("timestamp"),
        "condition": context.get("condition"),
        "attempts": context.get("approximateInvokeCount"),
        "error": error_line(body.get("responsePayload")) or (body.get("responseContext") or {}).get("functionError"),
    }


def _deliveries(payload: dict) -> list[dict]:
    """The customer updates of an SNS event: ticket, event and channel (the body holds the customer's text)."""
    out = []
    for record in payload.get("Records") or ():
        sns = record.get("Sns") or {}
        attributes = {k: (v or {}).get("Value") for k, v in (sns.get("MessageAttributes") or {}).items()}
        try:
            update = json.loads(sns.get("Message") or "{}")
        except ValueError:
            update = {}
        update = update if isinstance(update, dict) else {}
        out.append({"ticket_id": attributes.get("ticket_id") or update.get("ticket_id"),
                    "event_type": attributes.get("event_type") or update.get("event_type"),
                    "event_id": update.get("event_id"), "channel": attributes.get("channel")})
    return out


def _emails(payload: dict) -> list[dict]:
    """The inbound messages of an SES event: SES message id, when, and the sender masked."""
    out = []
    for record in payload.get("Records") or ():
        mail = (record.get("ses") or {}).get("mail") or {}
        out.append({"ses_message_id": mail.get("messageId"), "received_at": mail.get("timestamp"),
                    "sender": mask(mail.get("source"))})
    return out


# -- the publisher: from the table, not the stream ----------------------------------------------------

@dataclass(frozen=True)
class Window:
    start: str  # ISO 8601, compared as text with events' `at`
    end: str
    stream_arn: str
    batch_size: int
    shard: str
    sequence_numbers: tuple[str, str]


def window(message: Message) -> Window:
    """The arrival window of a failed stream batch, widened by MARGIN on both sides."""
    from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamLambdaOnFailureDestinationModel
    from pydantic import ValidationError

    from helpdesk import clock

    try:
        info = DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(message.body).ddb_stream_batch_info
    except ValidationError:
        raise ReplayFailed("not a stream on-failure record (DDBStreamBatchInfo)") from None
    return Window(
        start=clock.to_iso(info.approximate_arrival_of_first_record - MARGIN),
        end=clock.to_iso(info.approximate_arrival_of_last_record + MARGIN),
        stream_arn=info.stream_arn, batch_size=info.batch_size, shard=info.shard_id,
        sequence_numbers=(info.start_sequence_number, info.end_sequence_number),
    )


@dataclass
class Scan:
    """Timeline events that notify someone, with their ``at`` between ``start`` and ``end``: one parallel
    Scan of the ticket table (a rare operator's path; its cost is the table's size, see the README)."""

    items: list[dict]
    items_read: int = 0
    read_units: float = 0.0

    @classmethod
    def between(cls, target: Target, start: str, end: str) -> Scan:
        from helpdesk import notify
        from helpdesk.models import EVENT_SK_PREFIX

        types = sorted(set(notify.CUSTOMER_EVENTS + notify.TEAM_EVENTS))
        request = {
            "TableName": target.table, "TotalSegments": SCAN_SEGMENTS, "ReturnConsumedCapacity": "TOTAL",
            "FilterExpression": f"begins_with(sk, :event) AND #at BETWEEN :start AND :end AND #type IN "
                                f"({', '.join(f':t{i}' for i in range(len(types)))})",
            "ExpressionAttributeNames": {"#at": "at", "#type": "type"},
            "ExpressionAttributeValues": {":event": {"S": EVENT_SK_PREFIX}, ":start": {"S": start}, ":end": {"S": end},
                                          **{f":t{i}": {"S": t} for i, t in enumerate(types)}},
        }

        def segment(n: int) -> Scan:
            found, page_request = cls([]), {**request, "Segment": n}
            while True:
                page = target.dynamodb.scan(**page_request)
                found.items += page.get("Items", [])
                found.items_read += page.get("ScannedCount", 0)
                found.read_units += float((page.get("ConsumedCapacity") or {}).get("CapacityUnits") or 0)
                if "LastEvaluatedKey" not in page:
                    return found
                page_request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=SCAN_SEGMENTS) as pool:
            parts = list(pool.map(segment, range(SCAN_SEGMENTS)))
        items = sorted((i for p in parts for i in p.items), key=lambda i: (i["at"]["S"], i["sk"]["S"]))
        return cls(items, sum(p.items_read for p in parts), round(sum(p.read_units for p in parts), 1))

    def within(self, w: Window) -> list[dict]:
        return [i for i in self.items if w.start <= i["at"]["S"] <= w.end]

    def stats(self) -> dict:
        return {"items_read": self.items_read, "read_units": self.read_units}


def _event_facts(item: dict) -> dict:
    return {name: item.get(name, {}).get("S") for name in ("ticket_id", "event_id", "type", "at")}


def stream_records(items: Sequence[dict], stream_arn: str) -> list[dict]:
    """Timeline event items as the stream's INSERT records (the publisher's event, new image only)."""
    from helpdesk import clock
    from helpdesk.models import table_schema

    keys = [k["AttributeName"] for k in table_schema()["KeySchema"]]
    region = stream_arn.split(":")[3] if stream_arn.count(":") >= 5 else ""
    return [{
        "eventID": f"replay-{n}", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": region, "eventSourceARN": stream_arn,
        "dynamodb": {"ApproximateCreationDateTime": clock.from_iso(item["at"]["S"]).timestamp(),
                     "Keys": {k: item[k] for k in keys}, "NewImage": item, "SequenceNumber": f"replay-{n}",
                     "SizeBytes": len(json.dumps(item)), "StreamViewType": "NEW_AND_OLD_IMAGES"},
    } for n, item in enumerate(items)]


def _windows(messages: Sequence[Message]) -> dict[str, Window | ReplayFailed]:
    out: dict[str, Window | ReplayFailed] = {}
    for m in messages:
        try:
            out[m.id] = window(m)
        except ReplayFailed as error:
            out[m.id] = error
    return out


def _scan_for(target: Target, windows: dict[str, Window | ReplayFailed]) -> Scan | None:
    found = [w for w in windows.values() if isinstance(w, Window)]
    if not found:
        return None
    return Scan.between(target, min(w.start for w in found), max(w.end for w in found))


def _replay_publisher(target: Target, w: Window, scan: Scan) -> int:
    items = scan.within(w)
    if not items:  # the failed batch held at least one event INSERT: finding none means the window is off
        raise ReplayFailed(f"no notifying timeline event between {w.start} and {w.end}: kept for a look")
    for start in range(0, len(items), REPLAY_BATCH):
        answer = target.invoke("publisher", {"Records": stream_records(items[start:start + REPLAY_BATCH], w.stream_arn)})
        failures = (answer or {}).get("batchItemFailures") if isinstance(answer, dict) else None
        if failures:
            raise ReplayFailed(f"{len(failures)} of the window's events failed again")
    return len(items)


# -- show and replay ---------------------------------------------------------------------------------

def show(queue: str, target: Target, *, limit: int = 1000) -> dict:
    """What waits in ``queue``: ``{"queue", "messages": [...], "scan": {...} | None}`` (nothing is removed)."""
    messages = receive(target, queue, limit)
    try:
        shown, scan = [], None
        if queue == "publisher":
            windows = _windows(messages)
            scan = _scan_for(target, windows)
        for m in messages:
            facts = _common(m)
            if queue == "publisher":
                w = windows[m.id]
                if isinstance(w, ReplayFailed):
                    facts["unreadable"] = str(w)
                else:
                    facts |= {"window": [w.start, w.end], "batch_size": w.batch_size, "shard": w.shard,
                              "sequence_numbers": list(w.sequence_numbers),
                              "events": [_event_facts(i) for i in scan.within(w)]}
            elif queue == "delivery":
                facts["updates"] = _deliveries(m.body.get("requestPayload") or {})
            else:
                facts["emails"] = _emails(m.body.get("requestPayload") or {})
            shown.append(facts)
        return {"queue": queue, "messages": shown, "scan": scan.stats() if scan else None}
    finally:
        release(target, queue, messages)


def replay(queue: str, target: Target, *, limit: int = 1000) -> dict:
    """Replay every message of ``queue`` through its function; delete each one that succeeded.

    ``{"queue", "replayed", "failed": [{"message_id", "error"}], "scan"}``; a second run replays what is
    left and sends nothing twice.
    """
    messages = receive(target, queue, limit)
    windows = _windows(messages) if queue == "publisher" else {}
    replayed, failed, held, scan = 0, [], list(messages), None
    try:
        scan = _scan_for(target, windows) if windows else None
        for m in messages:
            try:
                if queue == "publisher":
                    w = windows[m.id]
                    if isinstance(w, ReplayFailed):
                        raise w
                    _replay_publisher(target, w, scan)
                else:
                    payload = m.body.get("requestPayload")
                    if not isinstance(payload, dict):
                        raise ReplayFailed("no request payload in the record")
                    target.invoke(queue, payload)
            except Exception as error:  # noqa: BLE001 -- any failure keeps the message for the next run
                failed.append({"message_id": m.id, "error": mask(str(error))[:300] or type(error).__name__})
                continue
            target.sqs.delete_message(QueueUrl=target.queue_urls[queue], ReceiptHandle=m.receipt)
            held.remove(m)
            replayed += 1
    finally:
        release(target, queue, held)  # whatever was not replayed is visible again at once
    return {"queue": queue, "replayed": replayed, "failed": failed, "scan": scan.stats() if scan else None}


# -- the command line --------------------------------------------------------------------------------

def render_show(shown: dict) -> str:
    queue, messages = shown["queue"], shown["messages"]
    if not messages:
        return f"{queue}: no failed message waiting"
    lines = [f"{queue}: {len(messages)} failed message(s)"]
    for m in messages:
        lines.append(f"- {m['message_id']} failed {m['failed_at']} ({m['condition']}, {m['attempts']} invocation(s))"
                     + (f": {m['error']}" if m.get("error") else ""))
        if "unreadable" in m:
            lines.append(f"    cannot replay: {m['unreadable']}")
        for e in m.get("events", ()):
            lines.append(f"    {e['ticket_id']} {e['type']} at {e['at']} (event {e['event_id']})")
        if "window" in m:
            lines.append(f"    {m['batch_size']} record(s) arriving {m['window'][0]} .. {m['window'][1]} (margin included), "
                         f"{len(m['events'])} notifying event(s) in the table")
        for u in m.get("updates", ()):
            lines.append(f"    {u['ticket_id']} {u['event_type']} (event {u['event_id']}, {u['channel']})")
        for e in m.get("emails", ()):
            lines.append(f"    SES message {e['ses_message_id']} received {e['received_at']} from {e['sender']}")
    if shown.get("scan"):
        lines.append(f"(one Scan of the ticket table: {shown['scan']['items_read']} items read, "
                     f"{shown['scan']['read_units']} read units)")
    return "\n".join(lines)


def render_replay(result: dict) -> str:
    lines = [f"{result['queue']}: {result['replayed']} replayed, {len(result['failed'])} kept"]
    lines += [f"- {f['message_id']}: {f['error']}" for f in result["failed"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpdesk.replay",
                                     description="Show or replay a dead-letter queue (idempotent: nothing is sent twice).")
    parser.add_argument("queue", choices=QUEUES)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--show", action="store_true", help="list what waits (the default)")
    action.add_argument("--replay", action="store_true", help="replay it through the functions, then delete it")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many messages (default 1000)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    deployment.add_target_arguments(parser)
    args = parser.parse_args(argv)
    try:
        console = deployment.console_of(args)
        if console is not None:
            path = f"dlq/{args.queue}" + ("/replay" if args.replay else "") + f"?limit={args.limit}"
            result = deployment.local_call(console, path, method="POST" if args.replay else "GET")
        else:
            target = deployed(args.stack)
            run = replay if args.replay else show
            result = deployment.reading(f"the {args.queue} dead-letter queue",
                                        lambda: run(args.queue, target, limit=args.limit))
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render_replay(result) if args.replay else render_show(result))
    return 1 if args.replay and result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
