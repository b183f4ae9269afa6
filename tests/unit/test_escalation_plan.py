"""The escalation plan the state machine follows: tier windows in business time, the 30-day rule."""

from datetime import UTC, datetime, timedelta

import pytest

from helpdesk.config import DEFAULT_POLICY_FILE, parse_policy
from helpdesk.escalation import ESCALATION_LIMIT, MANAGEMENT, next_tier, plan

POLICY = parse_policy(DEFAULT_POLICY_FILE.read_text())  # the reviewed file, uncompressed
# high: business calendar (Europe/Berlin, Mon-Fri 09-17), tier_window 2h; urgent: 24/7, tier_window 30m


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_the_ladder_climbs_one_tier_at_a_time_and_stops_at_management():
    assert [next_tier(t) for t in ("L1", "L2", "L3", MANAGEMENT)] == ["L2", "L3", MANAGEMENT, MANAGEMENT]


def test_an_l1_ticket_climbs_at_its_deadline_then_once_per_tier_window():
    due = utc(2026, 11, 24, 10, 0)  # Tue 11:00 in Berlin

    steps = plan(POLICY, priority="high", tier="L1", due_at=due, created_at=utc(2026, 11, 24, 8, 0), now=due - timedelta(hours=1))

    assert (steps.next_due_at, steps.escalate_to) == (due, "L2")
    assert steps.steps == {
        "L2": {"at": "2026-11-24T12:00:00Z", "to": "L3"},
        "L3": {"at": "2026-11-24T14:00:00Z", "to": MANAGEMENT},
    }


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("L2", ("L3", {"L3": {"at": "2026-11-24T10:30:00Z", "to": MANAGEMENT}})),
        ("L3", (MANAGEMENT, {})),
    ],
)
def test_a_ticket_routed_higher_starts_higher_on_the_ladder(tier, expected):
    due = utc(2026, 11, 24, 10, 0)

    steps = plan(POLICY, priority="urgent", tier=tier, due_at=due, created_at=due - timedelta(minutes=30), now=due - timedelta(minutes=1))

    assert (steps.escalate_to, steps.steps) == expected


def test_management_has_nothing_left_to_climb_to():
    assert plan(POLICY, priority="urgent", tier=MANAGEMENT, due_at=utc(2026, 11, 24, 10), created_at=utc(2026, 11, 24, 9), now=utc(2026, 11, 24, 9)) is None


def test_tier_windows_are_business_time_skipping_the_weekend():
    friday_1630_berlin = utc(2026, 11, 27, 15, 30)

    steps = plan(POLICY, priority="high", tier="L1", due_at=friday_1630_berlin, created_at=utc(2026, 11, 27, 13, 30),
                 now=utc(2026, 11, 27, 14, 0))

    assert steps.steps["L2"]["at"] == "2026-11-30T09:30:00Z"  # 30 min on Friday, 90 on Monday (10:30 CET)
    assert steps.steps["L3"]["at"] == "2026-11-30T11:30:00Z"


def test_tier_windows_skip_holidays():
    wednesday_before_christmas_1600_berlin = utc(2026, 12, 23, 15, 0)

    steps = plan(POLICY, priority="high", tier="L1", due_at=wednesday_before_christmas_1600_berlin,
                 created_at=utc(2026, 12, 23, 13, 0), now=utc(2026, 12, 23, 14, 0))

    assert steps.steps["L2"]["at"] == "2026-12-28T09:00:00Z"  # 24-26 Dec closed, 27th a Sunday: Mon 10:00 CET


def test_nothing_climbs_later_than_30_days_after_creation():
    created = utc(2026, 11, 2, 12, 0)
    limit = created + ESCALATION_LIMIT  # 2 Dec 12:00 UTC, a Wednesday
    due = limit - timedelta(hours=1)

    steps = plan(POLICY, priority="high", tier="L1", due_at=due, created_at=created, now=due - timedelta(hours=1))

    assert (steps.next_due_at, steps.escalate_to) == (due, "L2")
    assert steps.steps == {"L2": {"at": "2026-12-02T12:00:00Z", "to": MANAGEMENT}}  # L3 skipped: straight to management


def test_a_deadline_beyond_30_days_becomes_the_limit_and_goes_to_management():
    created = utc(2026, 11, 2, 12, 0)

    steps = plan(POLICY, priority="high", tier="L2", due_at=created + timedelta(days=40), created_at=created,
                 now=created + timedelta(days=10))

    assert (steps.next_due_at, steps.escalate_to, steps.steps) == (created + ESCALATION_LIMIT, MANAGEMENT, {})


def test_a_ticket_older_than_30_days_goes_to_management_at_once():
    created = utc(2026, 10, 1, 12, 0)
    now = created + timedelta(days=31)

    steps = plan(POLICY, priority="high", tier="L1", due_at=now - timedelta(days=1), created_at=created, now=now)

    assert (steps.next_due_at, steps.escalate_to) == (created + ESCALATION_LIMIT, MANAGEMENT)


def test_a_plan_made_after_the_deadline_gives_the_tier_one_window_from_now():
    """E.g. an agent escalates to L3 after L2's time ran out: L3 gets its window, not an instant climb."""
    due, now = utc(2026, 11, 24, 9, 0), utc(2026, 11, 24, 11, 15)

    steps = plan(POLICY, priority="high", tier="L3", due_at=due, created_at=utc(2026, 11, 24, 7, 0), now=now)

    assert (steps.next_due_at, steps.escalate_to) == (now + timedelta(hours=2), MANAGEMENT)


def test_plan_times_are_whole_seconds_ending_in_z():
    due = utc(2026, 11, 24, 10, 0, 0, 400_000)

    steps = plan(POLICY, priority="urgent", tier="L1", due_at=due, created_at=utc(2026, 11, 24, 9), now=utc(2026, 11, 24, 9, 30))

    assert all(step["at"].endswith(":01Z") for step in steps.steps.values())  # rounded up, never early
