"""The SLA sweep and the SLA report: two schedules, two functions, the report bucket, a dashboard, alarms.

- ``SweepFunction`` (every ``sweepMinutes``, default 5; an EventBridge rule): ``helpdesk.sweep`` reads the
  sparse due index and warns, repairs escalation chains, escalates after 30 days and closes resolved
  tickets after 7 days, all by conditional writes. It may start and stop escalation executions and
  describe them (the chain it checks).
- ``ReportFunction`` (daily, 00:15 UTC): yesterday's SLA report as JSON in the report bucket
  (``reports/daily/<day>.json``: SSE-S3, TLS only, no public access) and as EMF metrics.
- A dashboard of the sweep's and the report's metrics, the dead-letter queues and function errors, and
  alarms to ``team-alerts`` on the breach rate, any message in a dead-letter queue and any function error.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from helpdesk.settings import Env
from infra.constructs import POWERTOOLS_ENVIRONMENT, PythonFunctions
from infra.constructs.escalation import Escalation
from infra.constructs.storage import Storage
from infra.nag import acknowledge

NAMESPACE = POWERTOOLS_ENVIRONMENT["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = {"service": POWERTOOLS_ENVIRONMENT["POWERTOOLS_SERVICE_NAME"]}  # Powertools' default dimension
SWEEP_METRICS = ("AtRiskWarnings", "ChainsRepaired", "AutoClosed", "ThirtyDayEscalations")
REPORT_PREFIX = "reports/"
DEFAULT_SWEEP_MINUTES = 5
DEFAULT_BREACH_RATE_PERCENT = 10


def metric(name: str, *, period: cdk.Duration = cdk.Duration.minutes(5), statistic: str = "Sum") -> cloudwatch.Metric:
    return cloudwatch.Metric(namespace=NAMESPACE, metric_name=name, dimensions_map=SERVICE, period=period,
                             statistic=statistic)


class Sweep(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: PythonFunctions,
        storage: Storage,
        escalation: Escalation,
        team_alerts: sns.ITopic | None = None,
        alerts_key: kms.IKey | None = None,  # the key that encrypts ``team_alerts``: CloudWatch needs to use it
        dead_letter_queues: Sequence[tuple[str, sqs.IQueue]] = (),
        watched_functions: Sequence[tuple[str, lambda_.IFunction]] = (),
        watched_apis: Sequence[tuple[str, apigw.RestApiBase]] = (),
        sweep_minutes: int = DEFAULT_SWEEP_MINUTES,
        breach_rate_percent: float = DEFAULT_BREACH_RATE_PERCENT,
        retain_data: bool = True,
    ) -> None:
        super().__init__(scope, id)
        if not 1 <= int(sweep_minutes) <= 60:
            raise ValueError("sweepMinutes must be a whole number of minutes from 1 to 60")

        # -- the sweep ---------------------------------------------------------------------------------
        self.sweep_function = functions.add(
            self, "SweepFunction", source="functions/sla_sweep",
            description="Helpdesk SLA sweep (schedule -> due index: at-risk warnings, chain repair, 30 days, auto-close)",
            environment={Env.TICKETS_TABLE: storage.tickets.table_name},
            timeout=cdk.Duration.seconds(120),
        )
        # Exactly what it does: the due index (Query), tickets and timelines (GetItem, Query), conditional
        # writes and transactions (PutItem, UpdateItem, ConditionCheckItem). Never a Scan.
        from helpdesk.models import Ticket

        self.sweep_function.add_to_role_policy(iam.PolicyStatement(
            actions=["dynamodb:Query"],
            resources=[f"{storage.tickets.table_arn}/index/{Ticket.due_index.Meta.index_name}"]))
        self.sweep_function.add_to_role_policy(iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
                     "dynamodb:ConditionCheckItem"],
            resources=[storage.tickets.table_arn]))
        escalation.drive(self.sweep_function)  # start a new chain, stop one after 30 days
        self.sweep_function.add_to_role_policy(iam.PolicyStatement(
            actions=["states:DescribeExecution"], resources=[escalation.executions_arn]))
        self.sweep_schedule = events.Rule(
            self, "SweepSchedule", description=f"Helpdesk SLA sweep, every {sweep_minutes} minutes",
            schedule=events.Schedule.rate(cdk.Duration.minutes(int(sweep_minutes))),
            targets=[targets.LambdaFunction(self.sweep_function, retry_attempts=1,
                                            max_event_age=cdk.Duration.minutes(int(sweep_minutes)))],
        )

        # -- the report --------------------------------------------------------------------------------
        self.bucket = s3.Bucket(
            self, "ReportBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=False,
            lifecycle_rules=[s3.LifecycleRule(id="abort-incomplete-uploads",
                                              abort_incomplete_multipart_upload_after=cdk.Duration.days(1))],
            removal_policy=cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=not retain_data,
        )
        acknowledge(self.bucket, {
            "AwsSolutions-S1": "No server access logs: only the report function writes here (one object a day) "
            "and people read the reports; CloudTrail S3 data events are the audit trail if one is needed.",
        })
        self.report_function = functions.add(
            self, "ReportFunction", source="functions/sla_report",
            description="Helpdesk SLA report (daily: yesterday's tickets -> JSON in S3 and CloudWatch metrics)",
            environment={Env.TICKETS_TABLE: storage.tickets.table_name, Env.REPORT_BUCKET: self.bucket.bucket_name},
            memory_size=512, timeout=cdk.Duration.minutes(5),
        )
        storage.tickets.grant_read_data(self.report_function)
        self.report_function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{REPORT_PREFIX}*")]))
        acknowledge(self.report_function.role, {
            f"AwsSolutions-IAM5[Resource::<{self._logical_id(self.bucket)}.Arn>/{REPORT_PREFIX}*]":
                "s3:PutObject only, only under reports/ in the report bucket: one object per day, named by date.",
        })
        self.report_schedule = events.Rule(
            self, "ReportSchedule", description="Helpdesk SLA report, daily for the day before (UTC)",
            schedule=events.Schedule.cron(minute="15", hour="0"),
            targets=[targets.LambdaFunction(self.report_function, retry_attempts=2)],
        )

        # -- alarms ------------------------------------------------------------------------------------
        self.alarms: list[cloudwatch.Alarm] = []
        breach_rate = metric("BreachRate", period=cdk.Duration.days(1), statistic="Maximum")
        self._alarm("BreachRate", breach_rate, threshold=breach_rate_percent,
                    description=f"Yesterday's SLA breach rate was above {breach_rate_percent}% (the SLA report)")
        for name, queue in dead_letter_queues:
            self._alarm(f"{name}Depth", queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"), threshold=1,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                description=f"Messages in the dead-letter queue {name}: something failed every retry")
        functions_watched = [("SlaSweep", self.sweep_function), ("SlaReport", self.report_function),
                             *watched_functions]
        for name, function in functions_watched:
            self._alarm(f"{name}Errors", function.metric_errors(period=cdk.Duration.minutes(5), statistic="Sum"),
                        threshold=1, comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                        description=f"The {name} function failed")
        for name, api in watched_apis:  # a function that answers 500 has not failed: the API's 5xx tell
            self._alarm(f"{name}ServerErrors", api.metric_server_error(period=cdk.Duration.minutes(5), statistic="Sum"),
                        threshold=1,
                        comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                        description=f"The {name} answered a 5xx (an error nobody foresaw, or a function that crashed)")
        if team_alerts is not None:
            action = cw_actions.SnsAction(team_alerts)
            for alarm in self.alarms:
                alarm.add_alarm_action(action)
            if isinstance(alerts_key, kms.Key):  # CloudWatch publishes to an encrypted topic only with the key
                alerts_key.add_to_resource_policy(iam.PolicyStatement(
                    sid="CloudWatchAlarmsUseTheKey",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],  # in a key policy: this key
                    conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
                ))

        # -- the dashboard -----------------------------------------------------------------------------
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.days(7))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="SLA sweep actions", width=12,
                                   left=[metric(name, period=cdk.Duration.hours(1)) for name in SWEEP_METRICS]),
            cloudwatch.GraphWidget(title="SLA met and breach rate (daily report, %)", width=12,
                                   left=[metric(n, period=cdk.Duration.days(1), statistic="Maximum")
                                         for n in ("FirstResponseSlaMet", "ResolutionSlaMet", "BreachRate")]),
            cloudwatch.GraphWidget(title="Tickets and escalations (daily report)", width=12,
                                   left=[metric(n, period=cdk.Duration.days(1))
                                         for n in ("TicketsOpened", "SlaBreaches", "EscalationsAuto", "EscalationsManual")]),
            cloudwatch.GraphWidget(title="Dead-letter queues (messages)", width=12,
                                   left=[q.metric_approximate_number_of_messages_visible(label=n, statistic="Maximum")
                                         for n, q in dead_letter_queues] or [metric("SweepItemsRead")]),
            cloudwatch.GraphWidget(title="Function errors", width=12,
                                   left=[f.metric_errors(label=n, statistic="Sum") for n, f in functions_watched]),
            cloudwatch.AlarmStatusWidget(title="Alarms", width=12, alarms=self.alarms),
        )
        for name, value, description in (
            ("ReportBucketName", self.bucket.bucket_name, "Daily SLA reports (reports/daily/<day>.json)"),
        ):
            cdk.CfnOutput(self, name, value=value, description=description).override_logical_id(name)

    def _alarm(self, id: str, metric_: cloudwatch.IMetric, *, threshold: float, description: str,
               comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
               ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(self, f"{id}Alarm", metric=metric_, threshold=threshold, evaluation_periods=1,
                                 comparison_operator=comparison, alarm_description=description,
                                 treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
        self.alarms.append(alarm)
        return alarm

    @staticmethod
    def _logical_id(construct) -> str:
        stack = cdk.Stack.of(construct)
        return stack.resolve(stack.get_logical_id(construct.node.default_child))


def compose(stack: cdk.Stack, id: str = "Sweep", *, retain_data: bool = True) -> Sweep:
    """The sweep wired to what the helpdesk stack already has (its topics, queues and functions), read
    from the stack's attributes so that the stack composes it in one line. ``sweepMinutes`` (context)."""
    notifications = getattr(stack, "notifications", None)
    email, api = getattr(stack, "email", None), getattr(stack, "api", None)
    queues = [(name, queue) for name, queue in (
        ("PublisherFailures", getattr(notifications, "publisher_failures", None)),
        ("DeliveryFailures", getattr(notifications, "delivery_failures", None)),
        ("EmailIntakeFailures", getattr(email, "failures", None)),
    ) if queue is not None]
    watched = [(name, function) for name, function in (
        ("Api", getattr(api, "function", None)),
        ("EmailIntake", getattr(email, "function", None)),
        ("Publisher", getattr(notifications, "publisher", None)),
        ("Delivery", getattr(notifications, "delivery", None)),
    ) if function is not None]
    return Sweep(
        stack, id, functions=stack.functions, storage=stack.storage, escalation=stack.escalation,
        team_alerts=getattr(notifications, "team_alerts", None), alerts_key=getattr(notifications, "key", None),
        dead_letter_queues=queues, watched_functions=watched,
        watched_apis=[("Api", api.rest_api)] if api is not None else [],
        sweep_minutes=int(stack.node.try_get_context("sweepMinutes") or DEFAULT_SWEEP_MINUTES),
        retain_data=retain_data,
    )
