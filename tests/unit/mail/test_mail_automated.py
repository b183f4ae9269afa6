"""Loop and abuse signals: never auto-answer a machine."""

import pytest

from helpdesk import mail


def _mail(headers: str, sender: str = "Jane <jane@example.com>", subject: str = "Help please",
          ctype: str = "text/plain") -> bytes:
    return (f"From: {sender}\nTo: support@helpdesk.local\nSubject: {subject}\n{headers}"
            f"Content-Type: {ctype}\n\nMy printer is on fire.\n").encode()


@pytest.mark.parametrize(("headers", "reason"), [
    ("Auto-Submitted: auto-replied\n", "Auto-Submitted: auto-replied"),
    ("Auto-Submitted: auto-generated\n", "Auto-Submitted: auto-generated"),
    ("Auto-Submitted: Auto-Notified; owner-email=x@y\n", "Auto-Submitted: auto-notified"),
    ("Precedence: bulk\n", "Precedence: bulk"),
    ("Precedence: junk\n", "Precedence: junk"),
    ("Precedence: list\n", "Precedence: list"),
    ("X-Autoreply: yes\n", "X-Autoreply: yes"),
    ("X-Autorespond: Out of office\n", "X-Autorespond: Out of office"),
    ("X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: jane@example.com\n", "Exchange auto-reply"),
    ("X-Auto-Response-Suppress: DR, OOF, AutoReply\nX-MS-Exchange-Inbox-Rules-Loop: jane@example.com\n",
     "Exchange auto-reply"),
    ("List-Id: Users <users.lists.example.org>\n", "mailing list (List-Id: Users <users.lists.example.org>)"),
    ("List-Unsubscribe: <mailto:leave@example.org>\n", "mailing list (List-Unsubscribe)"),
    ("Return-Path: <>\n", "null Return-Path <>"),
    ("X-SES-Spam-Verdict: FAIL\nX-SES-Virus-Verdict: PASS\n", "X-SES-Spam-Verdict: FAIL"),
    ("X-SES-Virus-Verdict: FAIL\n", "X-SES-Virus-Verdict: FAIL"),
])
def test_machine_headers_are_flagged(headers, reason):
    assert mail.parse_inbound(_mail(headers)).automated.startswith(reason)


@pytest.mark.parametrize("headers", [
    "",
    "Auto-Submitted: no\n",
    "Auto-Submitted: No (a person wrote this)\n",
    "X-Autoreply: no\n",
    "Precedence: normal\n",
    "Return-Path: <jane@example.com>\n",
    "X-SES-Spam-Verdict: PASS\nX-SES-Virus-Verdict: PASS\n",
    # Outlook marks ordinary mail with it: on its own it is not an auto-reply.
    "X-Auto-Response-Suppress: All\n",
    "X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\nX-Mailer: Microsoft Outlook 16.0\n",
    "Thread-Index: AQHaSJ3k\nX-MS-Has-Attach:\nX-Auto-Response-Suppress: OOF\n",
])
def test_people_are_not_flagged(headers):
    assert mail.parse_inbound(_mail(headers)).automated is None


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.com",
                                    "Mail Delivery System <Mailer-Daemon@example.com>"])
def test_mailer_daemon_and_postmaster_are_flagged(sender):
    assert mail.parse_inbound(_mail("", sender=sender)).automated.startswith("sender is")


def test_a_delivery_report_is_flagged():
    raw = _mail("", ctype="multipart/report; report-type=delivery-status; boundary=x").replace(
        b"My printer is on fire.\n", b"--x\nContent-Type: text/plain\n\nfailed\n--x--\n")
    assert mail.parse_inbound(raw).automated == "delivery report (multipart/report; report-type=delivery-status)"


@pytest.mark.parametrize("subject", [
    "Automatic reply: [HD-7KQ2M9] Cannot log in", "Out of Office: Re: invoice", "Out of office",
    "Out of Office AutoReply: Your request", "Auto-Reply: Thanks for your mail", "Autoreply: away",
    "Abwesenheitsnotiz: Ihre Anfrage", "Automatische Antwort: Rechnung", "Réponse automatique : absence",
    "Respuesta automática: consulta", "Risposta automatica: richiesta", "自動応答: お問い合わせ",
    "Undeliverable: Your request", "Delivery Status Notification (Failure)",
])
def test_auto_reply_subjects_are_flagged(subject):
    assert mail.parse_inbound(_mail("", subject=subject)).automated.startswith("auto-reply subject")


@pytest.mark.parametrize("subject", [
    "Auto-reply not working in my account", "Out of office hours support needed",
    "Question about automatic reply settings", "Re: Out of stock item",
])
def test_customer_subjects_about_auto_replies_are_not_flagged(subject):
    assert mail.parse_inbound(_mail("", subject=subject)).automated is None
