"""Text that can be stored: valid Unicode, encodable as UTF-8.

Python strings may hold surrogates that no UTF-8 consumer accepts: UTF-7 mail decodes "+2AA-" to a
lone U+D800, and JSON's "\\ud800" escape gives one too. DynamoDB refuses such an item outright, so
every write (``helpdesk.models``) and the mail parser pass text through :func:`storable`.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with each valid surrogate pair joined into its character and each lone surrogate
    replaced by U+FFFD; unchanged (the same object) when it holds no surrogate."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def storable_item(value):
    """A DynamoDB attribute value (``{"S": ...}``, ``{"M": ...}``, ``{"L": ...}``, ``{"SS": ...}``...)
    or a mapping of them, with every string in it (map keys included) made :func:`storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(k): storable_item(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_item(v) for v in value]
    return value
