"""Charsets as mail clients really label them: text from bytes, never raising."""

from __future__ import annotations

import codecs
import re

from helpdesk.utf8 import storable

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


def bytes_to_text(data: bytes) -> str:
    """Undeclared bytes: UTF-8 when they are valid UTF-8, else Windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def decode_text(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text for ``data`` in its declared charset, never raising: (text, defect or None). The text is
    always storable: UTF-7 and a few other codecs decode lone surrogates, which become U+FFFD."""
    text, defect = _decode(data, charset)
    return storable(text), defect


def _decode(data: bytes, charset: str | None) -> tuple[str, str | None]:
    codec = _codec(charset)
    if codec is None:
        text = bytes_to_text(data)
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
