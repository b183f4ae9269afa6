"""The files that came with a message: listed with safe, unique names, decoded one at a time."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

from helpdesk.mail.headers import header
from helpdesk.mail.mime import (
    content_type_of,
    is_body_part,
    parse_message,
    part_disposition,
    part_filename,
    payload_bytes,
    raw_payload,
    walk,
)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # larger files are listed as skipped, never decoded
MAX_ATTACHMENTS = 50  # past this many, the rest are listed as skipped (a mail bomb stays cheap)
FILENAME_MAX_BYTES = 120  # UTF-8 bytes: fits any file system and an S3 key with room for a prefix


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
    payload = raw_payload(part)
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return len(payload)
    data = len(payload) - sum(payload.count(c) for c in "\r\n \t")
    return data * 3 // 4 - min(2, len(payload.rstrip()) - len(payload.rstrip().rstrip("=")))


def list_attachments(msg: Message, max_bytes: int, max_count: int, *, keep: bool) -> Iterator[AttachmentInfo]:
    seen: set[str] = set()
    index = 0
    kind = Attachment if keep else AttachmentInfo
    for part, _ in walk(msg):
        ctype = content_type_of(part)
        if ctype.startswith("multipart/") or is_body_part(part):  # containers, and the body itself
            continue
        index += 1
        filename = _unique(safe_filename(part_filename(part), index, ctype), seen)
        content_id = header(part, "Content-ID").strip().strip("<>") or None
        disposition = part_disposition(part)
        inline = disposition == "inline" or (content_id is not None and disposition != "attachment")
        meta = dict(index=index, filename=filename, content_type=ctype, content_id=content_id, inline=inline)
        estimate = _encoded_size(part)
        if index > max_count or estimate > max_bytes:
            yield kind(size=estimate, skipped="too_many" if index > max_count else "too_large", **meta)
            continue
        try:
            content = payload_bytes(part)
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
    yield from list_attachments(msg, max_bytes, max_count, keep=True)
