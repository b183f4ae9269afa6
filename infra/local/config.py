"""The local stack's own settings: ports and the environment it gives the functions.

These variables exist only on a developer's machine (the deployed system has no ports to pick), so
they live here rather than in :class:`helpdesk.settings.Env`, which lists what the functions read.
"""

from __future__ import annotations

import os
import time
from enum import StrEnum

HOST = "127.0.0.1"  # local only: nothing listens on other interfaces


class LocalEnv(StrEnum):
    PORT = "HELPDESK_PORT"  # the API front (what API Gateway is in the cloud)
    CONSOLE_PORT = "HELPDESK_CONSOLE_PORT"  # the local console: tickets, outbox
    SMTP_PORT = "HELPDESK_SMTP_PORT"  # the local SMTP intake (reserved for the email capability)
    COGNITO_PORT = "HELPDESK_COGNITO_PORT"  # the agents' sign-in: the Cognito user pools API on moto's pool


DEFAULT_PORTS: dict[LocalEnv, int] = {
    LocalEnv.PORT: 3000,
    LocalEnv.CONSOLE_PORT: 3001,
    LocalEnv.SMTP_PORT: 2525,
    LocalEnv.COGNITO_PORT: 3002,
}

# What every Lambda function's environment holds in the cloud besides the `Env` variables.
# Powertools Metrics refuses to flush without a namespace, so the local stack must set one too.
FUNCTION_DEFAULTS: dict[str, str] = {
    "POWERTOOLS_SERVICE_NAME": "helpdesk",
    "POWERTOOLS_METRICS_NAMESPACE": "Helpdesk",
    # Locally the sweep ticks up to every second: its INFO lines and EMF metrics would bury the
    # console. Set either in your shell to see them.
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def port(name: LocalEnv) -> int:
    """The port from the environment, else its default (0 asks the OS for a free one)."""
    raw = os.environ.get(name.value, "").strip()
    if not raw:
        return DEFAULT_PORTS[name]
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name.value}={raw!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise SystemExit(f"{name.value}={raw!r} is not a port number")
    return value


def prepare_environment() -> None:
    """What moto and the functions need whatever shell started us (``make dev`` sets most of it).

    - ``TZ=UTC``: moto compares Step Functions Wait timestamps with local time.
    - ``AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled``: moto's DynamoDB Streams answer 404 otherwise.
    - a region, and fake credentials so that nothing can ever reach a real account.
    - ``MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP``: moto checks TOTP codes (MFA) as Cognito does, against
      the one secret it hands every user (``AssociateSoftwareToken``), instead of taking any code.
    """
    os.environ["TZ"] = "UTC"
    time.tzset()
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"] = "true"
    for name in [n for n in os.environ if n == "AWS_PROFILE" or n == "AWS_SESSION_TOKEN"
                 or n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]  # a profile or an endpoint would send boto3 past moto
    for name, value in FUNCTION_DEFAULTS.items():
        os.environ.setdefault(name, value)
