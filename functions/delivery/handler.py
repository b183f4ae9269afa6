"""customer-updates -> the customer: an email through SES v2 and, for customers who gave a phone
number, an SMS through SNS; team-alerts' @mentions -> the agent a note names, by email. The message
carries everything (no table read). Each channel sends once per event (idempotency keyed on event id
and channel), so a retried invocation never repeats what already went out.
"""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.idempotency import idempotent_function

from helpdesk import messages, notify
from helpdesk.messages import CustomerUpdate, TeamAlert

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


@idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=once,
                     key_prefix="helpdesk-delivery-mention")
def mention_once(message: dict) -> dict:
    alert = TeamAlert.from_dict(message["alert"])
    return {"ses_message_id": notify.send_email(notify.mention_mime(alert), alert.recipient)}


@logger.inject_lambda_context
@event_source(data_class=SNSEvent)
def handler(event: SNSEvent, context) -> None:
    once.register_lambda_context(context)
    for record in event.records:
        if record.sns.message_attributes.get("event_type", {}).get("Value") == notify.MENTION:
            alert = notify.mention_alert(record.sns.message)
            logger.append_keys(ticket_id=alert.ticket_id, event_id=alert.event_id, event_type=notify.MENTION)
            key = f"{alert.ticket_id}:{alert.event_id}:mention:{alert.mentioned}"
            logger.info("mention sent", extra=mention_once(message={"key": key, "alert": alert.to_dict()}))
            continue
        update = CustomerUpdate.from_json(record.sns.message)
        logger.append_keys(ticket_id=update.ticket_id, event_id=update.event_id, event_type=update.event_type)
        logger.info("email sent", extra=email_once(message={"key": f"{update.ticket_id}:{update.event_id}:email", "update": update.to_dict()}))
        if notify.sms_number(update):
            sent = sms_once(message={"key": f"{update.ticket_id}:{update.event_id}:sms", "update": update.to_dict()})
            logger.info("sms sent" if sent["sms_message_id"] else "sms not sent: the customer opted out", extra=sent)
