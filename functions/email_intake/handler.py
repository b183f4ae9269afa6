"""SES email receiving -> helpdesk.intake: a ticket, a message on a ticket, or a rejected-mail record.

The receipt rule stores the raw message in the mail bucket (S3 action), then invokes this function
asynchronously (Lambda action, ``Event``); the raw message is read from the bucket by the SES message
id. Each SES message counts once (idempotency keyed on its ``messageId``): a repeated delivery gives
the first outcome again. A message never fails the function; an infrastructure error does, so Lambda
retries it twice and then hands the event to the on-failure destination (a queue): nothing is lost.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from helpdesk import intake, settings
from helpdesk.settings import Env

logger = Logger()
persistence = DynamoDBPersistenceLayer(table_name=settings.get(Env.IDEMPOTENCY_TABLE))
once = IdempotencyConfig(event_key_jmespath="ses.mail.messageId", raise_on_no_idempotency_key=True,
                         expires_after_seconds=intake.DEDUPE_SECONDS)
store = intake.S3MailStore(settings.get(Env.MAIL_BUCKET))


@idempotent_function(data_keyword_argument="record", persistence_store=persistence, config=once,
                     key_prefix="helpdesk-email-intake")
def receive_once(record: dict) -> dict:
    return intake.receive(intake.Receipt.from_ses(record), store).to_dict()


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    once.register_lambda_context(context)
    outcomes = []
    for record in event.get("Records") or ():
        message_id = record.get("ses", {}).get("mail", {}).get("messageId")
        logger.append_keys(ses_message_id=message_id)
        outcome = receive_once(record=record)
        logger.info("email received", extra=outcome)  # kind, ticket id, reason: never an address or text
        outcomes.append(outcome)
    return {"outcomes": outcomes}
