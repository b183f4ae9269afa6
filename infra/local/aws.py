"""moto, configured once for the local stack and for the tests' fixtures.

In-process ``mock_aws`` rather than moto's ThreadedMotoServer: the functions run in the same process
(the API front calls the handler directly), so patching botocore reaches every client without an
endpoint URL to configure; it starts in about 0.2 s, and Step Functions really executes state
machines with the ``execute_state_machine`` option. The price: no other process (an ``aws`` CLI,
a second Python) can see the resources; the console is the window onto them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from moto import mock_aws

from helpdesk import lifecycle
from helpdesk.settings import Env
from infra.local.resources import TEST_BUILDERS, Builder, create_resources

MOTO_CONFIG = {
    # Run the ASL for real on a background thread (Wait, Choice, DynamoDB and SNS integrations).
    "stepfunctions": {"execute_state_machine": True},
}


def mocked_aws():
    """A fresh, empty moto account (start/stop it, or use it as a context manager)."""
    return mock_aws(config=MOTO_CONFIG)


@contextlib.contextmanager
def local_aws(builders: Iterable[Builder] = TEST_BUILDERS) -> Iterator[dict[Env, str]]:
    """moto with the local resources created; yields the `Env` values, restores the environment after.

    By default without the escalation state machine (tests freeze the clock, chains would run on the
    real one) and the notification path (``resources.TEST_BUILDERS``); ``local_aws(resources.BUILDERS)``
    has everything ``make dev`` has.

    What the tests' ``aws`` fixture is (see :mod:`infra.local.testing`)::

        with local_aws() as resources:
            tickets.open_ticket(...)
    """
    saved = dict(os.environ)
    with mocked_aws():
        try:
            lifecycle.forget()  # what the process cached about the previous account (a test's)
            yield create_resources(builders)
        finally:
            for name in set(os.environ) - set(saved):
                del os.environ[name]
            os.environ.update(saved)

