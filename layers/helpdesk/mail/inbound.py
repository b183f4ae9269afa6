"""One inbound message as what a support agent needs: who wrote, what they wrote (without the quoted
history and signature), which files came with it, and whether a machine sent it.

Real mail is often malformed, so nothing here raises on bad MIME: every step degrades to a best
effort and records a defect. Only a message with no sender or no text at all raises
:class:`UnparseableMail`, whose message is the reason for the rejected-mail record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from helpdesk.errors import DomainError
from helpdesk.mail import signals
from helpdesk.mail.attachments import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, AttachmentInfo, list_attachments
from helpdesk.mail.bodytext import BODY_CONTROL, FORWARD_SUBJECT, html_to_text, tidy, trim_reply, unflow
from helpdesk.mail.charsets import bytes_to_text, decode_text
from helpdesk.mail.headers import Mailbox, header, header_text, mailboxes, msg_ids
from helpdesk.mail.mime import (
    MAX_DEPTH,
    content_param,
    content_type_of,
    is_body_part,
    parse_message,
    payload_bytes,
    walk,
)

MAX_TEXT_CHARS = 100_000  # body text kept; a ticket keeps far less (tickets.DESCRIPTION_MAX)
MAX_HTML_CHARS = 2_000_000  # HTML fed to the converter: bounds the CPU a hostile body can take
MAX_DEFECTS = 50


class UnparseableMail(DomainError):
    """No sender or no text could be recovered: the caller records the rejection with this reason."""

    code = "unparseable_mail"


@dataclass(frozen=True)
class InboundMail:
    sender: Mailbox
    subject: str
    text: str  # what the customer wrote: quoted history and signature trimmed
    full_text: str = ""  # the whole body as text, for when trimming guessed wrong
    to: tuple[Mailbox, ...] = ()
    cc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    message_id: str | None = None  # with angle brackets, as in the header
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()  # oldest first, as in the header
    date: datetime | None = None  # UTC
    attachments: tuple[AttachmentInfo, ...] = ()
    automated: str | None = None  # why we think a machine sent it (never auto-answer those)
    defects: tuple[str, ...] = ()


def parse_inbound(raw: bytes | Message, *, max_attachment_bytes: int = MAX_ATTACHMENT_BYTES) -> InboundMail:
    """Everything an agent needs from one inbound message (the raw bytes, or :func:`parse_message`'s
    result to parse only once). Never raises on bad MIME: what was wrong is in ``defects``.
    Raises :class:`UnparseableMail` only when no sender address, or neither body text nor a
    subject, can be recovered. An empty body with a subject is a valid mail (``text == ""``)."""
    defects = _Defects()
    try:
        msg = raw if isinstance(raw, Message) else parse_message(raw)
    except Exception as error:  # the parser is lenient; this is a pathological structure
        raise UnparseableMail(f"MIME structure could not be parsed: {type(error).__name__}") from None
    sender = _sender(msg, defects)
    subject = header_text(msg, "Subject")
    try:
        body = _body(msg, 0, defects)[0]
    except Exception as error:  # noqa: BLE001 - a bug in a heuristic must not lose the mail
        defects.add(f"body extraction failed: {type(error).__name__}")
        body = ""
    if len(body) > MAX_TEXT_CHARS:
        defects.add(f"body text truncated to {MAX_TEXT_CHARS} characters")
        body = body[:MAX_TEXT_CHARS]
    full_text = tidy(body.split("\n"))
    text = trim_reply(body, forwarded=bool(FORWARD_SUBJECT.match(subject)))
    if sender is None:
        raise UnparseableMail("no sender address in From, Reply-To, Sender or Return-Path",
                              details=list(defects.items))
    if not text and not subject:
        raise UnparseableMail("no text: empty body and no subject", details=list(defects.items))
    try:
        attachments = tuple(list_attachments(msg, max_attachment_bytes, MAX_ATTACHMENTS, keep=False))
    except Exception as error:  # noqa: BLE001
        defects.add(f"attachment listing failed: {type(error).__name__}")
        attachments = ()
    try:
        automated = signals.automated(msg, sender, subject)
    except Exception as error:  # noqa: BLE001
        defects.add(f"automation check failed: {type(error).__name__}")
        automated = None
    _collect_parser_defects(msg, defects)
    ids = msg_ids(header(msg, "In-Reply-To"))
    return InboundMail(
        sender=sender, subject=subject, text=text, full_text=full_text,
        to=tuple(mailboxes(msg, "To")), cc=tuple(mailboxes(msg, "Cc")),
        reply_to=tuple(mailboxes(msg, "Reply-To")),
        message_id=next(iter(msg_ids(header(msg, "Message-ID"))), None),
        in_reply_to=ids[0] if ids else None, references=tuple(msg_ids(header(msg, "References"))),
        date=_date(msg, defects), attachments=attachments, automated=automated,
        defects=tuple(defects.items),
    )


class _Defects:
    """Ordered, de-duplicated, capped: a hostile message cannot grow the record without bound."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        if text not in self.items and len(self.items) < MAX_DEFECTS:
            self.items.append(text)


def _collect_parser_defects(msg: Message, defects: _Defects) -> None:
    for part, _ in walk(msg):
        for defect in getattr(part, "defects", ()):
            detail = str(defect)
            defects.add(type(defect).__name__ + (f": {detail}" if detail else ""))


_NO_REPLY = re.compile(r"(?i)(?:no|do[-_.]?not)[-_.]?reply(?:[-_.+].*)?")


def _sender(msg: Message, defects: _Defects) -> Mailbox | None:
    """From, else Reply-To, Sender, Return-Path (the envelope sender SES records). A no-reply From
    with a Reply-To (contact forms, shop systems) means the person is the Reply-To."""
    sender = next(iter(mailboxes(msg, "From")), None)
    if sender and _NO_REPLY.fullmatch(sender.address.split("@")[0]):
        return next(iter(mailboxes(msg, "Reply-To")), sender)
    if sender:
        return sender
    for name in ("Reply-To", "Sender", "Return-Path"):
        boxes = mailboxes(msg, name)
        if boxes:
            defects.add(f"no usable From address: sender taken from {name}")
            return boxes[0]
    return None


def _date(msg: Message, defects: _Defects) -> datetime | None:
    value = header(msg, "Date")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add("unparseable Date header")
        return None
    if moment.tzinfo is None:  # "-0000": the time is UTC, the zone unknown
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- body text ----------------------------------------------------------------------------------


def _part_text(part: Message, defects: _Defects) -> str:
    text, defect = decode_text(payload_bytes(part), content_param(part, "charset") or None)
    if defect:
        defects.add(defect)
    text = BODY_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).replace("\xa0", " ")
    if content_type_of(part) == "text/html":
        if len(text) > MAX_HTML_CHARS:
            defects.add(f"HTML body truncated to {MAX_HTML_CHARS} characters")
            text = text[:MAX_HTML_CHARS]
        return html_to_text(text)
    if content_param(part, "format") == "flowed":
        return unflow(text, delsp=content_param(part, "delsp") == "yes")
    return text


def _body(part: Message, depth: int, defects: _Defects) -> tuple[str, str]:
    """(text, "plain" | "html" | "") for a part: plain preferred among alternatives, inline text
    parts of a mixed message joined in order (as Apple Mail splits text around inline images)."""
    ctype = content_type_of(part)
    if depth > MAX_DEPTH:
        defects.add(f"MIME nesting deeper than {MAX_DEPTH} ignored")
        return "", ""
    if ctype.startswith("multipart/") and not part.is_multipart():  # no parts found: read it all
        defects.add(f"{ctype} without parts: its body read as plain text")
        return bytes_to_text(payload_bytes(part)).replace("\r\n", "\n"), "plain"
    if ctype.startswith("multipart/"):
        children = part.get_payload()
        if ctype == "multipart/alternative":
            for child in children:
                if content_type_of(child) == "text/plain" and is_body_part(child):
                    text = _part_text(child, defects)
                    if text.strip():
                        return text, "plain"
            others = [_body(c, depth + 1, defects) for c in children if content_type_of(c) != "text/plain"]
            return next((r for r in others if r[0].strip()), ("", ""))
        if ctype == "multipart/related" and children:
            return _body(children[0], depth + 1, defects)
        found = [r for r in (_body(c, depth + 1, defects) for c in children) if r[0].strip()]
        kind = "plain" if any(k == "plain" for _, k in found) else ("html" if found else "")
        return "\n\n".join(t for t, _ in found), kind
    if is_body_part(part):
        return _part_text(part, defects), ctype.split("/")[1]
    return "", ""
