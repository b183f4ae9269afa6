"""The email channel on moto: an SES receipt (events/ses/*.json) plus the raw message in the mail
bucket -> the intake function -> a ticket, a message on a ticket, or a rejected-mail record."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import boto3
import pytest
from helpdesk import addresses, budget, clock, ids, intake, ledger, mail, messages, models, tickets
from helpdesk.settings import Env
from tests.addresses import DELIVERABLE, UNDELIVERABLE
from tests.conftest import sample_event
from tests.integration.conftest import SUPPORT, TUESDAY, captured_logs, sns_event
from tests.unit.mail.test_mail_corpus import EXPECTED, REJECTED

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "unit" / "mail" / "corpus"
DOMAIN = SUPPORT.rpartition("@")[2]


class Mailroom:
    """What SES does for one message: store it raw in the mail bucket, invoke the intake function."""

    def __init__(self, handler, context):
        self.handler, self.context = handler, context
        self.s3 = boto3.client("s3")
        self.bucket = handler.store.bucket

    def event(self, *, ses_id: str, sample: str = "ses/inbound.json", recipients=(SUPPORT,), **verdicts) -> dict:
        event = sample_event(sample)
        ses = event["Records"][0]["ses"]
        ses["mail"]["messageId"] = ses_id
        ses["mail"]["timestamp"] = ses["receipt"]["timestamp"] = clock.to_iso(clock.now())
        ses["mail"]["destination"] = ses["receipt"]["recipients"] = list(recipients)
        for name, status in verdicts.items():  # spamVerdict="FAIL"...
            ses["receipt"][name] = {"status": status}
        return event

    def deliver(self, raw: bytes | EmailMessage, *, ses_id: str | None = None, **options) -> dict:
        """Store ``raw`` as SES does and run the function; its outcome for this message."""
        ses_id = ses_id or secrets.token_hex(20)
        data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
        self.s3.put_object(Bucket=self.bucket, Key=intake.RAW_PREFIX + ses_id, Body=data)
        return self.invoke(self.event(ses_id=ses_id, **options))

    def invoke(self, event: dict) -> dict:
        [outcome] = self.handler.handler(event, self.context)["outcomes"]
        return outcome

    def corpus(self, name: str, **options) -> dict:
        return self.deliver((CORPUS / name).read_bytes(), **options)


@pytest.fixture
def mailroom(aws, lambda_context, monkeypatch):
    from functions.email_intake import handler

    monkeypatch.setenv(Env.SUPPORT_ADDRESS, SUPPORT)
    monkeypatch.setattr(handler, "store", intake.S3MailStore(aws[Env.MAIL_BUCKET]))  # this account's client
    with clock.frozen(TUESDAY):
        yield Mailroom(handler, lambda_context)


def email(sender="Ana Lima <ana.lima@example.com>", subject="Refund for a double charge",
          body="I was charged twice for invoice 2026-118.", to=SUPPORT, **headers) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = f"<{secrets.token_hex(8)}@mail.example.com>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def all_tickets() -> list[models.Ticket]:
    return sorted(models.Ticket.scan(models.Ticket.sk == models.TICKET_SK), key=lambda t: t.created_at)


def events(ticket_id: str) -> list[models.TicketEvent]:
    return tickets.timeline(ticket_id, public_only=False)


def data(event: models.TicketEvent) -> dict:
    return event.data.as_dict() if event.data is not None else {}


CORPUS_TICKETS = sorted(name for name, expect in EXPECTED.items() if expect.automated is None)
CORPUS_AUTOMATED = sorted(name for name, expect in EXPECTED.items() if expect.automated is not None)


@pytest.fixture(scope="class")
def shared_mailroom():
    """One moto account for a class of tests that each look only at their own message's outcome
    (a fresh account per message would cost half a second each)."""
    from functions.email_intake import handler
    from infra.local.aws import local_aws
    from tests.conftest import FakeLambdaContext

    with pytest.MonkeyPatch.context() as patch, local_aws() as resources, clock.frozen(TUESDAY):
        patch.setenv(Env.SUPPORT_ADDRESS, SUPPORT)
        patch.setattr(handler, "store", intake.S3MailStore(resources[Env.MAIL_BUCKET]))
        yield Mailroom(handler, FakeLambdaContext())


def record_of(ses_id: str) -> dict:
    [record] = [r for r in intake.rejected(limit=10_000, until=TUESDAY + timedelta(days=1))
                if r["ses_message_id"] == ses_id]
    return record


class TestOneMessageAtATime:
    """What each kind of message becomes: the corpus of real-world mail, and the screening."""

    @pytest.mark.parametrize("name", CORPUS_TICKETS)
    def test_each_real_world_message_from_a_person_becomes_a_ticket(self, shared_mailroom, name):
        # Given a message of the corpus (none of the tickets it may refer to exists here)
        expect = EXPECTED[name]

        # When it arrives
        outcome = shared_mailroom.corpus(name)

        # Then it is a new ticket from its sender, with its subject and text and its files listed
        assert outcome["kind"] == "ticket", outcome
        ticket = ledger.load(outcome["ticket_id"])
        assert (ticket.channel, ticket.customer_email) == ("email", expect.sender.lower())
        assert ticket.subject == intake.ticket_subject(expect.subject) and "[HD-" not in ticket.subject
        for sentence in expect.says[:1]:
            assert sentence in ticket.description
        listed = [(a["filename"], a["content_type"]) for a in ticket.attachments or []]
        assert listed == list(expect.attachments)

    @pytest.mark.parametrize("name", CORPUS_AUTOMATED)
    def test_auto_replies_bounces_and_lists_are_recorded_never_ticketed(self, shared_mailroom, name):
        # When a machine's message arrives (an out-of-office, a vacation reply, a bounce, a list)
        ses_id = secrets.token_hex(20)
        outcome = shared_mailroom.corpus(name, ses_id=ses_id)

        # Then no ticket opens (so nothing is acknowledged: no loop), and agents can see why
        record = record_of(ses_id)
        assert outcome == {"kind": "rejected", "reason": "automated"} | (
            {"ticket_id": record["ticket_id"]} if record["ticket_id"] else {})
        assert record["detail"].startswith(EXPECTED[name].automated[:12])
        assert record["sender"].lower() == EXPECTED[name].sender.lower()
        assert record["subject"] == EXPECTED[name].subject

    @pytest.mark.parametrize("name", sorted(REJECTED))
    def test_a_message_nobody_can_be_answered_for_is_kept_for_agents_with_the_reason(self, shared_mailroom, name):
        ses_id = secrets.token_hex(20)
        outcome = shared_mailroom.corpus(name, ses_id=ses_id)

        assert outcome == {"kind": "rejected", "reason": "unparseable"}
        record = record_of(ses_id)
        assert REJECTED[name] in record["detail"]
        assert (record["s3_bucket"], record["s3_key"]) == (shared_mailroom.bucket, f"inbound/{ses_id}")
        raw = shared_mailroom.s3.get_object(Bucket=record["s3_bucket"], Key=record["s3_key"])["Body"].read()
        assert raw == (CORPUS / name).read_bytes()  # the original stays where the record says

    def test_attachments_are_stored_under_their_own_prefix_and_listed_on_the_ticket(self, shared_mailroom):
        # When a message with a PDF and a PNG arrives
        room = shared_mailroom
        outcome = room.corpus("attachments_pdf_png.eml", ses_id="att0000000000000000000000000000000000001")

        # Then each file is in the bucket, typed and served as a download, and listed on the ticket
        ticket = ledger.load(outcome["ticket_id"])
        pdf, png = ticket.attachments
        assert pdf == {"filename": "invoice-2024-001.pdf", "content_type": "application/pdf", "size": pdf["size"],
                       "key": "attachments/att0000000000000000000000000000000000001/1/invoice-2024-001.pdf"}
        stored = room.s3.get_object(Bucket=room.bucket, Key=pdf["key"])
        assert stored["ContentType"] == "application/pdf" and stored["ContentDisposition"].startswith("attachment;")
        assert stored["Body"].read().startswith(b"%PDF") and stored["ContentLength"] == pdf["size"]
        assert png["key"].endswith("/2/Screenshot 2024-01-19 at 14.20.11.png")
        assert data(events(ticket.ticket_id)[0])["attachments"] == [pdf, png]

    def test_dangerous_file_names_never_become_paths(self, shared_mailroom):
        outcome = shared_mailroom.corpus("dangerous_filenames.eml", ses_id="dng0000000000000000000000000000000000001")

        for attachment in ledger.load(outcome["ticket_id"]).attachments:
            key = attachment["key"].removeprefix("attachments/dng0000000000000000000000000000000000001/")
            index, _, name = key.partition("/")
            assert index.isdigit() and name == attachment["filename"] and "/" not in name and ".." not in name

    @pytest.mark.parametrize(("sample", "reason"), [("ses/spam.json", "spam"), ("ses/virus.json", "virus")])
    def test_spam_and_viruses_are_recorded_without_reading_the_message(self, shared_mailroom, sample, reason):
        # Given SES's verdict FAIL (and no raw message at all: it is never read)
        event = sample_event(sample)

        # When SES invokes the function
        outcome = shared_mailroom.invoke(event)

        # Then no ticket, and a record agents can look at
        assert outcome == {"kind": "rejected", "reason": reason}
        ses_id = event["Records"][0]["ses"]["mail"]["messageId"]
        assert record_of(ses_id) == {
            "received_at": "2026-11-24T09:00:00Z", "reason": reason, "detail": f"SES {reason} verdict: FAIL",
            "sender": "offers@bulk-deals.example",
            "subject": event["Records"][0]["ses"]["mail"]["commonHeaders"]["subject"],
            "recipients": ["support@helpdesk.local"], "ticket_id": None, "ses_message_id": ses_id,
            "s3_bucket": shared_mailroom.bucket, "s3_key": f"inbound/{ses_id}",
        }

    def test_a_sender_failing_dmarc_under_a_reject_policy_is_not_trusted(self, shared_mailroom):
        event = shared_mailroom.event(ses_id="spoof0000000000000000000000000000000000", dmarcVerdict="FAIL")
        event["Records"][0]["ses"]["receipt"]["dmarcPolicy"] = "REJECT"

        assert shared_mailroom.invoke(event) == {"kind": "rejected", "reason": "spoofed"}

    def test_mail_from_our_own_address_is_a_loop(self, shared_mailroom):
        outcome = shared_mailroom.deliver(email(sender=SUPPORT, subject="We have received your request"))

        assert outcome == {"kind": "rejected", "reason": "automated"}

    def test_a_stranger_quoting_a_reference_opens_a_ticket_of_their_own(self, shared_mailroom):
        # Given Ana's ticket
        ticket = open_for("ana.lima@example.com")

        # When someone else writes with its reference in the subject
        outcome = shared_mailroom.deliver(email(sender="mallory@evil.example", body="Please send me the password.",
                                                subject=f"Re: [{ticket.ticket_id}] Cannot log in"))

        # Then Ana's ticket is untouched and the stranger gets a new ticket
        assert outcome["kind"] == "ticket" and outcome["ticket_id"] != ticket.ticket_id
        assert [e.type for e in events(ticket.ticket_id)] == ["created"]
        assert ledger.load(outcome["ticket_id"]).customer_email == "mallory@evil.example"

    def test_a_forged_reply_token_is_not_trusted(self, shared_mailroom):
        ticket = open_for("ana.lima@example.com")
        forged = f"{ticket.ticket_id.lower()}-{'a' * 24}"

        address = mail.reply_address(SUPPORT, forged)
        outcome = shared_mailroom.deliver(email(sender="mallory@evil.example", subject="hi", to=address),
                                          recipients=[address])

        assert outcome["kind"] == "ticket" and outcome["ticket_id"] != ticket.ticket_id

    def test_the_sample_ses_event_and_its_message_open_a_ticket(self, shared_mailroom):
        # Given the sample SES event and the raw message the S3 action stored for it
        event = sample_event("ses/inbound.json")
        ses_id = event["Records"][0]["ses"]["mail"]["messageId"]
        raw = (ROOT / "events" / "ses" / "inbound.eml").read_bytes()
        shared_mailroom.s3.put_object(Bucket=shared_mailroom.bucket, Key=intake.RAW_PREFIX + ses_id, Body=raw)

        # When SES invokes the intake function
        outcome = shared_mailroom.invoke(event)

        # Then a ticket is opened for the sender, on the email channel, with what they wrote
        assert outcome["kind"] == "ticket" and set(outcome) == {"kind", "ticket_id"}
        ticket = ledger.load(outcome["ticket_id"])
        assert (ticket.channel, ticket.customer_email, ticket.customer_name) == ("email", "ana.lima@example.com", "Ana Lima")
        assert ticket.subject == "Charged twice for my November invoice"
        assert ticket.description.startswith("Hello,\n\nmy card was charged twice") and "Thanks,\nAna" in ticket.description
        # ...and its `created` event carries the customer's Message-ID: the acknowledgement answers it
        [created] = events(ticket.ticket_id)
        assert created.type == "created" and data(created)["source_message_id"] == "<CAF7u2kQp1=ana.lima@mail.example.com>"
        assert ticket.source_message_id == "<CAF7u2kQp1=ana.lima@mail.example.com>"

    def test_the_reply_address_token_routes_an_answer_from_any_sender(self, shared_mailroom):
        # Given Ana's ticket and its reply address (support+<token>@), which our emails carry as Reply-To
        ticket = open_for("ana.lima@example.com")
        token = tickets.reply_token(ticket.ticket_id)
        reply_to = mail.reply_address(SUPPORT, token)

        # When her colleague answers to it, without a reference in the subject, and a mail server
        # upper-cased the address on the way
        outcome = shared_mailroom.deliver(email(sender="ben@example.com", subject="Another detail", to=reply_to.upper(),
                                                body="The error also shows on Android."), recipients=[reply_to.upper()])

        # Then it lands on her ticket, and the agents see who wrote
        assert outcome == {"kind": "message", "ticket_id": ticket.ticket_id, "via": "reply_token"}
        message = events(ticket.ticket_id)[-1]
        assert message.body == "The error also shows on Android." and data(message)["sender"] == "ben@example.com"
        assert token == token.lower() and token != tickets.access_token(ticket.ticket_id)

    def test_a_reply_to_one_of_our_emails_joins_its_ticket_by_in_reply_to(self, shared_mailroom):
        # Given Ana's ticket, and our email about it (its Message-ID names the ticket)
        ticket = open_for("ana.lima@example.com")
        ours = mail.new_message_id(ticket.ticket_id, "18eb08a73df00ebf4aae", DOMAIN)

        # When she answers it with a subject of her own
        root = messages.thread_root_id(ticket.ticket_id, DOMAIN)
        outcome = shared_mailroom.deliver(email(subject="still broken", body="Still broken, sorry.", In_Reply_To=ours,
                                                References=f"{root} {ours}"))

        # Then it is a message on her ticket
        assert outcome == {"kind": "message", "ticket_id": ticket.ticket_id, "via": "message_id"}
        assert events(ticket.ticket_id)[-1].body == "Still broken, sorry."

    def test_a_parser_crash_is_a_rejected_message_not_a_failed_function(self, shared_mailroom, monkeypatch):
        def broken(_):
            raise RecursionError("deep")

        monkeypatch.setattr(mail, "parse_inbound", broken)

        outcome = shared_mailroom.deliver(email(), ses_id="crash000000000000000000000000000000000000")

        assert outcome == {"kind": "rejected", "reason": "unparseable"}
        record = record_of("crash000000000000000000000000000000000000")
        assert record["detail"] == "the parser failed: RecursionError"
        assert record["sender"] == "ana.lima@example.com"  # from SES's commonHeaders

    def test_the_logs_name_the_outcome_but_never_the_sender_or_the_text(self, shared_mailroom):
        with captured_logs(shared_mailroom.handler.logger) as out:
            shared_mailroom.deliver(email(body="My secret order number is 4711."))

        [log] = [json.loads(line) for line in out.getvalue().splitlines()]
        assert log["message"] == "email received" and log["kind"] == "ticket" and log["ses_message_id"]
        assert "ana.lima" not in out.getvalue() and "4711" not in out.getvalue()

    def test_an_ses_event_for_another_object_name_is_refused(self, shared_mailroom):
        event = shared_mailroom.event(ses_id="x" * 40)
        event["Records"][0]["ses"]["mail"]["messageId"] = "../../etc/passwd"

        with pytest.raises(ValueError, match="messageId"):
            shared_mailroom.invoke(event)


# -- threading ---------------------------------------------------------------------------------------

def open_for(address: str, *, ticket_id: str | None = None, monkeypatch=None, subject="Cannot log in") -> models.Ticket:
    if ticket_id:
        monkeypatch.setattr(ids, "new_ticket_id", lambda: ticket_id)
    return tickets.open_ticket(tickets.NewTicket(channel="email", customer_email=address, subject=subject,
                                                 description="It says token expired.")).ticket


def test_a_customer_reply_with_the_reference_in_its_subject_joins_the_ticket(mailroom, monkeypatch):
    # Given María's ticket HD-7KQ2M9
    ticket = open_for("maria.garcia@gmail.com", ticket_id="HD-7KQ2M9", monkeypatch=monkeypatch)

    # When her Gmail reply ("Re: [HD-7KQ2M9] ...") arrives
    outcome = mailroom.corpus("gmail_reply_alternative.eml")

    # Then it is a message on that ticket: her new text, not the quoted history
    assert outcome == {"kind": "message", "ticket_id": "HD-7KQ2M9", "via": "subject"}
    assert [t.ticket_id for t in all_tickets()] == [ticket.ticket_id]
    message = events("HD-7KQ2M9")[-1]
    assert (message.type, message.actor) == ("message", "customer")
    assert 'it still says "token expired"' in message.body and "wrote:" not in message.body
    assert data(message)["channel"] == "email" and "sender" not in data(message)


def test_a_reply_within_seven_days_reopens_a_resolved_ticket(mailroom):
    # Given Ana's ticket, resolved on Tuesday
    ticket = open_for("ana.lima@example.com")
    tickets.resolve(ticket.ticket_id, "dana", "We reset your password.")

    # When she answers six days later
    with clock.frozen(TUESDAY + timedelta(days=6)):
        outcome = mailroom.deliver(email(subject=f"Re: [{ticket.ticket_id}] Cannot log in", body="It is back."))

    # Then the ticket is open again, its clock running, and the timeline says why
    assert outcome == {"kind": "message", "ticket_id": ticket.ticket_id, "via": "subject", "reopened": True}
    reopened = ledger.load(ticket.ticket_id)
    assert reopened.status == "open" and reopened.resolved_at is None and reopened.next_due_at is not None
    assert data(events(ticket.ticket_id)[-1])["reopened"] is True


def test_a_reply_after_seven_days_opens_a_new_ticket_that_refers_to_the_old_one(mailroom):
    ticket = open_for("ana.lima@example.com")
    tickets.resolve(ticket.ticket_id, "dana", "We reset your password.")

    with clock.frozen(TUESDAY + timedelta(days=8)):
        outcome = mailroom.deliver(email(subject=f"Re: [{ticket.ticket_id}] Cannot log in", body="It is back."))

    assert outcome["kind"] == "ticket" and outcome["related_ticket_id"] == ticket.ticket_id
    follow_up = ledger.load(outcome["ticket_id"])
    assert follow_up.related_ticket_id == ticket.ticket_id and follow_up.description == "It is back."
    assert follow_up.subject == "Cannot log in"  # our emails will carry the new reference, not the old one
    assert ledger.load(ticket.ticket_id).status == "resolved"
    assert data(events(follow_up.ticket_id)[0])["related_ticket_id"] == ticket.ticket_id


# -- once, and only once -----------------------------------------------------------------------------

def test_the_same_ses_delivery_twice_gives_one_ticket(mailroom):
    # Given a message SES delivered, and the same event delivered again (an async retry)
    first = mailroom.deliver(email(), ses_id="same00000000000000000000000000000000000")

    # When the same SES event arrives a second time
    second = mailroom.invoke(mailroom.event(ses_id="same00000000000000000000000000000000000"))

    # Then the second gets the first's outcome, and there is one ticket with one `created` event
    assert second == first and first["kind"] == "ticket"
    assert len(all_tickets()) == 1 and [e.type for e in events(first["ticket_id"])] == ["created"]


def test_an_infrastructure_error_fails_the_invocation_so_lambda_retries_it(mailroom):
    # Given an event whose raw message cannot be read (yet)
    event = mailroom.event(ses_id="late00000000000000000000000000000000000")

    # When the function runs, it fails (Lambda retries it, then the on-failure queue keeps it)
    with pytest.raises(Exception, match="NoSuchKey|Not Found|does not exist"):
        mailroom.invoke(event)
    assert all_tickets() == [] and intake.rejected() == []

    # And the retry, once the message is there, succeeds (no idempotency record blocks it)
    mailroom.s3.put_object(Bucket=mailroom.bucket, Key="inbound/late00000000000000000000000000000000000",
                           Body=email().as_bytes())
    assert mailroom.invoke(event)["kind"] == "ticket"


def test_an_email_is_routed_like_the_form_s_topic_its_words_name(mailroom):
    # Given the same request on the web form's Billing topic
    web = tickets.open_ticket(tickets.NewTicket(channel="web", customer_email="ben@example.com", category="billing",
                                                subject="Cannot change my invoice address",
                                                description="The form does not save it.")).ticket

    # When it comes by email
    outcome = mailroom.deliver(email(subject="Cannot change my invoice address", body="The form does not save it."))

    # Then it lands where the form's would: billing, normal priority, the same deadlines
    ticket = ledger.load(outcome["ticket_id"])
    assert (ticket.category, ticket.department, ticket.priority, ticket.tier) == (
        web.category, web.department, web.priority, web.tier) == ("billing", "billing", "normal", "L1")
    assert ticket.first_response_due_at == web.first_response_due_at
    assert data(events(ticket.ticket_id)[0])["rule"] == "billing"


def test_a_null_envelope_sender_is_a_machine_whatever_the_headers_say(mailroom):
    # Given a bounce SES received with MAIL FROM:<> (its event's source is empty)
    ses_id = secrets.token_hex(20)
    mailroom.s3.put_object(Bucket=mailroom.bucket, Key=f"inbound/{ses_id}",
                           Body=email(sender="Mail Server <mailer@example.net>", subject="Undelivered").as_bytes())
    event = mailroom.event(ses_id=ses_id)
    event["Records"][0]["ses"]["mail"]["source"] = ""

    # When the intake reads it, Then it is kept as automated: never a ticket, never acknowledged
    assert mailroom.invoke(event) == {"kind": "rejected", "reason": "automated"}
    assert record_of(ses_id)["detail"].startswith("null envelope sender")


# -- who we can write to ------------------------------------------------------------------------------

def from_address(address: str) -> bytes:
    """A message whose From header is ``address`` exactly as written (raw UTF-8 where it is not ASCII)."""
    return (f"From: {address}\r\nTo: {SUPPORT}\r\nSubject: Where is my order?\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@mail.example.com>\r\n\r\nIt has not arrived.\r\n").encode()


@pytest.mark.parametrize(("written", "stored"), DELIVERABLE.items())
def test_a_sender_we_can_write_to_opens_a_ticket_under_the_address_we_send_to(mailroom, written, stored):
    outcome = mailroom.deliver(from_address(written))

    assert outcome["kind"] == "ticket", outcome
    assert ledger.load(outcome["ticket_id"]).customer_email == stored


@pytest.mark.parametrize("address", UNDELIVERABLE)
def test_a_sender_we_cannot_write_to_never_becomes_a_customer(mailroom, address):
    # When mail arrives from an address SES cannot send to (as far as a From header can carry it)
    ses_id = secrets.token_hex(20)
    outcome = mailroom.deliver(from_address(address), ses_id=ses_id)

    # Then it is kept for agents with the reason, or (a header injection: the From line alone is a
    # valid address) the ticket belongs to that valid address: never to one we cannot write to
    if outcome["kind"] == "rejected":
        assert outcome["reason"] in ("undeliverable", "unparseable")
        assert record_of(ses_id)["s3_key"] == f"inbound/{ses_id}"
    else:
        assert addresses.is_deliverable(ledger.load(outcome["ticket_id"]).customer_email)
    assert all(addresses.is_deliverable(t.customer_email) for t in all_tickets())


def test_a_non_ascii_sender_is_recorded_with_the_reason(mailroom):
    ses_id = secrets.token_hex(20)

    outcome = mailroom.deliver(from_address("Jörg <jörg@example.com>"), ses_id=ses_id)

    assert outcome == {"kind": "rejected", "reason": "undeliverable"}
    record = record_of(ses_id)
    assert record["sender"] == "jörg@example.com" and "cannot write to the sender" in record["detail"]


# -- what a message may cost: every item within its size budget ---------------------------------------

def with_files(count: int, *, subject: str = "Scans of all my receipts", sender: str = "ana.lima@example.com") -> bytes:
    """A message with ``count`` attachments of long names (3,000 make about 600 KB)."""
    boundary = "=_files"
    parts = [f"From: Ana Lima <{sender}>\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n"
             f"Message-ID: <{secrets.token_hex(8)}@mail.example.com>\r\nMIME-Version: 1.0\r\n"
             f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n',
             f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nAll my receipts are attached.\r\n"]
    for n in range(count):
        name = f"{n:04d}-scanned-receipt-from-the-accounting-export-with-a-very-long-name-{'x' * 40}.pdf"
        parts.append(f"--{boundary}\r\nContent-Type: application/pdf\r\n"
                     f'Content-Disposition: attachment; filename="{name}"\r\n\r\n%PDF\r\n')
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def stored_size(pk: str, sk: str) -> int:
    """The item's size as DynamoDB counts it, read back from the table."""
    from helpdesk.budget import item_size

    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    return item_size(boto3.client("dynamodb").get_item(TableName=models.Ticket.Meta.table_name, Key=key)["Item"])


def test_an_email_with_3000_attachments_becomes_a_ticket_that_says_what_it_left_out(mailroom):
    # Given a 600 KB email with 3,000 attachments with long names
    raw = with_files(3000)
    assert len(raw) > 550 * 1024

    # When it arrives
    outcome = mailroom.deliver(raw)

    # Then it is a ticket whose item, and its event's, fit DynamoDB's 400 KB, listing the first files
    assert outcome["kind"] == "ticket", outcome
    ticket = ledger.load(outcome["ticket_id"])
    [created] = events(ticket.ticket_id)
    assert stored_size(ticket.pk, ticket.sk) < 400 * 1024 and stored_size(created.pk, created.sk) < 400 * 1024
    assert ticket.attachments[0]["filename"].startswith("0000-") and "key" in ticket.attachments[0]
    # ...and saying how many more there were (the raw mail keeps them all)
    assert len(ticket.attachments) == budget.LISTED_MAX
    assert ticket.omitted.as_dict() == {"attachments": 3000 - budget.LISTED_MAX}
    assert len(data(created)["attachments"]) == budget.LISTED_MAX
    assert created.omitted.as_dict() == {"attachments": 3000 - budget.LISTED_MAX}


def test_replies_with_files_keep_adding_to_what_the_ticket_left_out(mailroom):
    # Given a ticket opened with 120 files (20 past what an item lists)
    outcome = mailroom.deliver(with_files(120))
    tid = outcome["ticket_id"]

    # When the customer answers twice with 30 more files each
    for _ in range(2):
        assert mailroom.deliver(with_files(30, subject=f"Re: [{tid}] More receipts"))["kind"] == "message"

    # Then the ticket still lists as many as an item may, and counts every file it left out
    ticket = ledger.load(tid)
    assert len(ticket.attachments) == budget.LISTED_MAX
    assert ticket.omitted.as_dict() == {"attachments": 20 + 30 + 30}
    # ...while each message lists its own files
    messages_ = [e for e in events(tid) if e.type == "message"]
    assert [len(data(m)["attachments"]) for m in messages_] == [30, 30]


# -- abuse -------------------------------------------------------------------------------------------

def test_a_sender_flooding_the_address_is_rate_limited_per_hour(mailroom, monkeypatch):
    monkeypatch.setenv(Env.NEW_TICKETS_PER_HOUR, "3")

    # When one sender opens four new requests within the hour
    outcomes = [mailroom.deliver(email(subject=f"Request {n}")) for n in range(4)]

    # Then three tickets open and the fourth is recorded as rate limited
    assert [o["kind"] for o in outcomes] == ["ticket", "ticket", "ticket", "rejected"]
    assert outcomes[3]["reason"] == "rate_limited"
    assert intake.rejected(reason="rate_limited")[0]["subject"] == "Request 3"
    # ...while another sender, and the flooder's replies to an existing ticket, still get through
    assert mailroom.deliver(email(sender="ben@example.com"))["kind"] == "ticket"
    reply = email(subject=f"Re: [{outcomes[0]['ticket_id']}] Request 0", body="More details.")
    assert mailroom.deliver(reply)["kind"] == "message"
    # ...and the next hour the sender may open tickets again
    with clock.frozen(TUESDAY + timedelta(hours=1)):
        assert mailroom.deliver(email(subject="Request 4"))["kind"] == "ticket"
    # The counter is an item with a TTL in the ticket table
    [counter, *_] = models.SenderCounter.scan(models.SenderCounter.pk.startswith("RATE#"))
    assert counter.expires_at > TUESDAY


def test_a_reply_stream_stops_at_what_one_ticket_takes_and_nothing_is_lost(mailroom, monkeypatch):
    monkeypatch.setenv(Env.MESSAGES_PER_TICKET, "2")
    # Given a ticket (a spoofed reply stream to someone's ticket looks just like this)
    tid = mailroom.deliver(email())["ticket_id"]

    # When three replies arrive
    outcomes = [mailroom.deliver(email(subject=f"Re: [{tid}] Refund", body=f"Reply {n}."), ses_id=f"rep{n:037d}")
                for n in range(3)]

    # Then two join the ticket and the third is kept for agents with its raw mail
    assert [o["kind"] for o in outcomes] == ["message", "message", "rejected"]
    assert outcomes[2] == {"kind": "rejected", "reason": "rate_limited", "ticket_id": tid}
    record = record_of(f"rep{2:037d}")
    assert record["s3_key"] == f"inbound/rep{2:037d}" and "2 messages" in record["detail"]
    assert [e.type for e in events(tid)] == ["created", "message", "message"]


def test_one_sender_adds_so_many_messages_an_hour(mailroom, monkeypatch):
    monkeypatch.setenv(Env.MESSAGES_PER_HOUR, "2")
    tid = mailroom.deliver(email())["ticket_id"]

    kinds = [mailroom.deliver(email(subject=f"Re: [{tid}] Refund", body=f"Reply {n}."))["kind"] for n in range(3)]

    assert kinds == ["message", "message", "rejected"]
    assert intake.rejected(reason="rate_limited")[0]["ticket_id"] == tid


def test_a_retried_delivery_spends_the_sender_s_slot_once(mailroom, monkeypatch):
    monkeypatch.setenv(Env.NEW_TICKETS_PER_HOUR, "2")
    # Given a message whose first attempt fails at the write (DynamoDB throttled, say)
    commit, calls = ledger.commit, []

    def throttled_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("ProvisionedThroughputExceededException")
        return commit(*args, **kwargs)

    monkeypatch.setattr(ledger, "commit", throttled_once)
    first = mailroom.event(ses_id="retry0000000000000000000000000000000000")
    mailroom.s3.put_object(Bucket=mailroom.bucket, Key="inbound/retry0000000000000000000000000000000000",
                           Body=email().as_bytes())
    with pytest.raises(RuntimeError):
        mailroom.invoke(first)

    # When Lambda retries it, and the sender writes once more within the hour
    retried = mailroom.invoke(first)
    another = mailroom.deliver(email(subject="Another question"))

    # Then both are tickets: the failed attempt gave its slot back
    assert (retried["kind"], another["kind"]) == ("ticket", "ticket")


def test_rejected_mail_is_listed_newest_first_and_by_reason(mailroom, monkeypatch):
    monkeypatch.setenv(Env.NEW_TICKETS_PER_HOUR, "1")
    mailroom.corpus("vacation_autoreply.eml")
    with clock.frozen(TUESDAY + timedelta(minutes=1)):
        mailroom.deliver(email())
        mailroom.deliver(email(subject="again"))
    with clock.frozen(TUESDAY + timedelta(days=1)):
        assert [r["reason"] for r in intake.rejected()] == ["rate_limited", "automated"]
        assert [r["reason"] for r in intake.rejected(reason="automated")] == ["automated"]
        assert intake.rejected(limit=1)[0]["subject"] == "again"
        assert intake.rejected(days=1) == []  # only yesterday's partition had them
    record = next(iter(models.RejectedMail.query(models.rejected_pk("2026-11-24"))))
    assert record.expires_at == record.received_at + timedelta(days=intake.RAW_MAIL_DAYS)


# -- what the customer gets back ----------------------------------------------------------------------

def test_the_acknowledgement_answers_the_customers_email_and_a_reply_to_it_comes_back(
        mailroom, notifications, lambda_context):
    from functions.delivery import handler as delivery
    from functions.publisher import handler as publisher

    # Given a customer's email opened a ticket
    original = email()
    outcome = mailroom.deliver(original)

    # When the publisher and the delivery function do their part
    assert publisher.handler(notifications.stream.read(), lambda_context) == {"batchItemFailures": []}
    [created] = notifications.customer.drain()
    delivery.handler(sns_event(created), lambda_context)

    # Then the acknowledgement is threaded as a reply to her email, with the ticket's reply address
    [sent] = notifications.sent_emails()
    ack = BytesParser(policy=policy.default).parsebytes(sent.raw_data.encode())
    tid = outcome["ticket_id"]
    assert ack["In-Reply-To"] == original["Message-ID"] and ack["References"] == original["Message-ID"]
    assert ack["Subject"] == f"Re: [{tid}] Refund for a double charge"
    assert ack["Reply-To"] == mail.reply_address(SUPPORT, tickets.reply_token(tid))
    assert ack["Auto-Submitted"] == "auto-replied"

    # And an agent's later answer names her email first in References, then the thread root
    tickets.reply(tid, "dana", "Refunded.")
    publisher.handler(notifications.stream.read(), lambda_context)
    [answer] = notifications.customer.drain()
    delivery.handler(sns_event(answer), lambda_context)
    later = BytesParser(policy=policy.default).parsebytes(notifications.sent_emails()[-1].raw_data.encode())
    root = messages.thread_root_id(tid, DOMAIN)
    assert later["In-Reply-To"] == root and later["References"].split() == [original["Message-ID"], root]

    # And her answer to the acknowledgement (SES replaced our Message-ID, so only the subject and
    # the reply address say which ticket) comes back to the ticket, unacknowledged
    reply_to = str(ack["Reply-To"])
    reply = email(subject=str(ack["Subject"]), to=reply_to, body="Thank you!",
                  In_Reply_To="<0100019abc@email.amazonses.com>")
    assert mailroom.deliver(reply, recipients=[reply_to]) == {
        "kind": "message", "ticket_id": tid, "via": "reply_token"}
    publisher.handler(notifications.stream.read(), lambda_context)
    assert notifications.customer.drain() == []  # a customer's message is not acknowledged


def test_an_auto_reply_publishes_nothing(mailroom, notifications, lambda_context):
    from functions.publisher import handler as publisher

    mailroom.corpus("out_of_office_exchange.eml")

    publisher.handler(notifications.stream.read(), lambda_context)
    assert notifications.customer.drain() == [] and notifications.sent_emails() == []


@pytest.mark.parametrize(("subject", "ticket_subject"), [
    ("Re: [HD-7KQ2M9] Cannot log in", "Cannot log in"), ("AW: RE: [hd-4m8n2p] Rechnung", "Rechnung"),
    ("Fwd: Your order has shipped", "Fwd: Your order has shipped"), ("Re: HD-7KQ2M9 again", "HD-7KQ2M9 again"),
    ("Re:", "Re:"), ("[HD-7KQ2M9]", "")])
def test_a_new_tickets_subject_drops_reply_prefixes_and_other_tickets_references(subject, ticket_subject):
    assert intake.ticket_subject(subject) == ticket_subject


# -- the local stand-in for SES --------------------------------------------------------------------------

def shape(value):
    """The structure of a JSON value: keys and types, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_the_local_smtp_intake_sends_the_event_ses_sends():
    from infra.local import smtp

    # Given a message as the local SMTP intake stores it (SES's headers first)
    raw = (ROOT / "events" / "ses" / "inbound.eml").read_bytes()
    raw = raw[raw.index(b"From: "):]
    at = TUESDAY
    stored = smtp.ses_headers(message_id="m" * 40, mail_from="ana.lima@example.com", recipients=[SUPPORT],
                              peer="[127.0.0.1]", helo="laptop", at=at) + raw

    # When it builds the SES event
    event = smtp.ses_event(message_id="m" * 40, raw=stored, mail_from="ana.lima@example.com",
                           recipients=[SUPPORT], at=at)

    # Then it has exactly the sample's shape, and the facts of this message
    sample = sample_event("ses/inbound.json")
    assert shape(event) == shape(sample)
    common = event["Records"][0]["ses"]["mail"]["commonHeaders"]
    assert common == sample["Records"][0]["ses"]["mail"]["commonHeaders"]
    names = [h["name"] for h in event["Records"][0]["ses"]["mail"]["headers"]]
    assert names == [h["name"] for h in sample["Records"][0]["ses"]["mail"]["headers"]]
    receipt = intake.Receipt.from_ses(event["Records"][0])
    assert (receipt.ses_message_id, receipt.spam, receipt.virus, receipt.recipients) == ("m" * 40, "PASS", "PASS", (SUPPORT,))


@pytest.mark.parametrize(("recipient", "answer"), [
    ("support@helpdesk.local", None), ("SUPPORT+hd-7kq2m9-abc@HELPDESK.local", None),
    ("sales@helpdesk.local", "550 5.1.1"), ("support@example.com", "550 5.7.1")])
def test_the_local_smtp_intake_accepts_only_the_support_address(recipient, answer):
    from infra.local.smtp import Receiver

    receiver = Receiver(support_address=SUPPORT, bucket="b", invoke=lambda e, c: None)

    refusal = receiver.refusal(recipient)
    assert (refusal[:9] if refusal else None) == answer
