"""The escalation engine end to end on the local stack (``python -m infra.local`` in a subprocess), with
SLA time compressed (``HELPDESK_TIME_SCALE``): a ticket opened through the API climbs L1 -> L2 -> L3 ->
management on its own (the real ASL under moto's executor), and the outbox holds what the customer and
the teams were sent (stream pump -> publisher -> SNS -> delivery pump / team mailboxes)."""

from __future__ import annotations

import json

import pytest

from infra.local.testing import wait_for
from tests.e2e.local_stack import console, http, running, settled

TIME_SCALE = 36_000  # ten hours of SLA per second: every step of the ladder is due within a second or two


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory):
    with running(tmp_path_factory.mktemp("local-stack") / "output.log", HELPDESK_TIME_SCALE=str(TIME_SCALE)) as stack:
        yield stack


def test_a_ticket_nobody_answers_climbs_to_management_and_everyone_is_told(fast_stack):
    # Given a ticket opened through the API (billing, normal priority: starts at L1)
    status, _, body = http("POST", fast_stack.api_url + "tickets", json_body={
        "name": "Ana Lima", "email": "ana@example.com", "subject": "Invoice address",
        "description": "Please change the address on my invoices.", "category": "billing"})
    assert status == 201, body
    opened = json.loads(body)
    tid = opened["id"]
    assert (opened["tier"], opened["department"]) == ("L1", "billing")

    # When nobody answers: the chain escalates at every deadline until management has it
    def mine() -> dict | None:
        return next((t for t in console(fast_stack, "tickets") if t["ticket_id"] == tid), None)

    ticket = wait_for(lambda: (t := mine()) and t["tier"] == "management" and t.get("breached") and t,
                      what=f"{tid} to reach management")

    # Then the customer got the acknowledgement and one email per climb, the billing team an alert per
    # climb, management the last one (the SLA breach); nothing twice. (The SLA sweep's ticker may add
    # `at_risk` warnings for the team: they are the sweep's business, not this test's.)
    def sent() -> list[dict]:
        return [m for m in console(fast_stack, "outbox") if m["ticket_id"] == tid and m["event_type"] != "at_risk"]

    settled(fast_stack)  # everything written so far is delivered: a duplicate would show now
    messages = sent()
    by = sorted((m["channel"], m["recipient"], m["event_type"]) for m in messages)
    assert by == sorted([("email", "ana@example.com", "created")] + [("email", "ana@example.com", "escalated")] * 3
                        + [("team-alert", "team:billing", "escalated")] * 3
                        + [("team-alert", "team:management", "escalated")]), json.dumps(messages, indent=1)
    assert ticket["escalation_count"] == 3 and ticket["status"] in ("new", "open")
    management = next(m for m in messages if m["recipient"] == "team:management")
    assert management["subject"].startswith(f"[{tid}] Escalated from L3 to management")
    assert "SLA breached" in management["subject"] and "Reason:" in management["body"]
    first = next(m for m in messages if m["event_type"] == "created")
    assert first["subject"] == f"[{tid}] Invoice address" and "We have received your request" in first["body"]

    # And a person can read it all on the console's outbox page
    status, headers, page = http("GET", fast_stack.console_url + "outbox.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert page.count(f"[{tid}]") >= len(messages) and "team:management" in page


def test_the_customer_sees_the_climb_on_their_ticket_page(fast_stack):
    status, _, body = http("POST", fast_stack.api_url + "tickets", json_body={
        "name": "Ben", "email": "ben@example.com", "subject": "Password reset",
        "description": "The reset link never arrives.", "category": "account"})
    assert status == 201, body
    opened = json.loads(body)

    def view() -> dict:
        status, _, text = http("GET", f"{fast_stack.api_url}tickets/{opened['id']}?token={opened['access_token']}",
                               headers={"Accept": "application/json"})
        assert status == 200, text
        return json.loads(text)

    ticket = wait_for(lambda: (t := view()).get("tier") == "management" and t, what="the customer's view to show management")
    assert [e["type"] for e in ticket["timeline"]] == ["created", "escalated", "escalated", "escalated"]
    assert {e["actor"] for e in ticket["timeline"][1:]} == {"system"}
