"""Header fields read raw and decoded: RFC 2047 encoded words, raw 8-bit bytes, mailboxes, message ids.

Header values are read raw and decoded here rather than through policy.default's header objects:
those raise on some malformed input and leave undecodable bytes as lone surrogates.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from helpdesk.mail.charsets import bytes_to_text, decode_text

_SURROGATES = re.compile(r"[\udc80-\udcff]+")
_HEADER_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
ADDRESS = re.compile(r"[^\s@<>(),;:\"\[\]\\]+@[^\s@<>(),;:\"\[\]\\]+")
MSG_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class Mailbox:
    address: str  # the addr-spec, domain lower-cased; the local part keeps its case (reply tokens)
    name: str = ""


def header(msg: Message, name: str) -> str:
    """The first raw value of ``name``, unfolded, with raw 8-bit bytes decoded; "" when absent."""
    wanted = name.lower()
    try:
        for key, value in msg.raw_items():
            if key.lower() == wanted:
                return unescape_8bit(re.sub(r"\r?\n", "", str(value)))
    except Exception:  # noqa: BLE001
        pass
    return ""


def unescape_8bit(value: str) -> str:
    """Raw 8-bit bytes reach us as surrogate escapes: decode each run as UTF-8, else Windows-1252."""
    return _SURROGATES.sub(lambda m: bytes_to_text(m.group().encode("utf-8", "surrogateescape")), value)


def header_text(msg: Message, name: str) -> str:
    return clean_header(decode_words(header(msg, name)))


def clean_header(text: str) -> str:
    return " ".join(_HEADER_CONTROL.sub(" ", text).split())


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words. Adjacent words of one charset are decoded together, since
    clients split multi-byte characters across them; whitespace between encoded words is dropped."""
    out: list[str] = []
    pending, pending_charset, previous_end = bytearray(), None, None

    def flush() -> None:
        if pending:
            out.append(decode_text(bytes(pending), pending_charset)[0])
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


def mailboxes(msg: Message, name: str) -> list[Mailbox]:
    value = header(msg, name)
    boxes = []
    try:
        pairs = getaddresses([value])
    except Exception:  # noqa: BLE001
        pairs = []
    for display, address in pairs:
        address = normal_address(address)
        if ADDRESS.fullmatch(address) and len(address) <= 254:
            boxes.append(Mailbox(address, clean_header(decode_words(display)).strip("\"' ")))
    if not boxes:  # unparseable list: take whatever looks like an address
        boxes = [Mailbox(normal_address(a.strip("."))) for a in ADDRESS.findall(value) if len(a) <= 254]
    return list(dict.fromkeys(boxes))


def normal_address(address: str) -> str:
    local, at, domain = address.strip().strip("<>").rpartition("@")
    return f"{local}{at}{domain.lower()}"


def msg_ids(value: str) -> list[str]:
    ids = [f"<{m}>" for m in MSG_ID.findall(value)]
    if not ids and "@" in value and len(value.split()) == 1:  # some clients drop the brackets
        ids = [f"<{value.strip()}>"]
    return list(dict.fromkeys(ids))


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local, domain.lower()
