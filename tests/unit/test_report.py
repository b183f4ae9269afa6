"""The SLA report's aggregation, on hand-built tickets and events (no AWS)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from helpdesk import report
from helpdesk.models import Ticket, TicketEvent, ticket_pk

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def ticket(n: int, *, at: datetime = DAY, priority: str = "normal", department: str = "support", tier: str = "L1",
           responded: timedelta | None = None, resolved: timedelta | None = None, fr: timedelta = 4 * H,
           res: timedelta = 48 * H, breached: bool = False, transfers: int = 0, **extra) -> Ticket:
    t = Ticket(ticket_pk(f"HD-{n}"), ticket_id=f"HD-{n}", priority=priority, department=department, tier=tier,
               status="open", created_at=at, first_response_due_at=at + fr, resolution_due_at=at + res,
               first_responded_at=at + responded if responded is not None else None,
               resolved_at=at + resolved if resolved is not None else None, breached=breached,
               transfer_count=transfers)
    for name, value in extra.items():
        setattr(t, name, value)
    return t


def event(n: int, type_: str, at: datetime = DAY + H, **data) -> TicketEvent:
    return TicketEvent(ticket_pk(f"HD-{n}"), f"EVENT#{at:%Y-%m-%dT%H:%M:%SZ}#x", ticket_id=f"HD-{n}", event_id="x",
                       type=type_, at=at, actor="system", data=data)


def test_sla_met_counts_only_decided_tickets():
    tickets = [
        ticket(1, responded=1 * H, resolved=10 * H),  # both met
        ticket(2, responded=5 * H, resolved=50 * H),  # both missed
        ticket(3, responded=2 * H),  # resolution not decided at NOW? due DAY+48h < NOW: missed
        ticket(4, at=NOW - H),  # nothing due yet: counted as opened only
    ]
    rows = report.aggregate([report.facts(t, now=NOW) for t in tickets], ("priority",))
    normal, total = rows
    assert (normal.priority, normal.opened) == ("normal", 4)
    assert normal.first_response_met == pytest.approx(100 * 2 / 3, abs=0.1)
    assert normal.resolution_met == pytest.approx(100 / 3, abs=0.1)
    assert normal.breaches == 2  # ticket 2 (both) and 3 (resolution)
    assert total.priority == "*" and total.opened == 4


def test_escalations_split_automatic_and_manual_and_the_tier_is_the_routed_one():
    t = ticket(1, tier="L3", transfers=2)
    events = [event(1, "escalated", DAY + H, from_tier="L1", to_tier="L2", auto=True),
              event(1, "escalated", DAY + 2 * H, from_tier="L2", to_tier="L3", auto=False),
              event(1, "transferred", DAY + 3 * H)]
    f = report.facts(t, events, now=NOW)
    assert (f.escalations_auto, f.escalations_manual, f.tier, f.transfers) == (1, 1, "L1", 2)
    (row, _) = report.aggregate([f, report.facts(ticket(2), now=NOW)], ("tier",))
    assert row.tier == "L1" and row.transfers_per_ticket == 1.0


def test_medians_and_90th_percentiles_of_response_and_resolution_times():
    tickets = [ticket(n, responded=n * H, resolved=10 * n * H) for n in range(1, 11)]
    (_, total) = report.aggregate([report.facts(t, now=NOW) for t in tickets], ("day",))
    assert total.first_response_p50 == 5.5 * 3600
    assert total.first_response_p90 == pytest.approx(9.1 * 3600)
    assert total.resolution_p50 == 55 * 3600
    assert report.percentile([], 0.5) is None and report.percentile([7.0], 0.9) == 7.0


def test_csat_from_survey_events_or_the_ticket_else_not_available():
    rated = report.facts(ticket(1), [event(1, "survey", score=4), event(1, "survey", score=5)], now=NOW)
    on_ticket = report.facts(ticket(2, csat_score=2), now=NOW)
    unrated = report.facts(ticket(3), now=NOW)
    assert (rated.csat, on_ticket.csat, unrated.csat) == (5.0, 2.0, None)  # a customer who rates again: the latest counts
    (row,) = report.aggregate([unrated], ("day",), total=False)
    assert row.csat is None and report.cells(row)[-1] == "n/a"
    (row,) = report.aggregate([rated, unrated], ("day",), total=False)
    assert (row.csat, row.csat_responses) == (5.0, 1)


def test_rows_per_day_priority_department_and_tier_in_range():
    tickets = [ticket(1), ticket(2, priority="urgent"), ticket(3, department="billing"),
               ticket(4, at=DAY + timedelta(days=1)), ticket(5, at=DAY + timedelta(days=5))]
    rows = report.build(tickets, {}, start=date(2026, 11, 2), end=date(2026, 11, 3), now=NOW)
    keys = [(r.day, r.priority, r.department, r.tier) for r in rows]
    assert keys == [("2026-11-02", "normal", "billing", "L1"), ("2026-11-02", "normal", "support", "L1"),
                    ("2026-11-02", "urgent", "support", "L1"), ("2026-11-03", "normal", "support", "L1"),
                    ("*", "*", "*", "*")]
    assert rows[-1].opened == 4


def test_the_table_prints_every_column_and_says_when_empty():
    rows = report.aggregate([report.facts(ticket(1, responded=H / 2), now=NOW)])
    text = report.table(rows)
    assert text.splitlines()[0].split()[:4] == ["day", "priority", "department", "tier"]
    assert "2026-11-02" in text and "n/a" in text
    assert "no tickets" in report.table([])
    assert (report.duration(1800), report.duration(5400), report.duration(3 * 86400)) == ("30m", "1.5h", "3.0d")
