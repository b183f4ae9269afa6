"""`python -m infra.local` (`make dev`) as a developer uses it: start, open a ticket, look, Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket

from tests.e2e.local_stack import LocalStackProcess, assert_clean_exit, http

TICKET = {
    "name": "Ann Example",
    "email": "ann@example.com",
    "subject": "Refund for a double charge",
    "description": "I was double charged for my November invoice.",
    "category": "billing",
}


def test_the_local_stack_serves_the_api_and_the_console_and_stops_cleanly_on_ctrl_c(tmp_path):
    # Given the local stack, started as `make dev` starts it, on free ports
    stack = LocalStackProcess(tmp_path / "output.log").start()
    try:
        ready_after = stack.wait_ready()

        # When a customer opens a ticket with JSON
        status, headers, body = http("POST", stack.api_url + "tickets", json_body=TICKET)

        # Then it is created, and its private link points at the local stack
        created = json.loads(body)
        assert status == 201, body
        assert created["id"].startswith("HD-")
        assert created["links"]["self"].startswith(stack.api_url + "tickets/" + created["id"] + "?token=")
        assert headers["Location"] == created["links"]["self"]
        assert headers["Content-Type"].startswith("application/json")
        assert headers["x-amzn-RequestId"]  # API Gateway's own headers, as deployed

        # And the private link reads it back, and only with the token
        status, _, body = http("GET", created["links"]["self"])
        assert status == 200, body
        ticket = json.loads(body)
        assert (ticket["id"], ticket["subject"], ticket["status"]) == (created["id"], TICKET["subject"], "new")
        assert [event["type"] for event in ticket["timeline"]] == ["created"]
        status, _, _ = http("GET", f"{stack.api_url}tickets/{created['id']}?token=not-the-token")
        assert status == 404

        # And the console lists it, never with its token hash; the outbox holds at most its acknowledgement
        status, _, body = http("GET", stack.console_url + "tickets")
        assert status == 200
        listed = json.loads(body)
        assert [t["ticket_id"] for t in listed] == [created["id"]]
        assert "token_hash" not in body and created["access_token"] not in body
        sent = json.loads(http("GET", stack.console_url + "outbox")[2])  # the pumps may have delivered it already
        assert [(m["ticket_id"], m["event_type"]) for m in sent] in ([], [(created["id"], "created")])
        status, _, index = http("GET", stack.console_url)
        assert status == 200 and 'href="/tickets"' in index and 'href="/outbox"' in index
    finally:
        # When the developer presses Ctrl-C
        code = stack.stop(signal.SIGINT)

    # Then the servers stop and the process exits 0 without a traceback
    assert_clean_exit(stack, code)
    assert stack.api_url in stack.output and stack.console_url in stack.output  # the URLs were printed
    print(f"local stack ready after {ready_after:.2f} s")


def test_a_busy_port_is_a_one_line_error_not_a_traceback(tmp_path):
    # Given something already listens on the API port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        stack = LocalStackProcess(tmp_path / "output.log", api_port=squatter.getsockname()[1]).start()

        # When the local stack starts
        code = stack.process.wait(timeout=20)

    # Then it says which port, and exits 1
    assert code == 1, stack.output
    assert "Traceback" not in stack.output
    assert f"127.0.0.1:{stack.api_port}" in stack.output and "HELPDESK_PORT" in stack.output
