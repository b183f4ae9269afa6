"""Where an operator's command finds the system: a deployed stack's CloudFormation outputs, or the
local stack's console. Nothing is guessed: CloudFormation names the tables, queues and functions, and
the stack says which names it gave them (the outputs below, set by CDK with these very names).

Used by ``python -m helpdesk.report`` and ``python -m helpdesk.replay``: ``--stack NAME`` (default
:data:`STACK_NAME`, in the region of your AWS configuration) or ``--local [URL]`` (``make dev``, whose
moto lives inside the dev process: its console serves the same operations over HTTP).
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import argparse

T = TypeVar("T")

STACK_NAME = "Helpdesk"  # infra/app.py deploys the stack under this name
LOCAL_CONSOLE_PORT = 3001  # the local console's default port (infra/local/config.py), HELPDESK_CONSOLE_PORT


class Output(StrEnum):
    """Stack outputs an operator's command reads (CDK sets them with these logical ids)."""

    TICKETS_TABLE = "TicketsTableName"
    PUBLISHER_FAILURES = "PublisherFailuresQueueUrl"
    DELIVERY_FAILURES = "DeliveryFailuresQueueUrl"
    EMAIL_FAILURES = "EmailIntakeFailuresQueueUrl"
    PUBLISHER_FUNCTION = "PublisherFunctionName"
    DELIVERY_FUNCTION = "DeliveryFunctionName"
    EMAIL_FUNCTION = "EmailIntakeFunctionName"


class OpsError(Exception):
    """Something an operator can fix (no stack, no credentials, no local stack): one line, no traceback."""


# -- a deployed stack --------------------------------------------------------------------------------

def outputs(stack_name: str = STACK_NAME, *, cloudformation=None) -> dict[str, str]:
    """The stack's outputs, ``{OutputKey: OutputValue}``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = cloudformation or aws_client("cloudformation")
        [stack] = client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        if "does not exist" in message:
            raise OpsError(f"no stack {stack_name!r} in {client.meta.region_name}: deploy it, pass --stack NAME, "
                           "or --local for make dev") from None
        raise OpsError(f"cannot read stack {stack_name!r}: {message}") from None
    except BotoCoreError as error:  # no credentials, no region, no network
        raise OpsError(f"cannot reach AWS: {error}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def output(values: dict[str, str], name: Output, stack_name: str = STACK_NAME) -> str:
    try:
        return values[name]
    except KeyError:
        raise OpsError(f"stack {stack_name!r} has no output {name}: deploy this version of the stack") from None


def reading(what: str, call: Callable[[], T]) -> T:
    """``call()``, with AWS's refusals (no credentials, access denied, throttled) as one line about ``what``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as error:
        raise OpsError(f"{what}: {error.response.get('Error', {}).get('Code', 'error')}: "
                       f"{error.response.get('Error', {}).get('Message', '')}") from None
    except BotoCoreError as error:
        raise OpsError(f"{what}: {error}") from None


def aws_client(service: str, **config: Any):
    """A boto3 client with the caller's own configuration (profile, region); a clear error without one."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    try:
        return boto3.client(service, config=Config(**config) if config else None)
    except NoRegionError:
        raise OpsError("no AWS region: set AWS_REGION (or a region in your AWS profile)") from None


# -- the local stack ---------------------------------------------------------------------------------

def local_console() -> str:
    """The local console's URL as ``make dev`` starts it (``HELPDESK_CONSOLE_PORT``, default 3001)."""
    port = os.environ.get("HELPDESK_CONSOLE_PORT", "").strip() or str(LOCAL_CONSOLE_PORT)
    return f"http://127.0.0.1:{port}/"


def local_call(console: str, path: str, *, method: str = "GET", timeout: float = 120) -> Any:
    """One JSON call to the local console (``path`` relative to it)."""
    import urllib.error
    import urllib.request

    url = console.rstrip("/") + "/" + path.lstrip("/")
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise OpsError(f"{url}: {error.code} {error.read().decode(errors='replace')[:200]}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise OpsError(f"no local stack answers at {console} ({reason}): start it with make dev") from None


# -- the command line --------------------------------------------------------------------------------

def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", default=STACK_NAME,
                       help=f"the deployed stack (default {STACK_NAME}; the region of your AWS configuration)")
    where.add_argument("--local", nargs="?", const="", metavar="URL",
                       help=f"the local stack (make dev) through its console, default {local_console()}")


def console_of(args: argparse.Namespace) -> str | None:
    """The local console's URL if ``--local`` was given, else None (a deployed stack)."""
    if args.local is None:
        return None
    return args.local or local_console()
