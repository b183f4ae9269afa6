"""The public API on moto, driven with the sample API Gateway events in events/api/."""

import json
import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.conftest import sample_event


@pytest.fixture
def api(aws):
    from functions.api import handler

    return handler


def call(api, lambda_context, name, *, body=None, headers=None, token=None, ticket_id=None):
    """Invoke the handler with a sample event; a body of our own drops the sample's Idempotency-Key."""
    event = sample_event(f"api/{name}.json")
    if body is not None:
        event["headers"].pop("Idempotency-Key", None)
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if headers:
        event["headers"].update(headers)
    if ticket_id:
        event["path"] = event["path"].replace("HD-7KQ2M9", ticket_id)
        event["pathParameters"] = {"ticket_id": ticket_id}
    if token is not None:
        if event["headers"].get("X-Access-Token"):
            event["headers"]["X-Access-Token"] = token
        else:
            event["queryStringParameters"] = {"token": token}
            event["multiValueQueryStringParameters"] = {"token": [token]}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    response = api.handler(event, lambda_context)
    headers = {k: v[0] for k, v in (response.get("multiValueHeaders") or {}).items()} | (response.get("headers") or {})
    return response["statusCode"], headers, response["body"]


def open_ticket(api, lambda_context, **changes):
    payload = json.loads(sample_event("api/post_ticket_json.json")["body"]) | changes
    status, _, body = call(api, lambda_context, "post_ticket_json", body=payload)
    assert status == 201, body
    return json.loads(body)


def test_a_customer_opens_a_ticket_and_gets_a_reference_and_private_link(api, lambda_context):
    status, headers, body = call(api, lambda_context, "post_ticket_json")

    created = json.loads(body)
    assert status == 201
    assert created["id"].startswith("HD-") and len(created["id"]) == 9
    assert (created["status"], created["priority"], created["department"], created["tier"]) == ("new", "high", "billing", "L1")
    assert created["first_response_due_at"].endswith("Z")
    assert headers["Location"] == created["links"]["self"]
    assert parse_qs(urlparse(created["links"]["self"]).query)["token"] == [created["access_token"]]


def test_the_private_link_shows_the_ticket_and_its_public_timeline(api, lambda_context):
    created = open_ticket(api, lambda_context)

    status, _, body = call(api, lambda_context, "get_ticket", ticket_id=created["id"], token=created["access_token"])

    ticket = json.loads(body)
    assert status == 200
    assert ticket["subject"] == "Refund for a double charge"
    assert ticket["resolution_due_at"] == created["resolution_due_at"]
    assert [e["type"] for e in ticket["timeline"]] == ["created"]
    assert "token_hash" not in body and created["access_token"] not in body


@pytest.mark.parametrize("token", ["", "not-the-token", None])
def test_a_wrong_or_missing_token_looks_exactly_like_a_missing_ticket(api, lambda_context, token):
    created = open_ticket(api, lambda_context)

    wrong = call(api, lambda_context, "get_ticket", ticket_id=created["id"], token=token if token is not None else "")
    missing = call(api, lambda_context, "get_ticket", ticket_id="HD-0000000", token=created["access_token"])

    assert wrong[0] == missing[0] == 404
    assert json.loads(wrong[2]) == json.loads(missing[2])


def test_a_retried_request_with_the_same_idempotency_key_returns_the_same_ticket(api, lambda_context):
    first = call(api, lambda_context, "post_ticket_json")
    retry = call(api, lambda_context, "post_ticket_json")

    assert first[0] == retry[0] == 201
    assert json.loads(first[2]) == json.loads(retry[2])
    from helpdesk.models import Ticket

    assert len(list(Ticket.scan(Ticket.sk == "TICKET"))) == 1


def test_the_same_idempotency_key_for_a_different_request_is_refused(api, lambda_context):
    call(api, lambda_context, "post_ticket_json")
    key = sample_event("api/post_ticket_json.json")["headers"]["Idempotency-Key"]

    status, _, body = call(api, lambda_context, "post_ticket_json", headers={"Idempotency-Key": key}, body={
        "email": "bob@example.com", "subject": "Other", "description": "Something else"})

    assert status == 422
    assert json.loads(body)["error"] == "idempotency_key_reused"


def test_without_an_idempotency_key_each_request_is_a_new_ticket(api, lambda_context):
    first, second = open_ticket(api, lambda_context), open_ticket(api, lambda_context)

    assert first["id"] != second["id"]


def test_the_customer_adds_a_message_and_sees_it_on_the_timeline(api, lambda_context):
    created = open_ticket(api, lambda_context)

    status, _, _ = call(api, lambda_context, "post_message", ticket_id=created["id"], token=created["access_token"])
    _, _, body = call(api, lambda_context, "get_ticket", ticket_id=created["id"], token=created["access_token"])

    assert status == 201
    timeline = json.loads(body)["timeline"]
    assert [e["type"] for e in timeline] == ["created", "message"]
    assert timeline[-1]["body"] == "Here is the invoice number: INV-2026-1142."


def test_a_message_with_a_wrong_token_is_not_accepted(api, lambda_context):
    created = open_ticket(api, lambda_context)

    status, _, _ = call(api, lambda_context, "post_message", ticket_id=created["id"], token="guess")

    assert status == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error", "fields"),
    [
        ("{not json", "application/json", 400, "malformed_json", []),
        ("subject=hi", "text/plain", 415, "unsupported_media_type", []),
        ({"subject": "Hi", "description": "x"}, "application/json", 422, "validation_failed", ["email"]),
        ({"email": "not-an-address", "subject": "Hi", "description": "x"}, "application/json", 422, "validation_failed", ["email"]),
        ({"email": "a@example.com", "subject": "x" * 201, "description": "x"}, "application/json", 422, "validation_failed", ["subject"]),
        ({"email": "a@example.com", "subject": "Hi", "description": "x" * 20_001}, "application/json", 422, "validation_failed", ["description"]),
        ({"email": "a@example.com", "subject": "Hi\x07", "description": "bell\x00"}, "application/json", 422, "validation_failed", ["subject", "description"]),
        ({"email": "a@example.com", "subject": "Two\nlines", "description": "x"}, "application/json", 422, "validation_failed", ["subject"]),
        ({"email": "a@example.com", "subject": "Hi", "description": "x", "category": "sales"}, "application/json", 422, "validation_failed", ["category"]),
        ({"email": "a@example.com", "subject": "Hi", "description": "x", "admin": True}, "application/json", 422, "validation_failed", ["admin"]),
        ("[1, 2]", "application/json", 422, "validation_failed", ["body"]),
        ({"email": "a@example.com", "subject": "Hi", "description": "x", "time_zone": "Mars/Olympus"}, "application/json", 422, "validation_failed", ["time_zone"]),
        ({"email": "a@example.com", "subject": "Hi", "description": "x" * 70_000}, "application/json", 413, "payload_too_large", []),
    ],
)
def test_bad_input_gets_a_clear_4xx_with_a_machine_readable_body(api, lambda_context, body, content_type, status, error, fields):
    got, headers, text = call(api, lambda_context, "post_ticket_json", body=body,
                              headers={"Content-Type": content_type})

    answer = json.loads(text)
    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    assert answer["error"] == error and answer["message"]
    assert sorted({d["field"] for d in answer["details"]}) == sorted(fields)


def test_text_is_stored_as_given_and_escaped_where_it_is_shown(api, lambda_context):
    created = open_ticket(api, lambda_context, subject="<script>alert(1)</script>", description="Tom & Jerry <b>")

    json_view = json.loads(call(api, lambda_context, "get_ticket", ticket_id=created["id"], token=created["access_token"])[2])
    _, _, page = call(api, lambda_context, "get_ticket", ticket_id=created["id"], token=created["access_token"],
                      headers={"Accept": "text/html"})

    assert json_view["subject"] == "<script>alert(1)</script>"
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "Tom &amp; Jerry &lt;b&gt;" in page


def test_the_html_form_posts_and_gets_a_confirmation_with_reference_and_link(api, lambda_context):
    status, headers, page = call(api, lambda_context, "post_ticket_form")

    assert status == 201 and headers["Content-Type"].startswith("text/html")
    assert 'id="reference">HD-' in page and 'id="private-link"' in page


def test_the_form_sent_twice_opens_one_ticket(api, lambda_context):
    """A double click, or a reload of the confirmation, posts the form's submission key again."""
    _, headers, form = call(api, lambda_context, "get_form")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
    fields = {"email": "ann@example.com", "subject": "Export fails", "description": "Stops at 50%.", "idempotency_key": key}
    form_post = {"Content-Type": "application/x-www-form-urlencoded"}

    pages = [call(api, lambda_context, "post_ticket_form", body=urlencode(fields), headers=form_post) for _ in range(2)]
    changed = call(api, lambda_context, "post_ticket_form", headers=form_post,
                   body=urlencode(fields | {"subject": "Another question"}))

    references = {re.search(r'id="reference">(HD-\w+)<', page).group(1) for status, _, page in pages if status == 201}
    assert len(references) == 1
    assert headers["Cache-Control"] == "no-store"  # back to the form fetches a fresh key
    assert changed[0] == 422 and "Reload the page" in changed[2]
    assert key not in call(api, lambda_context, "get_form")[2]


def test_the_ticket_page_shows_only_the_promises_that_still_matter(api, lambda_context):
    from helpdesk import tickets

    created = open_ticket(api, lambda_context)

    def page() -> str:
        status, _, body = call(api, lambda_context, "get_ticket", ticket_id=created["id"], token=created["access_token"],
                               headers={"Accept": "text/html"})
        assert status == 200
        return body

    waiting = page()
    tickets.reply(created["id"], "dana", "Which card did you use?")
    tickets.pause(created["id"], "dana")
    asked = page()
    tickets.resolve(created["id"], "dana", "Refunded.")
    resolved = page()

    assert 'data-status="new">Received: waiting for our team<' in waiting
    assert 'id="first-response-due"' in waiting and 'id="resolution-due"><time' in waiting
    assert 'data-status="pending_customer">Waiting for your reply<' in asked
    assert 'id="first-response"><time' in asked and "on hold until you reply" in asked
    assert 'data-status="resolved">Resolved<' in resolved and 'id="resolution-due"' not in resolved


@pytest.mark.parametrize("name, body, headers", [
    ("get_form", None, None),
    ("post_ticket_json", None, None),  # carries the access token
    ("post_ticket_form", None, None),
    ("get_ticket", None, None),  # a wrong token: the 404
    ("post_ticket_json", "{not json", None),
    ("post_ticket_json", "x" * (65 * 1024), None),  # the 413, answered before routing
])
def test_every_response_forbids_caching_framing_sniffing_and_referrers(api, lambda_context, name, body, headers):
    status, got, _ = call(api, lambda_context, name, body=body, headers=headers)

    assert status < 500
    assert got["Cache-Control"] == "no-store" and got["Referrer-Policy"] == "no-referrer"
    assert got["X-Content-Type-Options"] == "nosniff" and got["Strict-Transport-Security"].startswith("max-age=")
    policy = dict(part.strip().split(" ", 1) for part in got["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"


def test_a_message_from_the_ticket_page_redirects_back_to_the_page(api, lambda_context):
    created = open_ticket(api, lambda_context)

    status, headers, _ = call(api, lambda_context, "post_message", ticket_id=created["id"], token=created["access_token"],
                              body=urlencode({"body": "Thanks!"}),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert status == 303
    assert headers["Location"].endswith(f"/tickets/{created['id']}?token={created['access_token']}")


def test_the_support_form_and_the_openapi_document_are_served(api, lambda_context):
    form_status, _, form = call(api, lambda_context, "get_form")
    doc_status, _, doc = call(api, lambda_context, "get_openapi")

    assert form_status == 200 and 'name="email"' in form and 'name="category"' in form
    assert doc_status == 200
    paths = json.loads(doc)["paths"]
    assert {"/tickets", "/tickets/{ticket_id}", "/tickets/{ticket_id}/messages"} <= set(paths)


def test_an_unknown_route_is_a_json_404(api, lambda_context):
    event = sample_event("api/get_openapi.json") | {"path": "/admin", "resource": "/admin"}

    response = api.handler(event, lambda_context)

    assert response["statusCode"] == 404 and json.loads(response["body"])["error"] == "not_found"


def test_an_allowed_origin_may_call_the_api_from_a_browser(monkeypatch, aws, lambda_context):
    monkeypatch.setenv("HELPDESK_ALLOWED_ORIGINS", "https://www.example.com,https://shop.example.com")
    import importlib

    from functions.api import handler

    api = importlib.reload(handler)  # the resolver reads its CORS origins when the module loads
    try:
        _, headers, _ = call(api, lambda_context, "get_openapi", headers={"Origin": "https://shop.example.com"})
        _, stranger, _ = call(api, lambda_context, "get_openapi", headers={"Origin": "https://evil.example"})
    finally:
        monkeypatch.delenv("HELPDESK_ALLOWED_ORIGINS")
        importlib.reload(handler)

    assert headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "Access-Control-Allow-Origin" not in stranger


def test_a_resolved_ticket_can_be_rated_once_through_the_survey_form(api, lambda_context):
    from helpdesk import ledger, report, tickets

    created = open_ticket(api, lambda_context)
    early = call(api, lambda_context, "post_message", ticket_id=created["id"], token=created["access_token"],
                 body={"score": 5})
    tickets.resolve(created["id"], "agent:kim", "Refunded the second charge.")
    form = sample_event("api/get_ticket.json")
    form.update(path=f"/tickets/{created['id']}/survey", pathParameters={"ticket_id": created["id"]},
                queryStringParameters={"token": created["access_token"]},
                multiValueQueryStringParameters={"token": [created["access_token"]]})
    page = api.handler(form, lambda_context)

    def rate(score, token=created["access_token"]):
        event = form | {"httpMethod": "POST", "body": urlencode({"score": score, "comment": "Quick & kind"}),
                        "queryStringParameters": {"token": token}, "multiValueQueryStringParameters": {"token": [token]}}
        event["headers"] = {**form["headers"], "Content-Type": "application/x-www-form-urlencoded"}
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        return api.handler(event, lambda_context)

    assert early[0] == 422  # a message body is not a rating (and the ticket is not resolved yet)
    assert page["statusCode"] == 200 and 'id="survey-form"' in page["body"]
    assert rate(4, token="guess")["statusCode"] == 404
    assert rate(9)["statusCode"] == 422
    assert rate(2)["statusCode"] == 201 and rate(4)["statusCode"] == 201
    ticket = ledger.load(created["id"])
    facts = report.facts(ticket, tickets.timeline(created["id"], public_only=False))
    assert facts.csat == 4.0  # the customer's latest rating counts
