"""The outbox relay: the ticket table's stream -> SNS topics (customer-updates, team-alerts).

Only INSERTs of timeline events matter (helpdesk.notify decides which go where); ticket items and
MODIFYs are skipped. A record that fails is reported in ``batchItemFailures`` (the event source
mapping retries it, bisecting, then sends it to its DLQ); every (event, topic) pair is published
once, however often a record comes back (idempotency records keyed on the event id).
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.idempotency import idempotent_function

from helpdesk import notify

logger = Logger()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
persistence, once = notify.dedupe()


@idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=once,
                     key_prefix="helpdesk-publisher")
def publish_once(message: dict) -> dict:
    return {"message_id": notify.publish(message["request"])}


def record_handler(record: DynamoDBRecord) -> None:
    logger.remove_keys(["ticket_id", "event_id", "event_type"])
    try:
        event = notify.stream_event(record)
        if event is None:
            return
        logger.append_keys(ticket_id=event.ticket_id, event_id=event.event_id, event_type=event.type)
        for message in notify.notifications(event):
            sent = publish_once(message=message)
            logger.info("published", extra={"topic": message["key"].rpartition(":")[2], **sent})
    except Exception:
        stream = record.dynamodb
        logger.exception("not published: reported for retry",
                         extra={"sequence_number": stream.sequence_number if stream else None})
        raise


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    once.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
