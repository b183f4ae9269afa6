"""Environment variable names, defined once: the functions read them, CDK and the local stack set them."""

import os
from enum import StrEnum


class Env(StrEnum):
    TICKETS_TABLE = "HELPDESK_TICKETS_TABLE"
    IDEMPOTENCY_TABLE = "HELPDESK_IDEMPOTENCY_TABLE"
    ESCALATION_STATE_MACHINE_ARN = "HELPDESK_ESCALATION_STATE_MACHINE_ARN"
    CUSTOMER_UPDATES_TOPIC_ARN = "HELPDESK_CUSTOMER_UPDATES_TOPIC_ARN"
    TEAM_ALERTS_TOPIC_ARN = "HELPDESK_TEAM_ALERTS_TOPIC_ARN"
    MAIL_BUCKET = "HELPDESK_MAIL_BUCKET"
    SUPPORT_ADDRESS = "HELPDESK_SUPPORT_ADDRESS"
    PUBLIC_BASE_URL = "HELPDESK_PUBLIC_BASE_URL"
    TIME_SCALE = "HELPDESK_TIME_SCALE"
    POLICY_FILE = "HELPDESK_POLICY_FILE"
    TOKEN_SECRET_ARN = "HELPDESK_TOKEN_SECRET_ARN"
    ALLOWED_ORIGINS = "HELPDESK_ALLOWED_ORIGINS"  # comma-separated; unset: same origin only
    # helpdesk.limits, per clock hour (0: no limit): tickets opened for one address (or phone number),
    # web and email alike (each sends an acknowledgement); messages one sender adds to tickets.
    NEW_TICKETS_PER_HOUR = "HELPDESK_NEW_TICKETS_PER_HOUR"
    MESSAGES_PER_HOUR = "HELPDESK_MESSAGES_PER_HOUR"
    MESSAGES_PER_TICKET = "HELPDESK_MESSAGES_PER_TICKET"  # customer messages one ticket takes, in all
    REPORT_BUCKET = "HELPDESK_REPORT_BUCKET"  # the daily SLA reports (JSON), written by the report function
    AT_RISK_SHARE = "HELPDESK_AT_RISK_SHARE"  # share of an SLA window after which the sweep warns (0.75)
    USER_POOL_ID = "HELPDESK_USER_POOL_ID"  # the agents' Cognito user pool (who may be assigned, @mentioned)
    USER_POOL_CLIENT_ID = "HELPDESK_USER_POOL_CLIENT_ID"  # the agent console's public app client
    # Where the console signs in (Cognito's user pools API); unset: https://cognito-idp.<region>.amazonaws.com/
    COGNITO_ENDPOINT = "HELPDESK_COGNITO_ENDPOINT"


DEFAULTS: dict[Env, str] = {
    Env.TICKETS_TABLE: "helpdesk-tickets",
    Env.IDEMPOTENCY_TABLE: "helpdesk-idempotency",
    Env.SUPPORT_ADDRESS: "support@helpdesk.local",
    Env.PUBLIC_BASE_URL: "",
    Env.TIME_SCALE: "1",
    Env.MAIL_BUCKET: "helpdesk-mail",
    Env.NEW_TICKETS_PER_HOUR: "10",
    Env.MESSAGES_PER_HOUR: "30",
    Env.MESSAGES_PER_TICKET: "200",
    Env.AT_RISK_SHARE: "0.75",
}


def get(name: Env) -> str:
    """The variable's value, else its default, else an empty string."""
    return os.environ.get(name.value) or DEFAULTS.get(name, "")
