"""The email channel end to end: mail sent over SMTP to the local stack (`make dev`) becomes tickets,
replies join them, machines and strangers to the domain are turned away."""

from __future__ import annotations

import smtplib

import pytest

from infra.local.testing import wait_for
from tests.e2e.local_stack import SUPPORT, console, email, send, tickets_of

def test_an_email_becomes_a_ticket_and_a_reply_joins_it(local_stack):
    # When a customer writes to the support address over SMTP
    refused = send(local_stack, email("Damaged delivery, order #10023", "My order arrived damaged.",
                                      Message_ID="<lena-1@example.de>"))

    # Then the mail is accepted and a ticket is on the console, from the email channel
    assert refused == {}
    [ticket] = tickets_of(local_stack, "lena.fischer@example.de")
    assert (ticket["channel"], ticket["subject"], ticket["status"]) == ("email", "Damaged delivery, order #10023", "new")
    assert ticket["description"] == "My order arrived damaged." and ticket["customer_name"] == "Lena Fischer"
    assert ticket["source_message_id"] == "<lena-1@example.de>"

    # When she answers with the reference in the subject
    send(local_stack, email(f"Re: [{ticket['ticket_id']}] Damaged delivery", "Photos will follow.",
                            In_Reply_To="<lena-1@example.de>"))

    # Then it joins her ticket (a new version of it), it opens no other
    [again] = tickets_of(local_stack, "lena.fischer@example.de")
    assert again["ticket_id"] == ticket["ticket_id"] and again["version"] > ticket["version"]


def test_mail_for_another_domain_or_mailbox_is_refused_with_550(local_stack):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(local_stack, email("hello", "relay this"), to=["someone@example.com"])
    [(code, text)] = refused.value.recipients.values()
    assert code == 550 and b"5.7.1" in text

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(local_stack, email("hello", "for sales"), to=["sales@helpdesk.local"])
    assert next(iter(refused.value.recipients.values()))[0] == 550


def test_an_auto_reply_is_listed_as_rejected_and_opens_no_ticket(local_stack):
    # When an out-of-office answer arrives
    send(local_stack, email("Automatic reply: Away", "I am out of the office until Monday.",
                            sender="Tom Baker <tom.baker@example.org>", Auto_Submitted="auto-replied"))

    # Then the console lists it as rejected, with why, and no ticket was opened
    [record] = [r for r in console(local_stack, "rejected") if r["sender"] == "tom.baker@example.org"]
    assert record["reason"] == "automated" and record["detail"] == "Auto-Submitted: auto-replied"
    assert record["s3_key"].startswith("inbound/") and record["subject"] == "Automatic reply: Away"
    assert tickets_of(local_stack, "tom.baker@example.org") == []


def test_lines_longer_than_1000_characters_are_received_as_ses_receives_them(local_stack):
    # Given a message with a 5,000-character line (HTML mailers write them; SES accepts them)
    line = "The export fails on row " + " ".join(str(n) for n in range(1300))

    raw = (f"From: Raj Kumar <raj.kumar@example.in>\r\nTo: {SUPPORT}\r\nSubject: Export fails\r\n"
           f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{line}\r\n").encode()
    assert len(line) > 5000

    # When it is sent, Then it is accepted and becomes a ticket with the whole line
    with smtplib.SMTP("127.0.0.1", local_stack.smtp_port, timeout=10) as smtp:
        assert smtp.sendmail("raj.kumar@example.in", [SUPPORT], raw) == {}
    [ticket] = tickets_of(local_stack, "raj.kumar@example.in")
    assert ticket["subject"] == "Export fails"


def test_a_bounce_with_a_null_envelope_sender_is_rejected_as_automated(local_stack):
    # Given a bounce: MAIL FROM:<>, and nothing else that gives it away
    bounce = email("Your message could not be delivered", "The recipient's mailbox is full.",
                   sender="Mail Server <mailer@example.net>")

    # When it arrives
    with smtplib.SMTP("127.0.0.1", local_stack.smtp_port, timeout=10) as smtp:
        smtp.sendmail("", [SUPPORT], bounce.as_bytes())

    # Then it is kept as automated (never a ticket, never acknowledged): SES's Return-Path is <>
    [record] = [r for r in console(local_stack, "rejected") if r["sender"] == "mailer@example.net"]
    assert record["reason"] == "automated" and record["detail"].startswith("null Return-Path <>")
    assert tickets_of(local_stack, "mailer@example.net") == []


def test_the_customer_gets_an_acknowledgement(local_stack):
    send(local_stack, email("Invoice address", "Please change the invoice address.",
                            sender="Nina Berg <nina.berg@example.se>"))
    [ticket] = tickets_of(local_stack, "nina.berg@example.se")

    [ack] = wait_for(lambda: [m for m in console(local_stack, "outbox")
                              if m["ticket_id"] == ticket["ticket_id"] and m["channel"] == "email"],
                     what="the acknowledgement")
    assert ack["recipient"] == "nina.berg@example.se" and ack["event_type"] == "created"
    assert ack["subject"] == f"Re: [{ticket['ticket_id']}] Invoice address"
