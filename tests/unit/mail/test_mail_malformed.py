"""Malformed MIME: the best InboundMail possible, and only UnparseableMail when nothing is left."""

import random
from pathlib import Path

import pytest

from helpdesk import mail

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.eml"))


def _parse_or_reject(raw: bytes) -> mail.InboundMail | None:
    try:
        inbound = mail.parse_inbound(raw)
    except mail.UnparseableMail as rejected:
        assert rejected.message
        return None
    list(mail.iter_attachments(raw))  # never raises either
    return inbound


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_a_truncated_message_never_raises_anything_else(path):
    raw = path.read_bytes()
    for cut in range(0, len(raw), max(1, len(raw) // 40)):
        inbound = _parse_or_reject(raw[:cut])
        if inbound is not None:
            assert inbound.sender.address and (inbound.text or inbound.subject)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corrupted_bytes_never_raise_anything_else(path):
    rng = random.Random(path.name)
    raw = bytearray(path.read_bytes())
    for _ in range(25):
        damaged = bytearray(raw)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.choice(b"\x00\r\n:;=\"<>-\xff\x1b?")
        _parse_or_reject(bytes(damaged))


def test_a_message_without_header_body_separator_or_encoding_keeps_its_text():
    inbound = mail.parse_inbound(b"From: a@example.com\nSubject: hi\nhello there")
    assert inbound.sender.address == "a@example.com"
    assert inbound.text == "hello there" or inbound.subject == "hi"


def test_deep_nesting_is_cut_off_not_recursed_into():
    depth = 200
    opening = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth))
    raw = f"From: a@example.com\nSubject: nested\n{opening}Content-Type: text/plain\n\ndeep text\n".encode()
    inbound = mail.parse_inbound(raw)
    assert inbound.subject == "nested"
    assert any("nesting" in d for d in inbound.defects) or inbound.text == "deep text"


def test_a_header_bomb_is_bounded():
    raw = b"From: a@example.com\nSubject: x\n" + b"X-Junk: y\n" * 20_000 + b"\nbody\n"
    inbound = mail.parse_inbound(raw)
    assert inbound.text == "body" and len(inbound.defects) <= mail.MAX_DEFECTS


def test_a_huge_body_is_truncated_with_a_defect():
    raw = b"From: a@example.com\nSubject: x\n\n" + b"all work and no play\n" * 10_000
    inbound = mail.parse_inbound(raw)
    assert len(inbound.full_text) <= mail.MAX_TEXT_CHARS
    assert any("truncated" in d for d in inbound.defects)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "no sender"),
    (b"\x00\xff garbage \x1b", "no sender"),
    (b"Subject: hi\n\nno sender here\n", "no sender"),
    (b"From: <>\nReturn-Path: <>\n\ntext\n", "no sender"),
    (b"From: a@example.com\n\n\n", "no text"),
    (b"From: a@example.com\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n", "no text"),
])
def test_unrecoverable_messages_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(mail.UnparseableMail, match=reason):
        mail.parse_inbound(raw)


def test_sender_falls_back_through_reply_to_sender_and_return_path():
    base = b"Subject: s\n%s\nbody\n"
    assert mail.parse_inbound(base % b"From: broken\nSender: s@example.com\n").sender.address == "s@example.com"
    inbound = mail.parse_inbound(base % b"Return-Path: <bounce@example.com>\n")
    assert inbound.sender.address == "bounce@example.com"
    assert any("taken from Return-Path" in d for d in inbound.defects)


def test_a_noreply_from_with_a_reply_to_means_the_person_is_the_reply_to():
    raw = b"From: Shop <no-reply@shop.example>\nReply-To: Kim <kim@example.com>\nSubject: s\n\nbody\n"
    assert mail.parse_inbound(raw).sender == mail.Mailbox("kim@example.com", "Kim")
    raw = b"From: Shop <no-reply@shop.example>\nSubject: s\n\nbody\n"
    assert mail.parse_inbound(raw).sender.address == "no-reply@shop.example"


def test_hostile_html_nesting_stays_linear():
    nested_quotes = "<blockquote>" * 3000 + "deep" + "</blockquote>" * 3000
    assert mail.html_to_text(nested_quotes) == "> " * 5 + "deep"
    nested_links = "<a href='https://x.example/p'>x" * 3000 + "</a>" * 3000
    assert mail.html_to_text(nested_links).count("(https://x.example/p)") == 3000
