"""The local stack's resources (what the `aws` fixture and `make dev` create) match the definitions CDK uses."""

from __future__ import annotations

import os

import boto3

from helpdesk.models import table_schema
from helpdesk.settings import Env
from infra.local.aws import local_aws


def test_the_ticket_table_is_built_from_the_models_on_demand_and_streamed(aws):
    table = boto3.client("dynamodb").describe_table(TableName=aws[Env.TICKETS_TABLE])["Table"]
    schema = table_schema()

    assert os.environ[Env.TICKETS_TABLE] == aws[Env.TICKETS_TABLE]
    assert table["KeySchema"] == schema["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(schema["AttributeDefinitions"], key=str)
    assert {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]} == {
        i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in schema["GlobalSecondaryIndexes"]}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_idempotency_table_has_powertools_key_and_expiry(aws):
    client = boto3.client("dynamodb")
    name = aws[Env.IDEMPOTENCY_TABLE]

    assert client.describe_table(TableName=name)["Table"]["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")


def test_the_token_secret_holds_a_generated_key(aws):
    value = boto3.client("secretsmanager").get_secret_value(SecretId=aws[Env.TOKEN_SECRET_ARN])["SecretString"]

    assert len(value) == 64 and value.isalnum()


def test_the_environment_is_restored_after_the_account_is_gone():
    before = os.environ.get(Env.TOKEN_SECRET_ARN)

    with local_aws() as resources:
        assert os.environ[Env.TOKEN_SECRET_ARN] == resources[Env.TOKEN_SECRET_ARN]

    assert os.environ.get(Env.TOKEN_SECRET_ARN) == before
