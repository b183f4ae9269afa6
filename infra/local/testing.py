"""pytest fixtures and helpers shared by the tests, built on the local stack's own code.

Import them into a ``conftest.py``::

    from infra.local.testing import aws  # noqa: F401  (a fixture)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from helpdesk.settings import Env
from infra.local.aws import local_aws
from infra.local.resources import IDENTITY, create_resources


@pytest.fixture
def aws() -> Iterator[dict[Env, str]]:
    """An empty moto account holding the local stack's resources (``Env`` -> name or ARN), but for the
    escalation state machine (opening a ticket starts no chain) and the notification path (topics,
    subscribers, SES identity: ``resources.NOTIFICATIONS``); see ``resources.TEST_BUILDERS``."""
    with local_aws() as resources:
        yield resources


#: How long a test waits for something that must happen (an execution to end, a message to arrive).
#: Generous: the wait ends as soon as it happens, and a busy machine may take many times longer.
EVENT_TIMEOUT_S = 60.0


def wait_for(predicate: Callable[[], object], *, timeout: float = EVENT_TIMEOUT_S, interval: float = 0.05,
             what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def agent_pool(aws) -> dict[Env, str]:
    """The agents' user pool (groups from the policy, the console's client) with the seeded agents
    (``resources.SEED_AGENTS``) in the ``aws`` account: ``Env.USER_POOL_ID``, ``Env.USER_POOL_CLIENT_ID``."""
    return create_resources(IDENTITY)
