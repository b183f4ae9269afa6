"""customer-updates -> the customer, on moto: SES v2 email (read back from moto's SES backend) and
SNS SMS (moto's ``sms_messages``)."""

import copy
import json
from email import policy
from email.parser import BytesParser

import pytest
from helpdesk import clock, mail, messages, notify, tickets
from tests.conftest import sample_event
from tests.integration.conftest import BASE_URL, SUPPORT, TUESDAY, captured_logs, sns_event


@pytest.fixture
def delivery(notifications):
    from functions.delivery import handler

    return handler


def parsed(raw: str):
    return BytesParser(policy=policy.default).parsebytes(raw.encode())


def published(notifications, lambda_context) -> list[dict]:
    """Run the publisher over the stream; the customer-updates messages it published."""
    from functions.publisher import handler

    assert handler.handler(notifications.stream.read(), lambda_context) == {"batchItemFailures": []}
    return notifications.customer.drain()


def open_ticket(phone: str | None = None) -> tickets.Opened:
    with clock.frozen(TUESDAY):
        return tickets.open_ticket(tickets.NewTicket(
            channel="web", customer_email="ana@example.com", customer_name="Ana Lima", customer_phone=phone,
            subject="Refund for a double charge", description="I was charged twice.", category="billing"))


def test_the_customer_gets_an_email_threaded_under_the_ticket(delivery, notifications, lambda_context):
    opened = open_ticket()
    tid = opened.ticket.ticket_id
    tickets.reply(tid, "dana", "We have refunded the second charge.")
    [created, answered] = published(notifications, lambda_context)

    delivery.handler(sns_event(created), lambda_context)
    delivery.handler(sns_event(answered), lambda_context)

    first, second = (parsed(m.raw_data) for m in notifications.sent_emails())
    root = messages.thread_root_id(tid, "helpdesk.local")
    link = f"{BASE_URL}/tickets/{tid}?token={opened.access_token}"
    assert first["Subject"] == f"[{tid}] Refund for a double charge"
    assert second["Subject"] == f"Re: [{tid}] Refund for a double charge"
    assert first["From"].addresses[0].addr_spec == SUPPORT and first["To"] == "Ana Lima <ana@example.com>"
    assert first["Reply-To"] == mail.reply_address(SUPPORT, tickets.reply_token(tid))  # lower case, not the access token
    assert first["Message-ID"] == root and first["In-Reply-To"] is None  # the acknowledgement is the root
    event_id = json.loads(answered["body"])["event_id"]
    assert second["Message-ID"] == mail.new_message_id(tid, event_id, "helpdesk.local")
    assert second["In-Reply-To"] == root and second["References"] == root
    assert first["Auto-Submitted"] == "auto-replied" and second["Auto-Submitted"] is None  # a person answered
    text, html = (second.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html"))
    assert "Our billing team has replied to your request" in text and "> We have refunded the second charge." in text
    assert "We have refunded the second charge." in html
    assert link in text and f'href="{link}"' in html.replace("&amp;", "&")
    assert notifications.sent_sms() == []  # no phone number given


def test_a_customer_with_a_phone_number_also_gets_a_short_text(delivery, notifications, lambda_context):
    tid = open_ticket(phone="+4915112345678").ticket.ticket_id
    [created] = published(notifications, lambda_context)

    delivery.handler(sns_event(created), lambda_context)

    [(phone, text)] = notifications.sent_sms()
    assert phone == "+4915112345678"
    assert text == f"We have received your request {tid} and will reply by Tue 24 Nov 2026, 12:00 CET."
    assert len(notifications.sent_emails()) == 1


def test_a_customer_who_opted_out_of_texts_still_gets_the_email_and_nothing_fails(delivery, notifications,
                                                                                 lambda_context, monkeypatch):
    from botocore.stub import Stubber

    open_ticket(phone="+4915112345678")
    [created] = published(notifications, lambda_context)
    real = notify._client
    sns = real("sns")
    stubber = Stubber(sns)  # SNS's answer for a number that replied STOP (moto cannot give it)
    stubber.add_client_error("publish", service_error_code="OptedOut", http_status_code=400)
    monkeypatch.setattr(notify, "_client", lambda service: sns if service == "sns" else real(service))

    with stubber:
        delivery.handler(sns_event(created), lambda_context)
        delivery.handler(sns_event(created), lambda_context)  # redelivered: the answer was recorded

    stubber.assert_no_pending_responses()
    assert len(notifications.sent_emails()) == 1 and notifications.sent_sms() == []


def test_a_redelivered_notification_is_sent_once(delivery, notifications, lambda_context):
    event = sample_event("sns/escalated.json")

    delivery.handler(event, lambda_context)
    delivery.handler(copy.deepcopy(event), lambda_context)

    assert len(notifications.sent_emails()) == 1
    assert len(notifications.sent_sms()) == 1


def test_a_rejected_email_fails_the_invocation_so_it_is_retried(delivery, notifications, lambda_context, monkeypatch):
    monkeypatch.setenv("HELPDESK_SUPPORT_ADDRESS", "nobody@unverified.example")
    event = sample_event("sns/reply.json")

    with pytest.raises(notify.NotSent, match="^email not sent: MessageRejected$"):  # no address in the logs
        delivery.handler(event, lambda_context)
    monkeypatch.setenv("HELPDESK_SUPPORT_ADDRESS", SUPPORT)
    delivery.handler(event, lambda_context)  # the retry: nothing was recorded as sent

    assert len(notifications.sent_emails()) == 1


@pytest.mark.parametrize("name", ["created", "escalated", "reply", "resolved"])
def test_every_sample_sns_event_is_delivered(delivery, notifications, lambda_context, name):
    event = sample_event(f"sns/{name}.json")
    update = messages.CustomerUpdate.from_json(event["Records"][0]["Sns"]["Message"])

    delivery.handler(event, lambda_context)

    [sent] = notifications.sent_emails()
    email = parsed(sent.raw_data)
    assert f"[{update.ticket_id}]" in email["Subject"]
    assert update.link in email.get_body(preferencelist=("plain",)).get_content()
    assert [phone for phone, _ in notifications.sent_sms()] == [update.customer_phone]



def test_the_logs_name_the_ticket_but_never_the_customer_the_text_or_the_link(delivery, notifications, lambda_context):
    event = sample_event("sns/reply.json")
    update = messages.CustomerUpdate.from_json(event["Records"][0]["Sns"]["Message"])

    with captured_logs(delivery.logger) as out:
        delivery.handler(event, lambda_context)

    logs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(log["message"], log["ticket_id"]) for log in logs] == [("email sent", "HD-7KQ2M9"), ("sms sent", "HD-7KQ2M9")]
    text = out.getvalue()
    assert update.customer_email not in text and update.customer_phone not in text
    assert "refunded" not in text and update.reply_token not in text
