"""How much one address may make us do within a clock hour, whatever the channel.

Each new ticket sends its customer an acknowledgement, so the web form and the email channel share
one limit per address (and per phone number, for the SMS): otherwise anyone could have the support
domain mail a victim thirty times in their name. Messages on tickets have their own limit per sender.
A counter item per (what, address, hour) in the ticket table counts, with a conditional update, and
expires by TTL. Addresses are stored as digests only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from pynamodb.exceptions import PynamoDBException, UpdateError

from helpdesk import clock, settings
from helpdesk.errors import RateLimited
from helpdesk.models import SenderCounter
from helpdesk.settings import Env

WINDOW = timedelta(hours=1)
NEW_TICKETS = "tickets"  # tickets opened for one customer address (or phone number), any channel
MESSAGES = "messages"  # customer messages from one sender, on any of their tickets

_LIMITS = {NEW_TICKETS: Env.NEW_TICKETS_PER_HOUR, MESSAGES: Env.MESSAGES_PER_HOUR}
_WORDS = {NEW_TICKETS: "new requests", MESSAGES: "messages"}
log = logging.getLogger(__name__)


def per_hour(kind: str) -> int:
    """The limit in force (0: none)."""
    return int(settings.get(_LIMITS[kind]) or 0)


@contextlib.contextmanager
def spend(kind: str, *addresses: str | None, at: datetime | None = None) -> Iterator[None]:
    """One of this hour's slots of ``kind`` for each of ``addresses`` (None ones are skipped), or
    :class:`RateLimited` (with the seconds to the next hour) when any has none left. The slots are
    given back when the block raises: a write that failed, or was refused, costs nothing."""
    limit = per_hour(kind)
    moment = at or clock.now()
    spent: list[SenderCounter] = []
    try:
        for address in filter(None, addresses):
            counter = _counter(kind, address, moment)
            if limit > 0 and not _take(counter, moment, limit):
                next_hour = _hour(moment) + WINDOW
                raise RateLimited(f"more than {limit} {_WORDS[kind]} within the hour from this address",
                                  retry_after=max(1, int((next_hour - moment).total_seconds())))
            spent.append(counter)
        yield
    except BaseException:
        for counter in spent:
            _give_back(counter)
        raise


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _counter(kind: str, address: str, moment: datetime) -> SenderCounter:
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]
    return SenderCounter(f"RATE#{kind}#{digest}#{_hour(moment).strftime('%Y-%m-%dT%H')}")


def _take(counter: SenderCounter, moment: datetime, limit: int) -> bool:
    try:
        counter.update(
            actions=[SenderCounter.count.add(1), SenderCounter.expires_at.set(_hour(moment) + 2 * WINDOW)],
            condition=SenderCounter.count.does_not_exist() | (SenderCounter.count < limit),
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _give_back(counter: SenderCounter) -> None:
    try:
        counter.update(actions=[SenderCounter.count.add(-1)], condition=SenderCounter.count > 0)
    except PynamoDBException:  # best effort: at worst the slot stays spent until the hour ends
        log.warning("could not give back a rate-limit slot", exc_info=True)
