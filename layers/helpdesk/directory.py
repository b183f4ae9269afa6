"""The agents' directory: who else works at the desk, read from the Cognito user pool.

Assigning a ticket to a colleague and @mentioning one need to know that colleague's groups (may they
see this ticket?) and address (the mention's alert). The signed-in agent comes from the authorizer's
claims (helpdesk.agents); everyone else comes from here. Only reads: the API function may
AdminGetUser, AdminListGroupsForUser and ListUsersInGroup on the agents' pool, nothing more.
"""

from __future__ import annotations

import functools

from helpdesk import agents, settings
from helpdesk.agents import Agent
from helpdesk.config import Policy


@functools.cache
def _cognito():
    import boto3

    return boto3.client("cognito-idp")


def _pool() -> str | None:
    return settings.get(settings.Env.USER_POOL_ID) or None


def agent(username: str, policy: Policy) -> Agent | None:
    """The enabled agent called ``username`` (their groups and address), or None."""
    pool = _pool()
    if not pool or not username:
        return None
    client = _cognito()
    try:
        user = client.admin_get_user(UserPoolId=pool, Username=username)
    except (client.exceptions.UserNotFoundException, client.exceptions.InvalidParameterException):
        return None
    if not user.get("Enabled", True):
        return None
    groups = [g["GroupName"] for page in client.get_paginator("admin_list_groups_for_user").paginate(
        UserPoolId=pool, Username=user["Username"]) for g in page["Groups"]]
    attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
    return Agent.from_claims({"cognito:username": user["Username"], "cognito:groups": groups,
                              "email": attributes.get("email"), "name": attributes.get("name")}, policy)


def members(group: str) -> dict[str, dict]:
    """The enabled users of a group: username -> their attributes."""
    pool = _pool()
    if not pool:
        return {}
    out = {}
    for page in _cognito().get_paginator("list_users_in_group").paginate(UserPoolId=pool, GroupName=group):
        for user in page["Users"]:
            if user.get("Enabled", True):
                out[user["Username"]] = {a["Name"]: a["Value"] for a in user.get("Attributes", [])}
    return out


def who_may_work(department: str, tier: str, policy: Policy) -> list[Agent]:
    """Every agent who may work a ticket of ``department`` at ``tier`` (the assign picker): the
    department's members at or above the tier, and the managers. A few group listings, no per-user call."""
    in_department = members(department)
    found: dict[str, Agent] = {}
    for group in (*(t for t in agents.TIERS if agents.rank(t) >= agents.rank(tier)), agents.MANAGERS):
        for username, attributes in members(group).items():
            if group != agents.MANAGERS and username not in in_department:
                continue
            known = found.get(username)
            found[username] = Agent(
                username=username, email=attributes.get("email"), name=attributes.get("name"),
                tiers=(known.tiers if known else frozenset()) | ({group} if group in agents.TIERS else set()),
                departments=frozenset({department}) if username in in_department else frozenset(),
                manager=(known.manager if known else False) or group == agents.MANAGERS)
    return sorted((a for a in found.values() if agents.visible(a, department, tier)), key=lambda a: a.username)
