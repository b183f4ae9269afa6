"""The AWS resources of the local stack, built in moto from the definitions CDK uses.

One function per resource (a *builder*): it creates the resource with boto3 and returns the `Env`
variables that name it. :func:`create_resources` runs every builder and exports what they return,
so ``python -m infra.local`` and the tests' fixtures (:func:`infra.local.aws.local_aws`) create the
very same resources with the very same code.

A later capability adds its resources by writing one more builder and listing it in ``BUILDERS``
(the escalation state machine from ``infra/statemachines/escalation.asl.json``, the SNS topics and
their SQS subscriptions, the mail bucket...). A builder runs after the ones listed before it, and
``os.environ`` already holds their variables.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable

import boto3

from helpdesk import settings
from helpdesk.settings import Env

Builder = Callable[[], dict[Env, str]]


@functools.cache
def _powertools_default(parameter: str) -> str:
    """The idempotency table's shape is Powertools' default: read it there rather than type it."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return inspect.signature(DynamoDBPersistenceLayer.__init__).parameters[parameter].default


def idempotency_key_attribute() -> str:
    return _powertools_default("key_attr")  # "id"


def idempotency_ttl_attribute() -> str:
    return _powertools_default("expiry_attr")  # "expiration"


def ticket_table() -> dict[Env, str]:
    """The ticket table, keys and indexes from ``helpdesk.models.table_schema()``; on demand, streamed."""
    name = settings.get(Env.TICKETS_TABLE)
    os.environ[Env.TICKETS_TABLE] = name  # before the models are imported: they read it once
    from helpdesk import models

    if models.Ticket.Meta.table_name != name:
        raise RuntimeError(
            f"helpdesk.models was imported with table {models.Ticket.Meta.table_name!r} but "
            f"{Env.TICKETS_TABLE}={name!r}: set the variable before importing the models")
    boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        **models.table_schema(),
    )
    return {Env.TICKETS_TABLE: name}


def idempotency_table() -> dict[Env, str]:
    """Powertools' idempotency records: partition key ``id``, expired by TTL on ``expiration``."""
    name = settings.get(Env.IDEMPOTENCY_TABLE)
    key, ttl = idempotency_key_attribute(), idempotency_ttl_attribute()
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
    )
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})
    return {Env.IDEMPOTENCY_TABLE: name}


TOKEN_SECRET_NAME = "helpdesk-token-secret"  # CloudFormation names it in the cloud; only the ARN travels


def token_secret() -> dict[Env, str]:
    """The key access tokens are derived from: 64 random letters and digits, as CDK's generator makes it."""
    client = boto3.client("secretsmanager")
    value = client.get_random_password(PasswordLength=64, ExcludePunctuation=True)["RandomPassword"]
    arn = client.create_secret(Name=TOKEN_SECRET_NAME, SecretString=value)["ARN"]
    return {Env.TOKEN_SECRET_ARN: arn}


# In creation order. Later capabilities append theirs (state machine, topics + queues, bucket...).
BUILDERS: tuple[Builder, ...] = (
    ticket_table,
    idempotency_table,
    token_secret,
)


def create_resources(builders: Iterable[Builder] = BUILDERS) -> dict[Env, str]:
    """Create every resource in the current (moto) account and export the `Env` variables naming them.

    Call it inside an active moto mock, before importing a function's handler module (handlers read
    their table names when imported).
    """
    created: dict[Env, str] = {}
    for build in builders:
        values = build()
        for name, value in values.items():
            os.environ[name] = value
        created.update(values)
    return created
