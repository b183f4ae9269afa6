"""The escalation chain's billed state transitions per ticket, and what 1,000 tickets cost on AWS.

Three lifecycles run for real on moto (the ASL file, the use cases; SLA seconds instead of hours):
answered in time, escalated once, escalated to management. Transitions are the ``*StateEntered``
events of each execution's history (what Step Functions Standard bills). DynamoDB calls are counted
as moto serves them (chain and use cases); the notification path (publisher, SNS, delivery, SES) is
derived from the lifecycle's timeline events through ``helpdesk.notify.routes``. Prices below.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.conftest import EVENTS  # noqa: F401  (sets the moto environment: TZ=UTC, fake credentials)

# -- public us-east-1 prices (USD), checked against the AWS pricing pages, free tiers ignored -------------
# Step Functions Standard: $0.025 per 1,000 state transitions      https://aws.amazon.com/step-functions/pricing/
SFN_PER_TRANSITION = 0.025 / 1_000
# DynamoDB on-demand after the Nov 2024 price cut: $0.625 per million write request units,
# $0.125 per million read request units                             https://aws.amazon.com/dynamodb/pricing/on-demand/
DDB_PER_WRU = 0.625 / 1_000_000
DDB_PER_RRU = 0.125 / 1_000_000
# SNS standard topics: $0.50 per million publishes (64 KB chunks)  https://aws.amazon.com/sns/pricing/
SNS_PER_PUBLISH = 0.50 / 1_000_000
# SES outbound email: $0.10 per 1,000 emails                        https://aws.amazon.com/ses/pricing/
SES_PER_EMAIL = 0.10 / 1_000
# Lambda: $0.20 per million requests; arm64 $0.0000133334 per GB-second  https://aws.amazon.com/lambda/pricing/
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND_ARM = 0.0000133334

# -- assumptions (not measured here) -------------------------------------------------------------------
LAMBDA_MEMORY_GB = 256 / 1024  # the functions' default memory size (infra/constructs)
LAMBDA_AVG_SECONDS = 0.2  # billed duration per invocation, warm and cold averaged
PUBLISHER_DDB_PER_EVENT = {"rru": 0.5, "wru": 2.0}  # reads the ticket; idempotency record put + update
TYPICAL_MIX = {"answered_in_time": 0.80, "escalated_once": 0.15, "escalated_to_management": 0.05}

AGENT = "bench"


@dataclass
class Lifecycle:
    name: str
    transitions: int = 0
    rru: float = 0.0
    wru: float = 0.0
    api_calls: int = 0  # agent/customer requests through the API function
    events: list = field(default_factory=list)

    def notifications(self) -> tuple[int, int]:
        """(SNS publishes, customer emails) the publisher makes of this lifecycle's timeline."""
        from helpdesk import notify

        routes = [notify.routes(e) for e in self.events]
        return sum(len(r) for r in routes), sum(notify.CUSTOMER in r for r in routes)

    def cost(self) -> dict[str, float]:
        publishes, emails = self.notifications()
        invocations = self.api_calls + len(self.events) + emails  # API, publisher (per event), delivery
        rru = self.rru + PUBLISHER_DDB_PER_EVENT["rru"] * len(self.events)
        wru = self.wru + PUBLISHER_DDB_PER_EVENT["wru"] * len(self.events)
        return {
            "stepfunctions": self.transitions * SFN_PER_TRANSITION,
            "dynamodb": rru * DDB_PER_RRU + wru * DDB_PER_WRU,
            "sns": publishes * SNS_PER_PUBLISH,
            "ses": emails * SES_PER_EMAIL,
            "lambda": invocations * (LAMBDA_PER_REQUEST + LAMBDA_MEMORY_GB * LAMBDA_AVG_SECONDS * LAMBDA_PER_GB_SECOND_ARM),
        }


def _size(value: dict) -> int:
    """An attribute value's DynamoDB size in bytes (close enough for capacity units)."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(v.lstrip("-").replace(".", "")) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_size(x) + 1 for x in v)
    return len(json.dumps(v))


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + _size(v) for k, v in item.items())


@contextmanager
def counting_dynamodb():
    """Record every DynamoDB call moto serves (from the chain's thread and from the use cases)."""
    from moto.dynamodb.responses import DynamoHandler

    calls: list[tuple[str, dict]] = []
    originals = {}
    for action in ("get_item", "put_item", "update_item", "transact_write_items", "query"):
        originals[action] = getattr(DynamoHandler, action)

        def wrapper(self, _action=action):
            calls.append((_action, dict(self.body)))
            return originals[_action](self)

        setattr(DynamoHandler, action, wrapper)
    try:
        yield calls
    finally:
        for action, original in originals.items():
            setattr(DynamoHandler, action, original)


def capacity(calls: list[tuple[str, dict]], ticket_size: int) -> tuple[float, float]:
    """(read request units, write request units) of the calls, the ticket item being ``ticket_size``."""
    rru = wru = 0.0
    for action, body in calls:
        if action == "get_item":
            rru += math.ceil(ticket_size / 4096) * (1 if body.get("ConsistentRead") else 0.5)
        elif action == "query":
            rru += 0.5 * math.ceil(ticket_size * 4 / 4096)  # a timeline: the ticket and a few events
        elif action in ("put_item", "update_item"):
            wru += math.ceil((item_size(body["Item"]) if "Item" in body else ticket_size) / 1024)
        elif action == "transact_write_items":
            for entry in body["TransactItems"]:
                (kind, op), = entry.items()
                size = item_size(op["Item"]) if kind == "Put" and op["Item"].get("sk", {}).get("S") != "TICKET" else ticket_size
                wru += 2 * math.ceil(size / 1024)
    return rru, wru


def _run(name: str, drive) -> Lifecycle:
    import boto3

    from helpdesk import tickets
    from helpdesk.config import parse_policy
    from helpdesk.models import ticket_pk
    from helpdesk.settings import Env
    from tests.statemachine.conftest import POLICY_TOML, Chain, escalation_aws

    policy = parse_policy(POLICY_TOML)
    with escalation_aws() as resources, counting_dynamodb() as calls:
        chain = Chain(resources[Env.ESCALATION_STATE_MACHINE_ARN])
        lifecycle = Lifecycle(name)
        ticket_id = drive(policy, chain, lifecycle)
        for execution in chain.executions():
            chain.wait_until_done(execution["name"])
            lifecycle.transitions += len(chain.states_entered(execution["name"]))
        lifecycle_calls = [(a, b) for a, b in calls if ticket_pk(ticket_id) in json.dumps(b)]  # not ours below
        lifecycle.events = tickets.timeline(ticket_id, public_only=False)
        raw = boto3.client("dynamodb").get_item(TableName=resources[Env.TICKETS_TABLE],
                                                Key={"pk": {"S": ticket_pk(ticket_id)}, "sk": {"S": "TICKET"}})["Item"]
        lifecycle.rru, lifecycle.wru = capacity(lifecycle_calls, item_size(raw))
    return lifecycle


def _sleeping_until(chain, name: str, deadline) -> bool:
    from tests.statemachine.test_escalation_chain import slept_until

    return slept_until(chain, name, deadline)


def answered_in_time(policy, chain, lifecycle: Lifecycle) -> str:
    """Answered before the first-response deadline, resolved before the resolution deadline.

    The agent answers once the chain sleeps (as on AWS, where answers come minutes after the chain
    started): an answer that beat the chain's first read would save it a wake-up, and the count would
    depend on the machine's speed (3 or 6 transitions)."""
    from helpdesk import tickets
    from tests.statemachine.conftest import new_ticket, wait_for

    ticket = new_ticket(policy)
    wait_for(lambda: _sleeping_until(chain, ticket.ticket_id, ticket.next_due_at))
    answered, _ = tickets.reply(ticket.ticket_id, AGENT, "Looking into it.", policy=policy)
    wait_for(lambda: _sleeping_until(chain, ticket.ticket_id, answered.resolution_due_at))
    tickets.resolve(ticket.ticket_id, AGENT, "Fixed.", policy=policy)
    lifecycle.api_calls = 3
    return ticket.ticket_id


def escalated_once(policy, chain, lifecycle: Lifecycle) -> str:
    """Nobody answers L1 in time; L2 answers within its window and resolves in time."""
    from helpdesk import clock, tickets
    from tests.statemachine.conftest import new_ticket, wait_for

    ticket = new_ticket(policy)
    l2_due = clock.from_iso(ticket.escalation_plan.as_dict()["L2"]["at"])
    wait_for(lambda: _sleeping_until(chain, ticket.ticket_id, l2_due))
    answered, _ = tickets.reply(ticket.ticket_id, AGENT, "L2 here, found it.", policy=policy)
    wait_for(lambda: _sleeping_until(chain, ticket.ticket_id, answered.resolution_due_at))
    tickets.resolve(ticket.ticket_id, AGENT, "Fixed.", policy=policy)
    lifecycle.api_calls = 3
    return ticket.ticket_id


def escalated_to_management(policy, chain, lifecycle: Lifecycle) -> str:
    """Nobody answers at all: L1 -> L2 -> L3 -> management (breached); the chain ends by itself."""
    from tests.statemachine.conftest import new_ticket

    ticket = new_ticket(policy, category="account")  # urgent in the bench policy: 1 s per step
    lifecycle.api_calls = 1
    return ticket.ticket_id


def run() -> list[tuple[str, float, str]]:
    started = time.perf_counter()
    lifecycles = [_run(fn.__name__, fn) for fn in (answered_in_time, escalated_once, escalated_to_management)]
    rows: list[tuple[str, float, str]] = []
    for lc in lifecycles:
        rows.append((f"transitions_{lc.name}", lc.transitions, "transitions"))
    for lc in lifecycles:
        cost = lc.cost()
        rows.append((f"ddb_request_units_{lc.name}", round(lc.rru + lc.wru, 1), f"RU ({lc.rru:g} read + {lc.wru:g} write, chain and use cases)"))
        rows.append((f"stepfunctions_cost_per_1000_tickets_{lc.name}", round(cost["stepfunctions"] * 1000, 4), "USD"))
        rows.append((f"cost_per_1000_tickets_{lc.name}", round(sum(cost.values()) * 1000, 4),
                     "USD (" + ", ".join(f"{k} {v * 1000:.4f}" for k, v in cost.items()) + ")"))
    by_name = {lc.name: sum(lc.cost().values()) for lc in lifecycles}
    typical = sum(share * by_name[name] for name, share in TYPICAL_MIX.items())
    mix = ", ".join(f"{int(share * 100)}% {name}" for name, share in TYPICAL_MIX.items())
    rows.append(("cost_per_1000_tickets_typical", round(typical * 1000, 4), f"USD ({mix})"))
    rows.append(("bench_escalation_wall_time", round(time.perf_counter() - started, 1), "s"))
    return rows


if __name__ == "__main__":
    for metric, value, unit in run():
        print(f"{metric}: {value} {unit}")
