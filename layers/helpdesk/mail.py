"""Inbound and outbound email as pure functions: raw MIME bytes in, plain values out.

SES stores each inbound message raw in S3; the intake function hands the bytes here and gets back
what a support agent needs: who wrote, what they wrote (without the quoted history and signature),
which files came with it, and whether a machine sent it (so we never answer an auto-reply and loop).

Real mail is often malformed, so nothing here raises on bad MIME: every step degrades to a best
effort and records a defect. Only a message with no sender or no text at all raises
:class:`UnparseableMail`, whose message is the reason for the rejected-mail record.
No I/O, no logging, no AWS: standard library only.
"""

from __future__ import annotations

import binascii
import codecs
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import errors as email_errors, policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from helpdesk import clock
from helpdesk.errors import DomainError
from helpdesk.ids import CROCKFORD, REFERENCE_LENGTH

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # larger files are listed as skipped, never decoded
MAX_ATTACHMENTS = 50  # past this many, the rest are listed as skipped (a mail bomb stays cheap)
MAX_TEXT_CHARS = 100_000  # body text kept; a ticket keeps far less (tickets.DESCRIPTION_MAX)
MAX_HTML_CHARS = 2_000_000  # HTML fed to the converter: bounds the CPU a hostile body can take
MAX_DEPTH = 30  # MIME nesting followed
MAX_DEFECTS = 50
FILENAME_MAX_BYTES = 120  # UTF-8 bytes: fits any file system and an S3 key with room for a prefix
AUTO_REPLIED = "auto-replied"  # RFC 3834 Auto-Submitted values for build_outbound
AUTO_GENERATED = "auto-generated"


class UnparseableMail(DomainError):
    """No sender or no text could be recovered: the caller records the rejection with this reason."""

    code = "unparseable_mail"


@dataclass(frozen=True)
class Mailbox:
    address: str  # the addr-spec, domain lower-cased; the local part keeps its case (reply tokens)
    name: str = ""


@dataclass(frozen=True)
class AttachmentInfo:
    """What a ticket lists about a file; ``skipped`` says why it was not kept (``too_large``...)."""

    index: int  # 1-based, in document order: unique within the message, good for storage keys
    filename: str  # sanitised, unique within the message
    content_type: str
    size: int  # decoded bytes (estimated from the encoded length when skipped as too large)
    content_id: str | None = None  # without <>: what an HTML body's ``cid:`` links point at
    inline: bool = False
    skipped: str | None = None


@dataclass(frozen=True)
class Attachment(AttachmentInfo):
    content: bytes | None = None  # None exactly when skipped


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


# --- parsing ------------------------------------------------------------------------------------

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
    for part, _ in _walk(msg):
        if _ctype(part).startswith("multipart/") and not part.is_multipart():
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
    subject = _header_text(msg, "Subject")
    try:
        body = _body(msg, 0, defects)[0]
    except Exception as error:  # noqa: BLE001 - a bug in a heuristic must not lose the mail
        defects.add(f"body extraction failed: {type(error).__name__}")
        body = ""
    if len(body) > MAX_TEXT_CHARS:
        defects.add(f"body text truncated to {MAX_TEXT_CHARS} characters")
        body = body[:MAX_TEXT_CHARS]
    full_text = _tidy(body.split("\n"))
    text = trim_reply(body, forwarded=bool(_FORWARD_SUBJECT.match(subject)))
    if sender is None:
        raise UnparseableMail("no sender address in From, Reply-To, Sender or Return-Path",
                              details=list(defects.items))
    if not text and not subject:
        raise UnparseableMail("no text: empty body and no subject", details=list(defects.items))
    try:
        attachments = tuple(_attachments(msg, max_attachment_bytes, MAX_ATTACHMENTS, keep=False))
    except Exception as error:  # noqa: BLE001
        defects.add(f"attachment listing failed: {type(error).__name__}")
        attachments = ()
    try:
        automated = _automated(msg, sender, subject)
    except Exception as error:  # noqa: BLE001
        defects.add(f"automation check failed: {type(error).__name__}")
        automated = None
    _collect_parser_defects(msg, defects)
    ids = _msg_ids(_header(msg, "In-Reply-To"))
    return InboundMail(
        sender=sender, subject=subject, text=text, full_text=full_text,
        to=tuple(_mailboxes(msg, "To")), cc=tuple(_mailboxes(msg, "Cc")),
        reply_to=tuple(_mailboxes(msg, "Reply-To")),
        message_id=next(iter(_msg_ids(_header(msg, "Message-ID"))), None),
        in_reply_to=ids[0] if ids else None, references=tuple(_msg_ids(_header(msg, "References"))),
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
    for part, _ in _walk(msg):
        for defect in getattr(part, "defects", ()):
            detail = str(defect)
            defects.add(type(defect).__name__ + (f": {detail}" if detail else ""))


# --- headers ------------------------------------------------------------------------------------
# Header values are read raw and decoded here rather than through policy.default's header objects:
# those raise on some malformed input and leave undecodable bytes as lone surrogates.

_SURROGATES = re.compile(r"[\udc80-\udcff]+")
_HEADER_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_ADDRESS = re.compile(r"[^\s@<>(),;:\"\[\]\\]+@[^\s@<>(),;:\"\[\]\\]+")
_MSG_ID = re.compile(r"<([^<>\s]+)>")


def _header(msg: Message, name: str) -> str:
    """The first raw value of ``name``, unfolded, with raw 8-bit bytes decoded; "" when absent."""
    wanted = name.lower()
    try:
        for key, value in msg.raw_items():
            if key.lower() == wanted:
                return _unescape_8bit(re.sub(r"\r?\n", "", str(value)))
    except Exception:  # noqa: BLE001
        pass
    return ""


def _unescape_8bit(value: str) -> str:
    """Raw 8-bit bytes reach us as surrogate escapes: decode each run as UTF-8, else Windows-1252."""
    return _SURROGATES.sub(lambda m: _bytes_to_text(m.group().encode("utf-8", "surrogateescape")), value)


def _header_text(msg: Message, name: str) -> str:
    return _clean_header(decode_words(_header(msg, name)))


def _clean_header(text: str) -> str:
    return " ".join(_HEADER_CONTROL.sub(" ", text).split())


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words. Adjacent words of one charset are decoded together, since
    clients split multi-byte characters across them; whitespace between encoded words is dropped."""
    out: list[str] = []
    pending, pending_charset, previous_end = bytearray(), None, None

    def flush() -> None:
        if pending:
            out.append(_decode(bytes(pending), pending_charset)[0])
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        gap = value[previous_end or 0:match.start()]
        charset = match.group(1).split("*")[0].lower()
        if previous_end is None or gap.strip():
            flush()
            out.append(gap)
        elif charset != pending_charset:
            flush()
        try:
            data = match.group(3)
            if match.group(2) in "bB":
                chunk = binascii.a2b_base64(data + "=" * (-len(data) % 4))
            else:
                chunk = binascii.a2b_qp(data, header=True)
        except (binascii.Error, ValueError):
            flush()
            out.append(match.group())
            chunk = b""
        pending += chunk
        pending_charset, previous_end = charset, match.end()
    flush()
    out.append(value[previous_end or 0:])
    return "".join(out)


def _mailboxes(msg: Message, name: str) -> list[Mailbox]:
    value = _header(msg, name)
    boxes = []
    try:
        pairs = getaddresses([value])
    except Exception:  # noqa: BLE001
        pairs = []
    for display, address in pairs:
        address = _normal_address(address)
        if _ADDRESS.fullmatch(address) and len(address) <= 254:
            boxes.append(Mailbox(address, _clean_header(decode_words(display)).strip("\"' ")))
    if not boxes:  # unparseable list: take whatever looks like an address
        boxes = [Mailbox(_normal_address(a.strip("."))) for a in _ADDRESS.findall(value) if len(a) <= 254]
    return list(dict.fromkeys(boxes))


def _normal_address(address: str) -> str:
    local, at, domain = address.strip().strip("<>").rpartition("@")
    return f"{local}{at}{domain.lower()}"


_NO_REPLY = re.compile(r"(?i)(?:no|do[-_.]?not)[-_.]?reply(?:[-_.+].*)?")


def _sender(msg: Message, defects: _Defects) -> Mailbox | None:
    """From, else Reply-To, Sender, Return-Path (the envelope sender SES records). A no-reply From
    with a Reply-To (contact forms, shop systems) means the person is the Reply-To."""
    sender = next(iter(_mailboxes(msg, "From")), None)
    if sender and _NO_REPLY.fullmatch(sender.address.split("@")[0]):
        return next(iter(_mailboxes(msg, "Reply-To")), sender)
    if sender:
        return sender
    for name in ("Reply-To", "Sender", "Return-Path"):
        boxes = _mailboxes(msg, name)
        if boxes:
            defects.add(f"no usable From address: sender taken from {name}")
            return boxes[0]
    return None


def _msg_ids(value: str) -> list[str]:
    ids = [f"<{m}>" for m in _MSG_ID.findall(value)]
    if not ids and "@" in value and len(value.split()) == 1:  # some clients drop the brackets
        ids = [f"<{value.strip()}>"]
    return list(dict.fromkeys(ids))


def _date(msg: Message, defects: _Defects) -> datetime | None:
    value = _header(msg, "Date")
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


# --- charsets -----------------------------------------------------------------------------------

# Labels mail clients write, mapped to the superset codec that is actually in use (as browsers do).
_CHARSET_ALIASES = {
    "iso8859-1": "cp1252", "ascii": "cp1252", "shift_jis": "cp932", "euc_kr": "cp949",
    "gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs", "iso8859-11": "cp874",
    "tis-620": "cp874", "iso2022_jp": "iso2022_jp_2", "x-sjis": "cp932", "x-mac-roman": "mac_roman",
}
_WESTERN = {"cp1252", "iso8859-15"}  # single-byte labels often stuck on UTF-8 content


def _codec(label: str | None) -> str | None:
    """The codec name for a declared charset, or None when Python knows no such text encoding."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    for candidate in (label, re.sub(r"^(?:x-)?(?:windows|win|cp|ms)[-_]?(\d+)$", r"cp\1", label),
                      label.removeprefix("x-")):
        if candidate in _CHARSET_ALIASES:
            return _CHARSET_ALIASES[candidate]
        try:
            name = codecs.lookup(candidate).name
        except (LookupError, ValueError):  # unknown, or not even a name (NUL bytes)
            continue
        return _CHARSET_ALIASES.get(name, name)
    return None


def _bytes_to_text(data: bytes) -> str:
    """Undeclared bytes: UTF-8 when they are valid UTF-8, else Windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decode(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text for ``data`` in its declared charset, never raising: (text, defect or None)."""
    codec = _codec(charset)
    if codec is None:
        text = _bytes_to_text(data)
        return text, (f"unknown charset {charset!r}: decoded leniently" if charset else None)
    if codec in _WESTERN and not data.isascii():
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return text, f"declared charset {charset} but content is UTF-8"
    if codec == "cp1252" and not data.isascii():
        return data.decode("cp1252", "replace"), None
    try:
        return data.decode(codec), None
    except (UnicodeError, LookupError, ValueError):
        pass
    for fallback in (("iso2022_jp_ext",) if codec.startswith("iso2022_jp") else ()) + ("utf-8",):
        try:
            return data.decode(fallback), f"content is not valid {charset}: decoded as {fallback}"
        except (UnicodeError, LookupError, ValueError):
            continue
    if codec == "utf-8":  # no valid multi-byte sequence at all: a Windows-1252 sender mislabelled it
        text = data.decode("utf-8", "replace")
        if all(ch == "\ufffd" for ch in text if not ch.isascii()):
            return data.decode("cp1252", "replace"), f"content is not valid {charset}: decoded as cp1252"
        return text, f"invalid bytes for charset {charset} replaced"
    try:
        return data.decode(codec, "replace"), f"invalid bytes for charset {charset} replaced"
    except (UnicodeError, LookupError, ValueError):
        return data.decode("cp1252", "replace"), f"charset {charset} failed: decoded leniently"


# --- body text ----------------------------------------------------------------------------------

_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\ufeff]")


# Content-Type and -Disposition are read from the raw header too: policy.default re-parses the
# header into objects on every access, which made up most of the parsing time.
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def _ctype(part: Message) -> str:
    """The content type, lower-cased; RFC 2045's default when missing or invalid."""
    value = _header(part, "Content-Type").split(";")[0].strip().lower()
    return value if _MIME_TYPE.fullmatch(value) else part.get_default_type()


def _param(part: Message, name: str) -> str:
    """A Content-Type parameter (charset, format...), lower-cased; "" when absent."""
    pattern = rf';\s*{name}\s*=\s*(?:"([^"]*)"|([^;\s]*))'
    match = re.search(pattern, _header(part, "Content-Type"), re.IGNORECASE)
    return (match.group(1) if match.group(1) is not None else match.group(2)).strip().lower() if match else ""


def _filename(part: Message) -> str:
    if "name" not in (_header(part, "Content-Disposition") + _header(part, "Content-Type")).lower():
        name = ""  # the common case, without policy.default's costly parameter parsing
    else:
        name = _declared_filename(part)
    if not name and _ctype(part) in ("message/rfc822", "message/global") and part.is_multipart():
        inner = _header_text(part.get_payload(0), "Subject")  # a forwarded mail: name it by subject
        name = f"{inner}.eml" if inner else ""
    name = _unescape_8bit(name)
    return decode_words(name) if "=?" in name else name


def _declared_filename(part: Message) -> str:
    """Content-Disposition's filename, else Content-Type's name (RFC 2231 and encoded words)."""
    try:
        return str(part.get_filename() or "")
    except Exception:  # noqa: BLE001
        return ""


def _disposition(part: Message) -> str:
    return _header(part, "Content-Disposition").split(";")[0].strip().lower()


def _is_body_part(part: Message) -> bool:
    """The text/plain and text/html parts that carry the message itself, not attached files."""
    return (_ctype(part) in ("text/plain", "text/html") and _disposition(part) != "attachment"
            and not _filename(part))


def _walk(msg: Message) -> Iterator[tuple[Message, int]]:
    """Every part with its depth, not descending into attached messages, and depth-capped."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part, depth
        if depth < MAX_DEPTH and part.is_multipart() and _ctype(part).startswith("multipart/"):
            stack.extend((child, depth + 1) for child in reversed(part.get_payload()))


def _raw_payload(part: Message) -> str:
    """The payload as the parser stored it (8-bit bytes as surrogate escapes). Read directly:
    get_payload() decodes 8-bit text with the declared charset, and raises on some bad ones."""
    payload = getattr(part, "_payload", None)
    return payload if isinstance(payload, str) else ""


def _payload_bytes(part: Message) -> bytes:
    """Decoded payload. Base64 goes straight through binascii: far less memory than the parser's
    decoder, which splits the payload into lines first."""
    if part.is_multipart():  # message/rfc822, message/delivery-status: the enclosed messages
        return b"".join(sub.as_bytes() for sub in part.get_payload())
    payload = _raw_payload(part)
    if payload and str(part.get("content-transfer-encoding", "")).strip().lower() == "base64":
        try:
            return binascii.a2b_base64(payload)
        except (binascii.Error, ValueError):
            pass
    return part.get_payload(decode=True) or b""


def _part_text(part: Message, defects: _Defects) -> str:
    text, defect = _decode(_payload_bytes(part), _param(part, "charset") or None)
    if defect:
        defects.add(defect)
    text = _BODY_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).replace("\xa0", " ")
    if _ctype(part) == "text/html":
        if len(text) > MAX_HTML_CHARS:
            defects.add(f"HTML body truncated to {MAX_HTML_CHARS} characters")
            text = text[:MAX_HTML_CHARS]
        return html_to_text(text)
    if _param(part, "format") == "flowed":
        return _unflow(text, delsp=_param(part, "delsp") == "yes")
    return text


def _body(part: Message, depth: int, defects: _Defects) -> tuple[str, str]:
    """(text, "plain" | "html" | "") for a part: plain preferred among alternatives, inline text
    parts of a mixed message joined in order (as Apple Mail splits text around inline images)."""
    ctype = _ctype(part)
    if depth > MAX_DEPTH:
        defects.add(f"MIME nesting deeper than {MAX_DEPTH} ignored")
        return "", ""
    if ctype.startswith("multipart/") and not part.is_multipart():  # no parts found: read it all
        defects.add(f"{ctype} without parts: its body read as plain text")
        return _bytes_to_text(_payload_bytes(part)).replace("\r\n", "\n"), "plain"
    if ctype.startswith("multipart/"):
        children = part.get_payload()
        if ctype == "multipart/alternative":
            for child in children:
                if _ctype(child) == "text/plain" and _is_body_part(child):
                    text = _part_text(child, defects)
                    if text.strip():
                        return text, "plain"
            others = [_body(c, depth + 1, defects) for c in children if _ctype(c) != "text/plain"]
            return next((r for r in others if r[0].strip()), ("", ""))
        if ctype == "multipart/related" and children:
            return _body(children[0], depth + 1, defects)
        found = [r for r in (_body(c, depth + 1, defects) for c in children) if r[0].strip()]
        kind = "plain" if any(k == "plain" for _, k in found) else ("html" if found else "")
        return "\n\n".join(t for t, _ in found), kind
    if _is_body_part(part):
        return _part_text(part, defects), ctype.split("/")[1]
    return "", ""


def _repair_multipart(part: Message) -> None:
    """Give a multipart the boundary its body uses when the declared one never appears (a
    mangled Content-Type header); the parser's defect stays on the part."""
    payload = _raw_payload(part)
    found = re.findall(r"^--([0-9A-Za-z'()+_,./:=?-]{1,70}?)(?:--)?[ \t]*\r?$", payload, re.M)
    boundary = next((b for b in dict.fromkeys(found) if found.count(b) >= 2), None)
    if boundary is None:
        return
    try:
        raw = f'Content-Type: {_ctype(part)}; boundary="{boundary}"\n\n{payload}'
        repaired = BytesParser(policy=policy.default).parsebytes(raw.encode("ascii", "surrogateescape"))
        if repaired.is_multipart():
            part.set_param("boundary", boundary)
            part.set_payload(repaired.get_payload())
    except Exception:  # noqa: BLE001 - unrepairable: the body is read as plain text
        pass


def _unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next one."""
    out: list[str] = []
    joining = False
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        content = content[1:] if content.startswith(" ") else content  # space-stuffing
        if joining and out and depth == out[-1][0]:
            out[-1] = (depth, out[-1][1] + content)
        else:
            out.append((depth, content))
        joining = content.endswith(" ") and content != "-- "
        if joining and delsp:
            out[-1] = (depth, out[-1][1][:-1])
    return "\n".join((">" * d + (" " if d else "") + c) for d, c in out)


# --- HTML to text -------------------------------------------------------------------------------

_BLOCK = {"address", "article", "aside", "caption", "dd", "details", "div", "dl", "dt", "fieldset",
          "figcaption", "figure", "footer", "form", "header", "main", "nav", "section", "summary",
          "tbody", "tfoot", "thead", "tr", "center"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "hr"}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "xml"}
_QUOTE_IN, _QUOTE_OUT = "\x02", "\x03"  # blockquote markers, turned into "> " prefixes at the end
_QUOTE_PREFIX_MAX = 5  # deeper quotes get no longer prefixes (a nesting bomb stays linear)


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.link: tuple[str, int] | None = None  # the open <a>: its href and where its text starts

    def _tail(self) -> str:
        """The last two characters written ("\\n\\n" at the start, so nothing leads with blanks)."""
        tail = ""
        for piece in reversed(self.out):
            tail = piece[-2:] + tail
            if len(tail) >= 2:
                return tail[-2:]
        return ("\n\n" + tail)[-2:]

    def _newline(self, count: int = 1) -> None:
        tail = self._tail()
        have = 2 if tail == "\n\n" else (1 if tail.endswith("\n") else 0)
        if count > have:
            self.out.append("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "body":
            self.skip = 0
        elif tag == "br":
            self.out.append("\n")
        elif tag == "blockquote":
            self._newline()
            self.out.append(_QUOTE_IN + "\n")
        elif tag == "li":
            self._newline()
            self.out.append("- ")
        elif tag in ("td", "th") and not self._tail().endswith("\n"):
            self.out.append(" ")
        elif tag == "a":
            self._close_link()  # links do not nest: a new one ends the open one, as in browsers
            self.link = (dict(attrs).get("href") or "", len(self.out))
        if tag == "pre":
            self.pre += 1
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _BLOCK:
            self._newline()

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._newline()
            self.out.append(_QUOTE_OUT + "\n")
        elif tag == "a":
            self._close_link()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _BLOCK or tag == "li":
            self._newline()

    def _close_link(self) -> None:
        if self.link is None:
            return
        (href, start), self.link = self.link, None
        label = " ".join("".join(self.out[start:]).split())
        if re.match(r"(?i)https?://|ftp://", href) and label and _bare_url(href) not in _bare_url(label):
            self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        data = _BODY_CONTROL.sub("", data)
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if data.startswith(" ") and (not self.out or self._tail()[-1:] in (" ", "\n", "")):
                data = data[1:]
        if data:
            self.out.append(data)

    def text(self) -> str:
        lines, depth = [], 0
        for line in "".join(self.out).split("\n"):
            if line in (_QUOTE_IN, _QUOTE_OUT):
                depth = max(0, depth + (1 if line == _QUOTE_IN else -1))
                continue
            line = line.rstrip()
            line = line[1:] if line.startswith(" ") and not line.startswith("  ") else line
            lines.append("> " * min(depth, _QUOTE_PREFIX_MAX) + line if line else "")
        return _tidy(lines)


def _bare_url(url: str) -> str:
    return re.sub(r"(?i)^(?:[a-z]+://)?(?:www\.)?", "", url.strip()).rstrip("/").lower()


def html_to_text(html: str) -> str:
    """Readable text from HTML: blocks on their own lines, links as ``text (url)``, blockquotes as
    ``> `` quotes (so the quoted-history trimming works the same for HTML), scripts and styles dropped."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was read
        pass
    return parser.text()


# --- quoted history and signatures --------------------------------------------------------------

_ATTRIBUTION = re.compile(
    r"(?:On\s.+\s(?:wrote|writes)"                      # Gmail, Apple Mail, Thunderbird, Outlook Mac
    r"|Am\s.+\sschrieb.*"                                 # de
    r"|Le\s.+\sa\s+écrit"                                 # fr
    r"|El\s.+\sescribió"                                  # es
    r"|Il\s.+\sha\s+scritto"                              # it
    r"|Em\s.+\sescreveu"                                  # pt
    r"|Op\s.+\sschreef.*"                                 # nl
    r"|Den\s.+\sskrev.*"                                  # sv, da, no
    r"|W\sdniu\s.+\snapisał(?:\(a\))?"                    # pl
    r"|.+\s(?:пишет|написал(?:\(а\)|а)?)"                 # ru
    r"|\d{4}年\d{1,2}月\d{1,2}日.+"                        # ja (Gmail: date, name <address>:)
    r"|.+(?:さんは書きました|のメール|写道|寫道))"           # ja, zh
    r"\s?[:：]", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Original meddelelse"
    r"|Opprinnelig melding|Mensagem original|Исходное сообщение|Wiadomość oryginalna"
    r"|Původní zpráva|Alkuperäinen viesti|元のメッセージ|原始邮件)\s*-{2,}\s*", re.IGNORECASE)
_FORWARD = re.compile(
    r"\s*(?:-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado"
    r"|Messaggio inoltrato|Doorgestuurd bericht|Mensagem encaminhada|Пересылаемое сообщение"
    r"|Videresendt melding|Vidarebefordrat meddelande|転送されたメッセージ)\s*-{2,}"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:|Début du message réexpédié\s?:)\s*",
    re.IGNORECASE)
_HEADER_FROM = re.compile(r"\s*\*?(?:From|Von|De|Da|Van|Från|Fra|Od|От|Lähettäjä|Feladó|差出人|发件人|寄件者)"
                          r"\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_SENT = re.compile(r"\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado(?: el)?|Inviato|Data|Verzonden"
                          r"|Skickat|Sendt|Wysłano|Отправлено|Дата|Lähetetty|Elküldve|送信日時|日付|发送时间"
                          r"|發送時間)\s*\*?\s*[:：]", re.IGNORECASE)
_SEPARATOR = re.compile(r"\s*[_\-=*]{5,}\s*")
_MOBILE_SIGNATURE = re.compile(
    r"(?:Sent from (?:my )?\S.{0,40}|Sent with \S.{0,30}|Get Outlook for \S.{0,20}|Von meinem \S.{0,30} gesendet"
    r"|Gesendet von \S.{0,30}|Envoyé de mon \S.{0,30}|Envoyé depuis \S.{0,30}|Enviado desde mi \S.{0,30}"
    r"|Enviado do meu \S.{0,30}|Inviato da(?:l mio)? \S.{0,30}|Verstuurd vanaf mijn \S.{0,30}"
    r"|Skickat från min \S.{0,30}|Отправлено с \S.{0,30}|\S{1,20}から送信)", re.IGNORECASE)
_FORWARD_SUBJECT = re.compile(r"\s*(?:fwd?|wg|tr|rv|enc|doorst|vs|vl|pd|转发|轉寄|転送)\s*[:：]", re.IGNORECASE)
_CID_PLACEHOLDER = re.compile(r"\[cid:[^\]]*\]")


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1-3; Gmail wraps long ones) form an "On ... wrote:" line at ``i``, else 0."""
    for span in (1, 2, 3):
        chunk = lines[i:i + span]
        if len(chunk) < span or (span > 1 and not chunk[-1].strip()) or _quoted(chunk[-1]):
            return 0
        joined = " ".join(s.strip() for s in chunk)
        if len(joined) > 300:
            return 0
        if joined.endswith((":", "：")) and re.search(r"\d|@", joined) and _ATTRIBUTION.fullmatch(joined):
            # "On 3 May the app wrote:" may be the customer's own words: take it for an attribution
            # only with an address in it or quoted lines after it.
            following = [s for s in lines[i + span:i + span + 6] if s.strip()][:3]
            if re.search(r"<[^<>\s]+@[^<>\s]+>", joined) or any(_quoted(s) for s in following):
                return span
    return 0


def _header_block(lines: list[str], i: int) -> bool:
    """Outlook's "From: ... Sent: ..." block that starts a quoted or forwarded message."""
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [s for s in lines[i + 1:i + 9] if s.strip()][:4]
    return any(_HEADER_SENT.match(s) for s in following)


def _quote_start(lines: list[str], limit: int) -> tuple[int, int, str] | None:
    """(index, span, kind) of the first line that starts quoted history."""
    for i in range(limit):
        line = lines[i]
        if not line.strip() or _quoted(line):
            continue
        if _ORIGINAL.fullmatch(line):
            return i, 1, "original"
        if _header_block(lines, i):
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            return (j, 1, "header") if j >= 0 and _SEPARATOR.fullmatch(lines[j]) else (i, 1, "header")
        span = _attribution(lines, i)
        if span:
            return i, span, "attribution"
    return None


def _forward_start(lines: list[str], forwarded: bool) -> int | None:
    for i, line in enumerate(lines):
        if _FORWARD.fullmatch(line) or (forwarded and (_ORIGINAL.fullmatch(line) or _header_block(lines, i))):
            return i
    return None


def _trim_signature(lines: list[str]) -> list[str]:
    """Cut at "-- " (or a bare "--" shortly before the end) or at a "Sent from my iPhone" line."""
    after = sum(1 for s in lines if s.strip())  # lines with content after the current one
    for i, line in enumerate(lines):
        after -= bool(line.strip())
        if line == "-- " or (line.strip() == "--" and 0 < after <= 15):
            return lines[:i]
        if after <= 2 and _MOBILE_SIGNATURE.fullmatch(re.sub(r"\s*\(https?://\S+\)$", "", line.strip())):
            return lines[:i]
    return lines


def _tidy(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = _CID_PLACEHOLDER.sub("", line).rstrip()
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


def trim_reply(text: str, *, forwarded: bool = False) -> str:
    """What the customer wrote: quoted history ("On ... wrote:", Outlook's "Original Message" and
    "From: ... Sent:" blocks, ">" lines) and the signature removed. A forwarded message is kept
    (it is what the customer wants us to read); ``forwarded`` (a "Fwd:" subject) makes an Outlook
    header block count as the start of one. Never returns "" when there was text."""
    lines = text.replace("\r\n", "\n").split("\n")
    forward = _forward_start(lines, forwarded)
    quote = _quote_start(lines, len(lines) if forward is None else forward)
    if quote is not None:
        head, tail = lines[:quote[0]], []
    elif forward is not None:
        head, tail = lines[:forward], lines[forward:]
    else:
        head, tail = lines, []
    head = _trim_signature([s for s in head if not _quoted(s)])
    result = _tidy(head + tail)
    if not result and quote is not None and quote[2] == "attribution":
        # Bottom-posted: the answer follows the quoted history.
        rest = [s for s in lines[quote[0] + quote[1]:] if not _quoted(s)]
        result = trim_reply("\n".join(rest), forwarded=forwarded)
    return result or _tidy(lines)


# --- attachments --------------------------------------------------------------------------------

_EXTENSIONS = {
    "application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
    "image/webp": ".webp", "image/heic": ".heic", "image/bmp": ".bmp", "image/tiff": ".tif",
    "text/plain": ".txt", "text/html": ".html", "text/csv": ".csv", "text/calendar": ".ics",
    "message/rfc822": ".eml", "message/global": ".eml", "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt", "application/zip": ".zip", "application/json": ".json",
    "application/pkcs7-signature": ".p7s", "application/pgp-signature": ".asc",
    "application/msword": ".doc", "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}
_UNSAFE_FILENAME = re.compile(r'[<>:"|?*\x00-\x1f\x7f-\x9f]')
_RESERVED_NAMES = re.compile(r"(?i)(?:con|prn|aux|nul|com\d|lpt\d)(?:\..*)?")


def safe_filename(name: str, index: int, content_type: str = "application/octet-stream") -> str:
    """A file name safe to store and to offer for download: no path, no control or bidi characters,
    no leading dots, at most FILENAME_MAX_BYTES; ``attachment-<index><ext>`` when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    name = re.split(r"[/\\]", name)[-1]
    name = " ".join(_UNSAFE_FILENAME.sub("_", name).split()).strip(". ")
    if _RESERVED_NAMES.fullmatch(name):
        name = "_" + name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = name, ""
    ext = f".{ext}" if ext else ""
    while len((stem + ext).encode("utf-8")) > FILENAME_MAX_BYTES and stem:
        stem = stem[:-1]
    name = (stem.rstrip(". ") + ext) if stem.strip(". ") else ""
    return name or f"attachment-{index}{_EXTENSIONS.get(content_type, '.bin')}"


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    while candidate.lower() in seen:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"
    seen.add(candidate.lower())
    return candidate


def _encoded_size(part: Message) -> int:
    """The decoded size of a base64 payload without decoding it (upper bound for other encodings)."""
    payload = _raw_payload(part)
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return len(payload)
    data = len(payload) - sum(payload.count(c) for c in "\r\n \t")
    return data * 3 // 4 - min(2, len(payload.rstrip()) - len(payload.rstrip().rstrip("=")))


def _attachments(msg: Message, max_bytes: int, max_count: int, *, keep: bool) -> Iterator[AttachmentInfo]:
    seen: set[str] = set()
    index = 0
    kind = Attachment if keep else AttachmentInfo
    for part, _ in _walk(msg):
        ctype = _ctype(part)
        if ctype.startswith("multipart/") or _is_body_part(part):  # containers, and the body itself
            continue
        index += 1
        filename = _unique(safe_filename(_filename(part), index, ctype), seen)
        content_id = _header(part, "Content-ID").strip().strip("<>") or None
        disposition = _disposition(part)
        inline = disposition == "inline" or (content_id is not None and disposition != "attachment")
        meta = dict(index=index, filename=filename, content_type=ctype, content_id=content_id, inline=inline)
        estimate = _encoded_size(part)
        if index > max_count or estimate > max_bytes:
            yield kind(size=estimate, skipped="too_many" if index > max_count else "too_large", **meta)
            continue
        try:
            content = _payload_bytes(part)
        except Exception:  # noqa: BLE001 - e.g. an attached message too broken to re-serialise
            yield kind(size=estimate, skipped="unreadable", **meta)
            continue
        if len(content) > max_bytes:
            yield kind(size=len(content), skipped="too_large", **meta)
        elif keep:
            yield Attachment(size=len(content), content=content, **meta)
        else:
            yield AttachmentInfo(size=len(content), **meta)
        del content


def iter_attachments(raw_or_message: bytes | Message, *, max_bytes: int = MAX_ATTACHMENT_BYTES,
                     max_count: int = MAX_ATTACHMENTS) -> Iterator[Attachment]:
    """Attachments one at a time, each decoded only when reached: upload it, drop it, take the next,
    and memory holds one attachment beyond the parsed message. Files over ``max_bytes`` (never
    decoded) or past ``max_count`` come with ``skipped`` set and ``content`` None.
    Inline images count; the text/plain and text/html body parts do not."""
    msg = raw_or_message if isinstance(raw_or_message, Message) else parse_message(raw_or_message)
    yield from _attachments(msg, max_bytes, max_count, keep=True)


# --- loops and abuse ----------------------------------------------------------------------------

_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-AutoReply-From",
                      "X-Mail-Autoreply", "X-Autogenerated")
_ROBOT_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
_AUTOREPLY_SUBJECT = re.compile(  # a prefix with its colon: "Auto-reply not working" is a customer
    r"\s*(?:(?:automatic reply|automatic response|auto[- ]?reply|auto[- ]?response|abwesenheitsnotiz"
    r"|automatische antwort|réponse automatique|absence du bureau|respuesta automática|risposta automatica"
    r"|automatisch antwoord|resposta automática|automatiskt svar|自動応答|自動返信|不在通知|undeliverable"
    r"|delivery status notification)\s*[:：(]"
    r"|out of (?:the )?office(?:\s+(?:auto[- ]?reply|reply|notice|notification|message))?\s*(?:[:(]|$)"
    r"|undelivered mail returned to sender|mail delivery failed)", re.IGNORECASE)


def _automated(msg: Message, sender: Mailbox, subject: str) -> str | None:
    """Why a machine sent this message (RFC 3834 and what real systems do), or None for a person."""
    if _ctype(msg) == "multipart/report":
        return f"delivery report (multipart/report; report-type={_param(msg, 'report-type') or '?'})"
    auto = _header(msg, "Auto-Submitted").split(";")[0].split("(")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in _AUTOREPLY_HEADERS:
        value = _header(msg, name).strip()
        if value and value.lower() not in ("no", "false", "0"):
            return f"{name}: {value[:40]}"
    # Outlook puts X-Auto-Response-Suppress on ordinary mail too (it asks others not to auto-reply);
    # only with the inbox-rule loop marker Exchange adds to what its rules send is it an auto-reply.
    suppress = {t.strip().lower() for t in _header(msg, "X-Auto-Response-Suppress").split(",")}
    if suppress & {"all", "oof"} and _header(msg, "X-MS-Exchange-Inbox-Rules-Loop"):
        return "Exchange auto-reply (X-Auto-Response-Suppress with X-MS-Exchange-Inbox-Rules-Loop)"
    for verdict in ("X-SES-Virus-Verdict", "X-SES-Spam-Verdict"):  # SES's own, prepended on receipt
        if _header(msg, verdict).strip().upper() == "FAIL":
            return f"{verdict}: FAIL"
    local = sender.address.split("@")[0].lower()
    if local in _ROBOT_SENDERS:
        return f"sender is {local}"
    if _header(msg, "Return-Path").replace(" ", "") == "<>":
        return "null Return-Path <> (a bounce or an auto-reply)"
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if list_id := _header_text(msg, "List-Id"):
        return f"mailing list (List-Id: {list_id[:80]})"
    if _header(msg, "List-Unsubscribe"):
        return "mailing list (List-Unsubscribe)"
    if _AUTOREPLY_SUBJECT.match(subject):
        return f"auto-reply subject ({subject[:40]})"
    return None


# --- threading ----------------------------------------------------------------------------------

_REFERENCE = re.compile(rf"(?<![0-9A-Za-z])(\[)?HD-([{CROCKFORD}]{{{REFERENCE_LENGTH}}})(?(1)\])(?![0-9A-Za-z])",
                        re.IGNORECASE)


def find_ticket_reference(subject: str) -> str | None:
    """The ticket reference in a subject (``HD-7KQ2M9``, ``[hd-7kq2m9]``...), upper-cased; a
    bracketed one wins over a bare one, the first over later ones."""
    matches = list(_REFERENCE.finditer(subject or ""))
    best = next((m for m in matches if m.group(1)), matches[0] if matches else None)
    return f"HD-{best.group(2).upper()}" if best else None


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # URL-safe base64, as ids.access_token makes them


def _split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local, domain.lower()


def reply_token_from(recipients: Iterable[str | Mailbox], support_address: str) -> str | None:
    """The reply token in a ``support+<token>@domain`` recipient (To, Cc, or SES's envelope
    recipients), else None. The token is only a claim: check it with ``ids.tokens_match``."""
    base, domain = _split_address(support_address)
    for recipient in recipients:
        if isinstance(recipient, Mailbox):
            address = recipient.address
        else:
            address = (getaddresses([recipient]) or [("", "")])[0][1]
        local, recipient_domain = _split_address(address)
        tag_base, plus, token = local.partition("+")
        if (plus and recipient_domain == domain and tag_base.lower() == base.lower()
                and _TOKEN.fullmatch(token)):
            return token
    return None


def reply_address(support_address: str, token: str) -> str:
    """``support+<token>@domain``: the Reply-To that routes a customer's answer to its ticket."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("reply token must be URL-safe base64 characters")
    local, domain = _split_address(support_address)
    return f"{local}+{token}@{domain}"


def message_ids(mail: InboundMail) -> list[str]:
    """Ids of the messages this one answers: In-Reply-To first, then References newest first."""
    ids = ([mail.in_reply_to] if mail.in_reply_to else []) + list(reversed(mail.references))
    return list(dict.fromkeys(ids))


def _id_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+", "-", text).strip("-") or "x"


def _domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain):
        raise ValueError("invalid domain")
    return domain


def new_message_id(ticket_id: str, event_id: str, domain: str) -> str:
    """``<ticket.event@domain>``: deterministic, so a retried send of one event reuses its
    Message-ID (the customer's client shows one mail) and a reply names its ticket."""
    if not ticket_id or not event_id:
        raise ValueError("ticket_id and event_id are required")
    return f"<{_id_part(ticket_id)}.{_id_part(event_id)}@{_domain(domain)}>"


def ticket_id_from_message_id(message_id: str, domain: str) -> str | None:
    """The ticket a Message-ID made by :func:`new_message_id` for ``domain`` belongs to. It proves
    nothing (anyone can write any In-Reply-To): only a hint to look the ticket up by."""
    pattern = rf"<?(HD-[{CROCKFORD}]{{{REFERENCE_LENGTH}}})\.[^@<>\s]+@{re.escape(_domain(domain))}>?"
    match = re.fullmatch(pattern, (message_id or "").strip(), re.IGNORECASE)
    return match.group(1).upper() if match else None


# --- outbound -----------------------------------------------------------------------------------

_STRUCTURAL = {"from", "to", "cc", "bcc", "subject", "message-id", "in-reply-to", "references",
               "reply-to", "date", "mime-version", "content-type", "content-transfer-encoding",
               "auto-submitted"}
_MAX_REFERENCES = 20


def _mailbox_header(value: str | Mailbox) -> Address:
    if isinstance(value, Mailbox):
        name, address = value.name, value.address
    else:
        name, address = (getaddresses([value]) or [("", "")])[0]
    local, domain = _split_address(address)
    if not local or not domain or not _ADDRESS.fullmatch(f"{local}@{domain}") or not local.isascii():
        raise ValueError("invalid email address")
    return Address(display_name=_clean_header(name), username=local, domain=_domain(domain))


def _msgid(value: str) -> str:
    value = value.strip()
    value = value if value.startswith("<") else f"<{value}>"
    if not _MSG_ID.fullmatch(value) or "@" not in value:
        raise ValueError("invalid message id")
    return value


def build_outbound(*, sender: str | Mailbox, to: str | Mailbox | Iterable[str | Mailbox], subject: str,
                   text: str, html: str | None, message_id: str, in_reply_to: str | None = None,
                   references: Iterable[str] = (), reply_to: str | Mailbox | None = None,
                   headers: Mapping[str, str] | None = None, auto_submitted: str | None = None,
                   date: datetime | None = None) -> bytes:
    """A ready-to-send MIME message (multipart/alternative: plain and HTML, quoted-printable UTF-8,
    CRLF) threaded under ``in_reply_to``/``references`` so the customer's client keeps the
    conversation together. ``auto_submitted`` (AUTO_REPLIED for acknowledgements, AUTO_GENERATED
    for notifications) marks it per RFC 3834 and asks Exchange not to auto-answer it.
    Raises ValueError for an invalid address, id or header."""
    if auto_submitted not in (None, AUTO_REPLIED, AUTO_GENERATED):
        raise ValueError("auto_submitted must be auto-replied or auto-generated")
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _mailbox_header(sender)
    recipients = [to] if isinstance(to, (str, Mailbox)) else list(to)
    if not recipients:
        raise ValueError("no recipient")
    msg["To"] = [_mailbox_header(r) for r in recipients]
    if reply_to:
        msg["Reply-To"] = _mailbox_header(reply_to)
    msg["Subject"] = _clean_header(subject)
    msg["Date"] = format_datetime((date or clock.now()).astimezone(UTC))
    msg["Message-ID"] = _msgid(message_id)
    chain = [_msgid(r) for r in references]
    if in_reply_to:
        parent = _msgid(in_reply_to)
        msg["In-Reply-To"] = parent
        if parent not in chain:
            chain.append(parent)
    if chain:  # RFC 5322 3.6.4: keep the first (the thread's root) and the most recent ones
        chain = list(dict.fromkeys(chain))
        chain = chain if len(chain) <= _MAX_REFERENCES else chain[:1] + chain[-(_MAX_REFERENCES - 1):]
        msg["References"] = " ".join(chain)
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (headers or {}).items():
        if name.lower() in _STRUCTURAL or not re.fullmatch(r"[!-9;-~]+", name):
            raise ValueError(f"header {name!r} cannot be set here")
        msg[name] = value
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()
