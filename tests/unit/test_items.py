"""What every item we write holds: text DynamoDB accepts, and no more than its size budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helpdesk import budget
from helpdesk.budget import Budget, fit, item_size
from helpdesk.models import Ticket, TicketEvent
from helpdesk.utf8 import storable

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "stored"), [
    ("plain ascii", "plain ascii"),
    ("Grüße 😀", "Grüße 😀"),
    ("a \ud800 b", "a \ufffd b"),  # UTF-7's "+2AA-": a lone high surrogate
    ("\udfff", "\ufffd"),  # a lone low one
    ("pair \ud83d\ude00 joined", "pair 😀 joined"),  # JSON's "\ud83d\ude00" escapes, kept apart
    ("\ude00\ud83d", "\ufffd\ufffd"),  # a pair in the wrong order is two lone ones
])
def test_text_that_utf8_cannot_hold_is_repaired(text, stored):
    assert storable(text) == stored
    storable(text).encode("utf-8")


@pytest.mark.parametrize(("item", "size"), [
    ({"pk": {"S": "abc"}}, 2 + 3),
    ({"n": {"N": "123"}}, 1 + 3),  # 1 byte per two significant digits, plus 1
    ({"n": {"N": "-0.00120"}}, 1 + 2),
    ({"flag": {"BOOL": True}, "none": {"NULL": True}}, 4 + 1 + 4 + 1),
    ({"name": {"S": "Grüße"}}, 4 + 7),  # UTF-8 bytes
    ({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}, 1 + 3 + (1 + 2) + (1 + 2)),
    ({"m": {"M": {"k": {"S": "v"}}}}, 1 + 3 + 1 + 1 + 1),
])
def test_item_sizes_are_counted_as_dynamodb_counts_them(item, size):
    assert item_size(item) == size


def attachments(count: int, name_length: int = 100) -> list[dict]:
    return [{"filename": f"{i:04d}" + "x" * name_length, "content_type": "application/pdf", "size": 1,
             "skipped": "too_many"} for i in range(count)]


def test_an_item_that_fits_is_written_as_it_is():
    ticket = Ticket("TICKET#HD-1", ticket_id="HD-1", attachments=attachments(3), description="short")
    serialized = ticket.serialize(null_check=False)
    assert budget.OMITTED not in serialized and len(serialized["attachments"]["L"]) == 3


def test_attachments_past_the_count_are_left_out_and_said():
    # Given a ticket listing 3,000 files
    ticket = Ticket("TICKET#HD-1", ticket_id="HD-1", attachments=attachments(3000), description="short")

    # When it is written
    serialized = ticket.serialize(null_check=False)

    # Then it lists the first ones and says how many more there were
    assert len(serialized["attachments"]["L"]) == budget.LISTED_MAX
    assert serialized["attachments"]["L"][0]["M"]["filename"]["S"].startswith("0000")
    assert serialized[budget.OMITTED] == {"M": {"attachments": {"N": str(3000 - budget.LISTED_MAX)}}}
    assert len(ticket.attachments) == 3000  # the object in hand is not changed


def test_what_was_left_out_before_adds_up():
    ticket = Ticket("TICKET#HD-1", ticket_id="HD-1", attachments=attachments(budget.LISTED_MAX + 3),
                    omitted={"attachments": 40})
    assert ticket.serialize(null_check=False)[budget.OMITTED] == {"M": {"attachments": {"N": "43"}}}


def test_past_the_bytes_the_last_entries_then_long_texts_give_way():
    # Given a budget of 20 KB, and an event with 60 files of long names and a 30 KB body
    small = Budget(lists=(("data", "attachments"),), texts=(("body",),), max_bytes=20 * 1024)
    event = TicketEvent("TICKET#HD-1", "EVENT#1", ticket_id="HD-1", event_id="1", type="message", at=AT,
                        actor="customer", body="é" * 15_000, data={"attachments": attachments(60, 300),
                                                                   "channel": "email"})

    # When it is fitted
    fitted = fit(event.serialize(), small)

    # Then the files go first, from the end, then the text is cut with a note; the rest is untouched
    assert item_size(fitted) <= small.max_bytes
    assert fitted["data"]["M"]["attachments"]["L"] == []
    omitted = {k: int(v["N"]) for k, v in fitted[budget.OMITTED]["M"].items()}
    assert omitted["attachments"] == 60 and 0 < omitted["body"] < 15_000
    body = fitted["body"]["S"]
    assert body.startswith("é" * 100) and body.endswith(f"[Shortened: {omitted['body']} characters left out.]")
    assert fitted["data"]["M"]["channel"] == {"S": "email"}
    assert event.serialize()["body"]["S"] == "é" * 15_000  # the input is not changed


def test_a_few_long_entries_give_way_before_any_text():
    small = Budget(lists=(("attachments",),), texts=(("description",),), max_bytes=20 * 1024)
    ticket = Ticket("TICKET#HD-1", ticket_id="HD-1", attachments=attachments(60, 300), description="d" * 5000)
    fitted = fit(ticket.serialize(null_check=False), small)
    kept = len(fitted["attachments"]["L"])
    assert 0 < kept < 60 and fitted["description"]["S"] == "d" * 5000
    assert fitted[budget.OMITTED]["M"] == {"attachments": {"N": str(60 - kept)}}
    assert item_size(fitted) <= small.max_bytes
