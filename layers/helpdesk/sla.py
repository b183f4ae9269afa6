"""Business-time arithmetic: deadlines that skip nights, weekends and holidays (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from helpdesk import settings
from helpdesk.config import WEEKDAYS, Calendar, Policy

_MAX_DAYS = 3 * 366  # a calendar with hours always reaches a working day long before this


def _working_intervals(calendar: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    """The day's working interval in UTC (none on holidays and closed days)."""
    if day in calendar.holidays:
        return []
    hours = calendar.hours.get(WEEKDAYS[day.weekday()])
    if not hours:
        return []
    zone = calendar.zone
    start = datetime.combine(day, hours[0], tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day, hours[1], tzinfo=zone).astimezone(UTC)
    return [(start, end)]


def add_business_time(start: datetime, duration: timedelta, calendar: Calendar) -> datetime:
    """The moment ``duration`` of working time after ``start``, rounded up to a whole second."""
    remaining = duration
    if calendar.always_open:
        return _whole_second(start + remaining)
    day = start.astimezone(calendar.zone).date()
    for _ in range(_MAX_DAYS):
        for open_at, close_at in _working_intervals(calendar, day):
            begin = max(open_at, start)
            if begin >= close_at:
                continue
            if begin + remaining <= close_at:
                return _whole_second(begin + remaining)
            remaining -= close_at - begin
        day += timedelta(days=1)
    raise ValueError("the calendar has no working time in the next three years")


def business_time_between(start: datetime, end: datetime, calendar: Calendar) -> timedelta:
    """Working time from ``start`` to ``end`` (zero when ``end`` is not later)."""
    if end <= start:
        return timedelta(0)
    if calendar.always_open:
        return end - start
    total = timedelta(0)
    day = start.astimezone(calendar.zone).date()
    last = end.astimezone(calendar.zone).date()
    while day <= last:
        for open_at, close_at in _working_intervals(calendar, day):
            begin, finish = max(open_at, start), min(close_at, end)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return total


def _whole_second(moment: datetime) -> datetime:
    return datetime.fromtimestamp(math.ceil(moment.timestamp()), UTC)


@dataclass(frozen=True)
class Deadlines:
    first_response_due_at: datetime
    resolution_due_at: datetime


def deadlines(policy: Policy, priority: str, start: datetime) -> Deadlines:
    """First-response and resolution due times for a ticket of ``priority`` opened at ``start``."""
    sla = policy.sla[priority]
    calendar = policy.calendars[sla.calendar]
    return Deadlines(
        first_response_due_at=add_business_time(start, sla.first_response, calendar),
        resolution_due_at=add_business_time(start, sla.resolution, calendar),
    )


# -- at risk: warned before the breach (the sweep alerts the team, the queue flags the row) ------------

def at_risk_share() -> float:
    """The share of an SLA window after which a ticket is at risk (``HELPDESK_AT_RISK_SHARE``, 0.75)."""
    share = float(settings.get(settings.Env.AT_RISK_SHARE) or 0.75)
    if not 0 < share < 1:
        raise ValueError(f"{settings.Env.AT_RISK_SHARE} must be between 0 and 1, not {share}")
    return share


def window(policy: Policy, ticket) -> timedelta:
    """The SLA window the ticket's current deadline (``next_due_at``, kind ``due_kind``) closes: the
    first-response or resolution target itself, else the tier window an escalation gave."""
    target = policy.sla[ticket.priority]
    if ticket.due_kind == "first_response" and ticket.next_due_at == ticket.first_response_due_at:
        return target.first_response
    if ticket.due_kind == "resolution" and ticket.next_due_at == ticket.resolution_due_at:
        return target.resolution
    return target.tier_window


def at_risk(policy: Policy, ticket, now: datetime, share: float) -> bool:
    """Past ``share`` of its window and not overdue yet, in business time on the priority's calendar
    (time spent waiting on the customer does not count: the deadlines moved by it)."""
    if ticket.next_due_at is None or now >= ticket.next_due_at:
        return False
    calendar = policy.calendars[policy.sla[ticket.priority].calendar]
    left = business_time_between(now, ticket.next_due_at, calendar)
    return left <= window(policy, ticket) * (1 - share)


def lookahead_until(now: datetime, policy: Policy, share: float) -> datetime:
    """The latest deadline a ticket at risk *now* can have: (1 - share) of the longest window, in
    business time from now, over every priority's calendar."""
    until = now
    for target in policy.sla.values():
        calendar = policy.calendars[target.calendar]
        for span in (target.first_response, target.resolution, target.tier_window):
            until = max(until, add_business_time(now, span * (1 - share), calendar))
    return until
