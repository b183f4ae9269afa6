"""The local API front builds the events API Gateway sends, and reads responses as API Gateway does."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.local.api_gateway import PROXY_RESOURCES, LambdaContext, Routes, build_event, proxy_response

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

    assert status == 502 and json.loads(body) == {"message": "Internal server error"}


def test_the_lambda_context_counts_down_from_the_function_timeout():
    context = LambdaContext("helpdesk-api", memory_limit_in_mb=512, timeout_s=10)

    assert 9_000 < context.get_remaining_time_in_millis() <= 10_000
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:helpdesk-api"
