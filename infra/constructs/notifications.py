"""Notifications: the ticket table's stream -> the publisher -> two SNS topics -> subscribers.

- ``customer-updates`` and ``team-alerts``: SNS topics (CloudFormation names them), encrypted with a
  customer-managed KMS key (yearly rotation), TLS only (topic policy).
- The publisher (``functions/publisher``) reads the ticket table's stream from TRIM_HORIZON: only
  INSERTs of timeline events invoke it (``notify.stream_filter_pattern()``); a failed record is
  reported (``batchItemFailures``), bisected and retried, then its batch's position goes to a
  dead-letter queue.
- The delivery function (``functions/delivery``) takes ``customer-updates`` through the filter policy
  ``notify.CUSTOMER_DELIVERY_FILTER`` and emails (SES, from the support domain's identity) or texts
  (SNS SMS) the customer; invocations that fail every retry go to its own dead-letter queue.
- Team alerts: CDK context ``teamAlertEmails`` subscribes email addresses to ``team-alerts`` with
  ``notify.team_filter(department)`` (a department's alerts), ``notify.MANAGEMENT_FILTER`` (key
  ``management``) or every alert (key ``*``, or a plain list); ``teamAlertWebhook`` subscribes one
  HTTPS endpoint to every alert (raw delivery: the body is the alert's JSON ``{"text", "alert"}``).

The filter policies are ``helpdesk.notify``'s own dicts, set raw on the subscriptions (the L2
``SubscriptionFilter`` cannot say ``$or`` or prefixes): the local stack subscribes with the same dicts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from helpdesk import notify, replay
from helpdesk.deployment import Output
from helpdesk.escalation import MANAGEMENT
from helpdesk.settings import Env
from infra.constructs import PythonFunctions
from infra.constructs.storage import Storage
from infra.nag import acknowledge

EVERY_ALERT = "*"  # teamAlertEmails key: every team alert, whatever the department

# The stream -> publisher event source mapping.
STREAM_BATCH_SIZE = 100
STREAM_RETRY_ATTEMPTS = 5  # then the failed records' position goes to the DLQ
# A notification older than that goes to the DLQ instead (helpdesk.replay's send-once records outlive it).
STREAM_MAX_RECORD_AGE = cdk.Duration.seconds(int(replay.STREAM_MAX_RECORD_AGE.total_seconds()))
# customer-updates -> delivery (asynchronous invocations, from SNS).
DELIVERY_RETRY_ATTEMPTS = 2  # Lambda's maximum
DELIVERY_MAX_EVENT_AGE = cdk.Duration.hours(6)
DLQ_RETENTION = cdk.Duration.days(replay.RETENTION.days)  # SQS's maximum: time to find the cause and replay


def team_alert_filter(key: str) -> dict:
    """The ``team-alerts`` filter policy of a ``teamAlertEmails`` key (a department, management, ``*``)."""
    if key == MANAGEMENT:
        return notify.MANAGEMENT_FILTER
    if key == EVERY_ALERT:
        return {"event_type": list(notify.TEAM_EVENTS)}
    return notify.team_filter(key)


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_team_alert_emails(value: object) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """CDK context ``teamAlertEmails`` as ``((key, (address, ...)), ...)``, checked at synth.

    ``{"billing": ["billing-leads@example.com"], "management": ["cso@example.com"], "*": [...]}``, or a
    list (every alert), as JSON or, from ``-c``, as JSON text or comma-separated addresses. A key must be
    a department of the routing rules, ``management`` or ``*``: a typo fails the synth, not an alert.
    """
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith(("[", "{")) else [a for a in text.split(",") if a.strip()]
    if isinstance(value, list | tuple):
        value = {EVERY_ALERT: value} if value else {}
    if not isinstance(value, dict):
        raise ValueError(f"teamAlertEmails: expected a dict or a list, got {type(value).__name__}")
    from helpdesk.config import load_policy

    known = set(load_policy.__wrapped__().department_names) | {MANAGEMENT, EVERY_ALERT}
    out = []
    for key, addresses in sorted(value.items()):
        if key not in known:
            raise ValueError(f"teamAlertEmails: unknown key {key!r} (one of {', '.join(sorted(known))})")
        addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        bad = [a for a in addresses if not isinstance(a, str) or not _EMAIL.match(a.strip())]
        if bad:
            raise ValueError(f"teamAlertEmails.{key}: not an email address: {bad}")
        out.append((key, tuple(dict.fromkeys(a.strip() for a in addresses))))
    return tuple(out)


def parse_team_alert_webhook(value: object) -> str | None:
    """CDK context ``teamAlertWebhook``: an ``https://`` URL, or empty for none."""
    url = str(value or "").strip()
    if url and not url.startswith("https://"):
        raise ValueError(f"teamAlertWebhook must be an https:// URL, got {url!r}")
    return url or None


def sms_statement() -> iam.PolicyStatement:
    """SMS to a phone number: SNS has no resource for a phone number, so the resource is ``*``."""
    return iam.PolicyStatement(actions=["sns:Publish"], resources=["*"])


class Notifications(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: PythonFunctions,
        storage: Storage,
        support_address: str,
        public_base_url: str,
        team_alert_emails: Iterable[tuple[str, Sequence[str]]],
        team_alert_webhook: str | None,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)

        self.key = kms.Key(
            self,
            "Key",
            description="Helpdesk notifications: encrypts the customer-updates and team-alerts topics",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,  # what it encrypts (the topics) goes with the stack
            pending_window=cdk.Duration.days(7),
        )
        # SNS itself uses the key for what it delivers; only on behalf of this account.
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="SnsUsesTheKeyForThisAccount",
            principals=[iam.ServicePrincipal("sns.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy: this key
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ))

        self.customer_updates = sns.Topic(self, "CustomerUpdates", display_name="Helpdesk customer updates",
                                          master_key=self.key, enforce_ssl=True)
        self.team_alerts = sns.Topic(self, "TeamAlerts", display_name="Helpdesk team alerts",
                                     master_key=self.key, enforce_ssl=True)

        # -- the publisher: stream -> topics ---------------------------------------------------------
        self.publisher_failures = self._dead_letter_queue(
            "PublisherFailures",
            "the on-failure destination of the publisher's stream event source: where records that failed "
            "every retry, or grew too old, are in the stream (shard, sequence numbers), to replay them")
        self.publisher = functions.add(
            self,
            "Publisher",
            source="functions/publisher",
            description="Helpdesk publisher (ticket table stream -> customer-updates and team-alerts topics)",
            environment={
                **storage.environment(),
                Env.CUSTOMER_UPDATES_TOPIC_ARN: self.customer_updates.topic_arn,
                Env.TEAM_ALERTS_TOPIC_ARN: self.team_alerts.topic_arn,
                Env.PUBLIC_BASE_URL: public_base_url,
            },
            memory_size=256,
            timeout=cdk.Duration.seconds(30),
        )
        self.publisher.add_to_role_policy(iam.PolicyStatement(  # the ticket of each event (ledger.load), no index
            actions=["dynamodb:GetItem"], resources=[storage.tickets.table_arn]))
        storage.idempotency.grant_read_write_data(self.publisher)  # each (event, topic) published once
        storage.token_secret.grant_read(self.publisher)  # the customer's private link and reply token
        self.customer_updates.grant_publish(self.publisher)  # sns:Publish, and kms:Decrypt/GenerateDataKey* on the key
        self.team_alerts.grant_publish(self.publisher)
        acknowledge(
            self.publisher.role,
            {
                "AwsSolutions-IAM5[Resource::*]": "X-Ray (xray:PutTraceSegments, PutTelemetryRecords) and the "
                "stream event source's dynamodb:ListStreams (added by CDK: it lists a table's streams and "
                "supports no resource-level permission); the stream itself is read by its ARN only.",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "Publishing to an SSE-KMS topic needs "
                "kms:GenerateDataKey* and kms:Decrypt (the set AWS documents for SNS publishers, granted by "
                "Topic.grant_publish); the resource is the notification key alone.",
            },
        )
        self.publisher.add_event_source(sources.DynamoEventSource(
            storage.tickets,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,  # nothing the stream still holds is skipped
            batch_size=STREAM_BATCH_SIZE,
            bisect_batch_on_error=True,
            retry_attempts=STREAM_RETRY_ATTEMPTS,
            max_record_age=STREAM_MAX_RECORD_AGE,
            report_batch_item_failures=True,
            on_failure=sources.SqsDlq(self.publisher_failures),
            filters=[lambda_.FilterCriteria.filter(notify.stream_filter_pattern())],
        ))

        # -- the delivery: customer-updates -> the customer --------------------------------------------
        self.delivery_failures = self._dead_letter_queue(
            "DeliveryFailures",
            "the delivery function's on-failure destination: customer updates that could not be emailed or "
            "texted after every retry, kept to replay")
        self.delivery = functions.add(
            self,
            "Delivery",
            source="functions/delivery",
            description="Helpdesk delivery (customer updates -> SES email and SMS; @mentions -> the agent's email)",
            environment={
                Env.IDEMPOTENCY_TABLE: storage.idempotency.table_name,
                Env.SUPPORT_ADDRESS: support_address,
                Env.PUBLIC_BASE_URL: public_base_url,
            },
            memory_size=256,
            timeout=cdk.Duration.seconds(30),
        )
        storage.idempotency.grant_read_write_data(self.delivery)  # each (event, channel) sent once
        self.delivery.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.delivery_failures),
            retry_attempts=DELIVERY_RETRY_ATTEMPTS,
            max_event_age=DELIVERY_MAX_EVENT_AGE,
        )
        self._subscribe(self.customer_updates, subscriptions.LambdaSubscription(self.delivery),
                        notify.CUSTOMER_DELIVERY_FILTER)
        # @mentions on team-alerts: the delivery emails the agent a note names
        self._subscribe(self.team_alerts, subscriptions.LambdaSubscription(self.delivery),
                        notify.MENTION_DELIVERY_FILTER)
        domain = support_address.rpartition("@")[2]
        self.delivery.add_to_role_policy(iam.PolicyStatement(
            actions=["ses:SendEmail", "ses:SendRawEmail"],
            resources=[stack.format_arn(service="ses", resource="identity", resource_name=domain)],
        ))
        sms = iam.Policy(self, "DeliverySms", statements=[sms_statement()], roles=[self.delivery.role])
        acknowledge(
            sms,
            {
                "AwsSolutions-IAM5[Resource::*]": "SMS to the customer's phone number: sns:Publish with a "
                "PhoneNumber has no resource to name (a phone number is not an ARN), so Resource * is "
                "unavoidable. The function publishes to no topic; the customer-updates and team-alerts topics "
                "accept only the publisher (their KMS key is not granted to this role).",
            },
        )

        # -- team alerts -----------------------------------------------------------------------------
        for key, addresses in team_alert_emails:
            for address in addresses:
                digest = hashlib.sha256(f"{key}|{address}".encode()).hexdigest()[:10]  # stable, whatever the order
                email = sns.Subscription(self, f"TeamAlertEmail{digest}", topic=self.team_alerts,
                                         protocol=sns.SubscriptionProtocol.EMAIL, endpoint=address)
                _filter(email, team_alert_filter(key))
        if team_alert_webhook:
            self.team_alerts.add_subscription(
                subscriptions.UrlSubscription(team_alert_webhook, raw_message_delivery=True,
                                              protocol=sns.SubscriptionProtocol.HTTPS))

        for name, value, description in (
            ("CustomerUpdatesTopicArn", self.customer_updates.topic_arn, "Customer updates (the delivery function)"),
            ("TeamAlertsTopicArn", self.team_alerts.topic_arn, "Escalations, at-risk and breached tickets"),
            (Output.PUBLISHER_FAILURES, self.publisher_failures.queue_url, "Stream records never published"),
            (Output.DELIVERY_FAILURES, self.delivery_failures.queue_url, "Customer updates never delivered"),
            (Output.PUBLISHER_FUNCTION, self.publisher.function_name, "Replays the publisher's failures (helpdesk.replay)"),
            (Output.DELIVERY_FUNCTION, self.delivery.function_name, "Replays the delivery's failures (helpdesk.replay)"),
        ):
            output = cdk.CfnOutput(self, name, value=value, description=description)
            output.override_logical_id(name)

    def _dead_letter_queue(self, id: str, what: str) -> sqs.Queue:
        # SQS-managed encryption, like the email intake's: a KMS key here would give the senders (the two
        # functions) kms:ReEncrypt* and kms:GenerateDataKey* through CDK's grant for nothing more.
        queue = sqs.Queue(self, id, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                          retention_period=DLQ_RETENTION)
        acknowledge(queue, {"AwsSolutions-SQS3": f"This queue is itself a dead-letter destination ({what})."})
        return queue

    def _subscribe(self, topic: sns.Topic, subscription: sns.ITopicSubscription, policy: dict) -> sns.Subscription:
        added = topic.add_subscription(subscription)
        _filter(added, policy)
        return added


def _filter(subscription: sns.Subscription, policy: dict) -> None:
    """``policy`` as helpdesk.notify writes it, on the subscription (MessageAttributes scope)."""
    cfn: sns.CfnSubscription = subscription.node.default_child
    cfn.filter_policy = policy
    cfn.filter_policy_scope = "MessageAttributes"
