"""What one address can make the web form do within an hour (helpdesk.limits), answered as 429 in the
API's error shape with Retry-After, through the handler with API Gateway events."""

import json
from datetime import timedelta

import pytest

from helpdesk import clock, intake, tickets
from helpdesk.settings import Env
from tests.conftest import sample_event
from tests.integration.conftest import TUESDAY
from tests.integration.test_api import call

VICTIM = "victim@example.com"


@pytest.fixture
def api(aws, monkeypatch):
    from functions.api import handler

    monkeypatch.setenv(Env.NEW_TICKETS_PER_HOUR, "3")
    with clock.frozen(TUESDAY + timedelta(minutes=20)):
        yield handler


def open_for(api, lambda_context, email=VICTIM, **changes):
    payload = json.loads(sample_event("api/post_ticket_json.json")["body"]) | {"email": email} | changes
    status, headers, body = call(api, lambda_context, "post_ticket_json", body=payload)
    return status, headers, json.loads(body)


def test_requests_in_one_address_s_name_are_limited_per_hour_with_a_429(api, lambda_context):
    # Given three requests opened in a victim's name within the hour (each sends them an acknowledgement)
    assert [open_for(api, lambda_context)[0] for _ in range(3)] == [201, 201, 201]

    # When a fourth is sent
    status, headers, body = open_for(api, lambda_context)

    # Then it is refused in the API's error shape, saying when to come back (the next clock hour)
    assert status == 429
    assert body["error"] == "rate_limited" and "within the hour" in body["message"] and body["details"] == []
    assert headers["Retry-After"] == str(40 * 60)
    # ...while requests for other addresses still open
    assert open_for(api, lambda_context, email="someone.else@example.com")[0] == 201


def test_email_and_the_web_form_share_one_limit_per_address(api, lambda_context):
    # Given two tickets opened by email for an address and one on the web form
    for _ in range(2):
        tickets.open_ticket(tickets.NewTicket(channel=intake.CHANNEL, customer_email=VICTIM, subject="Hi",
                                              description="By email."))
    assert open_for(api, lambda_context)[0] == 201

    # When the form is used again for it, Then it is refused: the address had its three this hour
    assert open_for(api, lambda_context)[0] == 429


def test_a_phone_number_gets_no_more_texts_than_an_address_gets_emails(api, lambda_context):
    # Given three requests for one phone number under three addresses
    statuses = [open_for(api, lambda_context, email=f"c{n}@example.com", phone="+4915112345678")[0] for n in range(4)]

    # Then the fourth is refused: every acknowledgement would also be a text to that number
    assert statuses == [201, 201, 201, 429]


def message(api, lambda_context, created, body="One more detail."):
    status, headers, answer = call(api, lambda_context, "post_message", ticket_id=created["id"],
                                   token=created["access_token"], body={"body": body})
    return status, headers, json.loads(answer or "{}")


def test_a_ticket_takes_so_many_customer_messages_then_answers_429(api, lambda_context, monkeypatch):
    monkeypatch.setenv(Env.MESSAGES_PER_TICKET, "3")
    _, _, created = open_for(api, lambda_context, email="ann@example.com")

    # When the customer writes three messages, then a fourth
    statuses = [message(api, lambda_context, created)[0] for _ in range(4)]

    # Then the ticket took three, and refused the fourth in the API's error shape
    assert statuses == [201, 201, 201, 429]
    status, headers, body = message(api, lambda_context, created)
    assert body["error"] == "rate_limited" and "3 messages" in body["message"] and "Retry-After" not in headers
    timeline = json.loads(call(api, lambda_context, "get_ticket", ticket_id=created["id"],
                               token=created["access_token"])[2])["timeline"]
    assert [e["type"] for e in timeline] == ["created", "message", "message", "message"]


def test_one_sender_adds_so_many_messages_an_hour_across_their_tickets(api, lambda_context, monkeypatch):
    monkeypatch.setenv(Env.MESSAGES_PER_HOUR, "2")
    first, second = (open_for(api, lambda_context, email="ann@example.com")[2] for _ in range(2))

    statuses = [message(api, lambda_context, ticket)[0] for ticket in (first, second, first)]

    assert statuses == [201, 201, 429]
    # ...and the next hour they may write again
    with clock.frozen(TUESDAY + timedelta(hours=1)):
        assert message(api, lambda_context, first)[0] == 201
