"""Email receiving: customers write to ``support@<supportDomain>``; SES stores each message in the
mail bucket and hands it to the intake function, which makes it a ticket (``helpdesk.intake``).

- The mail bucket: encrypted (SSE-S3), no public access, TLS only. Raw messages land under
  ``intake.RAW_PREFIX`` and expire after ``intake.RAW_MAIL_DAYS``; attachments (``intake.ATTACHMENT_PREFIX``)
  stay with their tickets. Only SES, for this account's receipt rule, may put raw mail there
  (``aws:SourceAccount`` and ``aws:SourceArn``).
- A receipt rule set with one rule for the support address (it also matches the reply addresses
  ``support+<token>@``): spam and virus scanning on, then two actions in order: S3 (the raw message),
  Lambda (the intake function, ``Event`` invocation, with the receipt's verdicts).
- The intake function reads raw mail and writes attachments (those two prefixes only), the ticket and
  idempotency tables, and reads the token key (reply tokens). Asynchronous invocations are retried
  twice over up to six hours, then go to a queue (kept 14 days): no message is lost to an outage.

- With the domain's Route 53 hosted zone (``hostedZoneId``): the SES identity for the support domain
  (easy DKIM, so our mail is signed), its three DKIM ``CNAME`` records and the ``MX`` record that
  sends the domain's mail to SES in this region. Without it, the README gives the records to publish.

CloudFormation cannot make a rule set the account's *active* one (one per account and region, shared
by every stack), and doing so would replace another stack's: the README gives the one command.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from helpdesk import intake, replay
from helpdesk.deployment import Output
from helpdesk.settings import Env
from infra.constructs import PythonFunctions
from infra.constructs.storage import Storage
from infra.nag import acknowledge

RULE_NAME = "intake"
MEMORY_MB, TIMEOUT_S = 1024, 60  # MIME parsing of messages up to SES's 40 MB; infra/local/smtp.py runs it alike
RETRY_ATTEMPTS = 2  # Lambda's asynchronous retries (the maximum), before the on-failure queue
MAX_EVENT_AGE = cdk.Duration.hours(6)
FAILURE_RETENTION = cdk.Duration.days(replay.RETENTION.days)  # SQS's maximum: time to fix and replay


def support_address(domain: str) -> str:
    return f"support@{domain.strip().lower()}"


class Email(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: PythonFunctions,
        storage: Storage,
        support_domain: str,
        retain_data: bool,
        hosted_zone: route53.IHostedZone | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)
        self.address = support_address(support_domain)
        # Named here, once: the bucket policy and the function's permission must name the rule before
        # it exists (SES checks both when the rule is created).
        self.rule_set_name = f"{stack.stack_name}-email"
        rule_arn = (f"arn:{cdk.Aws.PARTITION}:ses:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
                    f"receipt-rule-set/{self.rule_set_name}:receipt-rule/{RULE_NAME}")

        self.bucket = s3.Bucket(
            self,
            "MailBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-raw-mail", prefix=intake.RAW_PREFIX,
                                 expiration=cdk.Duration.days(intake.RAW_MAIL_DAYS)),
                s3.LifecycleRule(id="abort-incomplete-uploads",
                                 abort_incomplete_multipart_upload_after=cdk.Duration.days(1)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=not retain_data,
        )
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="SesStoresInboundMail",
            principals=[iam.ServicePrincipal("ses.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[self.bucket.arn_for_objects(f"{intake.RAW_PREFIX}*")],
            conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID, "aws:SourceArn": rule_arn}},
        ))
        acknowledge(
            self.bucket,
            {
                "AwsSolutions-S1": "No server access logs: only SES (for this account's receipt rule) writes "
                "here and only the intake function reads; enable CloudTrail S3 data events for an audit "
                "trail of object access instead of a second bucket of logs.",
            },
        )

        self.failures = sqs.Queue(
            self,
            "IntakeFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=FAILURE_RETENTION,
        )
        acknowledge(
            self.failures,
            {
                "AwsSolutions-SQS3": "This queue is the dead-letter destination itself: the intake function's "
                "on-failure destination for SES events that failed every retry (an infrastructure outage).",
            },
        )

        self.function = functions.add(
            self,
            "IntakeFunction",
            source="functions/email_intake",
            description="Helpdesk email intake (SES receipt rule -> ticket, message or rejected mail)",
            environment={
                **storage.environment(),
                Env.MAIL_BUCKET: self.bucket.bucket_name,
                Env.SUPPORT_ADDRESS: self.address,
            },
            memory_size=MEMORY_MB,
            timeout=cdk.Duration.seconds(TIMEOUT_S),
        )
        storage.tickets.grant_read_write_data(self.function)
        storage.idempotency.grant_read_write_data(self.function)
        storage.token_secret.grant_read(self.function)
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{intake.RAW_PREFIX}*")]))
        self.function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{intake.ATTACHMENT_PREFIX}*")]))
        bucket_id = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))
        acknowledge(
            self.function.role,
            {
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{intake.RAW_PREFIX}*]": "The intake function reads "
                "raw messages, named by SES message ids nobody knows in advance, under this one prefix of the mail "
                "bucket.",
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{intake.ATTACHMENT_PREFIX}*]": "The intake function "
                "stores attachments under per-message names below this one prefix of the mail bucket.",
            },
        )
        self.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failures),
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
        )
        permission = lambda_.CfnPermission(
            self,
            "SesInvokesIntake",
            action="lambda:InvokeFunction",
            function_name=self.function.function_arn,
            principal="ses.amazonaws.com",
            source_account=cdk.Aws.ACCOUNT_ID,
            source_arn=rule_arn,
        )

        self.rule_set = ses.CfnReceiptRuleSet(self, "RuleSet", rule_set_name=self.rule_set_name)
        self.rule = ses.CfnReceiptRule(
            self,
            "Rule",
            rule_set_name=self.rule_set.ref,
            rule=ses.CfnReceiptRule.RuleProperty(
                name=RULE_NAME,
                enabled=True,
                recipients=[self.address],  # matches support+<token>@ too (SES ignores the +label)
                scan_enabled=True,  # spamVerdict / virusVerdict: FAIL is recorded, never a ticket
                tls_policy="Optional",  # Require would bounce customers whose servers cannot do TLS
                actions=[
                    ses.CfnReceiptRule.ActionProperty(s3_action=ses.CfnReceiptRule.S3ActionProperty(
                        bucket_name=self.bucket.bucket_name, object_key_prefix=intake.RAW_PREFIX)),
                    ses.CfnReceiptRule.ActionProperty(lambda_action=ses.CfnReceiptRule.LambdaActionProperty(
                        function_arn=self.function.function_arn, invocation_type="Event")),
                ],
            ),
        )
        self.rule.node.add_dependency(permission)
        self.rule.node.add_dependency(self.bucket.policy)  # SES writes a test object when the rule is created
        self.identity = self._domain_records(support_domain.strip().lower(), hosted_zone) if hosted_zone else None

        for name, value, description in (
            ("ReceiptRuleSetName", self.rule_set.ref,
             "Activate once per account and region: aws ses set-active-receipt-rule-set --rule-set-name <this>"),
            ("SupportAddress", self.address, "Where customers write"),
            ("MailBucketName", self.bucket.bucket_name, "Raw inbound mail and attachments"),
            (Output.EMAIL_FAILURES, self.failures.queue_url, "SES events the intake function gave up on"),
            (Output.EMAIL_FUNCTION, self.function.function_name, "Replays the intake's failures (helpdesk.replay)"),
        ):
            output = cdk.CfnOutput(self, name, value=value, description=description)
            output.override_logical_id(name)  # stable output names for scripts and the README

    def _domain_records(self, domain: str, zone: route53.IHostedZone) -> ses.EmailIdentity:
        """The support domain's SES identity, DKIM records and MX record, in the zone that holds it."""
        identity = ses.EmailIdentity(self, "Identity", identity=ses.Identity.domain(domain))
        for n, record in enumerate(identity.dkim_records):
            # The token is the full host name: the trailing dot keeps CDK from appending the zone's name.
            route53.CnameRecord(self, f"Dkim{n}", zone=zone, record_name=f"{record.name}.", domain_name=record.value)
        route53.MxRecord(self, "Mx", zone=zone, record_name=f"{domain}.", values=[route53.MxRecordValue(
            host_name=f"inbound-smtp.{cdk.Aws.REGION}.amazonaws.com", priority=10)])
        return identity
