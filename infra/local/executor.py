"""moto's Step Functions executor, made to keep time like AWS for the local stack (a service).

Two quirks of moto 5.2.5 that AWS does not have, straightened while the local stack runs:

- A Wait on a timestamp truncates the time left to whole seconds (``int(seconds)``), so a chain wakes
  up to a second *early*, reads a ticket whose deadline has not passed, and escalates it anyway. Here
  a Wait sleeps until the timestamp exactly (fractions of a second included) and never wakes early:
  with ``HELPDESK_TIME_SCALE=3600`` a second is an hour of SLA, so a second early would be an hour.
- The executor makes a boto3 client per task on boto3's shared default session, which is not
  thread-safe: executions side by side (and the pumps) sporadically fail a task with "'dict' object
  has no attribute 'region'". Client creation is serialised (AWS itself has no such problem).

And a third, cosmetic: the executor logs every ``IsPresent: false`` lookup of a Choice (the chain
asks whether a ticket has a deadline) as an ERROR; that logger is quietened.

All are process-wide: :class:`AwsLikeExecutor` installs them on ``start()`` and removes them on
``stop()``, after stopping every execution still running. tests/statemachine uses it too.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time

import boto3
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from infra.local.emulator import Patches


def _seconds_until_timestamp(self, env) -> float:
    self.string.eval(env=env)
    text = env.stack.pop()
    moment = self._from_timestamp_string(timestamp=text)
    if moment is None:
        raise FailureEventException(self._create_failure_event(env, text))
    return (moment - datetime.datetime.now()).total_seconds()  # naive, local time: the stack runs in UTC


def _wait_exactly(self, env, wait_seconds: float) -> None:
    """Sleep ``wait_seconds`` (fractions too), or until the execution stops (StopExecution)."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while env.is_running():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if env.program_state_event.wait(left) and env.is_running():
            time.sleep(min(left, 0.05))  # an unrelated wake-up: keep waiting, without spinning


_NOISY = logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component")


class AwsLikeExecutor(Patches):
    name = "step-functions-clock"

    def replacements(self) -> list[tuple[object, str, object]]:
        lock, create = threading.RLock(), boto3.client

        def client(*args, **kwargs):
            with lock:
                return create(*args, **kwargs)

        return [(Timestamp, "_get_wait_seconds", _seconds_until_timestamp),
                (WaitFunction, "_wait_interval", _wait_exactly),
                (boto3, "client", client)]

    def start(self) -> None:
        super().start()
        self._level = _NOISY.level
        _NOISY.setLevel(logging.CRITICAL)

    def stop(self) -> None:
        """Stop every running execution first: one outliving its moto account would call AWS."""
        if self._saved is not None:
            stop_every_execution()
            _NOISY.setLevel(self._level)
        super().stop()


def stop_every_execution(timeout: float = 30.0) -> None:
    """StopExecution on everything still running, until nothing runs (moto cannot stop an execution
    whose thread has not set up yet: the next round does)."""
    client = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    machines = [m["stateMachineArn"] for page in client.get_paginator("list_state_machines").paginate()
                for m in page["stateMachines"]]
    while True:
        running = [e["executionArn"] for machine in machines
                   for page in client.get_paginator("list_executions").paginate(stateMachineArn=machine,
                                                                                 statusFilter="RUNNING")
                   for e in page["executions"]]
        if not running:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(running)} executions still running after {timeout} s")
        for arn in running:
            try:
                client.stop_execution(executionArn=arn)
            except Exception:  # noqa: BLE001 -- not set up yet: the next round stops it
                pass
        time.sleep(0.05)
