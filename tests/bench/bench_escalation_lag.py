"""Escalation lag on the local stack: from a ticket's deadline to its ``escalated`` event being written,
and to the team alert reaching the outbox.

The whole local stack runs in-process (``infra.local.stack.LocalStack``: moto, the ASL executed by moto
with the executor keeping AWS's time, the stream / delivery / team-alert pumps polling every
``pumps.POLL_INTERVAL`` s) with SLA time compressed by ``TIME_SCALE``, so every ticket climbs L1 -> L2 ->
L3 -> management within a few seconds. Tickets are opened a fraction of a second apart, so chains wake
at different moments; deadlines are whole seconds (as stored).

- written: the ``ApproximateCreationDateTime`` of the event's stream record (moto stamps it when the
  state machine's transaction commits) minus the deadline (the event's ``due_at``);
- alert: when the department's team alert was appended to the outbox, minus the same deadline.

On AWS the first is Step Functions' Wait accuracy plus two DynamoDB calls (well under a second); the
second adds the event source mapping's polling (about 4 times a second per shard) and two Lambda hops.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
from collections.abc import Iterator

from tests.conftest import EVENTS  # noqa: F401  (sets the moto environment: TZ=UTC, fake credentials)

TIME_SCALE = 36_000  # ten hours of SLA per second: a normal ticket's every step is due within a second or so
TICKETS = 6
# Between two openings: deadlines fall at different moments of the pumps' polling. Over a second, so no
# two tickets climb to the same tier in the same second: their `escalated` events would share an event id
# (esc-<tier>-<due>) and the publisher's idempotency would publish only the first (a known bug, reported).
SPACING_S = 1.13
TIMEOUT_S = 40.0
LADDER = ("L2", "L3", "management")


@contextlib.contextmanager
def local_stack() -> Iterator[object]:
    """The local stack in this process, on free ports, at TIME_SCALE; the environment restored after."""
    saved = dict(os.environ)
    os.environ.update(HELPDESK_TIME_SCALE=str(TIME_SCALE), HELPDESK_PORT="0", HELPDESK_CONSOLE_PORT="0",
                      HELPDESK_SMTP_PORT="0", HELPDESK_COGNITO_PORT="0", POWERTOOLS_LOG_LEVEL="ERROR")
    from helpdesk.config import load_policy
    from infra.local.config import prepare_environment
    from infra.local.stack import LocalStack

    prepare_environment()
    load_policy.cache_clear()  # compressed by TIME_SCALE from now on
    stack = LocalStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        load_policy.cache_clear()


def _epoch(iso: str) -> float:
    from helpdesk import clock

    return clock.from_iso(iso).timestamp()


def run() -> list[tuple[str, float | int, str]]:
    from helpdesk import tickets
    from helpdesk.models import Ticket, ticket_pk
    from helpdesk.settings import Env
    from infra.local.pumps import TableStream

    with local_stack() as stack:
        arrived: list[tuple[float, dict]] = []
        append = stack.outbox.append

        def timed_append(**message):
            arrived.append((time.time(), message))
            return append(**message)

        stack.outbox.append = timed_append  # the team-alert pump appends through the stack's outbox
        ids = []
        for n in range(TICKETS):
            opened = tickets.open_ticket(tickets.NewTicket(
                channel="web", customer_email=f"bench{n}@example.com", customer_name="Bench",
                subject=f"Invoice question {n}", description="Which address is on my invoice?",
                category="billing"))
            ids.append(opened.ticket.ticket_id)
            time.sleep(SPACING_S)

        def alerts() -> list[tuple[float, dict]]:
            return [(t, m) for t, m in arrived if m["channel"] == "team-alert" and m["recipient"] == "team:billing"]

        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            done = all(Ticket.get(ticket_pk(t), "TICKET").tier == "management" for t in ids)
            if done and len(alerts()) >= TICKETS * len(LADDER):
                break
            time.sleep(0.1)
        else:
            tiers = [Ticket.get(ticket_pk(t), "TICKET").tier for t in ids]
            raise RuntimeError(f"after {TIMEOUT_S} s: tiers {tiers}, {len(alerts())} billing alerts")

        written, alerted = [], []
        stream = TableStream(os.environ[Env.TICKETS_TABLE])  # a second reader, from the start
        escalations = [r for r in stream.records() if r["eventName"] == "INSERT"
                       and r["dynamodb"]["NewImage"].get("type", {}).get("S") == "escalated"]
        for record in escalations:
            image = record["dynamodb"]["NewImage"]
            due = _epoch(image["data"]["M"]["due_at"]["S"])
            tid, tier = image["ticket_id"]["S"], image["data"]["M"]["to_tier"]["S"]
            written.append(record["dynamodb"]["ApproximateCreationDateTime"] - due)
            [at] = [t for t, m in alerts() if m["ticket_id"] == tid
                    and re.search(rf"\bto {re.escape(tier)}\b", m["subject"] or "")]
            alerted.append(at - due)

    count = len(written)
    assert count == TICKETS * len(LADDER), f"{count} escalations"
    return [
        ("escalation_lag_median", round(statistics.median(written), 3), "s"),
        ("escalation_lag_max", round(max(written), 3), "s"),
        ("escalation_lag_min", round(min(written), 3), "s (negative: escalated before the deadline)"),
        ("escalation_alert_lag_median", round(statistics.median(alerted), 3), "s"),
        ("escalation_alert_lag_max", round(max(alerted), 3), "s"),
        ("escalation_lag_samples", count, f"escalations ({TICKETS} tickets, time scale {TIME_SCALE})"),
    ]


if __name__ == "__main__":
    for metric, value, unit in run():
        print(f"{metric}: {value} {unit}")
