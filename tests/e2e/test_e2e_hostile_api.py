"""A hostile client against the local stack's API front: every request gets a 4xx in the error shape.

The stack's output is checked for tracebacks when it stops (``local_stack``), so a request that
made the function fail would fail this module even if its answer looked right.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.e2e.local_stack import http

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def send(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.fixture(scope="module")
def routes(local_stack) -> list[str]:
    """Every POST route, on a ticket of its own."""
    _, _, text = http("POST", local_stack.api_url + "tickets", json_body={
        "email": "mallory@example.com", "subject": "Probe", "description": "Probe"})
    created = json.loads(text)
    on_ticket = f"tickets/{created['id']}/%s?token={created['access_token']}"
    return [local_stack.api_url + path for path in ("tickets", on_ticket % "messages", on_ticket % "survey")]


BODIES = {  # name: (body, content type, status)
    "multipart/form-data without a boundary": (b"{}", "multipart/form-data", 415),
    "invalid UTF-8": (b'{"body": "\xff\xfe", "email": "\xc3("}', JSON, 400),
    "30,000 [": (b"[" * 30_000, JSON, 400),
    "JSON in latin-1": ('{"body": "café"}'.encode("latin-1"), "application/json; charset=latin-1", 415),
    "a form with invalid percent-encoding": (b"body=%ff%zz", FORM, 400),
}


@pytest.mark.parametrize("case", BODIES)
@pytest.mark.parametrize("keyed", [False, True], ids=["", "with-Idempotency-Key"])
def test_a_body_the_api_cannot_read_is_a_4xx_on_every_post_route(routes, case, keyed):
    body, content_type, expected = BODIES[case]
    headers = {"Content-Type": content_type} | ({"Idempotency-Key": f"probe-{case}"} if keyed else {})

    for url in routes:
        status, got, text = send("POST", url, body, headers)

        assert status == expected, (url, text)
        if content_type == FORM:  # a browser's form: the error is a page
            assert got["Content-Type"].startswith("text/html")
        else:
            assert json.loads(text)["error"] and got["Content-Type"] == JSON


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_a_method_api_gateway_does_not_pass_on_is_its_405_in_the_error_shape(local_stack, method):
    status, headers, text = send(method, local_stack.api_url + "tickets")

    assert status == 405 and json.loads(text)["error"] == "method_not_allowed"
    assert headers["Allow"] == "GET, HEAD, OPTIONS, POST, PUT" and headers["Cache-Control"] == "no-store"


def test_someone_elses_token_opens_nothing(local_stack, routes):
    _, _, text = http("POST", local_stack.api_url + "tickets", json_body={
        "email": "alice@example.com", "subject": "Mine", "description": "Private"})
    alice = json.loads(text)
    mallory_token = routes[1].rpartition("token=")[2]

    status, _, answer = send("GET", local_stack.api_url + f"tickets/{alice['id']}?token={mallory_token}")
    missing, _, none = send("GET", local_stack.api_url + f"tickets/HD-000000?token={mallory_token}")

    assert status == missing == 404 and answer == none and "Private" not in answer
