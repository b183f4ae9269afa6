"""The authorization matrix through the local stack: real ID tokens of the seeded agents from the local
Cognito, checked by the API front as API Gateway's authorizer checks them, then by the function.

The same routes and expectations as on moto (tests/integration/test_agent_api.py), with the callers a
deployed API meets: none, a customer's access token, an expired token, a token of another app client.
"""

from __future__ import annotations

import json
import time

import pytest

from infra.local.resources import SEED_AGENTS
from tests.e2e.local_stack import http
from tests.e2e.test_e2e_agent_sign_in import initiate_auth
from tests.integration.test_agent_api import EXPECTED, ROUTES
from tests.integration.test_local_identity import payload, signed

PASSWORDS = {agent.username: agent.password for agent in SEED_AGENTS}
AGENTS = {"L1 billing": "lena", "L2 billing": "bea", "L3": "priya", "manager": "maria", "other department": "tomas"}


def token_of(stack, username: str) -> str:
    status, body = initiate_auth(stack, username, PASSWORDS[username])
    assert status == 200, body
    return body["AuthenticationResult"]["IdToken"]


@pytest.fixture(scope="module")
def tokens(local_stack) -> dict[str, str | None]:
    """The Authorization header each caller sends (None: none)."""
    agents = {caller: token_of(local_stack, username) for caller, username in AGENTS.items()}
    lena = payload(agents["L1 billing"])
    return {
        "anonymous": None,
        "customer token": open_ticket(local_stack, "matrix-customer@example.com")["access_token"],
        "expired": signed({**lena, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}),
        "another client": signed({**lena, "aud": "another-app-client"}),
        **agents,
    }


def open_ticket(stack, email: str) -> dict:
    status, _, body = http("POST", stack.api_url + "tickets", json_body={
        "name": "Ann", "email": email, "subject": "Charged twice", "description": "Please refund one.",
        "category": "billing"})
    assert status == 201, body
    return json.loads(body)


def call(stack, method: str, path: str, token: str | None, body=None, if_match: int | None = None):
    headers = {"Authorization": token} if token else {}
    if if_match is not None:
        headers["If-Match"] = f'"{if_match}"'
    status, answer_headers, text = http(method, stack.api_url + path.lstrip("/"), json_body=body, headers=headers)
    return status, answer_headers, json.loads(text) if text else None


def version(stack, ticket_id: str, token: str) -> int:
    status, headers, body = call(stack, "GET", f"/agent/tickets/{ticket_id}", token)
    assert status == 200, body
    return int(headers["ETag"].strip('"'))


@pytest.mark.parametrize("caller", ["anonymous", "customer token", "expired", "another client", *AGENTS])
def test_the_authorization_matrix_through_the_local_stack(local_stack, tokens, caller):
    expected = EXPECTED.get(caller) or EXPECTED["anonymous"]  # every caller without an agent's token: 401
    manager, answers = tokens["manager"], []
    for n, (method, template, body) in enumerate(ROUTES):
        ticket_id = open_ticket(local_stack, f"matrix-{caller.replace(' ', '-')}-{n}@example.com")["id"]
        if template.endswith("/return"):  # a ticket with management
            for _ in range(3):
                call(local_stack, "POST", f"/agent/tickets/{ticket_id}/escalate", manager, {"to": "next", "handoff": {
                    "need": "A refund of one charge.", "tried": "Read the payment log.", "next_step": "Decide on it."}},
                     if_match=version(local_stack, ticket_id, manager))
        current = version(local_stack, ticket_id, manager) if "/tickets/" in template else None
        status, _, answer = call(local_stack, method, template.format(id=ticket_id), tokens[caller], body, current)
        answers.append(status)
        if status >= 400:
            assert {"error", "message"} <= set(answer or {}), answer  # API Gateway's answers too: our shape
    assert answers == expected, list(zip([r[1] for r in ROUTES], answers, expected, strict=True))


def test_two_agents_replying_at_once_on_the_same_version_exactly_one_wins(local_stack, tokens):
    from concurrent.futures import ThreadPoolExecutor

    ticket_id = open_ticket(local_stack, "two-agents@example.com")["id"]
    seen = version(local_stack, ticket_id, tokens["L2 billing"])

    def reply(caller: str):
        return call(local_stack, "POST", f"/agent/tickets/{ticket_id}/replies", tokens[caller],
                    {"body": f"The answer from {caller}."}, if_match=seen)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(reply, ["L1 billing", "L2 billing"]))

    assert sorted(status for status, _, _ in answers) == [200, 409]
    [(_, _, conflict)] = [a for a in answers if a[0] == 409]
    assert conflict["current_version"] == seen + 1 and [c["type"] for c in conflict["details"]] == ["reply"]
    _, _, view = call(local_stack, "GET", f"/agent/tickets/{ticket_id}", tokens["manager"])
    assert len([e for e in view["timeline"]["entries"] if e["type"] == "reply"]) == 1
