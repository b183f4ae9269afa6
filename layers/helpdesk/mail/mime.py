"""The MIME structure: parse a message leniently, walk its parts, read a part's type and payload."""

from __future__ import annotations

import binascii
import io
import re
from collections.abc import Iterator
from email import errors as email_errors, policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from helpdesk.mail.headers import decode_words, header, header_text, unescape_8bit

MAX_DEPTH = 30  # MIME nesting followed


def parse_message(raw: bytes) -> EmailMessage:
    """The parsed message, to share between :func:`parse_inbound` and :func:`iter_attachments`
    (parse once). A multipart whose declared boundary never appears is re-read with the boundary
    its body actually uses."""
    raw, dropped = _drop_junk_header_lines(bytes(raw))
    # parse() streams the bytes in chunks; parsebytes() would first copy them all into one str,
    # which the parser then copies again at four bytes a character.
    msg = BytesParser(policy=policy.default).parse(io.BytesIO(raw))
    if dropped:
        dropped_lines = f"{dropped} non-header line(s) dropped from the header block"
        msg.defects.append(email_errors.InvalidHeaderDefect(dropped_lines))
    for part, _ in walk(msg):
        if content_type_of(part).startswith("multipart/") and not part.is_multipart():
            _repair_multipart(part)
    return msg


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:|[ \t]|From ")


def _drop_junk_header_lines(raw: bytes) -> tuple[bytes, int]:
    """Drop lines in the header block that are neither a header nor a continuation: the parser
    would take the first of them for the start of the body, and lose every header after it."""
    end = _HEADER_END.search(raw)
    head = raw[:end.start() if end else len(raw)]
    lines = head.splitlines(keepends=True)
    kept = [line for i, line in enumerate(lines)
            if _HEADER_LINE.match(line) and not (i == 0 and line[:1] in b" \t")]
    if len(kept) == len(lines):
        return raw, 0
    return b"".join(kept) + raw[len(head):], len(lines) - len(kept)


# Content-Type and -Disposition are read from the raw header too: policy.default re-parses the
# header into objects on every access, which made up most of the parsing time.
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def content_type_of(part: Message) -> str:
    """The content type, lower-cased; RFC 2045's default when missing or invalid."""
    value = header(part, "Content-Type").split(";")[0].strip().lower()
    return value if _MIME_TYPE.fullmatch(value) else part.get_default_type()


def content_param(part: Message, name: str) -> str:
    """A Content-Type parameter (charset, format...), lower-cased; "" when absent."""
    pattern = rf';\s*{name}\s*=\s*(?:"([^"]*)"|([^;\s]*))'
    match = re.search(pattern, header(part, "Content-Type"), re.IGNORECASE)
    return (match.group(1) if match.group(1) is not None else match.group(2)).strip().lower() if match else ""


def part_filename(part: Message) -> str:
    if "name" not in (header(part, "Content-Disposition") + header(part, "Content-Type")).lower():
        name = ""  # the common case, without policy.default's costly parameter parsing
    else:
        name = _declared_filename(part)
    if not name and content_type_of(part) in ("message/rfc822", "message/global") and part.is_multipart():
        inner = header_text(part.get_payload(0), "Subject")  # a forwarded mail: name it by subject
        name = f"{inner}.eml" if inner else ""
    name = unescape_8bit(name)
    return decode_words(name) if "=?" in name else name


def _declared_filename(part: Message) -> str:
    """Content-Disposition's filename, else Content-Type's name (RFC 2231 and encoded words)."""
    try:
        return str(part.get_filename() or "")
    except Exception:  # noqa: BLE001
        return ""


def part_disposition(part: Message) -> str:
    return header(part, "Content-Disposition").split(";")[0].strip().lower()


def is_body_part(part: Message) -> bool:
    """The text/plain and text/html parts that carry the message itself, not attached files."""
    return (content_type_of(part) in ("text/plain", "text/html") and part_disposition(part) != "attachment"
            and not part_filename(part))


def walk(msg: Message) -> Iterator[tuple[Message, int]]:
    """Every part with its depth, not descending into attached messages, and depth-capped."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part, depth
        if depth < MAX_DEPTH and part.is_multipart() and content_type_of(part).startswith("multipart/"):
            stack.extend((child, depth + 1) for child in reversed(part.get_payload()))


def raw_payload(part: Message) -> str:
    """The payload as the parser stored it (8-bit bytes as surrogate escapes). Read directly:
    get_payload() decodes 8-bit text with the declared charset, and raises on some bad ones."""
    payload = getattr(part, "_payload", None)
    return payload if isinstance(payload, str) else ""


def payload_bytes(part: Message) -> bytes:
    """Decoded payload. Base64 goes straight through binascii: far less memory than the parser's
    decoder, which splits the payload into lines first."""
    if part.is_multipart():  # message/rfc822, message/delivery-status: the enclosed messages
        return b"".join(sub.as_bytes() for sub in part.get_payload())
    payload = raw_payload(part)
    if payload and str(part.get("content-transfer-encoding", "")).strip().lower() == "base64":
        try:
            return binascii.a2b_base64(payload)
        except (binascii.Error, ValueError):
            pass
    return part.get_payload(decode=True) or b""


def _repair_multipart(part: Message) -> None:
    """Give a multipart the boundary its body uses when the declared one never appears (a
    mangled Content-Type header); the parser's defect stays on the part."""
    payload = raw_payload(part)
    found = re.findall(r"^--([0-9A-Za-z'()+_,./:=?-]{1,70}?)(?:--)?[ \t]*\r?$", payload, re.M)
    boundary = next((b for b in dict.fromkeys(found) if found.count(b) >= 2), None)
    if boundary is None:
        return
    try:
        raw = f'Content-Type: {content_type_of(part)}; boundary="{boundary}"\n\n{payload}'
        repaired = BytesParser(policy=policy.default).parsebytes(raw.encode("ascii", "surrogateescape"))
        if repaired.is_multipart():
            part.set_param("boundary", boundary)
            part.set_payload(repaired.get_payload())
    except Exception:  # noqa: BLE001 - unrepairable: the body is read as plain text
        pass
