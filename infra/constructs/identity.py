"""Who the agents are: a Cognito user pool (L2) and the agent console's public app client, both from the
plain definition in ``infra/agent_pool.py`` (the local stack builds its moto pool from the same one), and
one group per tier, for managers and per department of the routing policy (``helpdesk.agents.groups``).

Nobody signs up: admins invite agents (``admin-create-user``), and the invitation email names the
console. MFA is TOTP, optional unless ``-c agentMfa=required``. ``cdk destroy`` keeps the pool (RETAIN
plus deletion protection) like the ticket table, unless deployed with ``-c retainData=false``: the
usernames are what the tickets' timelines name. ``-c agentThreatProtection=true`` moves the pool to
Cognito's Plus feature plan with threat protection enforced (billed per monthly active user).

The API function reads the directory (who may be assigned or @mentioned): :meth:`grant_directory`.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from constructs import Construct

from helpdesk.settings import Env
from infra import agent_pool
from infra.nag import acknowledge

# What the API function may ask the pool: an agent, their groups, the agents (of a group).
DIRECTORY_ACTIONS = (
    "cognito-idp:AdminGetUser",
    "cognito-idp:AdminListGroupsForUser",
    "cognito-idp:ListUsers",
    "cognito-idp:ListUsersInGroup",
)
# infra/agent_pool.py's attribute names (as Cognito spells them) -> CDK's StandardAttributesMask keywords.
_ATTRIBUTE_MASK = {"email": "email", "email_verified": "email_verified", "name": "fullname"}


def _attributes(names) -> cognito.ClientAttributes:
    return cognito.ClientAttributes().with_standard_attributes(**{_ATTRIBUTE_MASK[n]: True for n in names})


class Identity(Construct):
    def __init__(self, scope: Construct, id: str, *, console_url: str, mfa: str, retain_data: bool,
                 threat_protection: bool = False) -> None:
        super().__init__(scope, id)
        mfa_configuration = agent_pool.MFA_SETTINGS[mfa]
        password = agent_pool.PASSWORD_POLICY
        subject, body = agent_pool.invitation(console_url)
        self.console_url = console_url
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            user_invitation=cognito.UserInvitationConfig(email_subject=subject, email_body=body),
            sign_in_aliases=cognito.SignInAliases(username=True, email="email" in agent_pool.ALIAS_ATTRIBUTES),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=password["MinimumLength"],
                require_uppercase=password["RequireUppercase"],
                require_lowercase=password["RequireLowercase"],
                require_digits=password["RequireNumbers"],
                require_symbols=password["RequireSymbols"],
                temp_password_validity=cdk.Duration.days(password["TemporaryPasswordValidityDays"]),
            ),
            mfa=cognito.Mfa.REQUIRED if mfa_configuration == "ON" else cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp="SOFTWARE_TOKEN_MFA" in agent_pool.ENABLED_MFAS,
                                                      sms="SMS_MFA" in agent_pool.ENABLED_MFAS),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS if threat_protection else cognito.FeaturePlan.ESSENTIALS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION
            if threat_protection else None,
            deletion_protection=retain_data,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain_data else cdk.RemovalPolicy.DESTROY,
        )
        self.client = self.user_pool.add_client(
            "ConsoleClient",
            user_pool_client_name=agent_pool.CLIENT_NAME,
            generate_secret=False,  # a browser holds it: a public client
            auth_flows=cognito.AuthFlow(user_srp="ALLOW_USER_SRP_AUTH" in agent_pool.AUTH_FLOWS,
                                        user_password="ALLOW_USER_PASSWORD_AUTH" in agent_pool.AUTH_FLOWS),
            disable_o_auth=True,  # no hosted UI: the console signs in through the Cognito API
            prevent_user_existence_errors=agent_pool.PREVENT_USER_EXISTENCE_ERRORS,
            id_token_validity=cdk.Duration.minutes(agent_pool.ID_TOKEN_MINUTES),
            access_token_validity=cdk.Duration.minutes(agent_pool.ACCESS_TOKEN_MINUTES),
            refresh_token_validity=cdk.Duration.hours(agent_pool.REFRESH_TOKEN_HOURS),
            enable_token_revocation=True,
            read_attributes=_attributes(agent_pool.READ_ATTRIBUTES),
            write_attributes=_attributes(agent_pool.WRITE_ATTRIBUTES),
        )
        self.groups = {
            group.name: self.user_pool.add_group(f"Group-{group.name}", group_name=group.name,
                                                 description=group.description)
            for group in agent_pool.groups()
        }

        reasons = {}
        if mfa_configuration != "ON":
            reasons["AwsSolutions-COG2"] = (
                "MFA is optional by default so a desk can start without authenticator apps: each agent can "
                "enrol TOTP from the console, and -c agentMfa=required makes it required for everyone.")
        if not threat_protection:
            reasons["AwsSolutions-COG8"] = (
                "The Plus feature plan (threat protection: compromised-credential and risky sign-in "
                "detection) is billed per monthly active user with no free tier, so it is opt-in: "
                "-c agentThreatProtection=true. Without it the pool has a strong password policy, optional "
                "TOTP, no self sign-up and no user existence errors.")
        if reasons:
            acknowledge(self.user_pool, reasons)

        for name, value, description in (
            ("UserPoolId", self.user_pool.user_pool_id, "The agents' Cognito user pool (invite agents here)"),
            ("UserPoolClientId", self.client.user_pool_client_id, "The agent console's app client (sign in with it)"),
            ("AgentConsoleUrl", console_url, "The agent console"),
        ):
            cdk.CfnOutput(self, name, value=value, description=description).override_logical_id(name)

    def environment(self) -> dict[Env, str]:
        """What the API function needs to know the pool and the console's client."""
        return {Env.USER_POOL_ID: self.user_pool.user_pool_id,
                Env.USER_POOL_CLIENT_ID: self.client.user_pool_client_id}

    def grant_directory(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read the agents and their groups (:data:`DIRECTORY_ACTIONS`), on this pool only."""
        return self.user_pool.grant(grantee, *DIRECTORY_ACTIONS)
