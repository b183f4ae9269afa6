"""What one SLA sweep reads, against table size: the same 50 due tickets among 1,000 and among 100,000.
The SLA report for their day is measured the same way (the other tickets were opened on other days).

The 50 are opened through the use cases (so they sit in the sparse due index) and are at risk; a first
sweep writes their 50 warnings, then the table is filled, then the measured sweep runs; the others are minimal ticket items written with batch writes, without ``due_shard``, so
they are not in the index. Items read (``ScannedCount``) and read units (``ReturnConsumedCapacity`` on
the eight shard queries, as moto computes them) should not depend on the table's size. Wall time is
moto's, printed for orientation only. ``BENCH_SWEEP_SIZES=1000,20000`` measures other sizes.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

from tests.conftest import EVENTS  # noqa: F401  (sets the moto environment: TZ=UTC, fake credentials)

DUE = 50
SIZES = tuple(int(n) for n in os.environ.get("BENCH_SWEEP_SIZES", "1000,100000").split(","))
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _fill(table: str, count: int) -> None:
    """Closed tickets opened over the 30 days before T0: in the opened index, not in the due index."""
    import boto3

    from helpdesk import clock
    from helpdesk.models import opened_shard

    client = boto3.client("dynamodb")
    batch = []
    for n in range(count):
        ticket_id, created = f"HD-B{n:07d}", T0 - timedelta(days=1 + n % 30)
        batch.append({"PutRequest": {"Item": {"pk": {"S": f"TICKET#{ticket_id}"}, "sk": {"S": "TICKET"},
                                              "ticket_id": {"S": ticket_id}, "status": {"S": "closed"},
                                              "created_at": {"S": clock.to_iso(created)},
                                              "opened_shard": {"S": opened_shard(ticket_id, created)}}}})
        if len(batch) == 25:
            client.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        client.batch_write_item(RequestItems={table: batch})


def measure(size: int) -> dict[str, float]:
    from helpdesk import clock, sweep, tickets
    from helpdesk.settings import Env
    from infra.local.aws import local_aws
    from tests.integration.test_sweep import POLICY

    with local_aws() as resources:
        started = time.perf_counter()
        with clock.frozen(T0):
            for n in range(DUE):
                tickets.open_ticket(tickets.NewTicket(channel="web", customer_email=f"c{n}@example.com",
                                                      subject="Help", description="It broke."), POLICY)
        with clock.frozen(T0 + timedelta(hours=3, minutes=30)):
            # The run that writes the 50 warnings goes first, on the small table: moto copies the whole
            # table for each transaction, which would measure moto, not the sweep.
            began = time.perf_counter()
            first = sweep.Sweep(policy=POLICY).run()
            first_s = time.perf_counter() - began
            _fill(resources[Env.TICKETS_TABLE], size - DUE)
            filled = time.perf_counter() - started
            began = time.perf_counter()
            steady = sweep.Sweep(policy=POLICY).run()
            steady_s = time.perf_counter() - began
            report_read = _report_reads(T0.date())
    return {"items_read": steady.items_read, "read_units": steady.read_units, "queries": steady.queries,
            "warnings": first.at_risk_warnings, "first_s": first_s, "steady_s": steady_s, "fill_s": filled,
            **report_read}


def _report_reads(day) -> dict[str, float]:
    """What the SLA report reads for ``day`` (the 50 tickets opened then), counted on every Query."""
    import boto3

    from helpdesk import report

    read = {"report_items_read": 0, "report_queries": 0}

    def count(parsed, **_):
        read["report_items_read"] += parsed.get("ScannedCount", 0)
        read["report_queries"] += 1

    events = boto3._get_default_session().events  # the report's client is made from this session
    events.register("after-call.dynamodb.Query", count)
    try:
        rows = report.report(day, day)
    finally:
        events.unregister("after-call.dynamodb.Query", count)
    assert rows[-1].opened == DUE, rows[-1]
    return read


def cpu_per_entry(entries: int = 6000) -> float:
    """CPU seconds one due-index entry costs a sweep when it needs nothing done (the common case at
    scale: due within the lookahead, not at risk yet): botocore parsing its Query page, then the
    sweep's reading and deciding. The sweep's capacity per run follows (README, Scale)."""
    import json

    from botocore.parsers import create_parser
    from botocore.session import get_session

    from helpdesk import clock, sweep, tickets
    from helpdesk.config import load_policy
    from infra.local.aws import local_aws

    policy = load_policy()
    with local_aws():
        with clock.frozen(T0):
            tickets.open_ticket(tickets.NewTicket(channel="web", customer_email="c@example.com", category="billing",
                                                  subject="Cannot change my invoice address",
                                                  description="Please change it to the new office. " * 10), policy)
        run = sweep.Sweep(now=T0 + timedelta(minutes=10), policy=policy).read()
    [item] = run.entries
    page = 600  # entries of a ~1.7 KB item in one 1 MB Query page
    shape = get_session().get_service_model("dynamodb").operation_model("Query").output_shape
    body = json.dumps({"Items": [item] * page, "Count": page, "ScannedCount": page}).encode()
    parser = create_parser("json")
    started = time.process_time()
    for _ in range(entries // page):
        run.entries = parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)["Items"]
        result = run.act()
    assert result.at_risk_warnings == result.lost_races == 0, result
    return (time.process_time() - started) / (entries // page * page)


def run() -> list[tuple[str, float | int | str, str]]:
    try:
        cpu = ("sweep_cpu_per_due_entry", round(cpu_per_entry() * 1e6, 1), "us of CPU (parse + decide; nothing to do)")
    except Exception as error:  # noqa: BLE001 -- a failed figure is reported, the others still run
        cpu = ("sweep_cpu_per_due_entry", "failed", f"({type(error).__name__}: {error})")
    out: list[tuple[str, float | int | str, str]] = [cpu]
    results = {}
    for size in SIZES:
        m = results[size] = measure(size)
        out += [
            (f"sweep_{size}_items_read", m["items_read"], "items"),
            (f"sweep_{size}_read_units", round(m["read_units"], 2), "RCU"),
            (f"sweep_{size}_queries", m["queries"], "queries"),
            (f"sweep_{size}_at_risk_warnings_first_run", m["warnings"], "events"),
            (f"sweep_{size}_warning_run_seconds", round(m["first_s"], 3), "s (moto, 50 tickets only)"),
            (f"sweep_{size}_steady_run_seconds", round(m["steady_s"], 3), "s (moto)"),
            (f"sweep_{size}_table_fill_seconds", round(m["fill_s"], 1), "s (moto)"),
            (f"report_{size}_items_read", m["report_items_read"], f"items (one day: {DUE} tickets and their events)"),
            (f"report_{size}_queries", m["report_queries"], "queries"),
        ]
    small, large = results[min(SIZES)], results[max(SIZES)]
    for key, unit in (("items_read", "%"), ("read_units", "%"), ("report_items_read", "%")):
        base = small[key] or 1
        name = key if key.startswith("report") else f"sweep_{key}"
        out.append((f"{name}_growth_{min(SIZES)}_to_{max(SIZES)}", round(100 * (large[key] - small[key]) / base, 2), unit))
    return out


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name}: {value} {unit}")
