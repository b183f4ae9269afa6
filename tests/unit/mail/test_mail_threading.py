"""Threading helpers: ticket references, reply tokens, and the Message-IDs we send."""

import pytest

from helpdesk import ids, mail


@pytest.mark.parametrize(("subject", "reference"), [
    ("Re: [HD-7KQ2M9] Cannot log in", "HD-7KQ2M9"),
    ("RE: FW: HD-7KQ2M9 invoice", "HD-7KQ2M9"),
    ("re: [hd-7kq2m9] lower case", "HD-7KQ2M9"),
    ("Question about ticket HD-7KQ2M9.", "HD-7KQ2M9"),
    ("(HD-ABCDEF)", "HD-ABCDEF"),
    ("HD-7KQ2M9 and [HD-ABCDEF]", "HD-ABCDEF"),  # the bracketed one is ours; a bare one may be quoted text
    ("HD-7KQ2M9 then HD-ABCDEF", "HD-7KQ2M9"),
    ("[HD-7KQ2M9", "HD-7KQ2M9"),
    ("No reference here", None),
    ("HD-7KQ2M", None),  # too short
    ("HD-7KQ2M9X", None),  # too long
    ("XHD-7KQ2M9", None),
    ("HD-7KQ2MI", None),  # I, L, O, U are not Crockford digits
    ("HD-OOOOOO", None),
    ("HD_7KQ2M9", None),
    ("", None),
])
def test_find_ticket_reference(subject, reference):
    assert mail.find_ticket_reference(subject) == reference


def test_every_new_ticket_id_is_found_in_a_subject():
    for _ in range(200):
        ticket_id = ids.new_ticket_id()
        assert mail.find_ticket_reference(f"Re: [{ticket_id.lower()}] hello") == ticket_id


TOKEN = "hF3k9Q_zT2vLx8mN4pR7sW1yB6cD0eG5jK-uA9oIq2E"  # the shape of ids.access_token: 43 URL-safe chars


@pytest.mark.parametrize(("recipients", "token"), [
    ([f"support+{TOKEN}@helpdesk.local"], TOKEN),
    ([f"Acme Support <support+{TOKEN}@helpdesk.local>"], TOKEN),
    (["other@example.com", f"SUPPORT+{TOKEN}@HelpDesk.Local"], TOKEN),  # the token keeps its case
    ([mail.Mailbox(f"support+{TOKEN}@helpdesk.local", "Acme")], TOKEN),
    (["support@helpdesk.local"], None),
    ([f"sales+{TOKEN}@helpdesk.local"], None),
    ([f"support+{TOKEN}@evil.example"], None),
    (["support+bad token@helpdesk.local"], None),
    (["support+@helpdesk.local"], None),
    ([], None),
])
def test_reply_token_from(recipients, token):
    assert mail.reply_token_from(recipients, "support@helpdesk.local") == token


def test_reply_address_round_trips():
    address = mail.reply_address("support@helpdesk.local", TOKEN)
    assert address == f"support+{TOKEN}@helpdesk.local"
    assert mail.reply_token_from([address], "support@helpdesk.local") == TOKEN
    with pytest.raises(ValueError):
        mail.reply_address("support@helpdesk.local", "not a token")


def test_new_message_id_is_deterministic_and_names_its_ticket():
    first = mail.new_message_id("HD-7KQ2M9", "01HMZ3Q8W6K4T2V9X7B5N3P1R0", "Mail.Example.com")
    assert first == "<HD-7KQ2M9.01HMZ3Q8W6K4T2V9X7B5N3P1R0@mail.example.com>"
    assert mail.new_message_id("HD-7KQ2M9", "01HMZ3Q8W6K4T2V9X7B5N3P1R0", "mail.example.com") == first
    assert mail.new_message_id("HD-7KQ2M9", "other-event", "mail.example.com") != first
    assert mail.ticket_id_from_message_id(first, "mail.example.com") == "HD-7KQ2M9"
    assert mail.ticket_id_from_message_id(first, "other.example.com") is None
    assert mail.ticket_id_from_message_id("<CAJ8k2n@mail.gmail.com>", "mail.example.com") is None


def test_new_message_id_keeps_the_id_valid_whatever_the_event_id():
    message_id = mail.new_message_id("HD-7KQ2M9", "evt 1<>@\n", "mail.example.com")
    assert message_id == "<HD-7KQ2M9.evt-1@mail.example.com>"
    assert mail.new_message_id("HD-7KQ2M9", "e1", "bücher.example") == "<HD-7KQ2M9.e1@xn--bcher-kva.example>"
    with pytest.raises(ValueError):
        mail.new_message_id("HD-7KQ2M9", "e1", "not a domain")
    with pytest.raises(ValueError):
        mail.new_message_id("", "e1", "mail.example.com")


def test_message_ids_deduplicates_in_reply_to_first():
    inbound = mail.InboundMail(sender=mail.Mailbox("a@b.c"), subject="s", text="t",
                               in_reply_to="<b@x>", references=("<a@x>", "<b@x>"))
    assert mail.message_ids(inbound) == ["<b@x>", "<a@x>"]
    assert mail.message_ids(mail.InboundMail(sender=mail.Mailbox("a@b.c"), subject="s", text="t")) == []
