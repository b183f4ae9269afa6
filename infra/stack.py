"""The helpdesk stack: a thin composition of one construct per capability."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_route53 as route53
from constructs import Construct

from infra import agent_pool
from infra.constructs import PythonFunctions
from infra.constructs.api import Api
from infra.constructs.email import Email
from infra.constructs.escalation import Escalation
from infra.constructs.identity import Identity
from infra.constructs.notifications import Notifications, parse_team_alert_emails, parse_team_alert_webhook
from infra.constructs.storage import Storage
from infra.constructs.sweep import compose as compose_sweep


@dataclass(frozen=True)
class Config:
    """The deployment's settings, from CDK context (defaults in cdk.json; override with ``-c key=value``)."""

    support_domain: str  # supportDomain: the domain customers write to (support@<domain>)
    allowed_origins: tuple[str, ...]  # allowedOrigins: other sites that may call the API from a browser
    public_base_url: str | None  # publicBaseUrl: where customers open their tickets; unset: the API's own URL
    retain_data: bool  # retainData: keep tickets, their token key and the logs when the stack is deleted
    # teamAlertEmails: {department | "management" | "*": [address, ...]} (or a list: every alert)
    team_alert_emails: tuple[tuple[str, tuple[str, ...]], ...] = ()
    team_alert_webhook: str | None = None  # teamAlertWebhook: an https:// endpoint for every team alert
    # hostedZoneId and hostedZoneName: the Route 53 public zone that holds supportDomain; CDK then adds
    # the SES identity (DKIM) and the MX record. Unset: publish them by hand (README).
    hosted_zone: tuple[str, str] | None = None
    waf_rate_limit: int | None = None  # wafRateLimit: requests per client IP per 5 minutes (WAF, opt-in)
    snap_start: bool = False  # snapStart: Lambda SnapStart for the API function (opt-in: it has a price)
    agent_mfa: str = "optional"  # agentMfa: "optional" (agents may enrol TOTP) or "required"
    agent_threat_protection: bool = False  # agentThreatProtection: Cognito's Plus plan (billed per active user)

    @classmethod
    def from_context(cls, scope: Construct) -> Config:
        def get(key: str):
            value = scope.node.try_get_context(key)
            if value is None:
                raise ValueError(f"CDK context {key!r} is missing (cdk.json sets every key)")
            return value

        origins = get("allowedOrigins")
        if isinstance(origins, str):  # -c allowedOrigins=https://a.example,https://b.example
            origins = [o for o in origins.split(",") if o]
        return cls(
            support_domain=get("supportDomain"),
            allowed_origins=tuple(origins),
            public_base_url=get("publicBaseUrl") or None,
            retain_data=str(get("retainData")).lower() != "false",  # -c passes strings
            team_alert_emails=parse_team_alert_emails(get("teamAlertEmails")),
            team_alert_webhook=parse_team_alert_webhook(get("teamAlertWebhook")),
            hosted_zone=_hosted_zone(get("hostedZoneId"), get("hostedZoneName"), get("supportDomain")),
            waf_rate_limit=int(get("wafRateLimit") or 0) or None,
            snap_start=str(get("snapStart")).lower() == "true",  # -c passes strings
            agent_mfa=_choice("agentMfa", get("agentMfa"), agent_pool.MFA_SETTINGS),
            agent_threat_protection=_choice("agentThreatProtection", get("agentThreatProtection"),
                                            ("true", "false")) == "true",
        )


def _choice(key: str, value: object, choices) -> str:
    """A context value that must be one of ``choices`` (``-c`` passes strings, cdk.json may hold booleans)."""
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return text


def _hosted_zone(zone_id: str, zone_name: str, domain: str) -> tuple[str, str] | None:
    """Both or neither; and the zone must hold the support domain (its apex or a parent)."""
    if not zone_id and not zone_name:
        return None
    if not (zone_id and zone_name):
        raise ValueError("set both hostedZoneId and hostedZoneName (the zone that holds supportDomain), or neither")
    name = zone_name.rstrip(".").lower()
    if domain.lower() != name and not domain.lower().endswith("." + name):
        raise ValueError(f"hostedZoneName {zone_name!r} does not hold supportDomain {domain!r}")
    return zone_id, name


class HelpdeskStack(cdk.Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs) -> None:
        super().__init__(scope, id, description="Helpdesk: serverless customer support and escalation", **kwargs)
        self.config = config
        logs = cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
        self.functions = PythonFunctions(self, "Functions", log_removal_policy=logs)
        self.storage = Storage(self, "Storage", retain_data=config.retain_data)
        self.api = Api(
            self,
            "Api",
            functions=self.functions,
            storage=self.storage,
            allowed_origins=config.allowed_origins,
            public_base_url=config.public_base_url,
            log_removal_policy=logs,
            waf_rate_limit=config.waf_rate_limit,
            snap_start=config.snap_start,
        )
        self.identity = Identity(
            self,
            "Identity",
            console_url=agent_pool.console_url(config.public_base_url) if config.public_base_url
            else self.api.stage_url(f"{agent_pool.AGENT_PATH}/"),
            mfa=config.agent_mfa,
            retain_data=config.retain_data,
            threat_protection=config.agent_threat_protection,
        )
        self.api.protect_agent_routes(self.identity.user_pool)
        for name, value in self.identity.environment().items():
            self.api.function.add_environment(name, value)
        self.identity.grant_directory(self.api.function)  # the agent directory: who may be assigned, @mentioned
        zone = None
        if config.hosted_zone:
            zone_id, zone_name = config.hosted_zone
            zone = route53.PublicHostedZone.from_hosted_zone_attributes(
                self, "SupportZone", hosted_zone_id=zone_id, zone_name=zone_name)
        self.email = Email(self, "Email", functions=self.functions, storage=self.storage,
                           support_domain=config.support_domain, retain_data=config.retain_data, hosted_zone=zone)
        self.escalation = Escalation(self, "Escalation", storage=self.storage, log_removal_policy=logs)
        for function in (self.api.function, self.email.function):  # they open, resume and resolve tickets
            self.escalation.drive(function)
        self.notifications = Notifications(
            self,
            "Notifications",
            functions=self.functions,
            storage=self.storage,
            support_address=self.email.address,
            public_base_url=config.public_base_url or self.api.rest_api.url,
            team_alert_emails=config.team_alert_emails,
            team_alert_webhook=config.team_alert_webhook,
        )
        self.sweep = compose_sweep(self, retain_data=config.retain_data)  # SLA sweep, report, dashboard, alarms
