"""customer-updates -> the customer: an email through SES v2 and, for customers who gave a phone
number, an SMS through SNS. The message carries everything (no table read). Each channel sends
once per event (idempotency keyed on event id and channel), so a retried invocation never repeats
what already went out.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.idempotency import idempotent_function

from helpdesk import messages, notify
from helpdesk.messages import CustomerUpdate

logger = Logger()
persistence, once = notify.dedupe()


@idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=once,
                     key_prefix="helpdesk-delivery-email")
def email_once(message: dict) -> dict:
    update = CustomerUpdate.from_dict(message["update"])
    return {"ses_message_id": notify.send_email(notify.customer_mime(update), update.customer_email)}


@idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=once,
                     key_prefix="helpdesk-delivery-sms")
def sms_once(message: dict) -> dict:
    update = CustomerUpdate.from_dict(message["update"])
    return {"sms_message_id": notify.send_sms(notify.sms_number(update), messages.customer_sms(update))}


@logger.inject_lambda_context
@event_source(data_class=SNSEvent)
def handler(event: SNSEvent, context) -> None:
    once.register_lambda_context(context)
    for record in event.records:
        update = CustomerUpdate.from_json(record.sns.message)
        logger.append_keys(ticket_id=update.ticket_id, event_id=update.event_id, event_type=update.event_type)
        logger.info("email sent", extra=email_once(message={"key": f"{update.ticket_id}:{update.event_id}:email", "update": update.to_dict()}))
        if notify.sms_number(update):
            sent = sms_once(message={"key": f"{update.ticket_id}:{update.event_id}:sms", "update": update.to_dict()})
            logger.info("sms sent" if sent["sms_message_id"] else "sms not sent: the customer opted out", extra=sent)
