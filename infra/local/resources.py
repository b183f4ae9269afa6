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
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parseaddr

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
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        **models.table_schema(),
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": models.TTL_ATTRIBUTE})
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


def mail_bucket() -> dict[Env, str]:
    """The mail bucket: raw inbound messages under ``intake.RAW_PREFIX`` (expiring as in the cloud),
    attachments under ``intake.ATTACHMENT_PREFIX``. The local SMTP intake writes here as SES does."""
    from helpdesk import intake

    name = settings.get(Env.MAIL_BUCKET)
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [{
        "ID": "expire-raw-mail", "Status": "Enabled", "Filter": {"Prefix": intake.RAW_PREFIX},
        "Expiration": {"Days": intake.RAW_MAIL_DAYS}}]})
    return {Env.MAIL_BUCKET: name}


# -- escalation and notifications (infra/constructs/escalation.py, notifications.py) -----------------

STATE_MACHINE_NAME = "helpdesk-escalation-chains"  # CloudFormation names it in the cloud; only the ARN travels
STATE_MACHINE_ROLE = "arn:aws:iam::123456789012:role/helpdesk-escalation"  # moto checks nothing about it
DELIVERY_QUEUE = "helpdesk-delivery"  # stands in for the delivery function's subscription
TEAM_QUEUE_PREFIX = "helpdesk-team-alerts-"  # + a department or "management": stand-ins for team mailboxes


def escalation_state_machine() -> dict[Env, str]:
    """The escalation state machine from the one ASL file, rendered as CDK's substitutions render it.

    moto executes it for real: ``helpdesk.chains.start`` starts chains here.
    """
    from helpdesk import statemachine

    definition = statemachine.render_definition(statemachine.substitutions(settings.get(Env.TICKETS_TABLE)))
    arn = boto3.client("stepfunctions").create_state_machine(
        name=STATE_MACHINE_NAME, definition=definition, roleArn=STATE_MACHINE_ROLE, type="STANDARD",
        tracingConfiguration={"enabled": True},
    )["stateMachineArn"]
    return {Env.ESCALATION_STATE_MACHINE_ARN: arn}


def notification_topics() -> dict[Env, str]:
    """``customer-updates`` and ``team-alerts`` (``helpdesk.notify.CUSTOMER`` / ``TEAM``)."""
    from helpdesk import notify

    client = boto3.client("sns")
    return {
        Env.CUSTOMER_UPDATES_TOPIC_ARN: client.create_topic(Name=notify.CUSTOMER)["TopicArn"],
        Env.TEAM_ALERTS_TOPIC_ARN: client.create_topic(Name=notify.TEAM)["TopicArn"],
    }


def team_alert_subscribers() -> dict[str, dict]:
    """Who gets team alerts locally: every department of the routing rules with ``notify.team_filter``,
    and management with ``notify.MANAGEMENT_FILTER`` (what ``-c teamAlertEmails`` configures in the cloud)."""
    from helpdesk import notify
    from helpdesk.config import load_policy
    from helpdesk.escalation import MANAGEMENT

    policy = load_policy.__wrapped__()  # uncached: no policy is remembered before the process settles its own
    departments = sorted(policy.department_names)
    return {**{d: notify.team_filter(d) for d in departments}, MANAGEMENT: notify.MANAGEMENT_FILTER}


def team_queue_name(subscriber: str) -> str:
    return TEAM_QUEUE_PREFIX + "".join(c if c.isalnum() or c in "-_" else "-" for c in subscriber)


def subscribe_queue(topic_arn: str, queue_name: str, filter_policy: dict | None = None, *, sqs=None, sns=None) -> str:
    """An SQS queue subscribed to the topic with ``filter_policy`` (message attributes); its URL.

    Not raw delivery: the queue gets SNS's JSON envelope (subject, attributes, message id), from which
    the local pumps rebuild the event SNS gives a Lambda function or the email a subscriber receives.
    """
    sqs, sns = sqs or boto3.client("sqs"), sns or boto3.client("sns")
    url = sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    arn = _queue_arn(sqs, queue_name, url)
    attributes = {"FilterPolicy": json.dumps(filter_policy), "FilterPolicyScope": "MessageAttributes"} \
        if filter_policy else {}
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


def _queue_arn(sqs, queue_name: str, url: str | None = None) -> str:
    url = url or sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    account = url.rstrip("/").split("/")[-2]  # https://sqs.<region>.amazonaws.com/<account>/<name>
    return f"arn:aws:sqs:{sqs.meta.region_name}:{account}:{queue_name}"


def notification_subscriptions() -> dict[Env, str]:
    """The topics' subscribers, with the very filter policies of ``helpdesk.notify`` CDK subscribes with:
    the delivery's queue on ``customer-updates``, one queue per team-alert subscriber on ``team-alerts``."""
    from helpdesk import notify

    clients = {"sqs": boto3.client("sqs"), "sns": boto3.client("sns")}
    subscribe_queue(settings.get(Env.CUSTOMER_UPDATES_TOPIC_ARN), DELIVERY_QUEUE, notify.CUSTOMER_DELIVERY_FILTER,
                    **clients)
    # The same function takes the @mentions on team-alerts (infra/constructs/notifications.py): one queue.
    clients["sns"].subscribe(TopicArn=settings.get(Env.TEAM_ALERTS_TOPIC_ARN), Protocol="sqs",
                             Endpoint=_queue_arn(clients["sqs"], DELIVERY_QUEUE),
                             Attributes={"FilterPolicy": json.dumps(notify.MENTION_DELIVERY_FILTER),
                                         "FilterPolicyScope": "MessageAttributes"})
    for subscriber, policy in team_alert_subscribers().items():
        subscribe_queue(settings.get(Env.TEAM_ALERTS_TOPIC_ARN), team_queue_name(subscriber), policy, **clients)
    return {}


# The dead-letter queues (CloudFormation names them in the cloud: stack outputs), by helpdesk.replay's names.
DEAD_LETTER_QUEUES = {
    "publisher": "helpdesk-publisher-failures",
    "delivery": "helpdesk-delivery-failures",
    "email": "helpdesk-email-intake-failures",
}


def dead_letter_queues() -> dict[Env, str]:
    """Where the pumps and the SMTP intake leave what they gave up on (``infra.local.dead_letters``), kept
    as long as in the cloud. No function reads them: ``helpdesk.replay`` does, through the console."""
    from helpdesk import replay

    client = boto3.client("sqs")
    for name in DEAD_LETTER_QUEUES.values():
        client.create_queue(QueueName=name, Attributes={
            "MessageRetentionPeriod": str(int(replay.RETENTION.total_seconds()))})
    return {}


def support_identity() -> dict[Env, str]:
    """The SES identity the delivery function sends from: the support address's domain."""
    address = settings.get(Env.SUPPORT_ADDRESS)
    domain = parseaddr(address)[1].rpartition("@")[2].lower()
    client = boto3.client("sesv2")
    if domain not in {i["IdentityName"] for i in client.list_email_identities()["EmailIdentities"]}:
        client.create_email_identity(EmailIdentity=domain)
    return {Env.SUPPORT_ADDRESS: address}


# -- the agents' user pool (infra/constructs/identity.py) --------------------------------------------

USER_POOL_NAME = "helpdesk-agents"  # CloudFormation names it in the cloud; only the ids travel
AGENT_EMAIL_DOMAIN = "agents.helpdesk.example"


def agent_user_pool() -> dict[Env, str]:
    """The agents' user pool, its groups and the console's client, from ``infra/agent_pool.py`` as CDK
    builds them (MFA optional, as ``cdk.json`` deploys it). Tokens are RS256 JWTs signed with moto's key."""
    from infra import agent_pool
    from infra.local import config

    client = boto3.client("cognito-idp")
    mfa = agent_pool.MFA_SETTINGS["optional"]
    subject, body = agent_pool.invitation(agent_pool.console_url(
        settings.get(Env.PUBLIC_BASE_URL) or f"http://{config.HOST}:{config.port(config.LocalEnv.PORT)}/"))
    pool_id = client.create_user_pool(
        PoolName=USER_POOL_NAME,
        Policies={"PasswordPolicy": dict(agent_pool.PASSWORD_POLICY)},
        AliasAttributes=list(agent_pool.ALIAS_ATTRIBUTES),
        AutoVerifiedAttributes=["email"],
        UsernameConfiguration={"CaseSensitive": False},
        MfaConfiguration=mfa,
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True,
                               "InviteMessageTemplate": {"EmailSubject": subject, "EmailMessage": body}},
        AccountRecoverySetting={"RecoveryMechanisms": list(agent_pool.RECOVERY_MECHANISMS)},
    )["UserPool"]["Id"]
    client.set_user_pool_mfa_config(
        UserPoolId=pool_id, MfaConfiguration=mfa,
        SoftwareTokenMfaConfiguration={"Enabled": "SOFTWARE_TOKEN_MFA" in agent_pool.ENABLED_MFAS})
    for group in agent_pool.groups():
        client.create_group(UserPoolId=pool_id, GroupName=group.name, Description=group.description)
    client_id = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=agent_pool.CLIENT_NAME,
        GenerateSecret=False,
        ExplicitAuthFlows=list(agent_pool.AUTH_FLOWS),
        PreventUserExistenceErrors="ENABLED" if agent_pool.PREVENT_USER_EXISTENCE_ERRORS else "LEGACY",
        IdTokenValidity=agent_pool.ID_TOKEN_MINUTES,
        AccessTokenValidity=agent_pool.ACCESS_TOKEN_MINUTES,
        RefreshTokenValidity=agent_pool.REFRESH_TOKEN_HOURS,
        TokenValidityUnits={"IdToken": "minutes", "AccessToken": "minutes", "RefreshToken": "hours"},
        ReadAttributes=list(agent_pool.READ_ATTRIBUTES),
        WriteAttributes=list(agent_pool.WRITE_ATTRIBUTES),
        EnableTokenRevocation=True,
    )["UserPoolClient"]["ClientId"]
    return {Env.USER_POOL_ID: pool_id, Env.USER_POOL_CLIENT_ID: client_id}


@dataclass(frozen=True)
class SeedAgent:
    """An agent of the local pool (README: "The support team's side")."""

    username: str
    name: str
    groups: tuple[str, ...]
    password: str
    invited: bool = False  # the password is temporary: the first sign-in asks for a new one

    @property
    def email(self) -> str:
        return f"{self.username}@{AGENT_EMAIL_DOMAIN}"


SEED_AGENTS: tuple[SeedAgent, ...] = (
    SeedAgent("lena", "Lena Fischer", ("L1", "billing"), "Lena-Agent-2026!"),
    SeedAgent("omar", "Omar Haddad", ("L1", "technical"), "Omar-Agent-2026!"),
    SeedAgent("bea", "Bea Santos", ("L2", "billing"), "Bea-Agent-2026!"),
    SeedAgent("tomas", "Tomas Novak", ("L2", "technical"), "Tomas-Agent-2026!"),
    SeedAgent("priya", "Priya Raman", ("L3", "billing", "technical", "accounts", "support", "customer-success"),
              "Priya-Agent-2026!"),
    SeedAgent("maria", "Maria Rossi", ("managers",), "Maria-Agent-2026!"),
    SeedAgent("sam", "Sam Okafor", ("L2", "trust-and-safety"), "Sam-Agent-2026!"),
    SeedAgent("nina", "Nina Berg", ("L1", "billing"), "Nina-Invite-2026!", invited=True),
)


def seed_agents(agents: Iterable[SeedAgent] = SEED_AGENTS) -> dict[Env, str]:
    """The local agents, as an admin invites them (verified email, groups); all but the invited ones
    have set their permanent password already."""
    client = boto3.client("cognito-idp")
    pool_id = settings.get(Env.USER_POOL_ID)
    for agent in agents:
        client.admin_create_user(
            UserPoolId=pool_id, Username=agent.username, TemporaryPassword=agent.password, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": agent.email}, {"Name": "email_verified", "Value": "true"},
                            {"Name": "name", "Value": agent.name}])
        if not agent.invited:
            client.admin_set_user_password(UserPoolId=pool_id, Username=agent.username, Password=agent.password,
                                           Permanent=True)
        for group in agent.groups:
            client.admin_add_user_to_group(UserPoolId=pool_id, Username=agent.username, GroupName=group)
    return {}


# The agents' side: the user pool and the seeded agents.
IDENTITY: tuple[Builder, ...] = (agent_user_pool, seed_agents)

# The notification path: topics, their stand-in subscribers, the SES identity the delivery sends from.
NOTIFICATIONS: tuple[Builder, ...] = (notification_topics, notification_subscriptions, support_identity)

# In creation order. Later capabilities append theirs (state machine, topics + queues, bucket...).
BUILDERS: tuple[Builder, ...] = (
    ticket_table,
    idempotency_table,
    token_secret,
    mail_bucket,
    escalation_state_machine,
    *NOTIFICATIONS,
    dead_letter_queues,
    *IDENTITY,
)


# Everything but the escalation state machine: opening a ticket starts no chain. Chains run on the wall
# clock while tests freeze theirs; tests that run chains on purpose add their own machine (tests/statemachine).
WITHOUT_CHAINS: tuple[Builder, ...] = tuple(b for b in BUILDERS if b is not escalation_state_machine)

# What the tests' moto accounts hold by default (``infra.local.aws.local_aws``): no chains, no
# notification path or dead-letter queues (0.3 s per account, which only the notification and replay
# tests need: they add ``NOTIFICATIONS`` and ``dead_letter_queues``, see tests/integration/conftest.py)
# and no user pool (0.2 s: the ``agent_pool`` fixture of infra/local/testing.py adds ``IDENTITY``).
TEST_BUILDERS: tuple[Builder, ...] = tuple(b for b in WITHOUT_CHAINS if b not in NOTIFICATIONS + IDENTITY
                                            and b is not dead_letter_queues)


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
