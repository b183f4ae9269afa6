"""The dead-letter queues of the local stack, filled as AWS fills them, and the replay served by the console.

In the cloud Lambda writes what it gave up on to three queues (``helpdesk.replay``): the stream event
source's on-failure record (where the records were: shard, sequence numbers, arrival times) for the
publisher, and the asynchronous invocation record (with the request payload) for the delivery and the
email intake. Here the pumps and the SMTP intake hand what they give up on to :class:`DeadLetters`,
which writes the same records to the moto queues ``resources.dead_letter_queues`` creates.

moto lives inside the dev process, so ``python -m helpdesk.replay <queue> --local`` asks the console:
``GET /dlq`` (every queue), ``GET /dlq/<queue>`` (what ``--show`` prints) and ``POST
/dlq/<queue>/replay`` run ``helpdesk.replay`` here, with the functions called in-process.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3

from helpdesk import replay
from helpdesk.settings import Env
from infra.local.api_gateway import ACCOUNT_ID, LambdaContext
from infra.local.console import BadRequest, ConsoleState, Pages, _json
from infra.local.resources import DEAD_LETTER_QUEUES

log = logging.getLogger("infra.local")

# The functions that replay each queue, named and sized as the local stack runs them.
FUNCTIONS = {
    "publisher": ("helpdesk-publisher", 256, 30),
    "delivery": ("helpdesk-delivery", 256, 30),
    "email": ("helpdesk-email-intake", 1024, 60),
}


def queue_urls(sqs=None) -> dict[str, str]:
    sqs = sqs or boto3.client("sqs")
    return {queue: sqs.get_queue_url(QueueName=name)["QueueUrl"] for queue, name in DEAD_LETTER_QUEUES.items()}


def _function_arn(queue: str) -> str:
    region = boto3.session.Session().region_name or "us-east-1"
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{FUNCTIONS[queue][0]}"


def _now() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _arrival(record: dict) -> str:
    seconds = float(record["dynamodb"].get("ApproximateCreationDateTime") or datetime.now(UTC).timestamp())
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(error: BaseException) -> dict:
    return {"errorMessage": str(error), "errorType": type(error).__name__}


class DeadLetters:
    """Writes the on-failure records AWS writes, to the local queues."""

    def __init__(self, sqs=None):
        self.sqs = sqs or boto3.client("sqs")
        self.urls = queue_urls(self.sqs)

    def _send(self, queue: str, record: dict) -> None:
        self.sqs.send_message(QueueUrl=self.urls[queue], MessageBody=json.dumps(record))
        log.error("%s: gave up, the failure is in the %s dead-letter queue (make dlq QUEUE=%s ARGS=--local)",
                  FUNCTIONS[queue][0], queue, queue)

    def stream_batch(self, records: list[dict], attempts: int) -> None:
        """Stream records the publisher failed on every retry: their place in the stream, not the records."""
        if not records:
            return
        first, last = records[0], records[-1]
        self._send("publisher", {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": _function_arn("publisher"),
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": _now(),
            "DDBStreamBatchInfo": {
                "shardId": first.get("shardId", "shardId-local"),
                "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _arrival(first),
                "approximateArrivalOfLastRecord": _arrival(last),
                "batchSize": len(records),
                "streamArn": first.get("eventSourceARN", ""),
            },
        })

    def invocation(self, queue: str, payload: dict, error: BaseException, attempts: int) -> None:
        """An asynchronous invocation that failed every attempt: the invocation record, request included."""
        self._send(queue, {
            "version": "1.0",
            "timestamp": _now(),
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{_function_arn(queue)}:$LATEST",
                               "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": _error(error),
        })

    def guard(self, queue: str, handler: Callable[[dict, Any], Any]) -> Callable[[dict, Any], Any]:
        """``handler`` invoked asynchronously: a failure (re-raised for the caller's log) also leaves its
        invocation record in ``queue``. Locally nothing retries it first (AWS retries twice)."""
        def invoke(event: dict, context: Any) -> Any:
            try:
                return handler(event, context)
            except Exception as error:
                self.invocation(queue, event, error, attempts=1)
                raise
        return invoke


# -- the replay, in-process --------------------------------------------------------------------------

_replaying = threading.Lock()  # one replay at a time: the functions run like one warm instance each


def local_target() -> replay.Target:
    """``helpdesk.replay``'s view of the local stack: moto's queues and table, the functions in-process."""
    from helpdesk import settings

    def invoke(queue: str, event: dict) -> Any:
        name, memory, timeout = FUNCTIONS[queue]
        context = LambdaContext(name, memory_limit_in_mb=memory, timeout_s=timeout)
        try:
            return _handler(queue)(event, context)
        except Exception as error:
            raise replay.ReplayFailed(f"{name} failed again: {replay.error_line(_error(error))}") from error

    return replay.Target(sqs=boto3.client("sqs"), queue_urls=queue_urls(), invoke=invoke,
                         dynamodb=boto3.client("dynamodb"), table=settings.get(Env.TICKETS_TABLE), wait_seconds=0)


def _handler(queue: str) -> Callable[[dict, Any], Any]:
    if queue == "publisher":
        from functions.publisher import handler
        return handler.handler
    if queue == "email":
        from functions.email_intake import handler
        return handler.handler
    from functions.delivery import handler
    from infra.local.pumps import delivering

    def deliver(event: dict, context: Any) -> Any:  # the outbox records what it sends, as for the pump
        facts = {k: v.get("Value") for k, v in event["Records"][0]["Sns"].get("MessageAttributes", {}).items()}
        with delivering(event_type=facts.get("event_type"), ticket_id=facts.get("ticket_id")):
            return handler.handler(event, context)
    return deliver


# -- the console's operations ------------------------------------------------------------------------

PAGES = Pages()

def _limit(query: dict[str, str]) -> int:
    try:
        limit = int(query.get("limit") or 1000)
    except ValueError:
        raise BadRequest("limit must be a number") from None
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    return limit


@PAGES.add("/dlq", "Dead-letter queues: what failed, waiting to be replayed (JSON)", query=True)
def _all_queues(state: ConsoleState, query: dict[str, str]):
    with _replaying:
        target = local_target()
        return _json({queue: replay.show(queue, target, limit=_limit(query)) for queue in replay.QUEUES})


def _queue_pages(queue: str) -> None:
    @PAGES.add(f"/dlq/{queue}", f"Dead-letter queue {queue} (what make dlq QUEUE={queue} ARGS=--local prints)", query=True)
    def _show(state: ConsoleState, query: dict[str, str]):
        with _replaying:
            return _json(replay.show(queue, local_target(), limit=_limit(query)))

    def _replay(state: ConsoleState, query: dict[str, str]):
        with _replaying:
            return _json(replay.replay(queue, local_target(), limit=_limit(query)))

    PAGES.action(f"/dlq/{queue}/replay")(_replay)


for _queue in replay.QUEUES:
    _queue_pages(_queue)
