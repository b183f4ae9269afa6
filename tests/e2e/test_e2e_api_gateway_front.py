"""The local API front builds the events API Gateway sends, and reads responses as API Gateway does."""

from __future__ import annotations

import base64
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra import gateway_responses
from infra.local.api_gateway import (
    MAX_PAYLOAD,
    PROXY_RESOURCES,
    LambdaContext,
    Routes,
    api_front,
    build_event,
    proxy_response,
)

EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"
SAMPLES = sorted(EVENTS.glob("*.json"))
# The resources the sample events were captured with (one per route, not the deployed proxy).
SAMPLE_ROUTES = Routes(["/", "/openapi.json", "/tickets", "/tickets/{ticket_id}", "/tickets/{ticket_id}/messages",
                        "/agent/{proxy+}"])


def request_of(sample: dict) -> dict:
    """The HTTP request a client sent for a sample event (what arrives at the local front)."""
    query = "&".join(f"{k}={v}" for k, values in (sample["multiValueQueryStringParameters"] or {}).items()
                     for v in values)
    gateway_added = {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Amzn-Trace-Id"}
    return dict(method=sample["httpMethod"], target=sample["path"] + (f"?{query}" if query else ""),
                headers=[(k, v) for k, v in sample["headers"].items() if k not in gateway_added],
                body=(sample["body"] or "").encode(), source_ip=sample["requestContext"]["identity"]["sourceIp"])


@pytest.mark.parametrize("sample_file", SAMPLES, ids=lambda p: p.stem)
def test_each_request_becomes_the_event_api_gateway_sends(sample_file):
    sample = json.loads(sample_file.read_text())

    event = build_event(**request_of(sample), routes=SAMPLE_ROUTES)

    assert set(event) == set(sample)
    # (the authorizer's claims are added by the Cognito authorizer, not by turning the request into an event)
    assert set(sample["requestContext"]) - {"authorizer"} <= set(event["requestContext"])
    assert set(sample["requestContext"]["identity"]) <= set(event["requestContext"]["identity"])
    for key in ("resource", "path", "httpMethod", "queryStringParameters", "multiValueQueryStringParameters",
                "pathParameters", "body", "isBase64Encoded", "stageVariables"):
        assert event[key] == sample[key], key
    assert event["requestContext"]["resourcePath"] == sample["requestContext"]["resourcePath"]
    for name, value in sample["headers"].items():
        if name not in {"X-Forwarded-For", "X-Forwarded-Proto"}:  # locally: the real client, over http
            assert event["headers"][name] == value
            assert event["multiValueHeaders"][name] == [value]
    assert event["headers"]["X-Forwarded-For"] == sample["headers"]["X-Forwarded-For"]


def test_the_deployed_proxy_resource_carries_the_path_as_its_proxy_parameter():
    routes = Routes(PROXY_RESOURCES)
    request = dict(method="GET", headers=[("Host", "127.0.0.1:3000")], body=b"", source_ip="127.0.0.1", routes=routes)

    root = build_event(target="/", **request)
    ticket = build_event(target="/tickets/HD-7KQ2M9?token=abc", **request)

    assert (root["resource"], root["pathParameters"]) == ("/", None)
    assert (ticket["resource"], ticket["pathParameters"]) == ("/{proxy+}", {"proxy": "tickets/HD-7KQ2M9"})
    assert ticket["requestContext"]["stage"] == "v1" and ticket["requestContext"]["path"] == "/tickets/HD-7KQ2M9"


def test_repeated_values_keep_the_last_one_in_single_value_maps_and_all_in_multi_value_maps():
    event = build_event(method="GET", target="/tickets?tag=a&tag=b%20c&empty", body=b"", source_ip="10.0.0.1",
                        headers=[("Host", "h"), ("Accept", "text/html"), ("Accept", "application/json")],
                        routes=Routes(PROXY_RESOURCES), now=datetime(2026, 11, 24, 16, tzinfo=UTC))

    assert event["queryStringParameters"] == {"tag": "b c", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b c"], "empty": [""]}
    assert event["headers"]["Accept"] == "application/json"
    assert event["multiValueHeaders"]["Accept"] == ["text/html", "application/json"]
    assert event["requestContext"]["requestTime"] == "24/Nov/2026:16:00:00 +0000"
    assert event["requestContext"]["requestTimeEpoch"] == 1795536000000
    assert event["body"] is None and event["isBase64Encoded"] is False


def test_a_binary_body_travels_base64_encoded():
    event = build_event(method="POST", target="/upload", headers=[], body=b"\xff\x00", source_ip="10.0.0.1",
                        routes=Routes(PROXY_RESOURCES))

    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"


def test_response_headers_and_multi_value_headers_merge():
    status, headers, body = proxy_response({
        "statusCode": 201, "headers": {"Content-Type": "application/json", "Location": "/x"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "Location": ["/x"]}, "body": "{}"})

    assert status == 201 and body == b"{}"
    assert sorted(headers) == [("Content-Type", "application/json"), ("Location", "/x"),
                               ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


@pytest.mark.parametrize("result", [None, {}, {"statusCode": "abc"}, {"statusCode": 200, "body": {"a": 1}},
                                    {"statusCode": 99}], ids=["none", "empty", "bad-status", "dict-body", "status-99"])
def test_a_malformed_response_is_api_gateways_502(result):
    status, headers, body = proxy_response(result)

    assert status == 502
    assert json.loads(body) == {"error": "internal_error", "message": "Internal server error", "details": []}
    assert ("Cache-Control", "no-store") in headers


# -- what API Gateway answers itself: the gateway responses of infra.gateway_responses -----------------

@pytest.fixture(scope="module")
def front():
    """The API front on a free port, around a function that echoes what it received."""
    received: list[dict] = []

    def echo(event, context):
        received.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"method": event["httpMethod"], "body": event["body"],
                                    "base64": event["isBase64Encoded"]})}

    service = api_front(0, echo, function_name="echo", memory_mb=128, timeout_s=3)
    service.start()
    yield service, received
    service.stop()


def raw_exchange(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes, read the answer: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW"])
def test_a_method_any_does_not_cover_gets_the_gateways_405_in_the_error_shape(front, method):
    service, received = front
    before = len(received)

    status, headers, body = raw_exchange(service.port, f"{method} /tickets HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    expected = gateway_responses.METHOD_NOT_ALLOWED
    assert status == expected.status == 405
    assert json.loads(body) == json.loads(expected.body()) and json.loads(body)["error"] == "method_not_allowed"
    assert {k: headers[k] for k in expected.headers} == expected.headers  # Allow and the security headers
    assert len(received) == before  # the function never saw it


@pytest.mark.parametrize("method", gateway_responses.ANY_METHODS)
def test_every_method_any_covers_reaches_the_function(front, method):
    service, received = front

    status, _, _ = raw_exchange(service.port, f"{method} /tickets HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())

    assert status == 200 and received[-1]["httpMethod"] == method


def test_a_payload_over_10_mb_gets_the_gateways_413_without_reaching_the_function(front):
    service, received = front
    before = len(received)
    size = MAX_PAYLOAD + 1

    status, headers, body = raw_exchange(service.port, b"POST /tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                                         b"\r\nContent-Length: %d\r\n\r\n" % size)

    assert status == 413 and json.loads(body) == json.loads(gateway_responses.REQUEST_TOO_LARGE.body())
    assert headers["Cache-Control"] == "no-store" and len(received) == before


def test_a_chunked_body_reaches_the_function_whole(front):
    service, received = front

    status, _, body = raw_exchange(service.port, b"POST /tickets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n")

    assert status == 200 and json.loads(body)["body"] == '{"a":1}'


@pytest.mark.parametrize("request_bytes", [b"GARBAGE\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                                           b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n"],
                         ids=["garbled", "http-0.9", "http-9.9", "header-too-long"])
def test_what_the_http_server_refuses_is_a_4xx_in_the_error_shape(front, request_bytes):
    service, _ = front

    status, headers, body = raw_exchange(service.port, request_bytes)

    assert 400 <= status < 500
    assert json.loads(body)["error"] == "request_refused" and headers["Cache-Control"] == "no-store"


def test_the_lambda_context_counts_down_from_the_function_timeout():
    context = LambdaContext("helpdesk-api", memory_limit_in_mb=512, timeout_s=10)

    assert 9_000 < context.get_remaining_time_in_millis() <= 10_000
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:helpdesk-api"
