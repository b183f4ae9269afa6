"""The agent API: what a queue page reads against table size, and a warm reply against its bare writes.

Queue page: 60 open billing tickets at L1 (opened through the use cases, so the queue index has them)
among 1,000 and among 100,000 tickets; the others sit in other departments' and tiers' queues, or are
closed (out of the index). The L1 billing agent's first page of 50 rows is read, and its read units
(``ReturnConsumedCapacity`` on the queue's Queries, as moto computes them) and time are printed with
their ratio between the two sizes: the read units must not move with the table (target: within 5 %).
The local stack's emulator runs (its Queries read one partition, as DynamoDB does); times are moto's,
for orientation. ``BENCH_AGENT_SIZES=1000,20000`` measures other sizes.

Warm reply: ``desk.reply`` (the check that the agent may see the ticket and acts on its version, the
transition with its chain bookkeeping) against the bare calls it needs (read the ticket, write it
with its event in one transaction), interleaved, on tickets opened for the purpose (target: at most 2x).
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

from tests.conftest import EVENTS  # noqa: F401  (sets the moto environment: TZ=UTC, fake credentials)

OPEN = 60
PAGE = 50
SIZES = tuple(int(n) for n in os.environ.get("BENCH_AGENT_SIZES", "1000,100000").split(","))
REPLIES = 40
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday: business hours in Berlin
OTHER_QUEUES = [f"QUEUE#{d}#{t}" for d in ("technical", "accounts", "support", "customer-success")
                for t in ("L1", "L2", "L3")] + ["QUEUE#billing#L2", "QUEUE#billing#L3"]


def _fill(table: str, count: int) -> None:
    """Tickets in other queues (two in three) or closed (out of the index), written in batches."""
    import boto3

    from helpdesk import clock

    client = boto3.client("dynamodb")
    batch = []
    for n in range(count):
        ticket_id, item = f"HD-Q{n:07d}", {}
        if n % 3:
            due = T0 + timedelta(minutes=n % 5000)
            item = {"queue_pk": {"S": OTHER_QUEUES[n % len(OTHER_QUEUES)]}, "queue_sort": {"S": f"1#{clock.to_iso(due)}"},
                    "status": {"S": "open"}}
        batch.append({"PutRequest": {"Item": {"pk": {"S": f"TICKET#{ticket_id}"}, "sk": {"S": "TICKET"},
                                              "ticket_id": {"S": ticket_id}, "status": {"S": "closed"},
                                              "subject": {"S": "Another question"}, **item}}})
        if len(batch) == 25:
            client.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        client.batch_write_item(RequestItems={table: batch})


class _Counting:
    """The queue's DynamoDB client, asking every Query for its consumed capacity and adding it up."""

    def __init__(self, client):
        self.client, self.units, self.queries = client, 0.0, 0

    def query(self, **request):
        page = self.client.query(**request, ReturnConsumedCapacity="TOTAL")
        self.queries += 1
        self.units += float((page.get("ConsumedCapacity") or {}).get("CapacityUnits") or 0)
        return page


def queue_page(size: int) -> dict[str, float]:
    from helpdesk import clock, queue, tickets
    from helpdesk.agents import Agent
    from helpdesk.config import load_policy
    from helpdesk.settings import Env
    from infra.local.aws import local_aws

    policy = load_policy()
    lena = Agent("lena", tiers=frozenset({"L1"}), departments=frozenset({"billing"}))
    with local_aws() as resources:
        with clock.frozen(T0):
            for n in range(OPEN):
                tickets.open_ticket(tickets.NewTicket(channel="web", customer_email=f"c{n}@example.com",
                                                      category="billing", subject=f"Invoice {n}",
                                                      description="Which address is on my invoice?"), policy)
        _fill(resources[Env.TICKETS_TABLE], size - OPEN)
        counting = _Counting(queue._dynamodb())
        original, queue._dynamodb = queue._dynamodb, lambda: counting
        try:
            times = []
            for _ in range(5):
                counting.units = counting.queries = 0
                began = time.perf_counter()
                with clock.frozen(T0 + timedelta(minutes=5)):
                    page = queue.page(lena, policy, limit=PAGE)
                times.append(time.perf_counter() - began)
        finally:
            queue._dynamodb = original
    assert len(page.rows) == PAGE, len(page.rows)
    return {"read_units": counting.units, "queries": counting.queries, "seconds": statistics.median(times)}


def warm_reply() -> dict[str, float]:
    import boto3

    from helpdesk import clock, desk, ledger, tickets
    from helpdesk.agents import Agent
    from helpdesk.config import load_policy
    from helpdesk.models import ticket_pk
    from helpdesk.settings import Env
    from infra.local.aws import local_aws

    policy = load_policy()
    bea = Agent("bea", tiers=frozenset({"L2"}), departments=frozenset({"billing"}))
    body = "We have found the double charge and refunded it today; it shows within three days."
    spent = {"reply": [], "bare": []}
    with local_aws() as resources:
        ddb, table = boto3.client("dynamodb"), resources[Env.TICKETS_TABLE]
        ids = [tickets.open_ticket(tickets.NewTicket(channel="web", customer_email=f"r{n}@example.com",
                                                     category="billing", subject="Refund please",
                                                     description="I was double charged.")).ticket.ticket_id
               for n in range(2 * REPLIES)]
        desk.reply(bea, ids[0], ledger.load(ids[0]).version, body, policy)  # warm: the policy, the clients
        for n in range(1, REPLIES):
            ticket_id = ids[n]
            began = time.perf_counter()
            desk.reply(bea, ticket_id, 1, body, policy)
            spent["reply"].append(time.perf_counter() - began)

            other = ids[REPLIES + n]
            began = time.perf_counter()
            item = ddb.get_item(TableName=table, Key={"pk": {"S": ticket_pk(other)}, "sk": {"S": "TICKET"}},
                                ConsistentRead=True)["Item"]
            now = clock.to_iso(clock.now())
            ddb.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "Item": item | {"version": {"N": "2"}, "updated_at": {"S": now}},
                         "ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": {"N": "1"}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": ticket_pk(other)}, "sk": {"S": f"EVENT#{now}#b{n}"},
                                                      "body": {"S": body}, "type": {"S": "reply"}},
                         "ConditionExpression": "attribute_not_exists(sk)"}},
            ])
            spent["bare"].append(time.perf_counter() - began)
    reply, bare = statistics.median(spent["reply"]), statistics.median(spent["bare"])
    return {"reply_ms": reply * 1000, "bare_ms": bare * 1000, "ratio": reply / bare}


def run():
    from infra.local.emulator import AwsLikeEmulator

    emulator = AwsLikeEmulator()
    emulator.start()  # the local stack's moto: one partition per Query, no table copy per transaction
    try:
        measured = {}
        for size in SIZES:
            m = measured[size] = queue_page(size)
            yield f"queue_page_{size}_read_units", round(m["read_units"], 2), f"read units ({PAGE} rows, {m['queries']} queries)"
            yield f"queue_page_{size}_time", round(m["seconds"] * 1000, 1), "ms (moto, median of 5)"
        small, large = measured[SIZES[0]], measured[SIZES[-1]]
        yield "queue_page_read_units_ratio", round(large["read_units"] / small["read_units"], 3), \
            f"x ({SIZES[-1]} vs {SIZES[0]} tickets; target within 5 %)"
        yield "queue_page_time_ratio", round(large["seconds"] / small["seconds"], 2), f"x ({SIZES[-1]} vs {SIZES[0]})"
        reply = warm_reply()
        yield "agent_reply_warm", round(reply["reply_ms"], 2), "ms (median, moto)"
        yield "agent_reply_bare_writes", round(reply["bare_ms"], 2), "ms (a consistent read + the transaction)"
        yield "agent_reply_ratio", round(reply["ratio"], 2), "x (target: at most 2x)"
    finally:
        emulator.stop()
