"""What a function keeps between invocations that must not outlive its execution environment: the
cached AWS clients (with their open connections) and the token secret.

Lambda SnapStart (an option of the API function) restores many environments from one snapshot taken
after init: connections opened before it are dead after a restore, and credentials and secrets should
be fetched by each copy. The tests start a fresh moto account per test and forget them the same way.
"""

from __future__ import annotations


def forget() -> None:
    """Drop every cached client and secret: the next call makes a new one (new connection, credentials)."""
    from aws_lambda_powertools.utilities import parameters

    from helpdesk import chains, ledger, notify

    parameters.clear_caches()  # the token secret, read with max_age
    ledger.connection.cache_clear()
    chains.stepfunctions.cache_clear()
    notify.reset_clients()
