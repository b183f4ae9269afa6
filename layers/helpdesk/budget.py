"""A size budget for every item we write, enforced before the write.

DynamoDB refuses an item over 400 KB, and a customer decides how big ours get: an email with 3,000
attachments, a reply stream that keeps adding files to one ticket. So each model names what may give
way (:class:`Budget`), and its serialisation (``helpdesk.models``) fits the item before every write,
in this order:

1. list entries (attachments) past ``LISTED_MAX``: the files stay in the mail bucket;
2. list entries past the byte budget, the last ones first;
3. long texts, cut with a note saying so.

The item records what was left out in its ``omitted`` map (``{"attachments": 2950, "body": 1200}``:
entries, or characters of text), added to what earlier writes left out. Sizes are counted as
DynamoDB counts them: attribute names and values in UTF-8 bytes, numbers by their digits, lists
and maps 3 bytes plus 1 per element.
"""

from __future__ import annotations

from dataclasses import dataclass

ITEM_MAX_BYTES = 400 * 1024  # DynamoDB's limit
# The budget of one write: what the state machine and the sweep add later (tier, deadlines, counts:
# well under 1 KB a step) fits in the rest.
ITEM_BUDGET = 300 * 1024
LISTED_MAX = 100  # entries of one list (attachments) an item keeps
OMITTED = "omitted"  # the map attribute that says what was left out
SHORTENED = "\n\n[Shortened: {} characters left out.]"
_RESERVE = 512  # for the ``omitted`` map and the note on a shortened text


@dataclass(frozen=True)
class Budget:
    """What may give way, as paths into the item (``("data", "attachments")``), in order."""

    lists: tuple[tuple[str, ...], ...] = ()
    texts: tuple[tuple[str, ...], ...] = ()
    max_bytes: int = ITEM_BUDGET


def item_size(item: dict) -> int:
    """The size DynamoDB counts for a serialised item (``{name: {"S": ...}, ...}``)."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: dict) -> int:
    """The size of one serialised attribute value, without its name."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _number_size(number: str) -> int:
    digits = number.lstrip("+-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def fit(item: dict, budget: Budget) -> dict:
    """``item`` (serialised), trimmed to ``budget`` as the module says, with ``omitted`` updated.
    An item that fits comes back unchanged; the input is never modified."""
    lists = [(path, _find(item, path, "L")) for path in budget.lists]
    over_count = any(found is not None and len(found) > LISTED_MAX for _, found in lists)
    if not over_count and item_size(item) <= budget.max_bytes:
        return item
    item = _copy(item, [path for path, _ in lists] + list(budget.texts))
    omitted: dict[str, int] = {}
    for path in budget.lists:
        entries = _find(item, path, "L")
        if entries is not None and len(entries) > LISTED_MAX:
            omitted[path[-1]] = len(entries) - LISTED_MAX
            del entries[LISTED_MAX:]
    target = budget.max_bytes - _RESERVE
    excess = item_size(item) - target
    for path in budget.lists:
        entries = _find(item, path, "L")
        while excess > 0 and entries:
            excess -= 1 + value_size(entries.pop())
            omitted[path[-1]] = omitted.get(path[-1], 0) + 1
    for path in budget.texts:
        if excess <= 0:
            break
        holder = _find(item, path[:-1], "M") if len(path) > 1 else item
        text = (holder or {}).get(path[-1], {}).get("S")
        if not text:
            continue
        kept = _cut(text, len(text.encode()) - excess - len(SHORTENED.format(len(text)).encode()))
        left_out = len(text) - len(kept)
        holder[path[-1]] = {"S": kept + SHORTENED.format(left_out)}
        omitted[path[-1]] = omitted.get(path[-1], 0) + left_out
        excess = item_size(item) - target
    _record(item, omitted)
    return item


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` of UTF-8 (never half a character)."""
    return text.encode()[:max(0, max_bytes)].decode(errors="ignore").rstrip()


def _find(item: dict, path: tuple[str, ...], kind: str):
    """The list (``"L"``) or map (``"M"``) at ``path``, or None."""
    node: dict | None = item
    for i, name in enumerate(path):
        value = (node or {}).get(name) or {}
        wanted = kind if i == len(path) - 1 else "M"
        node = value.get(wanted)
        if node is None:
            return None
    return node


def _copy(item: dict, paths: list[tuple[str, ...]]) -> dict:
    """A copy of ``item`` in which the maps and lists along ``paths`` may be changed."""
    item = dict(item)
    for path in paths:
        node = item
        for name in path:
            value = node.get(name)
            if not value:
                break
            (kind, data), = value.items()
            copied = dict(data) if kind == "M" else list(data) if kind == "L" else data
            node[name] = {kind: copied}
            if kind != "M":
                break
            node = copied
    return item


def _record(item: dict, omitted: dict[str, int]) -> None:
    if not omitted:
        return
    earlier = {k: int(v["N"]) for k, v in ((item.get(OMITTED) or {}).get("M") or {}).items() if "N" in v}
    for name, count in omitted.items():
        earlier[name] = earlier.get(name, 0) + count
    item[OMITTED] = {"M": {name: {"N": str(count)} for name, count in sorted(earlier.items())}}
