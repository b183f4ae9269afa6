"""The agents' user pool, its groups, the console's client and the Cognito authorizer in the template
(cdk-nag has passed when a fixture exists)."""

from __future__ import annotations

import json

import pytest

from helpdesk.agents import MANAGERS, TIERS
from helpdesk.config import load_policy
from helpdesk.settings import Env
from infra import agent_pool
from infra.constructs.identity import DIRECTORY_ACTIONS
from tests.infra.conftest import Synthesized


def of_type(synth: Synthesized, type_: str) -> dict:
    return {k: v for k, v in synth.resources.items() if v["Type"] == type_}


def pool(synth: Synthesized) -> dict:
    return synth.resources[synth.logical_id(synth.stack.identity.user_pool)]


def client(synth: Synthesized) -> dict:
    return synth.resources[synth.logical_id(synth.stack.identity.client)]["Properties"]


def path_of(synth: Synthesized, resource_id: str) -> str:
    """``/agent/{proxy+}`` for an AWS::ApiGateway::Resource id (``/`` for the root)."""
    parts = []
    while isinstance(resource_id, str) and resource_id in synth.resources:
        properties = synth.resources[resource_id]["Properties"]
        parts.insert(0, properties["PathPart"])
        resource_id = properties["ParentId"].get("Ref")
    return "/" + "/".join(parts)


def methods(synth: Synthesized) -> dict[tuple[str, str], dict]:
    """(path, HTTP method) -> the method's properties."""
    out = {}
    for method in of_type(synth, "AWS::ApiGateway::Method").values():
        properties = method["Properties"]
        out[(path_of(synth, properties["ResourceId"].get("Ref")), properties["HttpMethod"])] = properties
    return out


# -- the pool -----------------------------------------------------------------------------------------

def test_every_department_of_the_policy_has_its_group_and_nothing_else_is_there(synth):
    # Given the routing policy's departments
    departments = load_policy().department_names

    # When the app is synthesized
    groups = {g["Properties"]["GroupName"]: g["Properties"] for g in of_type(synth, "AWS::Cognito::UserPoolGroup").values()}

    # Then the pool has a group per department, per tier and for managers, each described, and no other
    assert set(groups) == set(departments) | set(TIERS) | {MANAGERS}
    assert {"trust-and-safety", "billing", "technical"} <= set(groups)
    assert all(g["UserPoolId"] == {"Ref": synth.logical_id(synth.stack.identity.user_pool)} for g in groups.values())
    assert all(len(g["Description"]) > 10 for g in groups.values())
    assert "(private)" in groups["trust-and-safety"]["Description"]


def test_the_pool_is_the_shared_definition_invite_only_with_a_strong_password_policy(synth):
    properties = pool(synth)["Properties"]
    assert properties["Policies"]["PasswordPolicy"] == agent_pool.PASSWORD_POLICY
    assert properties["AliasAttributes"] == list(agent_pool.ALIAS_ATTRIBUTES)  # email or username
    assert "UsernameAttributes" not in properties  # usernames stay readable, never a generated id
    assert properties["UsernameConfiguration"] == {"CaseSensitive": False}
    assert properties["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert properties["AccountRecoverySetting"]["RecoveryMechanisms"] == list(agent_pool.RECOVERY_MECHANISMS)
    assert properties["EnabledMfas"] == list(agent_pool.ENABLED_MFAS)  # TOTP, no SMS


def test_mfa_is_optional_unless_the_context_requires_it(synth, configured):
    assert pool(synth)["Properties"]["MfaConfiguration"] == "OPTIONAL"
    assert pool(configured)["Properties"]["MfaConfiguration"] == "ON"  # -c agentMfa=required


@pytest.mark.parametrize("key,value", [("agentMfa", "sometimes"), ("agentThreatProtection", "yes")])
def test_a_context_value_outside_its_choices_is_refused(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        Synthesized(tmp_path, **{key: value})


def test_threat_protection_is_opt_in(synth, configured):
    assert pool(synth)["Properties"]["UserPoolTier"] == "ESSENTIALS"
    assert "UserPoolAddOns" not in pool(synth)["Properties"]
    assert pool(configured)["Properties"]["UserPoolTier"] == "PLUS"  # -c agentThreatProtection=true
    assert pool(configured)["Properties"]["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}


def test_the_pool_outlives_the_stack_like_the_tickets_unless_told_otherwise(synth, configured):
    assert pool(synth)["DeletionPolicy"] == "Retain" and pool(synth)["Properties"]["DeletionProtection"] == "ACTIVE"
    assert pool(configured)["DeletionPolicy"] == "Delete"  # -c retainData=false
    assert pool(configured)["Properties"]["DeletionProtection"] == "INACTIVE"


def test_the_invitation_names_the_console(synth, configured):
    def invitation(s) -> str:
        return json.dumps(pool(s)["Properties"]["AdminCreateUserConfig"]["InviteMessageTemplate"]["EmailMessage"])

    assert "https://help.example.com/agent/" in invitation(configured)
    # Without publicBaseUrl: the API's own URL, built from its id and the stage name (no cycle through the stage)
    default = invitation(synth)
    assert synth.logical_id(synth.stack.api.rest_api) in default and "/v1/agent/" in default
    for s in (synth, configured):
        assert "{username}" in invitation(s) and "{####}" in invitation(s)


def test_the_console_client_is_public_and_signs_in_with_srp_or_password(synth):
    properties = client(synth)
    assert properties["GenerateSecret"] is False
    assert set(properties["ExplicitAuthFlows"]) == set(agent_pool.AUTH_FLOWS)
    assert properties["AllowedOAuthFlowsUserPoolClient"] is False  # no hosted UI
    assert properties["PreventUserExistenceErrors"] == "ENABLED"
    assert properties["IdTokenValidity"] == agent_pool.ID_TOKEN_MINUTES
    assert properties["AccessTokenValidity"] == agent_pool.ACCESS_TOKEN_MINUTES
    assert properties["RefreshTokenValidity"] == agent_pool.REFRESH_TOKEN_HOURS * 60
    assert set(properties["TokenValidityUnits"].values()) == {"minutes"}
    assert properties["ReadAttributes"] == sorted(agent_pool.READ_ATTRIBUTES)
    assert properties["WriteAttributes"] == sorted(agent_pool.WRITE_ATTRIBUTES)


# -- the API ------------------------------------------------------------------------------------------

def test_the_cognito_authorizer_guards_every_agent_route_and_no_customer_route(synth):
    # Given the API's methods and its one authorizer
    ((authorizer_id, authorizer),) = of_type(synth, "AWS::ApiGateway::Authorizer").items()
    by_path = methods(synth)

    # Then the authorizer reads the Authorization header against the agents' pool
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"
    assert authorizer["Properties"]["ProviderARNs"] == [
        {"Fn::GetAtt": [synth.logical_id(synth.stack.identity.user_pool), "Arn"]}]
    # and guards every method of /agent/{proxy+}, and nothing else
    guarded = {key for key, m in by_path.items() if m["AuthorizationType"] == "COGNITO_USER_POOLS"}
    assert guarded == {("/agent/{proxy+}", "ANY")}
    assert by_path[("/agent/{proxy+}", "ANY")]["AuthorizerId"] == {"Ref": authorizer_id}
    # while the customers' routes and the console's sign-in page stay open, on the same function
    for open_route in [("/", "ANY"), ("/{proxy+}", "ANY"), ("/agent", "GET")]:
        assert by_path[open_route]["AuthorizationType"] == "NONE", open_route
    integrations = {json.dumps(m["Integration"]["Uri"]) for m in by_path.values()}
    assert len(integrations) == 1 and synth.logical_id(synth.stack.api.function) in integrations.pop()


def test_cors_preflight_of_agent_routes_needs_no_token(configured):
    # A browser's preflight carries no credentials: with origins configured, OPTIONS stays open
    by_path = methods(configured)
    assert by_path[("/agent/{proxy+}", "OPTIONS")]["AuthorizationType"] == "NONE"
    assert by_path[("/agent/{proxy+}", "ANY")]["AuthorizationType"] == "COGNITO_USER_POOLS"


def test_the_api_function_knows_the_pool_and_may_only_read_its_directory(synth):
    identity = synth.stack.identity
    function = synth.resources[synth.logical_id(synth.stack.api.function)]["Properties"]
    env = function["Environment"]["Variables"]
    assert env[Env.USER_POOL_ID] == {"Ref": synth.logical_id(identity.user_pool)}
    assert env[Env.USER_POOL_CLIENT_ID] == {"Ref": synth.logical_id(identity.client)}

    role = function["Role"]["Fn::GetAtt"][0]
    statements = [s for p in of_type(synth, "AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    cognito = [s for s in statements if "cognito-idp" in json.dumps(s["Action"])]
    assert cognito == [{"Action": sorted(DIRECTORY_ACTIONS), "Effect": "Allow",
                        "Resource": {"Fn::GetAtt": [synth.logical_id(identity.user_pool), "Arn"]}}]
    others = [f for f in of_type(synth, "AWS::Lambda::Function") if f != synth.logical_id(synth.stack.api.function)]
    for id_ in others:
        assert Env.USER_POOL_ID not in synth.resources[id_]["Properties"].get("Environment", {}).get("Variables", {})


def test_outputs_name_the_pool_the_client_and_the_console(synth, configured):
    outputs = synth.template.to_json()["Outputs"]
    identity = synth.stack.identity
    assert outputs["UserPoolId"]["Value"] == {"Ref": synth.logical_id(identity.user_pool)}
    assert outputs["UserPoolClientId"]["Value"] == {"Ref": synth.logical_id(identity.client)}
    assert "/v1/agent/" in json.dumps(outputs["AgentConsoleUrl"]["Value"])
    assert configured.template.to_json()["Outputs"]["AgentConsoleUrl"]["Value"] == "https://help.example.com/agent/"
