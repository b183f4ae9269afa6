"""What outlives a request: the ticket table (from the PynamoDB models), the Powertools idempotency
table, and the key the customers' access tokens are derived from.

Both tables are on-demand, encrypted at rest with the AWS-managed key (``aws/dynamodb``: no key to
run, every use visible in CloudTrail) and have point-in-time recovery. Nothing is named here:
CloudFormation names the resources and functions learn the names through :class:`Env` variables.

``cdk destroy`` keeps the ticket table (RETAIN plus deletion protection) and the token key (without
it no existing private link works) unless the stack was last deployed with ``-c retainData=false``.
The idempotency table only holds short-lived records and always goes with the stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from helpdesk.deployment import Output
from helpdesk.models import TTL_ATTRIBUTE, table_schema
from helpdesk.settings import Env
from infra.nag import acknowledge

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}
_TABLE_DEFAULTS = dict(
    billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
    encryption=dynamodb.TableEncryption.AWS_MANAGED,
    point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
        point_in_time_recovery_enabled=True
    ),
)


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, retain_data: bool) -> None:
        super().__init__(scope, id)
        keep = cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY
        schema = table_schema()
        types = {a["AttributeName"]: _ATTRIBUTE_TYPES[a["AttributeType"]] for a in schema["AttributeDefinitions"]}

        def key(key_schema: list[dict], key_type: str) -> dynamodb.Attribute | None:
            names = [k["AttributeName"] for k in key_schema if k["KeyType"] == key_type]
            return dynamodb.Attribute(name=names[0], type=types[names[0]]) if names else None

        self.tickets = dynamodb.Table(
            self,
            "Tickets",
            partition_key=key(schema["KeySchema"], "HASH"),
            sort_key=key(schema["KeySchema"], "RANGE"),
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            time_to_live_attribute=TTL_ATTRIBUTE,  # short-lived items: email rate counters, rejected mail
            removal_policy=keep,
            deletion_protection=retain_data,
            **_TABLE_DEFAULTS,
        )
        for gsi in schema["GlobalSecondaryIndexes"]:
            self.tickets.add_global_secondary_index(
                index_name=gsi["IndexName"],
                partition_key=key(gsi["KeySchema"], "HASH"),
                sort_key=key(gsi["KeySchema"], "RANGE"),
                projection_type=dynamodb.ProjectionType(gsi["Projection"]["ProjectionType"]),
                non_key_attributes=gsi["Projection"].get("NonKeyAttributes"),
            )
        acknowledge(
            cdk.Stack.of(self),
            {
                f"AwsSolutions-IAM5[Resource::<{_logical_id(self.tickets)}.Arn>/index/*]": "Grants on the ticket "
                "table include its secondary indexes (due-index, customer-index, opened-index) so functions can query them; "
                "the wildcard covers this one table's indexes only.",
            },
        )

        # Operators' commands (make report, make replay) find the table here: CloudFormation names it.
        output = cdk.CfnOutput(self, Output.TICKETS_TABLE, value=self.tickets.table_name,
                               description="The ticket table (SLA report, publisher replay)")
        output.override_logical_id(Output.TICKETS_TABLE)

        self.idempotency = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            removal_policy=cdk.RemovalPolicy.DESTROY,
            **_TABLE_DEFAULTS,
        )

        self.token_secret = secretsmanager.Secret(
            self,
            "TokenSecret",
            description="Helpdesk: the key every ticket's access token is derived from (HMAC)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=keep,
        )
        acknowledge(
            self.token_secret,
            {
                "AwsSolutions-SMG4": "Not rotated on a schedule: every customer's private link carries a token "
                "derived from this key, so a rotation revokes them all. Rotate by hand after a suspected leak.",
            },
        )

    def environment(self) -> dict[Env, str]:
        """What a function that changes tickets needs to find them: both tables and the token key."""
        return {
            Env.TICKETS_TABLE: self.tickets.table_name,
            Env.IDEMPOTENCY_TABLE: self.idempotency.table_name,
            Env.TOKEN_SECRET_ARN: self.token_secret.secret_arn,
        }


def _logical_id(table: dynamodb.Table) -> str:
    """The table's logical id as cdk-nag spells it in findings."""
    stack = cdk.Stack.of(table)
    return stack.resolve(stack.get_logical_id(table.node.default_child))
