"""The console's ``/report`` page: the SLA report (``helpdesk.report``) as a table and inline SVG charts.

The last 7 days, or ``?from=2026-11-01&to=2026-11-30`` (and ``by=day,priority``, for the JSON). No
JavaScript library: the charts are SVG drawn here. ``/report.json`` gives the rows: it is what
``make report ARGS="--local ..."`` prints, since moto lives inside the dev process.
"""

from __future__ import annotations

from datetime import date
from html import escape

from helpdesk import clock, report
from infra.local.console import BadRequest, ConsoleState, Pages, _json

PAGES = Pages()
BAR = "#1d4ed8"
MISS = "#b91c1c"


def _parameters(query: dict[str, str]) -> tuple[date, date, list[str]]:
    try:
        return report.parse_range(query.get("from"), query.get("to"), query.get("by"))
    except ValueError as error:
        raise BadRequest(str(error)) from None


def bar_chart(title: str, bars: list[tuple[str, float | None]], *, unit: str = "", colour: str = BAR,
              maximum: float | None = None) -> str:
    """A horizontal bar chart as inline SVG (n/a bars are labelled, not drawn)."""
    width, row, label_w = 520, 22, 150
    values = [v for _, v in bars if v is not None]
    top = maximum or max(values, default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(bars) + 30}" '
             f'role="img" aria-label="{escape(title)}"><text x="0" y="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(bars):
        y = 24 + i * row
        parts.append(f'<text x="0" y="{y + 14}">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{label_w}" y="{y + 14}" fill="#666">n/a</text>')
            continue
        length = max(1, (width - label_w - 70) * value / top)
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" fill="{colour}"/>'
                     f'<text x="{label_w + length + 4:.1f}" y="{y + 14}">{value:g}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(start: date, end: date) -> str:
    found = report.facts_for(start, end)  # read once, grouped three ways
    daily = report.aggregate(found, ("day",))
    per_priority = report.aggregate(found, ("priority",), total=False)
    detail = report.aggregate(found, report.GROUP_BY)
    days = [r for r in daily if r.day != "*"]
    charts = [
        bar_chart("Tickets opened per day", [(r.day, r.opened) for r in days]),
        bar_chart("First response SLA met per day", [(r.day, r.first_response_met) for r in days], unit="%", maximum=100),
        bar_chart("Resolution SLA met per day", [(r.day, r.resolution_met) for r in days], unit="%", maximum=100),
        bar_chart("Breaches per priority", [(r.priority, r.breaches) for r in per_priority], colour=MISS),
        bar_chart("Median hours to first response per priority",
                  [(r.priority, None if r.first_response_p50 is None else round(r.first_response_p50 / 3600, 2))
                   for r in per_priority], unit="h"),
    ]
    head = "".join(f"<th>{escape(c)}</th>" for c in report.COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in report.cells(r)) + "</tr>" for r in detail)
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SLA report - Helpdesk local console</title>'
            "<style>body{font:14px/1.45 system-ui,sans-serif;margin:2rem;}table{border-collapse:collapse;margin:1rem 0}"
            "td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}svg{display:block;margin:1rem 0;"
            "font:12px system-ui,sans-serif}.charts{display:flex;flex-wrap:wrap;gap:1rem}</style></head><body>"
            f"<h1>SLA report</h1><p>Tickets opened from {start.isoformat()} to {end.isoformat()} (UTC), as of "
            f'{clock.to_iso(clock.now())}. <a href="/report.json?from={start.isoformat()}&amp;to={end.isoformat()}">JSON</a>. '
            f'Any range: <code>?from={start.isoformat()}&amp;to={end.isoformat()}</code>, or as a table: <code>make report '
            f'ARGS="--local --from {start.isoformat()} --to {end.isoformat()}"</code></p>'
            f'<div class="charts">{"".join(charts)}</div>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{'' if detail else '<p>No tickets opened in this range.</p>'}</body></html>")


@PAGES.add("/report", "SLA report of the last 7 days: table and charts (?from=&to= for another range)", query=True)
def _report(state: ConsoleState, query: dict[str, str]):
    start, end, _ = _parameters(query)
    return "text/html; charset=utf-8", render(start, end)


@PAGES.add("/report.json", "SLA report of the last 7 days (JSON rows; ?from=&to=&by=)", query=True)
def _report_json(state: ConsoleState, query: dict[str, str]):
    start, end, by = _parameters(query)
    return _json([r.to_dict() for r in report.report(start, end, by=by)])
