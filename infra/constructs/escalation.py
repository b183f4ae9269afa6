"""The escalation engine: one Step Functions (Standard) execution per ticket, from the one ASL file.

The definition is ``infra/statemachines/escalation.asl.json``, inlined into the template with the
substitutions ``helpdesk.statemachine.substitutions()`` computes (the local stack and the tests render
the same file with the same function). The chain talks to DynamoDB only, through direct integrations;
it never publishes: notifications leave through the table's stream (see ``notifications.py``).

Its role follows the definition: :func:`table_actions` reads every Task of the ASL and maps it to the
DynamoDB actions it needs on the ticket table, and refuses an integration it does not know, so a new
kind of Task cannot ship without a deliberate grant here. Besides those, the role has only what CDK adds
for the log group (log delivery) and X-Ray.

Functions that change a ticket's clock (open, resume, resolve...) start and stop chains:
:meth:`Escalation.drive` gives them the state machine's ARN (``Env.ESCALATION_STATE_MACHINE_ARN``),
``states:StartExecution`` on it and ``states:StopExecution`` on its executions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from helpdesk import statemachine
from helpdesk.settings import Env
from infra.constructs import LOG_RETENTION
from infra.constructs.storage import Storage
from infra.nag import acknowledge

# Optimized DynamoDB integrations (``arn:aws:states:::dynamodb:<op>``) -> the IAM action they call.
_OPTIMIZED = {
    "getItem": "dynamodb:GetItem",
    "putItem": "dynamodb:PutItem",
    "updateItem": "dynamodb:UpdateItem",
    "deleteItem": "dynamodb:DeleteItem",
}
# TransactWriteItems has no IAM action of its own: each item is authorised as its single-item action.
_TRANSACT_ITEMS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
_TRANSACT_WRITE = "arn:aws:states:::aws-sdk:dynamodb:transactWriteItems"
_TABLE = "${%s}" % statemachine.Substitution.TICKETS_TABLE.value


def _tasks(states: dict) -> Iterator[tuple[str, dict]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        for branch in state.get("Branches", []):  # Parallel
            yield from _tasks(branch["States"])
        for key in ("Iterator", "ItemProcessor"):  # Map
            if key in state:
                yield from _tasks(state[key]["States"])


def table_actions(definition: dict) -> set[str]:
    """The DynamoDB actions the definition's Tasks need, all on the ticket table.

    Raises ``ValueError`` for a Task this construct has no grant for (another service, another table).
    """
    actions: set[str] = set()

    def on_ticket_table(state_name: str, parameters: dict) -> None:
        if parameters.get("TableName") != _TABLE:
            raise ValueError(f"state {state_name}: TableName must be {_TABLE} (the only table the role may touch)")

    for name, task in _tasks(definition["States"]):
        resource = task["Resource"]
        operation = resource.removeprefix("arn:aws:states:::dynamodb:")
        if operation in _OPTIMIZED:
            on_ticket_table(name, task["Parameters"])
            actions.add(_OPTIMIZED[operation])
        elif resource == _TRANSACT_WRITE:
            for item in task["Parameters"]["TransactItems"]:
                ((kind, parameters),) = item.items()
                on_ticket_table(name, parameters)
                actions.add(_TRANSACT_ITEMS[kind])
        else:
            raise ValueError(f"state {name}: {resource} has no grant in infra/constructs/escalation.py; "
                             "add the narrowest one there on purpose")
    return actions


class Escalation(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        storage: Storage,
        log_removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        text = statemachine.DEFINITION_FILE.read_text()
        substitutions = statemachine.substitutions(storage.tickets.table_name)
        if set(substitutions) != statemachine.placeholders(text):  # CloudFormation would fail at deploy
            raise ValueError(f"substitutions {sorted(substitutions)} != placeholders "
                             f"{sorted(statemachine.placeholders(text))}")

        self.log_group = logs.LogGroup(self, "Logs", retention=LOG_RETENTION, removal_policy=log_removal_policy)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="Helpdesk: one execution per ticket waits on its SLA deadlines and escalates it",
            state_machine_type=sfn.StateMachineType.STANDARD,  # waits of hours to days
            definition_body=sfn.DefinitionBody.from_string(text),
            definition_substitutions=substitutions,
            # Every state transition, never its data (tickets carry customers' names and subjects).
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
        )
        self.state_machine.add_to_role_policy(iam.PolicyStatement(
            actions=sorted(table_actions(json.loads(text))),
            resources=[storage.tickets.table_arn],
        ))
        acknowledge(
            self.state_machine.role,
            {
                "AwsSolutions-IAM5[Resource::*]": "Only what CDK adds for the state machine's logging and tracing: "
                "CloudWatch Logs log delivery (logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, "
                "DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies, "
                "DescribeLogGroups) and X-Ray (PutTraceSegments, PutTelemetryRecords, GetSamplingRules, "
                "GetSamplingTargets) support no resource-level permissions. The ticket table grant is exact.",
            },
        )

    def drive(self, function: lambda_.Function) -> None:
        """Let ``function`` start ticket chains (and stop superseded ones): the ARN and the two grants."""
        function.add_environment(Env.ESCALATION_STATE_MACHINE_ARN.value, self.state_machine.state_machine_arn)
        self.state_machine.grant_start_execution(function)
        function.add_to_role_policy(iam.PolicyStatement(actions=["states:StopExecution"],
                                                        resources=[self.executions_arn]))
        acknowledge(
            function.role,
            {
                f"AwsSolutions-IAM5[Resource::{self._executions_finding()}]": "states:StopExecution on the "
                "escalation state machine's executions: they are named after tickets (HD-...), so only the "
                "name is a wildcard; no other state machine's executions are covered.",
            },
        )

    @property
    def executions_arn(self) -> str:
        """Every execution of this state machine: ``arn:...:execution:<its name>:*``."""
        return cdk.Stack.of(self).format_arn(
            service="states", resource="execution", resource_name=f"{self.state_machine.state_machine_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)

    def _executions_finding(self) -> str:
        """How cdk-nag spells :attr:`executions_arn` in its finding id."""
        stack = cdk.Stack.of(self)
        name = stack.resolve(stack.get_logical_id(self.state_machine.node.default_child))
        return f"arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<{name}.Name>:*"
