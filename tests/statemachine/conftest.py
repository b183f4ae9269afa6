"""The escalation state machine's own ASL file, executed by moto, on tickets written by the use cases.

SLA durations are seconds (a tiny policy, open around the clock), so a whole ladder climbs in a few
seconds; tests poll the ticket or the execution until what they wait for happens (``wait_for``, with a
generous deadline) and never sleep on an SLA.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from helpdesk.config import Policy, parse_policy
from helpdesk.settings import Env
from infra.local.testing import EVENT_TIMEOUT_S, wait_for  # noqa: F401  (wait_for: for the tests)

#: Whole seconds (every stored time is). A ticket opened at 12:00:00.9 is due at 12:00:03, so its chain
#: sleeps at least 2 s: room for a test to act before the deadline. Windows after an escalation are
#: 3 s where a test acts between two climbs; the ladder test runs on urgent (1 s everywhere).
POLICY_TOML = """
time_zone = "UTC"

[calendars.always]
timezone = "UTC"
always_open = true

[sla.urgent]
calendar = "always"
first_response = "1s"
resolution = "20s"
tier_window = "1s"

[sla.high]
calendar = "always"
first_response = "3s"
resolution = "20s"
tier_window = "3s"

[sla.normal]
calendar = "always"
first_response = "3s"
resolution = "20s"
tier_window = "3s"

[sla.low]
calendar = "always"
first_response = "8s"
resolution = "20s"
tier_window = "3s"

[[routing]]
name = "account"
category = "account"
set = { department = "accounts", priority = "urgent", tier = "L1" }

[[routing]]
name = "billing"
category = "billing"
set = { department = "billing", priority = "low", tier = "L1" }

[[routing]]
name = "default"
set = { department = "support", priority = "normal", tier = "L1" }
"""


@pytest.fixture(scope="session")
def policy() -> Policy:
    return parse_policy(POLICY_TOML, source="test policy")


@contextlib.contextmanager
def escalation_aws() -> Iterator[dict[Env, str]]:
    """moto with the local stack's resources and the escalation state machine, straightened as the
    local stack straightens it (its emulator and executor: one call at a time, Waits that never wake
    early); every execution still running is stopped before the account goes."""
    from infra.local.aws import local_aws
    from infra.local.emulator import AwsLikeEmulator
    from infra.local.executor import AwsLikeExecutor
    from infra.local.resources import WITHOUT_CHAINS, escalation_state_machine

    with local_aws((*WITHOUT_CHAINS, escalation_state_machine)) as resources, AwsLikeEmulator(), AwsLikeExecutor():
        yield resources


@pytest.fixture
def sfn_aws() -> Iterator[dict[Env, str]]:
    with escalation_aws() as resources:
        yield resources


class Chain:
    """The escalation executions of the tickets, as moto records them."""

    def __init__(self, machine_arn: str):
        import boto3

        self.client = boto3.client("stepfunctions")
        self.machine_arn = machine_arn

    def arn(self, name: str) -> str:
        return f"{self.machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"

    def status(self, name: str) -> str:
        return self.client.describe_execution(executionArn=self.arn(name))["status"]

    def executions(self) -> list[dict]:
        return self.client.list_executions(stateMachineArn=self.machine_arn)["executions"]

    def wait_until_done(self, name: str, timeout: float = EVENT_TIMEOUT_S) -> str:
        status = wait_for(lambda: (s := self.status(name)) != "RUNNING" and s, timeout=timeout,
                          what=f"execution {name} to end")
        if status == "FAILED":
            print(f"{name} failed:", dumps(self.failures(name)))  # shown by pytest with the failure
        return status

    def history(self, name: str) -> list[dict]:
        events, token = [], None
        while True:
            page = self.client.get_execution_history(executionArn=self.arn(name), maxResults=1000,
                                                     **({"nextToken": token} if token else {}))
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                return events

    def failures(self, name: str) -> list[dict]:
        """The failure details in the execution's history (to explain an unexpected status)."""
        return [{k: v for k, v in e.items() if k.endswith("Details")} for e in self.history(name)
                if e["type"].endswith(("Failed", "TimedOut", "Aborted"))]

    def states_entered(self, name: str) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.history(name) if e["type"].endswith("StateEntered")]

    def sleeping(self, name: str) -> bool:
        """The execution is in its Sleep state right now."""
        entered = self.states_entered(name)
        return bool(entered) and entered[-1] == "Sleep"


@pytest.fixture
def chain(sfn_aws) -> Chain:
    return Chain(sfn_aws[Env.ESCALATION_STATE_MACHINE_ARN])


def new_ticket(policy: Policy, category: str = "general", **fields):
    from helpdesk import tickets

    request = tickets.NewTicket(channel="web", customer_email="ada@example.com", subject="It does not work",
                                description="Since this morning nothing loads.", category=category, **fields)
    return tickets.open_ticket(request, policy).ticket


def events_of(ticket_id: str, type_: str | None = None) -> list:
    from helpdesk import tickets

    return [e for e in tickets.timeline(ticket_id, public_only=False) if type_ is None or e.type == type_]


def dumps(value) -> str:
    return json.dumps(value, default=str, indent=1)
