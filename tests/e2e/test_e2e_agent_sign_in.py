"""An agent signs in on the local stack as the README shows it with curl: Cognito's API on the sign-in
port (the seeded agents), then the agent routes with the ID token, verified by the API front."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from infra.local.resources import SEED_AGENTS
from tests.e2e.local_stack import http

LENA = next(a for a in SEED_AGENTS if a.username == "lena")


def app_client(output: str) -> str:
    """The app client id the ready banner prints (moto makes new ids on every start)."""
    return re.search(r"app client (\S+);", output).group(1)


def initiate_auth(stack, username: str, password: str) -> tuple[int, dict]:
    """Cognito's InitiateAuth as curl sends it (README) to the sign-in port."""
    request = urllib.request.Request(stack.cognito_url, method="POST", data=json.dumps({
        "AuthFlow": "USER_PASSWORD_AUTH", "ClientId": app_client(stack.output),
        "AuthParameters": {"USERNAME": username, "PASSWORD": password}}).encode(), headers={
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        "Content-Type": "application/x-amz-json-1.1"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_banner_names_the_sign_in_endpoint_and_the_app_client(local_stack):
    assert local_stack.cognito_url in local_stack.output
    assert app_client(local_stack.output)


def test_an_agent_signs_in_by_email_and_reaches_the_agent_routes_with_the_id_token(local_stack):
    # Given lena signs in with her email and the README's password
    status, body = initiate_auth(local_stack, LENA.email, LENA.password)
    assert status == 200, body
    token = body["AuthenticationResult"]["IdToken"]

    # When she calls an agent route with it, and without it
    with_token = http("GET", local_stack.api_url + "agent/me", headers={"Authorization": token})
    without = http("GET", local_stack.api_url + "agent/me")

    # Then the function answers the first; API Gateway's 401 the second
    assert with_token[0] == 200 and json.loads(with_token[2])["username"] == "lena", with_token
    assert (without[0], json.loads(without[2])) == (401, {"error": "unauthorized", "message": "Unauthorized",
                                                          "details": []})


def test_the_consoles_page_needs_no_token(local_stack):
    status, _, body = http("GET", local_stack.api_url + "agent/")
    assert status != 401, body
