"""Outbound MIME: what the customer's client receives, and how it threads."""

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from helpdesk import clock, mail
from tests.addresses import DELIVERABLE, UNDELIVERABLE

SUPPORT = "Acme Support <support@helpdesk.local>"
MESSAGE_ID = mail.new_message_id("HD-7KQ2M9", "01HMZ3Q8W6K4T2V9X7B5N3P1R0", "helpdesk.local")


def _build(**changes) -> bytes:
    arguments = dict(
        sender=SUPPORT, to="María García <maria.garcia@gmail.com>",
        subject="[HD-7KQ2M9] Re: Ünïcödé subject – with a dash and 🚚",
        text="Hello María,\n\nWe reset your password. Ça marche ?\n",
        html="<p>Hello María,</p><p>We reset your password.</p>",
        message_id=MESSAGE_ID, in_reply_to="<CAJ8k2n+Fq3d9x7W@mail.gmail.com>",
        references=["<HD-7KQ2M9.01HMZ2A3B4C5D6E7F8G9H0J1K2@helpdesk.local>"],
    )
    arguments.update(changes)
    with clock.frozen(datetime(2024, 1, 15, 10, 0, tzinfo=UTC)):
        return mail.build_outbound(**arguments)


def test_an_outbound_message_round_trips_through_the_parser():
    # Given an agent's answer built for sending
    raw = _build(reply_to=mail.reply_address("support@helpdesk.local", "tok_EN-123"))

    # When the customer's side parses it
    inbound = mail.parse_inbound(raw)

    # Then it comes from us, to the customer, with the subject and text intact
    assert (inbound.sender.address, inbound.sender.name) == ("support@helpdesk.local", "Acme Support")
    assert [(m.name, m.address) for m in inbound.to] == [("María García", "maria.garcia@gmail.com")]
    assert inbound.subject == "[HD-7KQ2M9] Re: Ünïcödé subject – with a dash and 🚚"
    assert inbound.text == "Hello María,\n\nWe reset your password. Ça marche ?"
    assert inbound.automated is None and inbound.defects == ()
    # ...threaded under the customer's mail and our earlier one
    assert inbound.message_id == MESSAGE_ID
    assert inbound.in_reply_to == "<CAJ8k2n+Fq3d9x7W@mail.gmail.com>"
    assert inbound.references == ("<HD-7KQ2M9.01HMZ2A3B4C5D6E7F8G9H0J1K2@helpdesk.local>",
                                  "<CAJ8k2n+Fq3d9x7W@mail.gmail.com>")
    assert inbound.date == datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
    assert mail.reply_token_from([m.address for m in inbound.reply_to], "support@helpdesk.local") == "tok_EN-123"


def test_both_parts_are_present_and_seven_bit_clean():
    raw = _build()
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("html",)).get_content().rstrip() == "<p>Hello María,</p><p>We reset your password.</p>"
    assert msg["MIME-Version"] == "1.0" and "Auto-Submitted" not in msg


def test_an_acknowledgement_is_marked_auto_replied():
    raw = _build(auto_submitted=mail.AUTO_REPLIED)
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    # ...so our own parser would never answer it (no loop between two help desks)
    assert mail.parse_inbound(raw).automated == "Auto-Submitted: auto-replied"


def test_extra_headers_and_text_only():
    raw = _build(html=None, headers={"X-Helpdesk-Ticket": "HD-7KQ2M9"}, in_reply_to=None, references=())
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert msg.get_content_type() == "text/plain"
    assert msg["X-Helpdesk-Ticket"] == "HD-7KQ2M9"
    assert "In-Reply-To" not in msg and "References" not in msg


def test_a_long_reference_chain_keeps_the_root_and_the_latest():
    chain = [f"<m{i}@x.example>" for i in range(40)]
    msg = BytesParser(policy=policy.default).parsebytes(_build(references=chain, in_reply_to="<m39@x.example>"))
    refs = str(msg["References"]).split()
    assert len(refs) == 20 and refs[0] == "<m0@x.example>" and refs[-1] == "<m39@x.example>"


def test_a_multiline_subject_is_flattened():
    inbound = mail.parse_inbound(_build(subject="Line one\r\nBcc: victim@example.com"))
    assert inbound.subject == "Line one Bcc: victim@example.com"


@pytest.mark.parametrize("changes", [
    {"to": "not an address"},
    {"to": []},
    {"sender": "José <josé@example.com>"},  # SES cannot send a non-ASCII local part
    {"message_id": "no id here"},
    {"headers": {"Bcc": "x@example.com"}},
    {"headers": {"X-Bad\nName": "v"}},
    {"headers": {"X-Injected": "v\r\nBcc: x@example.com"}},
    {"auto_submitted": "yes"},
])
def test_invalid_input_is_refused(changes):
    with pytest.raises(ValueError):
        _build(**changes)


@pytest.mark.parametrize(("written", "stored"), DELIVERABLE.items())
def test_every_address_we_accept_can_be_written_to(written, stored):
    # Given an address the API and the intake accept, as the customer wrote it or as we stored it
    for to in (written, stored, mail.Mailbox(stored, "Ann Lee")):
        # When an email to it is built, Then it goes to the stored form (IDNA domain, lower case)
        msg = BytesParser(policy=policy.default).parsebytes(_build(to=to))
        assert [a.addr_spec for a in msg["To"].addresses] == [stored]


@pytest.mark.parametrize("address", UNDELIVERABLE)
def test_every_address_we_refuse_is_refused_here_too(address):
    # A NUL, a header injection, a non-ASCII local part... never reach the To header
    for to in (address, mail.Mailbox(address)):
        with pytest.raises(ValueError):
            _build(to=to)
