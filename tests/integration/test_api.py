"""The public API on moto, driven with the sample API Gateway events in events/api/."""

import base64
import json
import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from tests.conftest import sample_event
from tests.integration.conftest import captured_logs


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


def request(api, lambda_context, method, path, *, body=None, headers=None, query=None, encoded=False):
    """Any request, as API Gateway's proxy event (``body`` bytes travel base64-encoded, as API Gateway
    sends a binary body; ``encoded``: ``body`` is the base64 text as it came)."""
    event = sample_event("api/get_openapi.json")
    headers = event["headers"] | (headers or {})
    if isinstance(body, bytes):
        body, encoded = base64.b64encode(body).decode(), True
    event.update(httpMethod=method, path=path, resource="/{proxy+}", pathParameters={"proxy": path[1:]},
                 headers=headers, multiValueHeaders={k: [v] for k, v in headers.items()},
                 queryStringParameters=query, multiValueQueryStringParameters={k: [v] for k, v in (query or {}).items()} or None,
                 body=body, isBase64Encoded=encoded)
    event["requestContext"] |= {"httpMethod": method, "resourcePath": "/{proxy+}", "path": "/prod" + path}
    response = api.handler(event, lambda_context)
    got = {k: v[0] for k, v in (response.get("multiValueHeaders") or {}).items()} | (response.get("headers") or {})
    return response["statusCode"], got, response["body"]


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


# -- hostile and careless requests: every one a documented 4xx, never a 5xx ------------------------

def documented_statuses(api, method: str, path: str) -> set[int]:
    """The statuses /openapi.json documents for the route that serves ``path``."""
    paths = api.openapi_document()["paths"]
    template = next(t for t in paths if re.fullmatch(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(t)), path))
    return {int(status) for status in paths[template][method.lower()]["responses"]}


JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
UNREADABLE_BODIES = {  # name: (body, headers, status, error)
    "multipart without a boundary": ("{}", {"Content-Type": "multipart/form-data"}, 415, "unsupported_media_type"),
    "multipart with a boundary": ('--b\r\nContent-Disposition: form-data; name="body"\r\n\r\nhi\r\n--b--\r\n',
                                  {"Content-Type": "multipart/form-data; boundary=b"}, 415, "unsupported_media_type"),
    "text/plain": ("hello", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    "JSON in latin-1": ('{"body": "caf\\u00e9"}', {"Content-Type": "application/json; charset=latin-1"}, 415,
                        "unsupported_media_type"),
    "an unknown charset": ("{}", {"Content-Type": "application/json; charset=klingon"}, 415, "unsupported_media_type"),
    "invalid UTF-8 (base64, as API Gateway sends it)": (b'{"body": "\xff\xfe"}', JSON, 400, "malformed_json"),
    "invalid UTF-8 with an Idempotency-Key": (b'{"body": "\xc3("}', JSON | {"Idempotency-Key": "k-1"}, 400,
                                              "malformed_json"),
    "a lone surrogate in the event's text": ('{"body": "\udcff"}', JSON, 400, "malformed_body"),
    "30,000 [": ("[" * 30_000, JSON, 400, "malformed_json"),
    "objects 33 deep": ('{"a":' * 33 + "1" + "}" * 33, JSON, 400, "malformed_json"),
    "a 5,000-digit number": ('{"score": ' + "9" * 5_000 + "}", JSON, 400, "malformed_json"),
    "a form with a broken escape": ("body=%zz&score=5", FORM, 400, "malformed_form"),
    "a form escaping invalid UTF-8": ("body=%ff%fe&score=5", FORM, 400, "malformed_form"),
    "a form in invalid UTF-8": (b"body=\xff&score=5", FORM, 400, "malformed_form"),
    "over 64 KB": ('{"body": "' + "x" * 70_000 + '"}', JSON, 413, "payload_too_large"),
}


@pytest.fixture
def ticket(api, lambda_context):
    """An open ticket: (id, access token)."""
    created = open_ticket(api, lambda_context)
    return created["id"], created["access_token"]


def post_routes(ticket) -> list[str]:
    ticket_id, token = ticket
    return ["/tickets", f"/tickets/{ticket_id}/messages?token={token}", f"/tickets/{ticket_id}/survey?token={token}"]


@pytest.mark.parametrize("case", UNREADABLE_BODIES)
def test_a_body_the_api_cannot_read_is_refused_with_a_documented_4xx_on_every_post_route(api, lambda_context, ticket, case):
    body, headers, status, error = UNREADABLE_BODIES[case]
    for route in post_routes(ticket):
        path, _, query = route.partition("?")

        got, got_headers, text = request(api, lambda_context, "POST", path, body=body, headers=headers,
                                         query={"token": ticket[1]} if query else None)

        assert got == status, route
        if headers is FORM:  # a form post is a browser's: the error is a page
            assert got_headers["Content-Type"].startswith("text/html"), route
        else:
            assert got_headers["Content-Type"] == "application/json" and json.loads(text)["error"] == error, route
        assert got_headers["Cache-Control"] == "no-store"
        assert got in documented_statuses(api, "POST", path), route


def test_a_body_marked_base64_that_is_not_is_refused(api, lambda_context):
    status, _, text = request(api, lambda_context, "POST", "/tickets", body="%%%not-base64%%%", headers=JSON,
                              encoded=True)

    assert (status, json.loads(text)["error"]) == (400, "malformed_body")


def test_a_browser_sending_an_unreadable_body_gets_a_page(api, lambda_context):
    status, headers, page = request(api, lambda_context, "POST", "/tickets", body="name=%zz",
                                    headers=FORM | {"Accept": "text/html"})

    assert status == 400 and headers["Content-Type"].startswith("text/html")
    assert "broken percent escape" in page


@pytest.mark.parametrize("content_type", ["Application/JSON", 'application/json; charset="UTF-8"',
                                          "application/json;charset=utf8", "application/json; charset=us-ascii"])
def test_json_in_any_spelling_of_its_media_type_and_utf8_is_read(api, lambda_context, content_type):
    body = sample_event("api/post_ticket_json.json")["body"]

    status, _, text = request(api, lambda_context, "POST", "/tickets", body=body, headers={"Content-Type": content_type})

    assert status == 201, text


def test_a_utf8_body_sent_base64_encoded_is_read(api, lambda_context):
    body = json.dumps({"email": "jo@example.com", "subject": "Café", "description": "Déjà vu"}, ensure_ascii=False)

    status, _, text = request(api, lambda_context, "POST", "/tickets", body=body.encode(), headers=JSON)

    assert status == 201, text


HOSTILE_REQUESTS = {  # name: (method, path, query, headers, body, status)
    "a time zone that is a folder of zones": ("POST", "/tickets", None, JSON, json.dumps(
        {"email": "a@example.com", "subject": "Hi", "description": "x", "time_zone": "America"}), 422),
    "a phone number in Arabic-Indic digits": ("POST", "/tickets", None, JSON, json.dumps(
        {"email": "a@example.com", "subject": "Hi", "description": "x", "phone": "+1\u0660\u0661\u0662\u0663\u0664\u0665\u0666"}), 422),
    "a time zone that is an empty object": ("POST", "/tickets", None, JSON, json.dumps(
        {"email": "a@example.com", "subject": "Hi", "description": "x", "time_zone": {}}), 422),
    "a ticket id that is no reference": ("GET", "/tickets/%C2%81I%F3%B9", {"token": "x"}, {}, None, 422),
    "a body that is a string": ("POST", "/tickets", None, JSON, '"hello"', 422),
    "a body that is null": ("POST", "/tickets", None, JSON, "null", 422),
    "fields that are objects": ("POST", "/tickets", None, JSON, '{"email": {"a": [1]}, "subject": ["x"], "description": 1}', 422),
    "two Idempotency-Keys": ("POST", "/tickets", None, JSON | {"Idempotency-Key": ["a", "b"]},
                             sample_event("api/post_ticket_json.json")["body"], 422),
    "a path traversal as the ticket id": ("GET", "/tickets/..%2F..%2Fetc%2Fpasswd", {"token": "x"}, {}, None, 422),
    "a ticket id of 5,000 characters": ("GET", "/tickets/" + "A" * 5_000, {"token": "x"}, {}, None, 422),
    "a token of 9,000 characters": ("GET", "/tickets/HD-7KQ2M9", {"token": "a" * 9_000}, {}, None, 422),
    "two tokens": ("GET", "/tickets/HD-7KQ2M9", {"token": ["a", "b"]}, {}, None, 422),
    "a cursor that is garbage": ("GET", "/tickets/{id}", {"token": "{token}", "cursor": "!!!"}, {}, None, 422),
    "a cursor naming the ticket item": ("GET", "/tickets/{id}", {
        "token": "{token}", "cursor": base64.urlsafe_b64encode(b"TICKET").decode()}, {}, None, 400),
    "an unknown route": ("GET", "/admin", None, {}, None, 404),
    "a method the route does not answer": ("DELETE", "/tickets/{id}", {"token": "{token}"}, {}, None, 405),
}


@pytest.mark.parametrize("case", HOSTILE_REQUESTS)
def test_hostile_requests_get_a_4xx_in_the_error_shape(api, lambda_context, ticket, case):
    method, path, query, headers, body, status = HOSTILE_REQUESTS[case]
    ticket_id, token = ticket
    path = path.replace("{id}", ticket_id)
    query = {k: v.replace("{token}", token) if isinstance(v, str) else v for k, v in (query or {}).items()} or None
    event = sample_event("api/get_openapi.json")
    single = {k: v[-1] if isinstance(v, list) else v for k, v in headers.items()}
    event.update(httpMethod=method, path=path, body=body, headers=event["headers"] | single,
                 multiValueHeaders={k: [v] for k, v in event["headers"].items()} | {
                     k: v if isinstance(v, list) else [v] for k, v in headers.items()},
                 queryStringParameters={k: v[-1] if isinstance(v, list) else v for k, v in (query or {}).items()} or None,
                 multiValueQueryStringParameters={k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()} or None)

    response = api.handler(event, lambda_context)

    assert response["statusCode"] == status, response["body"]
    assert json.loads(response["body"])["error"]


def test_an_unforeseen_error_is_a_500_in_the_error_shape_logged_with_the_correlation_id(api, lambda_context, monkeypatch):
    from helpdesk import tickets

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(tickets, "open_ticket", broken)
    event = sample_event("api/post_ticket_json.json")
    event["headers"].pop("Idempotency-Key")

    with captured_logs(api.logger) as logs:
        response = api.handler(event, lambda_context)

    assert response["statusCode"] == 500
    assert json.loads(response["body"]) == {"error": "internal_error", "details": [],
                                            "message": "Something went wrong on our side; please try again later."}
    assert "the disk is on fire" not in response["body"]
    (line,) = [json.loads(line) for line in logs.getvalue().splitlines() if "answered 500" in line]
    assert line["correlation_id"] == event["requestContext"]["requestId"]
    assert "the disk is on fire" in line["exception"]


def test_a_route_answers_head_as_get_and_other_methods_405_with_what_it_allows(api, lambda_context, ticket):
    ticket_id, token = ticket

    head = request(api, lambda_context, "HEAD", f"/tickets/{ticket_id}", query={"token": token})
    put = request(api, lambda_context, "PUT", f"/tickets/{ticket_id}", query={"token": token})
    options = request(api, lambda_context, "OPTIONS", "/tickets")

    assert head[0] == 200
    assert put[0] == 405 and put[1]["Allow"] == "GET, HEAD, OPTIONS"
    assert json.loads(put[2])["error"] == "method_not_allowed"
    assert options[0] == 204 and options[1]["Allow"] == "OPTIONS, POST"


def test_every_time_the_api_answers_is_utc_ending_in_z(api, lambda_context, ticket):
    ticket_id, token = ticket
    stamp = re.compile(r'"(\d{4}-\d\d-\d\dT[^"]*)"')

    _, _, added = call(api, lambda_context, "post_message", ticket_id=ticket_id, token=token)
    _, _, view = call(api, lambda_context, "get_ticket", ticket_id=ticket_id, token=token)
    _, _, created = call(api, lambda_context, "post_ticket_json", body=json.loads(
        sample_event("api/post_ticket_json.json")["body"]))

    times = stamp.findall(added) + stamp.findall(view) + stamp.findall(created)
    assert len(times) >= 8
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times), times


def test_the_one_serialiser_writes_any_time_in_z(api):
    from datetime import datetime, timedelta, timezone

    from functions.api.schemas import MessageAdded

    berlin = datetime(2026, 11, 24, 17, 0, 0, 500, tzinfo=timezone(timedelta(hours=1)))

    assert json.loads(api._dumps({"at": berlin})) == {"at": "2026-11-24T16:00:00Z"}
    assert json.loads(api._dumps(MessageAdded(type="message", at="2026-11-24T17:00:00+01:00"))) == {
        "type": "message", "at": "2026-11-24T16:00:00Z"}


# -- the OpenAPI document: every route, every status it can answer ----------------------------------

def test_the_openapi_document_lists_every_route_with_every_status_it_can_answer(api, lambda_context):
    from infra.gateway_responses import ALLOWED_METHODS

    _, _, text = call(api, lambda_context, "get_openapi")
    document = json.loads(text)
    operations = {(method.upper(), path): operation for path, item in document["paths"].items()
                  for method, operation in item.items()}

    customers = {op for op in operations if not op[1].startswith("/agent/")}
    assert customers == {("GET", "/"), ("POST", "/tickets"), ("GET", "/tickets/{ticket_id}"),
                         ("POST", "/tickets/{ticket_id}/messages"), ("GET", "/tickets/{ticket_id}/survey"),
                         ("POST", "/tickets/{ticket_id}/survey"), ("GET", "/openapi.json")}
    assert len(operations) - len(customers) == 21  # the agent API (tests/integration/test_agent_api.py)
    assert {m for m, _ in operations} | {"HEAD", "OPTIONS"} == set(ALLOWED_METHODS)  # what the gateway's 405 says
    for (method, path), operation in operations.items():
        statuses = {int(s) for s in operation["responses"]}
        expected = {429, 500}
        expected |= {400, 413, 415, 422} if method in ("POST", "PUT") else set()
        expected |= {404, 422} if "{ticket_id}" in path else set()
        if path.startswith("/agent/"):  # behind the Cognito authorizer; changes carry If-Match
            expected |= {401, 403, 404}
            expected |= {409, 428} if method == "POST" and not path.endswith("/presence") else set()
            assert operation["security"] == [{"agentIdToken": []}], path
        else:
            assert "security" not in operation, path
        assert expected <= statuses, (method, path)
        assert any(200 <= s < 300 for s in statuses), (method, path)
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in document["components"]["schemas"]


# -- a wrong token and a missing ticket: the same work ----------------------------------------------

def dynamodb_calls(monkeypatch) -> list[tuple[str, tuple]]:
    """Every AWS call from here on: (operation, (parameter names, ProjectionExpression)), the token key's
    read included (it is cached: the tests' first request read it)."""
    import botocore.client

    calls: list[tuple[str, tuple]] = []
    real = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        calls.append((operation, (tuple(sorted(params)), params.get("ProjectionExpression"))))
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


@pytest.mark.parametrize("route", ["get_ticket", "post_message", "post_survey"])
def test_a_wrong_token_and_a_missing_ticket_do_the_same_work_and_read_nothing(api, lambda_context, ticket, monkeypatch, route):
    import secrets

    from helpdesk import tickets

    ticket_id, token = ticket
    compared = []
    real_compare = secrets.compare_digest
    monkeypatch.setattr(tickets.secrets, "compare_digest", lambda a, b: compared.append(len(b)) or real_compare(a, b))
    calls = dynamodb_calls(monkeypatch)

    def attempt(ticket_id, token):
        if route == "post_survey":
            return request(api, lambda_context, "POST", f"/tickets/{ticket_id}/survey", query={"token": token},
                           body='{"score": 5}', headers=JSON)
        return call(api, lambda_context, route, ticket_id=ticket_id, token=token)

    wrong = attempt(ticket_id, "X" * 43)
    wrong_work, calls[:], compared[:] = (list(calls), list(compared)), [], []
    missing = attempt("HD-000000", token)

    assert wrong[0] == missing[0] == 404 and wrong[2] == missing[2]
    assert wrong_work == (calls, compared) == ([], [43])  # no AWS call; one constant-time comparison each


def test_the_right_token_reads_the_ticket_once_it_matched(api, lambda_context, ticket, monkeypatch):
    ticket_id, token = ticket
    calls = dynamodb_calls(monkeypatch)

    status, _, _ = call(api, lambda_context, "get_ticket", ticket_id=ticket_id, token=token)

    assert status == 200
    assert [operation for operation, _ in calls] == ["GetItem", "Query"]  # the ticket, then a page of its timeline


# -- the timeline, a page at a time ----------------------------------------------------------------

def add_entries(ticket_id: str, count: int, *, body="Message {n}", public=True, start=None):
    """Timeline entries written straight to the table (one a minute after ``start``), as the use cases would."""
    from datetime import timedelta

    from helpdesk import clock, ledger

    ticket = ledger.load(ticket_id)
    start = start or clock.now() + timedelta(minutes=1)
    for n in range(count):
        ledger.event(ticket, "message" if public else "note", "customer" if public else "agent:kim",
                     body=body.format(n=n), public=public, at=start + timedelta(minutes=n)).save()


def pages_of(api, lambda_context, ticket_id, token) -> list[dict]:
    pages, cursor = [], None
    while True:
        query = {"token": token} | ({"cursor": cursor} if cursor else {})
        status, _, text = request(api, lambda_context, "GET", f"/tickets/{ticket_id}", query=query)
        assert status == 200, text
        pages.append(json.loads(text))
        cursor = pages[-1]["next"]
        if not cursor:
            return pages


def test_a_long_timeline_comes_latest_first_a_page_at_a_time_each_in_reading_order(api, lambda_context, ticket):
    from helpdesk import tickets

    ticket_id, token = ticket
    add_entries(ticket_id, 120)
    add_entries(ticket_id, 30, body="internal {n}", public=False)

    pages = pages_of(api, lambda_context, ticket_id, token)

    assert [len(p["timeline"]) for p in pages] == [tickets.PAGE_ENTRIES, tickets.PAGE_ENTRIES, 21]
    assert pages[0]["timeline"][-1]["body"] == "Message 119"  # the latest entry closes the first page
    everything = [e for p in reversed(pages) for e in p["timeline"]]
    assert [e["body"] for e in everything] == [created := everything[0]["body"]] + [f"Message {n}" for n in range(120)]
    assert created == "I was double charged for my November invoice."
    assert all(e["at"] <= f["at"] for e, f in zip(everything, everything[1:], strict=False))


def test_a_page_holds_at_most_its_share_of_text(api, lambda_context, ticket):
    from helpdesk import tickets

    ticket_id, token = ticket
    add_entries(ticket_id, 25, body="{n}" + "x" * (tickets.MESSAGE_MAX - 3))

    pages = pages_of(api, lambda_context, ticket_id, token)

    assert [len(p["timeline"]) for p in pages] == [10, 10, 6]
    assert all(sum(len(e["body"]) for e in p["timeline"]) <= tickets.PAGE_CHARACTERS for p in pages)


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
@pytest.mark.parametrize("character", ["\U0001F600", '"', "<", "\u00e9"])
def test_the_page_of_the_largest_ticket_stays_well_under_lambdas_6_mb(api, lambda_context, ticket, accept, character):
    """330 messages of 20,000 characters (6.3 MiB) was a ticket no page could show: any page now is a
    few MB at most, in the characters that cost most once escaped (JSON, HTML, then the Lambda
    runtime's own JSON envelope)."""
    from helpdesk import tickets

    ticket_id, token = ticket
    add_entries(ticket_id, 330, body="{n} " + character * (tickets.MESSAGE_MAX - 4))

    event = sample_event("api/get_ticket.json")
    event.update(path=f"/tickets/{ticket_id}", queryStringParameters={"token": token},
                 multiValueQueryStringParameters={"token": [token]})
    event["headers"]["Accept"] = accept
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    response = api.handler(event, lambda_context)

    assert response["statusCode"] == 200
    assert len(json.dumps(response).encode()) < 3 * 1024 * 1024  # what the runtime sends back: Lambda allows 6 MB


def test_the_ticket_page_shows_the_latest_entries_and_links_to_earlier_ones(api, lambda_context, ticket):
    import html

    ticket_id, token = ticket
    add_entries(ticket_id, 60)

    def page(query):
        status, _, text = request(api, lambda_context, "GET", f"/tickets/{ticket_id}", query={"token": token} | query,
                                  headers={"Accept": "text/html"})
        assert status == 200
        return text

    latest = page({})
    earlier_link = html.unescape(re.search(r'id="earlier" href="([^"]+)"', latest).group(1))
    earlier = page({"cursor": parse_qs(urlparse(earlier_link).query)["cursor"][0]})

    assert "Message 59" in latest and "Message 9<" not in latest and 'id="latest"' not in latest
    assert "Message 9<" in earlier and "Message 59" not in earlier
    assert 'id="earlier"' not in earlier and 'id="latest"' in earlier


def test_a_cursor_of_another_ticket_only_moves_within_this_one(api, lambda_context, ticket):
    ticket_id, token = ticket
    other = open_ticket(api, lambda_context, subject="Someone else's")
    add_entries(other["id"], 60, body="secret {n}")
    their_cursor = pages_of(api, lambda_context, other["id"], other["access_token"])[0]["next"]

    status, _, text = request(api, lambda_context, "GET", f"/tickets/{ticket_id}",
                              query={"token": token, "cursor": their_cursor})

    assert status == 200 and "secret" not in text


# -- the survey from a browser ---------------------------------------------------------------------

def survey(api, lambda_context, ticket_id, token, method="GET", body=None):
    return request(api, lambda_context, method, f"/tickets/{ticket_id}/survey", query={"token": token}, body=body,
                   headers=FORM | {"Accept": "text/html"} if body is not None else {"Accept": "text/html"})


def test_the_survey_is_offered_only_once_the_ticket_is_resolved(api, lambda_context, ticket):
    from helpdesk import tickets

    ticket_id, token = ticket

    before = survey(api, lambda_context, ticket_id, token)
    tickets.resolve(ticket_id, "agent:kim", "Refunded.")
    after = survey(api, lambda_context, ticket_id, token)

    assert before[0] == 200 and 'id="not-yet"' in before[2] and "<form" not in before[2]
    assert after[0] == 200 and 'id="survey-form"' in after[2] and 'type="radio"' in after[2]


@pytest.mark.parametrize("comment", ["", "   "])
def test_an_empty_optional_comment_is_no_comment(api, lambda_context, ticket, comment):
    from helpdesk import tickets

    ticket_id, token = ticket
    tickets.resolve(ticket_id, "agent:kim", "Refunded.")

    status, _, page = survey(api, lambda_context, ticket_id, token, "POST", urlencode({"score": 5, "comment": comment}))

    assert status == 201 and "Thank you" in page
    (rating,) = [e for e in tickets.timeline(ticket_id, public_only=False) if e.type == "survey"]
    assert rating.body is None and rating.data["score"] == 5
