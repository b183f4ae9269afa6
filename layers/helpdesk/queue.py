"""The tier case views: what an agent works on next, soonest deadline first.

Every ticket that is not closed sits in the queue index under its department and tier
(``QUEUE#billing#L1``), sorted by ``queue_sort``:

    0#<opened>     with management (its clock stopped when the SLA was breached), oldest first
    1#<deadline>   a running clock: the most overdue first, then the soonest deadline
    2#<since>      waiting on the customer
    3#<since>      resolved (until the auto-close closes it)

An assigned ticket is also in the assignee index (``ASSIGNEE#<username>``), in the same order.
:func:`place` sets these keys on every commit (helpdesk.ledger); the escalation state machine sets the
same keys in its own transaction (the plan on the ticket carries each tier's sort key).

A page is one Query per queue it covers (a department and tier the agent may see, narrowed by the
filters), each with ``Limit`` = the page size, merged in order: its cost follows the page size and
the number of queues, never the number of tickets. The cursor is opaque: each queue's position.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from helpdesk import agents, clock, settings, sla
from helpdesk.agents import Agent
from helpdesk.config import ESCALATION_LADDER, Policy
from helpdesk.errors import InvalidRequest
from helpdesk.models import ACTIVE, PAUSED, Ticket

PAGE_MAX = 100
PAGE_DEFAULT = 50
WITH_MANAGEMENT, RUNNING, WAITING, RESOLVED = "0", "1", "2", "3"
OPEN_STATUSES = (*ACTIVE, PAUSED)  # the default view: everything not resolved
STATUSES = (*OPEN_STATUSES, "resolved")  # closed tickets are in no queue


def partition(department: str, tier: str) -> str:
    return f"QUEUE#{department}#{tier}"


def assignee_partition(username: str) -> str:
    return f"ASSIGNEE#{username}"


def running_sort(due_at: datetime | str) -> str:
    """The sort key of a ticket whose clock runs until ``due_at`` (the state machine's plan uses it)."""
    return f"{RUNNING}#{due_at if isinstance(due_at, str) else clock.to_iso(due_at)}"


def sort_key(ticket: Ticket) -> str:
    if ticket.status in ACTIVE and ticket.tier == agents.MANAGEMENT:
        return f"{WITH_MANAGEMENT}#{clock.to_iso(ticket.created_at)}"
    if ticket.status in ACTIVE:
        return running_sort(ticket.next_due_at or ticket.resolution_due_at)
    if ticket.status == PAUSED:
        return f"{WAITING}#{clock.to_iso(ticket.paused_at or ticket.updated_at)}"
    return f"{RESOLVED}#{clock.to_iso(ticket.resolved_at or ticket.updated_at)}"


def place(ticket: Ticket) -> None:
    """Put the ticket where the tier case views find it (closed and merged tickets: nowhere)."""
    if ticket.status not in STATUSES or ticket.merged_into:
        ticket.queue_pk = ticket.queue_sort = ticket.assignee_pk = None
        return
    ticket.queue_pk = partition(ticket.department, ticket.tier)
    ticket.queue_sort = sort_key(ticket)
    ticket.assignee_pk = assignee_partition(ticket.assignee) if ticket.assignee else None


# -- reading a page -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """What the agent asked for; empty means the default (see :func:`page`)."""

    status: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    department: tuple[str, ...] = ()
    tier: tuple[str, ...] = ()
    assignee: str | None = None  # "me", "none" or a username
    at_risk: bool = False
    breached: bool = False
    capped: bool = False  # transferred as often as the policy allows an agent (managers' view)


@dataclass
class Row:
    id: str
    subject: str
    customer: str | None
    customer_tier: str
    priority: str
    status: str
    tier: str
    department: str
    assignee: str | None
    next_deadline: str | None  # the running clock's deadline (None: waiting, resolved, with management)
    seconds_left: int | None  # negative once breached
    due_kind: str | None
    at_risk: bool
    breached: bool
    transfer_count: int
    last_activity: str


@dataclass
class Page:
    rows: list[Row]
    cursor: str | None  # the next page's; None: this was the last
    queues: list[str] = field(default_factory=list)  # "billing/L1"...: what this view covers


def _queues(agent: Agent, policy: Policy, filters: Filters) -> list[tuple[str, str]]:
    """The (department, tier) queues the view covers: the filters within what the agent may see.
    Default: the agent's departments at the agent's own tier (managers: every queue)."""
    departments = filters.department or tuple(sorted(policy.department_names if agent.manager else agent.departments))
    if filters.tier:
        tiers = filters.tier
    elif agent.manager:
        tiers = ESCALATION_LADDER
    else:
        tiers = (agent.tier,) if agent.tier else ()
    return [(d, t) for d in departments for t in tiers
            if d in policy.department_names and t in ESCALATION_LADDER and agents.visible(agent, d, t)]


def _range(filters: Filters, now: datetime, policy: Policy, share: float) -> tuple[str, str]:
    """The span of ``queue_sort`` the statuses and flags can lie in (a key condition: only what may
    match is read)."""
    statuses = set(filters.status or OPEN_STATUSES)
    groups = set()
    if statuses & set(ACTIVE):
        groups |= {WITH_MANAGEMENT, RUNNING}
    if PAUSED in statuses:
        groups.add(WAITING)
    if "resolved" in statuses:
        groups.add(RESOLVED)
    if not groups:
        return "~", "~"  # nothing can match
    groups = sorted(groups)
    low, high = f"{groups[0]}#", f"{groups[-1]}#\uffff"
    if filters.breached:  # with management, or a running clock past its deadline
        low, high = max(low, f"{WITH_MANAGEMENT}#"), min(high, running_sort(now))
    if filters.at_risk:  # a running clock due before the latest deadline that can be at risk now
        low, high = max(low, running_sort(now)), min(high, running_sort(sla.lookahead_until(now, policy, share)))
    return low, high


def _expression(filters: Filters, agent: Agent, queues: list[tuple[str, str]], by_assignee: bool,
                policy: Policy) -> tuple[str, dict, dict]:
    """The FilterExpression for what the key condition cannot say."""
    parts, names, values = [], {}, {}

    def any_of(attribute: str, options) -> None:
        keys = []
        for n, option in enumerate(sorted(set(options))):
            values[f":{attribute}{n}"] = {"S": option}
            keys.append(f":{attribute}{n}")
        names[f"#{attribute}"] = attribute
        parts.append(f"#{attribute} IN ({', '.join(keys)})")

    statuses = filters.status or OPEN_STATUSES
    if set(statuses) != set(STATUSES):
        any_of("status", statuses)
    if filters.priority:
        any_of("priority", filters.priority)
    if by_assignee:  # an agent's tickets span queues: keep those of the queues this view covers (a
        # product of departments and tiers: what an agent may see is one, and so are the filters)
        any_of("department", {d for d, _ in queues})
        any_of("tier", {t for _, t in queues})
    elif filters.assignee == "none":
        parts.append("attribute_not_exists(assignee)")
    if filters.capped:  # transferred as often as an agent may: only a manager can move it on
        values[":cap"] = {"N": str(policy.escalation.transfer_cap)}
        parts.append("transfer_count >= :cap")
    return " AND ".join(parts), names, values


def _encode(positions: dict[str, list]) -> str:
    return base64.urlsafe_b64encode(json.dumps(positions, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> dict:
    if not cursor:
        return {}
    try:
        positions = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(positions, dict) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in positions.values()):
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("the cursor is not one this API gave out", details=[{"field": "cursor"}]) from None
    return positions


@functools.cache
def _dynamodb():
    import boto3

    return boto3.client("dynamodb")


def _read(index: str, key: str, value: str, low: str, high: str, expression: tuple[str, dict, dict],
          start: list | None, limit: int) -> Iterator[dict]:
    """The queue's matching items in order after ``start`` ([queue_sort, pk] of the last one taken),
    ``limit`` at a time, lazily (a filter can drop items: reading goes on until enough matched)."""
    condition, names, values = expression
    request = {
        "TableName": settings.get(settings.Env.TICKETS_TABLE), "IndexName": index, "Limit": limit,
        "KeyConditionExpression": f"{key} = :q AND queue_sort BETWEEN :low AND :high",
        "ExpressionAttributeValues": {":q": {"S": value}, ":low": {"S": low}, ":high": {"S": high}, **values},
    }
    if condition:
        request["FilterExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = names
    if start:
        request["ExclusiveStartKey"] = {key: {"S": value}, "queue_sort": {"S": start[0]}, "pk": {"S": start[1]},
                                        "sk": {"S": "TICKET"}}
    while True:
        page = _dynamodb().query(**request)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _sources(agent: Agent, policy: Policy, filters: Filters) -> tuple[dict[str, tuple[str, str, str]], tuple]:
    """The partitions a view reads (name -> index, key, value) and the FilterExpression it reads them with."""
    queues = _queues(agent, policy, filters)
    if not queues:
        return {}, ("", {}, {})
    by_assignee = filters.assignee not in (None, "none")
    if by_assignee:  # one partition: the agent's (or a colleague's) own tickets
        username = agent.username if filters.assignee == "me" else filters.assignee
        sources = {f"@{username}": (Ticket.assignee_index.Meta.index_name, "assignee_pk", assignee_partition(username))}
    else:
        sources = {f"{d}/{t}": (Ticket.queue_index.Meta.index_name, "queue_pk", partition(d, t)) for d, t in queues}
    return sources, _expression(filters, agent, queues, by_assignee, policy)


def page(agent: Agent, policy: Policy, filters: Filters = Filters(), *, limit: int = PAGE_DEFAULT,
         cursor: str | None = None, now: datetime | None = None, share: float | None = None) -> Page:
    """One page of the tier case view, ordered by the next deadline (the most overdue first)."""
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidRequest(f"a page has 1 to {PAGE_MAX} rows", details=[{"field": "limit"}])
    now, share = now or clock.now(), sla.at_risk_share() if share is None else share
    positions = _decode(cursor)
    low, high = _range(filters, now, policy, share)
    sources, expression = _sources(agent, policy, filters)

    def tagged(name: str, items: Iterator[dict]) -> Iterator[tuple[str, str, str, dict]]:
        for item in items:
            yield item["queue_sort"]["S"], item["pk"]["S"], name, item

    streams = [tagged(name, _read(*source, low, high, expression, positions.get(name), limit))
               for name, source in sources.items()]
    rows, taken = [], {}
    for sort, pk, name, item in heapq.merge(*streams):
        if len(rows) == limit:
            break
        row = _row(item, policy, now, share)
        taken[name] = [sort, pk]
        if not filters.at_risk or row.at_risk:
            rows.append(row)
    else:  # every queue read to its end
        return Page(rows, None, list(sources))
    # Each queue resumes after the last row it gave (a queue that gave none starts where it stood).
    next_positions = {name: taken.get(name) or positions.get(name) for name in sources}
    return Page(rows, _encode({k: v for k, v in next_positions.items() if v}), list(sources))


def counts(agent: Agent, policy: Policy, filters: Filters = Filters()) -> tuple[dict[str, int], list[str]]:
    """How many tickets of each status the view covers (its filters but the status and the clock
    flags): the console's tabs. It reads every entry of the queues it covers, so its cost follows the
    size of those queues (their open and resolved tickets), never the table."""
    every = dataclasses.replace(filters, status=STATUSES, at_risk=False, breached=False)
    sources, expression = _sources(agent, policy, every)
    found = dict.fromkeys(STATUSES, 0)
    for source in sources.values():
        for item in _read(*source, f"{WITH_MANAGEMENT}#", f"{RESOLVED}#\uffff", expression, None, PAGE_MAX):
            status = item.get("status", {}).get("S")
            if status in found:
                found[status] += 1
    return found, list(sources)


def _row(item: dict, policy: Policy, now: datetime, share: float) -> Row:
    ticket = Ticket.from_raw_data(item)
    group, _, since = ticket.queue_sort.partition("#")
    ticket.next_due_at = clock.from_iso(since) if group == RUNNING else None
    seconds = int((ticket.next_due_at - now).total_seconds()) if ticket.next_due_at else None
    return Row(
        id=ticket.ticket_id, subject=ticket.subject, customer=ticket.requester, customer_tier=ticket.customer_tier,
        priority=ticket.priority, status=ticket.status, tier=ticket.tier, department=ticket.department,
        assignee=ticket.assignee, next_deadline=clock.to_iso(ticket.next_due_at) if ticket.next_due_at else None,
        seconds_left=seconds, due_kind=ticket.due_kind if ticket.next_due_at else None,
        at_risk=ticket.next_due_at is not None and sla.at_risk(policy, ticket, now, share),
        breached=bool(ticket.breached) or (seconds is not None and seconds < 0),
        transfer_count=int(ticket.transfer_count or 0), last_activity=clock.to_iso(ticket.updated_at),
    )
