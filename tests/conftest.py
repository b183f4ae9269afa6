"""Shared fixtures: a moto account holding the same resources as the CDK app, and a frozen clock."""

import json
import os
from pathlib import Path

import pytest

from infra.local.config import FUNCTION_DEFAULTS, prepare_environment
from infra.local.testing import agent_pool, aws  # noqa: F401  (fixtures: moto with the local stack's resources)

EVENTS = Path(__file__).parent.parent / "events"

# Every test runs against moto, never a real account, in UTC: the local stack's environment, with the
# region and the functions' defaults fixed whatever the shell says (the sample events name us-east-1).
prepare_environment()
os.environ.update(AWS_DEFAULT_REGION="us-east-1", **FUNCTION_DEFAULTS)


def sample_event(name: str) -> dict:
    """A sample event from events/ (the same files a person can invoke the functions with)."""
    return json.loads((EVENTS / name).read_text())


class FakeLambdaContext:
    function_name = "helpdesk-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:helpdesk-test"
    aws_request_id = "11111111-2222-3333-4444-555555555555"
    log_group_name = "/aws/lambda/helpdesk-test"
    log_stream_name = "test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


@pytest.fixture
def lambda_context():
    return FakeLambdaContext()
