"""pytest fixtures shared by the integration and e2e tests, built on the local stack's own code.

Import them into a ``conftest.py``::

    from infra.local.testing import aws  # noqa: F401  (a fixture)
"""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture
def agent_pool(aws) -> dict[Env, str]:
    """The agents' user pool (groups from the policy, the console's client) with the seeded agents
    (``resources.SEED_AGENTS``) in the ``aws`` account: ``Env.USER_POOL_ID``, ``Env.USER_POOL_CLIENT_ID``."""
    return create_resources(IDENTITY)
