"""The request body, read once before routing: the resolver only ever sees one it can parse.

API Gateway passes the function whatever a client sent: bytes that are not UTF-8 (base64-encoded,
as it sends any binary body), media types we do not read (``multipart/form-data``, ``text/plain``,
another charset), JSON nested deep enough to exhaust Python's stack, integers too long to convert.
Each is refused here with a 4xx in the API's error shape (:class:`Refused`), before any parser sees
it; what passes reaches the resolver as UTF-8 text under a canonical ``Content-Type``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import itertools
import json
import re
from urllib.parse import parse_qsl

MAX_BYTES = 64 * 1024  # a description is 20,000 characters at most: 80 KB of UTF-8 at the very worst
MAX_DEPTH = 32  # our bodies are flat objects; nothing deeper is ever meant
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_BODILESS = ("GET", "HEAD", "OPTIONS")  # no route reads a body sent with these: it is dropped
_UTF8 = ("utf-8", "ascii")  # codecs' names of the charsets whose bytes are UTF-8 (us-ascii is a subset)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A JSON string, or what is left of one cut off at the end: linear, whatever the body.
_STRING = re.compile(r'"(?:[^"\\]|\\.?)*(?:"|\Z)', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


class Refused(Exception):
    """A body the API will not read: its status, error code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def admit(event: dict) -> dict:
    """The event with a body the routes can read (UTF-8 text, canonical ``Content-Type``), or Refused."""
    body = event.get("body")
    if (event.get("httpMethod") or "").upper() in _BODILESS or not body:
        return event | {"body": None, "isBase64Encoded": False}
    raw = _bytes(body, event.get("isBase64Encoded"))
    if len(raw) > MAX_BYTES:
        raise Refused(413, "payload_too_large", f"The request body is over {MAX_BYTES // 1024} KB.")
    media_type = _media_type(_header(event, "content-type"))
    malformed = "malformed_json" if media_type == JSON else "malformed_form"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, malformed, "The request body is not valid UTF-8.") from None
    (_check_json if media_type == JSON else _check_form)(text)
    return _with_content_type(event | {"body": text, "isBase64Encoded": False}, media_type)


def _bytes(body: str, is_base64: object) -> bytes:
    try:
        return base64.b64decode(body, validate=True) if is_base64 else body.encode("utf-8")
    except (binascii.Error, ValueError, UnicodeEncodeError):  # not base64; text with lone surrogates
        raise Refused(400, "malformed_body", "The request body cannot be read.") from None


def _header(event: dict, name: str) -> str | None:
    """The header's last value (case-insensitive), as API Gateway's single-value map keeps it."""
    found = [v for k, v in (event.get("headers") or {}).items() if k.lower() == name]
    return found[-1] if found else None


def _media_type(content_type: str | None) -> str:
    """JSON (also when unsaid) or form-encoded, in UTF-8; anything else is a 415."""
    if not content_type or not content_type.strip():
        return JSON
    essence, *parameters = (part.strip() for part in content_type.split(";"))
    essence = essence.lower()
    charsets = [value.strip().strip('"') for key, _, value in (p.partition("=") for p in parameters)
                if key.strip().lower() == "charset"]
    if essence in (JSON, FORM) and all(_is_utf8(charset) for charset in charsets):
        return essence
    raise Refused(415, "unsupported_media_type", f"Send {JSON} or {FORM}, in UTF-8.")


def _is_utf8(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name in _UTF8
    except LookupError:
        return False


def _check_json(text: str) -> None:
    if _depth(text) > MAX_DEPTH:
        raise Refused(400, "malformed_json", f"The request body nests deeper than {MAX_DEPTH} levels.")
    try:
        json.loads(text)
    except ValueError:  # JSONDecodeError, and integers past Python's 4,300 digits
        raise Refused(400, "malformed_json", "The request body is not valid JSON.") from None


def _depth(text: str) -> int:
    """How deep arrays and objects nest, without parsing (the parser recurses once per level)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # cannot nest deeper: no need to look closer
    steps = (1 if b in "[{" else -1 for b in _BRACKET.findall(_STRING.sub("", text)))
    return max(itertools.accumulate(steps), default=0)


def _check_form(text: str) -> None:
    """Percent escapes must be whole and decode to UTF-8 (a browser never sends anything else)."""
    if _BAD_ESCAPE.search(text):
        raise Refused(400, "malformed_form", "The form data has a broken percent escape.")
    try:
        parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, "malformed_form", "The form data is not valid UTF-8.") from None


def _with_content_type(event: dict, media_type: str) -> dict:
    """One ``Content-Type`` header, in lower case (the resolver compares it case-sensitively)."""
    def without(headers: dict | None) -> dict:
        return {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}

    event = event | {"headers": without(event.get("headers")) | {"Content-Type": media_type}}
    if event.get("multiValueHeaders"):
        event["multiValueHeaders"] = without(event["multiValueHeaders"]) | {"Content-Type": [media_type]}
    return event
