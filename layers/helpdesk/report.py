"""The SLA report: per day, priority, department and tier (pure aggregation), and where its data comes from.

For each group of tickets *opened* that day: how many, the share that met the first-response and the
resolution target (tickets still inside their target are not counted yet), breaches (a target
missed, or the climb to management), escalations (automatic vs by hand: ``escalated`` events'
``data.auto``), transfers per ticket, the median and 90th percentile time to first response and to
resolution (wall-clock, creation to the event), and CSAT (the mean 1-5 score of ``survey`` events or a
ticket's ``csat_score``, when there are any; else n/a).

The tier is the one the ticket was routed to (before any escalation); the department is the current
one. Data: :func:`load` reads the tickets opened in the range and their escalation, transfer and survey
events through the opened index (a day's tickets) and one Query per ticket: never the whole table.

``python -m helpdesk.report --from 2026-11-01 --to 2026-11-30`` prints the table (``--json`` the rows) of
the deployed stack (``--stack NAME``: its ticket table from the stack's outputs) or of ``make dev``
(``--local``: the local console computes it, since moto lives inside the dev process).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, UTC
from urllib.parse import urlencode

from helpdesk import clock

GROUP_BY = ("day", "priority", "department", "tier")
EVENT_TYPES = ("escalated", "transferred", "survey", "reply", "status_changed")


def _get(obj, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _data(event) -> dict:
    data = _get(event, "data")
    if data is None:
        return {}
    return data.as_dict() if hasattr(data, "as_dict") else dict(data)


@dataclass(frozen=True)
class Facts:
    """One ticket, reduced to what the report counts."""

    ticket_id: str
    day: str
    priority: str
    department: str
    tier: str  # as routed
    first_response: bool | None  # met, missed, None: not due yet
    resolution: bool | None
    breached: bool
    escalations_auto: int
    escalations_manual: int
    transfers: int
    time_to_first_response: float | None  # seconds
    time_to_resolution: float | None
    csat: float | None


def _met(done: datetime | None, due: datetime | None, now: datetime) -> bool | None:
    if due is None:
        return None
    if done is not None:
        return done <= due
    return False if now > due else None


def facts(ticket, events: Iterable = (), *, now: datetime | None = None) -> Facts:
    """``ticket`` (a Ticket or anything with its attributes) and its events (``escalated``,
    ``transferred``, ``survey``; others are ignored)."""
    now = now or clock.now()
    created = _get(ticket, "created_at")
    responded, resolved = _get(ticket, "first_responded_at"), _get(ticket, "resolved_at")
    escalated = sorted((e for e in events if _get(e, "type") == "escalated"), key=lambda e: _get(e, "at"))
    auto = sum(1 for e in escalated if _data(e).get("auto") is True)
    surveys = sorted((e for e in events
                      if _get(e, "type") == "survey" and isinstance(_data(e).get("score"), int | float)),
                     key=lambda e: _get(e, "at"))  # a customer may rate again: the latest counts
    if surveys:
        csat = float(_data(surveys[-1])["score"])
    else:
        csat = float(_get(ticket, "csat_score")) if isinstance(_get(ticket, "csat_score"), int | float) else None
    first_response = _met(responded, _get(ticket, "first_response_due_at"), now)
    resolution = _met(resolved, _get(ticket, "resolution_due_at"), now)
    return Facts(
        ticket_id=_get(ticket, "ticket_id"),
        day=created.astimezone(UTC).date().isoformat(),
        priority=_get(ticket, "priority"),
        department=_get(ticket, "department"),
        tier=(_data(escalated[0]).get("from_tier") if escalated else None) or _get(ticket, "tier"),
        first_response=first_response,
        resolution=resolution,
        breached=bool(_get(ticket, "breached")) or first_response is False or resolution is False,
        escalations_auto=auto,
        escalations_manual=len(escalated) - auto,
        transfers=int(_get(ticket, "transfer_count") or 0),
        time_to_first_response=(responded - created).total_seconds() if responded else None,
        time_to_resolution=(resolved - created).total_seconds() if resolved else None,
        csat=csat,
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Row:
    day: str
    priority: str
    department: str
    tier: str
    opened: int
    first_response_met: float | None  # percent of the tickets whose target is decided
    resolution_met: float | None
    breaches: int
    escalations_auto: int
    escalations_manual: int
    transfers_per_ticket: float
    first_response_p50: float | None  # seconds
    first_response_p90: float | None
    resolution_p50: float | None
    resolution_p90: float | None
    csat: float | None
    csat_responses: int

    def to_dict(self) -> dict:
        return asdict(self)


def _percent(flags: list[bool | None]) -> float | None:
    decided = [f for f in flags if f is not None]
    return round(100 * sum(decided) / len(decided), 1) if decided else None


def summarize(group: Sequence[Facts], **key: str) -> Row:
    ttfr = [f.time_to_first_response for f in group if f.time_to_first_response is not None]
    ttr = [f.time_to_resolution for f in group if f.time_to_resolution is not None]
    scores = [f.csat for f in group if f.csat is not None]
    return Row(
        **{name: key.get(name, "*") for name in GROUP_BY},
        opened=len(group),
        first_response_met=_percent([f.first_response for f in group]),
        resolution_met=_percent([f.resolution for f in group]),
        breaches=sum(f.breached for f in group),
        escalations_auto=sum(f.escalations_auto for f in group),
        escalations_manual=sum(f.escalations_manual for f in group),
        transfers_per_ticket=round(sum(f.transfers for f in group) / len(group), 2) if group else 0.0,
        first_response_p50=percentile(ttfr, 0.5), first_response_p90=percentile(ttfr, 0.9),
        resolution_p50=percentile(ttr, 0.5), resolution_p90=percentile(ttr, 0.9),
        csat=round(sum(scores) / len(scores), 2) if scores else None, csat_responses=len(scores),
    )


def aggregate(all_facts: Iterable[Facts], by: Sequence[str] = GROUP_BY, *, total: bool = True) -> list[Row]:
    """One row per group (sorted), then the total over everything (``*`` in every key)."""
    all_facts = list(all_facts)
    groups: dict[tuple, list[Facts]] = defaultdict(list)
    for f in all_facts:
        groups[tuple(getattr(f, name) for name in by)].append(f)
    rows = [summarize(group, **dict(zip(by, key, strict=True))) for key, group in sorted(groups.items())]
    if total and all_facts:
        rows.append(summarize(all_facts))
    return rows


@dataclass(frozen=True)
class AgentRow:
    """What one agent did to the tickets opened in the range (from the timeline events naming them)."""

    agent: str
    replies: int
    first_responses: int  # replies that met a ticket's first response (for real: an agent's public answer)
    escalations: int  # by hand, to the next tier
    transfers: int  # to another department
    resolutions: int
    tickets: int  # tickets the agent acted on

    def to_dict(self) -> dict:
        return asdict(self)


def by_agent(events_by_ticket: dict[str, list], ticket_ids: Iterable[str] | None = None) -> list[AgentRow]:
    """One row per agent, busiest first: replies, first responses, escalations and transfers by hand,
    resolutions, over the tickets ``ticket_ids`` (default: all)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    touched: dict[str, set] = defaultdict(set)
    chosen = set(ticket_ids) if ticket_ids is not None else None
    for ticket_id, events in events_by_ticket.items():
        if chosen is not None and ticket_id not in chosen:
            continue
        for event in events:
            actor = _get(event, "actor") or ""
            if not actor.startswith("agent:"):
                continue
            name, kind, data = actor.removeprefix("agent:"), _get(event, "type"), _data(event)
            touched[name].add(ticket_id)
            if kind == "reply" and _get(event, "public"):
                counts[name]["replies"] += 1
                counts[name]["first_responses"] += bool(data.get("first_response"))
            elif kind == "escalated":
                counts[name]["escalations"] += 1
            elif kind == "transferred":
                counts[name]["transfers"] += 1
            elif kind == "status_changed" and data.get("to") == "resolved":
                counts[name]["resolutions"] += 1
    rows = [AgentRow(agent=name, tickets=len(touched[name]), **{k: counts[name][k] for k in (
        "replies", "first_responses", "escalations", "transfers", "resolutions")}) for name in touched]
    return sorted(rows, key=lambda r: (-r.tickets, r.agent))


def build(tickets: Iterable, events_by_ticket: dict[str, list], *, start: date, end: date,
          now: datetime | None = None, by: Sequence[str] = GROUP_BY) -> list[Row]:
    """The report's rows for tickets opened from ``start`` to ``end`` (both included, UTC days)."""
    return aggregate(_facts_in(tickets, events_by_ticket, start, end, now), by)


def _facts_in(tickets: Iterable, events_by_ticket: dict[str, list], start: date, end: date,
              now: datetime | None) -> list[Facts]:
    """The facts of the tickets opened from ``start`` to ``end`` (others are left out)."""
    first, last = start.isoformat(), end.isoformat()
    chosen = [facts(t, events_by_ticket.get(_get(t, "ticket_id"), ()), now=now) for t in tickets]
    return [f for f in chosen if first <= f.day <= last]


# -- the data ----------------------------------------------------------------------------------------

def load(start: date, end: date, *, table: str | None = None) -> tuple[list, dict[str, list]]:
    """The tickets opened from ``start`` to ``end`` and their report events (``table``: the ticket
    table, by default the one ``HELPDESK_TICKETS_TABLE`` names).

    The opened index names each day's tickets (``OPENED_SHARDS`` queries a day, keys only); each
    ticket's partition is then one Query for the ticket and its events. What is read follows the
    range, never the table's size.
    """
    import boto3

    from helpdesk import settings
    from helpdesk.models import OPENED_SHARDS, TICKET_SK, Ticket, TicketEvent, opened_partition, query_pages

    table, client = table or settings.get(settings.Env.TICKETS_TABLE), boto3.client("dynamodb")

    def items(**request) -> Iterable[dict]:
        for page in query_pages(client, {"TableName": table, **request}):
            yield from page["Items"]

    partitions = [opened_partition(start + timedelta(days=n), shard)
                  for n in range((end - start).days + 1) for shard in range(OPENED_SHARDS)]
    keys = [item["pk"]["S"] for partition in partitions for item in items(
        IndexName=Ticket.opened_index.Meta.index_name, KeyConditionExpression="opened_shard = :p",
        ExpressionAttributeValues={":p": {"S": partition}})]

    def ticket_and_events(pk: str) -> tuple[object | None, list]:
        ticket, events = None, []
        for item in items(KeyConditionExpression="pk = :pk", FilterExpression="sk = :ticket OR #type IN ("
                          + ", ".join(f":t{i}" for i in range(len(EVENT_TYPES))) + ")",
                          ExpressionAttributeNames={"#type": "type"},
                          ExpressionAttributeValues={":pk": {"S": pk}, ":ticket": {"S": TICKET_SK},
                                                     **{f":t{i}": {"S": t} for i, t in enumerate(EVENT_TYPES)}}):
            if item["sk"]["S"] == TICKET_SK:
                ticket = Ticket.from_raw_data(item)
            else:
                events.append(TicketEvent.from_raw_data(item))
        return ticket, events

    with ThreadPoolExecutor(max_workers=8) as pool:  # one Query per ticket: a day's tickets in seconds
        found = [(t, e) for t, e in pool.map(ticket_and_events, keys) if t is not None]
    return [t for t, _ in found], {t.ticket_id: e for t, e in found}


def facts_for(start: date, end: date, *, now: datetime | None = None, table: str | None = None) -> list[Facts]:
    return _facts_in(*load(start, end, table=table), start, end, now)


def report(start: date, end: date, *, now: datetime | None = None, by: Sequence[str] = GROUP_BY,
           table: str | None = None) -> list[Row]:
    return aggregate(facts_for(start, end, now=now, table=table), by)


def report_with_agents(start: date, end: date, *, by: Sequence[str] = GROUP_BY,
                       now: datetime | None = None) -> tuple[list[Row], list[AgentRow]]:
    """The report's rows and what each agent did, for the tickets opened in the range (one read)."""
    tickets, events = load(start, end)
    facts_in = _facts_in(tickets, events, start, end, now)
    return aggregate(facts_in, by), by_agent(events, [f.ticket_id for f in facts_in])


def parse_range(start: str | None, end: str | None, by: str | None, *, today: date | None = None,
                ) -> tuple[date, date, list[str]]:
    """The CLI's and the console's parameters: ``from``/``to`` (ISO days, default the last 7 days) and
    ``by`` (comma-separated columns). Raises ValueError with a message for a person."""
    today = today or clock.now().date()
    try:
        first = date.fromisoformat(start) if start else today - timedelta(days=6)
        last = date.fromisoformat(end) if end else today
    except ValueError:
        raise ValueError("from and to are days like 2026-11-30") from None
    columns = [b for b in (by or ",".join(GROUP_BY)).split(",") if b]
    if not columns or not set(columns) <= set(GROUP_BY):
        raise ValueError(f"by: choose from {', '.join(GROUP_BY)}")
    if last < first:
        raise ValueError("to is before from")
    if (last - first).days > MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS + 1} days at once")
    return first, last, columns


MAX_DAYS = 366  # a year and a day: 8 index queries a day, plus one per ticket


# -- the table ---------------------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


COLUMNS = ("day", "priority", "department", "tier", "opened", "FR met", "res met", "breaches",
           "esc auto", "esc manual", "transfers/t", "FR p50", "FR p90", "res p50", "res p90", "CSAT")


def cells(row: Row) -> list[str]:
    return [row.day, row.priority, row.department, row.tier, str(row.opened), _pct(row.first_response_met),
            _pct(row.resolution_met), str(row.breaches), str(row.escalations_auto), str(row.escalations_manual),
            f"{row.transfers_per_ticket:.2f}", duration(row.first_response_p50), duration(row.first_response_p90),
            duration(row.resolution_p50), duration(row.resolution_p90),
            "n/a" if row.csat is None else f"{row.csat:.1f} ({row.csat_responses})"]


def table(rows: Sequence[Row]) -> str:
    body = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if not rows:
        lines.append("(no tickets opened in this range)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from helpdesk import deployment

    parser = argparse.ArgumentParser(prog="python -m helpdesk.report", description="The SLA report, as a table.")
    parser.add_argument("--from", dest="start", help="first day (UTC), default: 6 days ago")
    parser.add_argument("--to", dest="end", help="last day, default: today")
    parser.add_argument("--by", default=",".join(GROUP_BY),
                        help=f"group by these columns (comma-separated subset of {','.join(GROUP_BY)})")
    parser.add_argument("--json", action="store_true", help="the rows as JSON")
    deployment.add_target_arguments(parser)
    args = parser.parse_args(argv)
    try:
        start, end, by = parse_range(args.start, args.end, args.by)
    except ValueError as error:
        parser.error(str(error))
    try:
        console = deployment.console_of(args)
        if console is not None:
            query = urlencode({"from": start.isoformat(), "to": end.isoformat(), "by": ",".join(by)})
            rows = [Row(**row) for row in deployment.local_call(console, f"report.json?{query}")]
        else:
            tickets = deployment.output(deployment.outputs(args.stack), deployment.Output.TICKETS_TABLE, args.stack)
            rows = deployment.reading(tickets, lambda: report(start, end, by=by, table=tickets))
    except deployment.OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps([r.to_dict() for r in rows], indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
