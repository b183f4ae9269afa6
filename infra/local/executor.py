"""moto's Step Functions executor, made to keep time like AWS for the local stack (a service).

Quirks of moto 5.2.5 that AWS does not have, straightened while the local stack runs:

- A Wait on a timestamp truncates the time left to whole seconds (``int(seconds)``), so a chain wakes
  up to a second *early*, reads a ticket whose deadline has not passed, and escalates it anyway. Here
  a Wait sleeps until the timestamp exactly (fractions of a second included) and never wakes early:
  with ``HELPDESK_TIME_SCALE=3600`` a second is an hour of SLA, so a second early would be an hour.
- The executor makes a boto3 client per task on boto3's shared default session, which is not
  thread-safe: executions side by side (and the pumps) sporadically fail a task with "'dict' object
  has no attribute 'region'". Client creation is serialised (AWS itself has no such problem).

- Every execution parses the state machine's definition again (ANTLR, in Python): about 60 ms of
  CPU and several hundred KB kept for as long as the execution runs, which for a ticket's chain is
  hours. Here the parsed program is made once per definition and shared: its components keep no
  state of an execution (that lives in the execution's environment), except a lazily drawn heap
  key, drawn before the program is shared.

And one cosmetic: the executor logs every ``IsPresent: false`` lookup of a Choice (the chain
asks whether a ticket has a deadline) as an ERROR; that logger is quietened.

All are process-wide: :class:`AwsLikeExecutor` installs them on ``start()`` and removes them on
``stop()``, after stopping every execution still running. tests/statemachine uses it too.
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
import time

import boto3
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from infra.local.emulator import CALL_LOCK, Patches


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


@functools.lru_cache(maxsize=16)
def _program(definition: str) -> EvalComponent:
    program = AmazonStateLanguageParser.parse(definition)[0]
    _draw_heap_keys(program)
    return program


def _draw_heap_keys(value: object, seen: set[int] | None = None) -> None:
    """Draw every component's heap key now: drawn lazily, two executions could draw two."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, EvalComponent):
        value.heap_key  # noqa: B018 -- drawn on first access
    children = vars(value).values() if isinstance(value, Component) else \
        value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
    for child in children:
        _draw_heap_keys(child, seen)


def _shared_program(self: ExecutionWorker) -> EvalComponent:
    return _program(self._evaluation_details.state_machine_details.definition)


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
                (boto3, "client", client),
                (ExecutionWorker, "_get_evaluation_entrypoint", _shared_program)]

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


def stop_every_execution(timeout: float = 5.0) -> None:
    """What StopExecution does, for every execution still running: set its stop flag (it ends at its
    next step; a Wait wakes at once). In moto's memory rather than call by call: a thousand sleeping
    chains stop in a moment. moto cannot stop an execution whose thread has not set up yet: those
    are tried again until ``timeout``."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    deadline = time.monotonic() + timeout
    while True:
        with CALL_LOCK:
            running = [e for regions in stepfunctions_parser_backends.values() for backend in regions.values()
                       for machine in backend.state_machines for e in machine.executions if e.status == "RUNNING"]
            not_set_up = []
            for execution in running:
                try:
                    execution.stop(stop_date=datetime.datetime.now(datetime.UTC), error=None,
                                   cause="the local stack stopped")
                except AttributeError:
                    not_set_up.append(execution)
        if not not_set_up or time.monotonic() > deadline:
            return
        time.sleep(0.05)
