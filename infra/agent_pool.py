"""The agents' Cognito user pool as plain data: the one definition both CDK (infra/constructs/identity.py)
and the local stack (infra/local/resources.py) build from, spelled as the Cognito API and CloudFormation
spell it (the synth tests compare the template with these values). No aws_cdk here: the local stack
imports this module.

Agents sign in with their email or their username; the username is what timeline events, assignments
and @mentions name them by, so it is chosen by whoever invites them (``lena``), never a generated id.
Nobody signs up: an admin invites each agent (their email names the console), and their groups say
what they may do (:func:`helpdesk.agents.groups`, from the routing policy).
"""

from __future__ import annotations

from helpdesk import agents
from helpdesk.config import load_policy

AGENT_PATH = "agent"  # /agent/...: the agents' routes, behind the Cognito authorizer; /agent/ is the console

PASSWORD_POLICY = {
    "MinimumLength": 12,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": True,
    "TemporaryPasswordValidityDays": 7,  # an invitation's temporary password
}
ALIAS_ATTRIBUTES = ("email",)  # sign in with a verified email too; the username stays the agent's name
ENABLED_MFAS = ("SOFTWARE_TOKEN_MFA",)  # TOTP (an authenticator app); no SMS: no phone numbers, no SMS bill
MFA_SETTINGS = {"optional": "OPTIONAL", "required": "ON"}  # -c agentMfa=<key> -> MfaConfiguration
RECOVERY_MECHANISMS = ({"Name": "verified_email", "Priority": 1},)

CLIENT_NAME = "agent-console"
AUTH_FLOWS = ("ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
ID_TOKEN_MINUTES = 60  # what API Gateway's authorizer accepts; the console refreshes it
ACCESS_TOKEN_MINUTES = 60
REFRESH_TOKEN_HOURS = 12  # one sign-in per working day
READ_ATTRIBUTES = ("email", "email_verified", "name")  # what the ID token carries besides groups and username
WRITE_ATTRIBUTES = ("name",)  # an agent may fix their display name, never their email (the sign-in alias)
PREVENT_USER_EXISTENCE_ERRORS = True  # a wrong username answers like a wrong password


def console_url(base_url: str) -> str:
    """The agent console under a public base URL or the API's URL."""
    return base_url.rstrip("/") + f"/{AGENT_PATH}/"


def invitation(console: str) -> tuple[str, str]:
    """Subject and body of the invitation email (Cognito fills in ``{username}`` and ``{####}``)."""
    return ("Your helpdesk agent account", (
        "You have been invited to the helpdesk agent console.<br><br>"
        "Username: {username}<br>Temporary password: {####}<br><br>"
        f'Sign in at <a href="{console}">{console}</a> and choose your own password. '
        f"The temporary password expires in {PASSWORD_POLICY['TemporaryPasswordValidityDays']} days."))


def groups() -> list[agents.Group]:
    """The pool's groups: tiers, managers and one per department of the policy in force."""
    return agents.groups(load_policy())
