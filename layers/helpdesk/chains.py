"""The escalation chains: one Step Functions execution owns each running SLA clock.

An execution is named after its ticket (``HD-7KQ2M9``); a chain restarted because the deadline
moved earlier (``<id>-r<version>``) or repaired by the sweep (``<id>-s<version>``) is named on the
ticket (``escalation_chain``), and every other execution of the ticket ends itself at its next read.

Starting and stopping are best effort: the change they follow is committed already, a failure is
logged, and the scheduled sweep restarts any chain that is missing or dead (``helpdesk.sweep``).
"""

from __future__ import annotations

import functools
import json
import logging

from helpdesk import settings
from helpdesk.models import Ticket

log = logging.getLogger(__name__)

RUNNING = "RUNNING"
MISSING = "MISSING"  # no such execution


@functools.cache
def stepfunctions():
    import boto3

    return boto3.client("stepfunctions")


def name(ticket: Ticket) -> str:
    """The name of the escalation execution that owns the ticket's clock."""
    return ticket.escalation_chain or ticket.ticket_id


def _machine() -> str | None:
    return settings.get(settings.Env.ESCALATION_STATE_MACHINE_ARN) or None


def execution_arn(chain: str) -> str | None:
    machine = _machine()
    if not machine:
        return None
    return f"{machine.replace(':stateMachine:', ':execution:', 1)}:{chain}"


def start(ticket_id: str, chain: str) -> bool:
    """Start the chain for the ticket (a repeated start is harmless). False if it could not start
    (no state machine in this deployment, throttled, the open-execution limit...): logged, never
    raised, so a committed change never fails over it."""
    machine = _machine()
    if not machine:
        return False
    client = stepfunctions()
    try:
        client.start_execution(stateMachineArn=machine, name=chain, input=json.dumps({"ticket_id": ticket_id}))
    except client.exceptions.ExecutionAlreadyExists:
        pass
    except Exception:  # noqa: BLE001 -- the sweep repairs a missing chain
        log.exception("could not start escalation chain %s", chain)
        return False
    return True


def stop(chain: str, cause: str) -> None:
    """Best effort: a chain that is not stopped ends by itself when it next reads the ticket."""
    arn = execution_arn(chain)
    if not arn:
        return
    try:
        stepfunctions().stop_execution(executionArn=arn, cause=cause[:256])
    except Exception:  # noqa: BLE001 -- gone already, never started, throttled: it ends by itself
        log.info("could not stop escalation chain %s", chain, exc_info=True)


def status(chain: str) -> str | None:
    """The execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), MISSING if there is
    none, ``None`` when this deployment has no state machine."""
    arn = execution_arn(chain)
    if arn is None:
        return None
    client = stepfunctions()
    try:
        return client.describe_execution(executionArn=arn)["status"]
    except client.exceptions.ExecutionDoesNotExist:
        return MISSING
