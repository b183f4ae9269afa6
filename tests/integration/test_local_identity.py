"""The agents' sign-in on the local stack, on moto: the user pool built from infra/agent_pool.py and its
seeded agents, the API front verifying ID tokens as API Gateway's Cognito authorizer does, and the
Cognito stand-in the console and curl sign in through."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from cryptography.hazmat.primitives.hashes import SHA1
from joserfc import jwt
from joserfc.jwk import RSAKey

from helpdesk.addresses import deliverable
from helpdesk.agents import Agent
from helpdesk.config import load_policy
from helpdesk.settings import Env
from infra import agent_pool as definition
from infra.local.api_gateway import AGENT_PROXY, api_front
from infra.local.cognito import CognitoAuthorizer, cognito_idp
from infra.local.resources import SEED_AGENTS

LENA = next(a for a in SEED_AGENTS if a.username == "lena")
NINA = next(a for a in SEED_AGENTS if a.invited)
JAVA_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}$")


def cognito() -> object:
    return boto3.client("cognito-idp")


def sign_in(username: str, password: str, client_id: str | None = None) -> dict:
    """The AuthenticationResult of a USER_PASSWORD_AUTH sign-in (straight to moto)."""
    import os

    return cognito().initiate_auth(ClientId=client_id or os.environ[Env.USER_POOL_CLIENT_ID],
                                   AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": username, "PASSWORD": password})["AuthenticationResult"]


def payload(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def signed(claims: dict, key: RSAKey | None = None) -> str:
    """A token with ``claims``, signed with moto's pool key (or ``key``) under moto's key id."""
    if key is None:
        from moto.utilities.utils import load_resource

        key = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
    return jwt.encode({"kid": "dummy", "alg": "RS256"}, claims, key)


# -- the pool and its agents ------------------------------------------------------------------------

def test_the_local_pool_is_the_shared_definition(agent_pool):
    pool_id, client_id = agent_pool[Env.USER_POOL_ID], agent_pool[Env.USER_POOL_CLIENT_ID]
    pool = cognito().describe_user_pool(UserPoolId=pool_id)["UserPool"]
    client = cognito().describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
    groups = cognito().list_groups(UserPoolId=pool_id)["Groups"]

    assert pool["Policies"]["PasswordPolicy"] == definition.PASSWORD_POLICY
    assert pool["AliasAttributes"] == list(definition.ALIAS_ATTRIBUTES)
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["MfaConfiguration"] == "OPTIONAL"
    assert set(client["ExplicitAuthFlows"]) == set(definition.AUTH_FLOWS)
    assert "ClientSecret" not in client and client["PreventUserExistenceErrors"] == "ENABLED"
    assert {(g["GroupName"], g["Description"]) for g in groups} == {
        (g.name, g.description) for g in definition.groups()}


def test_every_seeded_agent_signs_in_with_the_readme_password_and_is_who_their_groups_say(agent_pool):
    authorizer = CognitoAuthorizer(agent_pool[Env.USER_POOL_ID], agent_pool[Env.USER_POOL_CLIENT_ID], "us-east-1")
    policy = load_policy()
    for seed in SEED_AGENTS:
        assert deliverable(seed.email) == seed.email  # @mentions can reach them
        if seed.invited:
            continue
        claims = authorizer({"Authorization": sign_in(seed.username, seed.password)["IdToken"]})
        agent = Agent.from_claims(claims, policy)
        assert (agent.username, agent.email) == (seed.username, seed.email)
        assert agent.tiers | agent.departments | ({"managers"} if agent.manager else set()) == set(seed.groups)


def test_the_seeds_cover_each_tier_managers_and_a_private_department(agent_pool):
    policy = load_policy()
    groups = {g for seed in SEED_AGENTS for g in seed.groups}
    assert {"L1", "L2", "L3", "managers"} <= groups
    assert any(policy.private(g) for g in groups)
    assert groups <= {g.name for g in definition.groups()}


# -- the API front as API Gateway's Cognito authorizer ----------------------------------------------

@pytest.fixture
def front(agent_pool) -> Iterator[tuple[str, list[dict]]]:
    """The API front with the agents' authorizer, on a free port, before a handler that records its events."""
    events: list[dict] = []

    def handler(event, context):
        events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    authorizer = CognitoAuthorizer(agent_pool[Env.USER_POOL_ID], agent_pool[Env.USER_POOL_CLIENT_ID], "us-east-1")
    service = api_front(0, handler, function_name="test", memory_mb=128, timeout_s=3,
                        authorizers={AGENT_PROXY: authorizer})
    service.start()
    try:
        yield service.url, events
    finally:
        service.stop()


def get(url: str, token: str | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, headers={"Authorization": token} if token is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def test_a_valid_id_token_reaches_the_function_with_the_claims_api_gateway_presents(front):
    url, events = front
    token = sign_in(LENA.username, LENA.password)["IdToken"]

    status, _, _ = get(url + "agent/me", token)
    bearer_status, _, _ = get(url + "agent/me", f"Bearer {token}")  # API Gateway takes both forms

    assert (status, bearer_status) == (200, 200)
    event = events[0]
    assert (event["resource"], event["pathParameters"]) == ("/agent/{proxy+}", {"proxy": "me"})
    claims = event["requestContext"]["authorizer"]["claims"]
    assert all(isinstance(v, str) for v in claims.values())
    assert claims["cognito:username"] == "lena" and sorted(claims["cognito:groups"].split(",")) == ["L1", "billing"]
    assert claims["token_use"] == "id" and claims["email_verified"] == "true"
    assert JAVA_DATE.match(claims["exp"]) and JAVA_DATE.match(claims["iat"]) and claims["auth_time"].isdigit()
    assert claims["iss"].endswith("/" + claims["iss"].rsplit("/", 1)[1]) and claims["aud"]
    assert Agent.from_claims(claims, load_policy()).tiers == {"L1"}


def test_the_front_answers_401_unless_the_id_token_is_the_consoles_and_the_function_never_runs(front, agent_pool):
    # Given lena's tokens, and a client of another pool and another client of the agents' pool
    url, events = front
    tokens = sign_in(LENA.username, LENA.password)
    other_pool = cognito().create_user_pool(PoolName="other")["UserPool"]["Id"]
    cognito().admin_create_user(UserPoolId=other_pool, Username="lena", TemporaryPassword=LENA.password)
    cognito().admin_set_user_password(UserPoolId=other_pool, Username="lena", Password=LENA.password, Permanent=True)

    def client_of(pool_id: str) -> str:
        return cognito().create_user_pool_client(UserPoolId=pool_id, ClientName="x",
                                                 ExplicitAuthFlows=["USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]

    refused = {
        "missing": None,
        "empty": "Bearer ",
        "garbage": "not-a-token",
        "three dots": "a.b.c",
        "access token": tokens["AccessToken"],
        "wrong signature": signed(payload(tokens["IdToken"]), RSAKey.generate_key(2048)),
        "another pool": sign_in("lena", LENA.password, client_of(other_pool))["IdToken"],
        "another client of the pool": sign_in("lena", LENA.password, client_of(agent_pool[Env.USER_POOL_ID]))["IdToken"],
        "expired": signed({**payload(tokens["IdToken"]), "iat": int(time.time()) - 7200,
                           "exp": int(time.time()) - 3600}),
    }
    for case, token in refused.items():
        # When the token comes to an agent route
        status, headers, body = get(url + "agent/me", token)

        # Then API Gateway's 401 answers, and the function never runs
        assert status == 401 and headers["x-amzn-ErrorType"] == "UnauthorizedException", case
        assert body == {"error": "unauthorized", "details": [],
                        "message": "The incoming token has expired" if case == "expired" else "Unauthorized"}, case
    assert events == []


def test_the_consoles_page_and_the_customers_routes_need_no_token(front):
    url, events = front

    statuses = [get(url + path)[0] for path in ("agent/", "agent", "tickets", "")]

    assert statuses == [200, 200, 200, 200]
    assert [e["resource"] for e in events] == ["/agent", "/agent", "/{proxy+}", "/"]
    assert all("authorizer" not in e["requestContext"] for e in events)


# -- the Cognito stand-in ---------------------------------------------------------------------------

@pytest.fixture
def idp(agent_pool) -> Iterator[callable]:
    """call(action, body) -> (status, headers, body) against the stand-in, as a browser would call Cognito."""
    service = cognito_idp(0, agent_pool[Env.USER_POOL_ID])
    service.start()

    def call(action: str, body: dict | bytes, method: str = "POST", headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(service.url, data=data if method == "POST" else None, method=method, headers={
            "X-Amz-Target": f"AWSCognitoIdentityProviderService.{action}",
            "Content-Type": "application/x-amz-json-1.1", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"{}")

    try:
        yield call
    finally:
        service.stop()


def password_auth(client_id: str, username: str, password: str) -> dict:
    return {"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id,
            "AuthParameters": {"USERNAME": username, "PASSWORD": password}}


@pytest.mark.parametrize("username", ["LENA", "Lena@Agents.Helpdesk.Example"])  # case-insensitive; the email alias
def test_an_agent_signs_in_by_username_or_email_and_the_token_names_their_username(idp, agent_pool, username):
    status, headers, body = idp("InitiateAuth", password_auth(agent_pool[Env.USER_POOL_CLIENT_ID], username,
                                                              LENA.password))

    assert status == 200 and headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["Access-Control-Allow-Origin"] == "*"  # the console calls it cross-origin
    result = body["AuthenticationResult"]
    assert payload(result["IdToken"])["cognito:username"] == "lena"
    assert {"AccessToken", "RefreshToken", "ExpiresIn"} <= set(result)


def test_a_wrong_password_and_an_unknown_agent_get_the_same_answer(idp, agent_pool):
    client_id = agent_pool[Env.USER_POOL_CLIENT_ID]

    wrong = idp("InitiateAuth", password_auth(client_id, "lena", "Not-Her-Password-1!"))
    unknown = idp("InitiateAuth", password_auth(client_id, "nobody", "Not-Her-Password-1!"))

    for status, headers, body in (wrong, unknown):
        assert status == 400 and body == {"__type": "NotAuthorizedException",
                                          "message": "Incorrect username or password."}
        assert headers["x-amzn-ErrorType"] == "NotAuthorizedException"


def test_an_invited_agent_sets_a_password_the_policy_accepts_on_first_sign_in(idp, agent_pool):
    client_id = agent_pool[Env.USER_POOL_CLIENT_ID]
    _, _, challenge = idp("InitiateAuth", password_auth(client_id, NINA.email, NINA.password))
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    username = challenge["ChallengeParameters"]["USERNAME"]

    def respond(new_password: str):
        return idp("RespondToAuthChallenge", {
            "ClientId": client_id, "ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": challenge["Session"],
            "ChallengeResponses": {"USERNAME": username, "NEW_PASSWORD": new_password}})

    weak_status, _, weak = respond("short1!")
    status, _, body = respond("Nina-Chose-This-1!")

    assert (username, weak_status, weak["__type"]) == ("nina", 400, "InvalidPasswordException")
    assert status == 200 and sorted(payload(body["AuthenticationResult"]["IdToken"])["cognito:groups"]) == ["L1", "billing"]
    assert idp("InitiateAuth", password_auth(client_id, "nina", "Nina-Chose-This-1!"))[0] == 200


def totp(secret: str) -> tuple[int, str]:
    """(time step, the authenticator app's code) for ``secret`` now."""
    padded = secret.upper() + "=" * (-len(secret) % 8)
    now = time.time()
    return int(now // 30), TOTP(base64.b32decode(padded), 6, SHA1(), 30, enforce_key_length=False).generate(
        int(now)).decode()


def with_fresh_code(secret: str, send) -> tuple:
    """Send a TOTP code; again if the 30-second step turned while it travelled (never a wrong code)."""
    while True:
        step, code = totp(secret)
        answer = send(code)
        if totp(secret)[0] == step:
            return answer


def test_an_agent_enrols_totp_then_signs_in_with_a_code_and_never_with_a_wrong_one(idp, agent_pool):
    # Given lena signed in and enrolled an authenticator app
    client_id = agent_pool[Env.USER_POOL_CLIENT_ID]
    access = idp("InitiateAuth", password_auth(client_id, "lena", LENA.password))[2]["AuthenticationResult"][
        "AccessToken"]
    secret = idp("AssociateSoftwareToken", {"AccessToken": access})[2]["SecretCode"]
    verified = with_fresh_code(secret, lambda code: idp("VerifySoftwareToken", {
        "AccessToken": access, "UserCode": code, "FriendlyDeviceName": "phone"}))
    assert verified[2]["Status"] == "SUCCESS"
    assert idp("SetUserMFAPreference", {"AccessToken": access, "SoftwareTokenMfaSettings": {
        "Enabled": True, "PreferredMfa": True}})[0] == 200

    # When she signs in again
    _, _, challenge = idp("InitiateAuth", password_auth(client_id, "lena", LENA.password))

    def answer(code: str):
        return idp("RespondToAuthChallenge", {
            "ClientId": client_id, "ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": challenge["Session"],
            "ChallengeResponses": {"USERNAME": "lena", "SOFTWARE_TOKEN_MFA_CODE": code}})

    # Then the pool asks for a code, refuses a wrong one and signs her in with the right one
    assert challenge["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    wrong_code = f"{(int(totp(secret)[1]) + 1) % 1_000_000:06d}"
    assert answer(wrong_code)[2]["__type"] == "CodeMismatchException"
    status, _, body = with_fresh_code(secret, answer)
    assert status == 200 and "IdToken" in body["AuthenticationResult"]


def test_get_user_and_sign_out_revoke_the_refresh_token(idp, agent_pool):
    client_id = agent_pool[Env.USER_POOL_CLIENT_ID]
    result = idp("InitiateAuth", password_auth(client_id, "bea", "Bea-Agent-2026!"))[2]["AuthenticationResult"]

    _, _, user = idp("GetUser", {"AccessToken": result["AccessToken"]})
    signed_out = idp("GlobalSignOut", {"AccessToken": result["AccessToken"]})
    refreshed = idp("InitiateAuth", {"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": client_id,
                                     "AuthParameters": {"REFRESH_TOKEN": result["RefreshToken"]}})

    assert user["Username"] == "bea"
    assert {"Name": "email", "Value": "bea@agents.helpdesk.example"} in user["UserAttributes"]
    assert signed_out[0] == 200
    assert (refreshed[0], refreshed[2]["__type"]) == (400, "NotAuthorizedException")


def test_what_a_console_may_not_do_is_a_cognito_error(idp, agent_pool):
    client_id = agent_pool[Env.USER_POOL_CLIENT_ID]
    for action, body, error in [
        ("SignUp", {"ClientId": client_id, "Username": "eve", "Password": "Eve-Wants-In-1!"},
         "UnknownOperationException"),  # nobody signs up
        ("AdminCreateUser", {"UserPoolId": agent_pool[Env.USER_POOL_ID], "Username": "eve"},
         "UnknownOperationException"),  # admin actions need AWS credentials: the aws CLI
        ("InitiateAuth", {"AuthFlow": "USER_SRP_AUTH", "ClientId": client_id,
                          "AuthParameters": {"USERNAME": "lena", "SRP_A": "1"}}, "InvalidParameterException"),
        ("InitiateAuth", b"{not json", "SerializationException"),
        ("InitiateAuth", {"AuthFlow": "USER_PASSWORD_AUTH"}, "InvalidParameterException"),  # no ClientId
    ]:
        status, headers, answer = idp(action, body)

        assert status == 400 and answer["__type"] == error and answer["message"], (action, answer)
        assert headers["x-amzn-ErrorType"] == error


def test_cors_preflight_lets_the_console_call_from_another_origin(idp):
    status, headers, _ = idp("InitiateAuth", b"", method="OPTIONS", headers={
        "Origin": "http://127.0.0.1:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent"})

    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert {"content-type", "x-amz-target"} <= set(headers["Access-Control-Allow-Headers"].split(","))
