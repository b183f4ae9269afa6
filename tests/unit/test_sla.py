"""Deadlines in business time: nights, weekends, holidays and daylight saving skipped."""

from datetime import UTC, datetime, timedelta

import pytest

from helpdesk.config import load_policy
from helpdesk.sla import add_business_time, business_time_between, deadlines

POLICY = load_policy()
BUSINESS = POLICY.calendars["business"]  # Europe/Berlin, Mon-Fri 09:00-17:00


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        (utc(2026, 11, 24, 9, 0), 2, utc(2026, 11, 24, 11, 0)),  # Tue 10:00 CET + 2h
        (utc(2026, 11, 24, 15, 0), 2, utc(2026, 11, 25, 9, 0)),  # 1h left today, 1h tomorrow
        (utc(2026, 11, 27, 15, 30), 2, utc(2026, 11, 30, 9, 30)),  # Friday -> Monday
        (utc(2026, 11, 28, 12, 0), 1, utc(2026, 11, 30, 9, 0)),  # opened on Saturday
        (utc(2026, 11, 24, 20, 0), 1, utc(2026, 11, 25, 9, 0)),  # opened at night
        (utc(2026, 12, 23, 15, 0), 2, utc(2026, 12, 28, 9, 0)),  # 24-26 Dec are holidays, 27th a Sunday
        (utc(2027, 3, 26, 12, 0), 1, utc(2027, 3, 30, 8, 0)),  # Good Friday + Easter Monday; CEST since Sunday
    ],
)
def test_business_deadlines_skip_closed_time(start, hours, due):
    assert add_business_time(start, timedelta(hours=hours), BUSINESS) == due


def test_urgent_runs_around_the_clock():
    saturday_night = utc(2026, 11, 28, 23, 0)

    due = deadlines(POLICY, "urgent", saturday_night)

    assert due.first_response_due_at == utc(2026, 11, 28, 23, 30)
    assert due.resolution_due_at == utc(2026, 11, 29, 3, 0)


def test_deadlines_follow_the_priority_policy():
    due = deadlines(POLICY, "high", utc(2026, 11, 24, 9, 0))

    assert due.first_response_due_at == utc(2026, 11, 24, 11, 0)
    assert due.resolution_due_at == utc(2026, 11, 25, 9, 0)  # 8h: 7h on Tuesday, 1h Wednesday


def test_business_time_between_counts_only_open_hours():
    friday_afternoon, monday_morning = utc(2026, 11, 27, 15, 0), utc(2026, 11, 30, 9, 0)

    assert business_time_between(friday_afternoon, monday_morning, BUSINESS) == timedelta(hours=2)
    assert business_time_between(monday_morning, friday_afternoon, BUSINESS) == timedelta(0)


def test_deadlines_are_whole_seconds():
    fast = POLICY.compressed(7)  # 30 minutes / 7 is not a whole number of seconds

    due = deadlines(fast, "urgent", utc(2026, 11, 24, 9, 0))

    assert due.first_response_due_at.microsecond == 0
