"""The escalation ladder and the plan the state machine follows (pure functions).

The state machine cannot compute business hours, so the domain writes the whole plan on the
ticket whenever its clock changes: when the current tier's deadline passes it moves to
``escalate_to``, and ``escalation_plan[tier]`` says when and where that tier climbs next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk import clock
from helpdesk.config import ESCALATION_LADDER, Policy
from helpdesk.sla import add_business_time

MANAGEMENT = "management"
ESCALATION_LIMIT = timedelta(days=30)  # any ticket still open this long after creation goes to management


def next_tier(tier: str) -> str:
    """The tier above ``tier`` (management stays management)."""
    index = ESCALATION_LADDER.index(tier)
    return ESCALATION_LADDER[min(index + 1, len(ESCALATION_LADDER) - 1)]


@dataclass(frozen=True)
class Plan:
    next_due_at: datetime
    escalate_to: str
    steps: dict[str, dict[str, str]]  # tier -> {"at": ISO time, "to": tier}, for the tiers after the next


def plan(policy: Policy, *, priority: str, tier: str, due_at: datetime, created_at: datetime,
         now: datetime | None = None) -> Plan | None:
    """When the ticket at ``tier`` climbs, given its current deadline ``due_at``.

    Each tier reached by escalation gets the priority's ``tier_window`` of business time; nothing
    climbs later than 30 days after creation, when it goes straight to management. ``None`` once
    the ticket is with management (nothing left to climb to).

    A plan never escalates retroactively: when ``due_at`` has already passed at ``now`` (default
    :func:`clock.now`) -- a ticket escalated by hand after its deadline, reopened, or resumed after
    climbing -- the tier holding it gets one ``tier_window`` from now. The 30-day rule still wins.
    """
    if tier == MANAGEMENT:
        return None
    sla = policy.sla[priority]
    calendar = policy.calendars[sla.calendar]
    limit = created_at + ESCALATION_LIMIT
    now = clock.now() if now is None else now
    if due_at <= now:
        due_at = add_business_time(now, sla.tier_window, calendar)

    def capped(at: datetime, to: str) -> tuple[datetime, str]:
        return (limit, MANAGEMENT) if at >= limit else (at, to)

    next_due_at, escalate_to = capped(due_at, next_tier(tier))
    steps: dict[str, dict[str, str]] = {}
    at, current = next_due_at, escalate_to
    while current != MANAGEMENT:
        at, to = capped(add_business_time(at, sla.tier_window, calendar), next_tier(current))
        steps[current] = {"at": clock.to_iso(at), "to": to}
        current = to
    return Plan(next_due_at=next_due_at, escalate_to=escalate_to, steps=steps)
