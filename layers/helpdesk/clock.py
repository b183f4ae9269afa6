"""The one source of "now".

Times are timezone-aware UTC with whole seconds inside, and ISO 8601 ending in ``Z`` on the wire
(DynamoDB, Step Functions input: moto and AWS both accept that form in Wait states).
Tests freeze the clock with :func:`frozen`; nothing ever sleeps on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC).replace(microsecond=0)


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Make :func:`now` answer ``at`` inside the block."""
    global _frozen
    previous, _frozen = _frozen, at.astimezone(UTC).replace(microsecond=0)
    try:
        yield
    finally:
        _frozen = previous


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def human(moment: datetime, zone: str) -> str:
    """How a person reads a time: ``Wed 25 Nov 2026, 11:00 CET`` in the team's time zone."""
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y, %H:%M %Z")
