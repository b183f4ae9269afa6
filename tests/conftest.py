"""Shared fixtures: a moto account holding the same resources as the CDK app, and a frozen clock."""

import json
import os
from pathlib import Path

import pytest

EVENTS = Path(__file__).parent.parent / "events"

# Every test runs against moto, never a real account, in UTC (moto compares Wait times in local time).
os.environ.update(
    TZ="UTC", AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled", POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="WARNING",
    POWERTOOLS_SERVICE_NAME="helpdesk", POWERTOOLS_METRICS_NAMESPACE="Helpdesk",
)


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


@pytest.fixture
def aws():
    """A fresh moto account with the stack's tables (TEMPORARY: to be replaced by infra.local's creator)."""
    import boto3
    from moto import mock_aws

    from helpdesk import models, tickets

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        ddb = boto3.client("dynamodb")
        ddb.create_table(TableName=models.Ticket.Meta.table_name, BillingMode="PAY_PER_REQUEST", **models.table_schema())
        ddb.create_table(TableName="helpdesk-idempotency", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        arn = boto3.client("secretsmanager").create_secret(Name="helpdesk-token-secret", SecretString="test-secret")["ARN"]
        os.environ["HELPDESK_TOKEN_SECRET_ARN"] = arn
        tickets._connection.cache_clear()
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        yield
