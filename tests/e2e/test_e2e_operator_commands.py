"""The operator's commands against ``make dev``: moto lives inside the dev process, so ``--local`` goes
through the console. The README's commands, run as a person runs them (a second process), and a
delivery that fails every retry shown and replayed through the console, sent once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from tests.e2e.local_stack import ROOT, http, in_process

TICKET = {"name": "Ann Example", "email": "ann@example.com", "subject": "Refund for a double charge",
          "description": "I was double charged for my November invoice.", "category": "billing"}
DEADLINE_S = 60


def command(*args: str) -> subprocess.CompletedProcess:
    """``python -m <args>`` as ``make report`` / ``make dlq`` run it, in a second process."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT / "layers"), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_make_report_against_make_dev_prints_the_table_of_its_tickets(local_stack):
    # Given make dev with a ticket opened today
    status, _, body = http("POST", local_stack.api_url + "tickets", json_body=TICKET)
    assert status == 201, body

    # When the operator runs the README's command against it
    done = command("helpdesk.report", "--local", local_stack.console_url, "--by", "day,priority")

    # Then the table shows the ticket, and nothing tried to reach AWS
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["day", "priority", "department"]
    [today] = [line for line in lines[2:] if not line.startswith("*")]
    day, priority, department, tier, opened = today.split()[:5]
    assert (priority, department, tier, opened) == (json.loads(body)["priority"], "*", "*", "1")
    assert "Traceback" not in done.stderr


def test_the_dead_letter_queues_of_make_dev_are_empty_when_nothing_failed(local_stack):
    done = command("helpdesk.replay", "publisher", "--show", "--local", local_stack.console_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "publisher: no failed message waiting"
    status, _, body = http("GET", local_stack.console_url + "dlq")
    assert status == 200 and {q: v["messages"] for q, v in json.loads(body).items()} == {
        "publisher": [], "delivery": [], "email": []}


def test_a_bad_range_is_a_one_line_error(local_stack):
    done = command("helpdesk.report", "--local", local_stack.console_url, "--from", "2026-11-30", "--to", "2026-11-01")

    assert done.returncode == 2 and "to is before from" in done.stderr and "Traceback" not in done.stderr


# -- a failure, shown and replayed through the console (the stack in this process: SES is made to refuse) --

def wait_for(check, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {DEADLINE_S} s")


def test_an_email_ses_refused_is_shown_and_replayed_through_the_console_and_sent_once(monkeypatch, capsys):
    from helpdesk import notify, replay

    # Given make dev while SES refuses every email
    refusing = threading.Event()
    refusing.set()
    send = notify.send_email

    def ses(raw: bytes, to: str) -> str:
        if refusing.is_set():
            raise notify.NotSent("email not sent: MessageRejected")
        return send(raw, to)

    monkeypatch.setattr(notify, "send_email", ses)
    with in_process() as stack:
        console = stack.urls.console
        status, _, body = http("POST", stack.urls.api, json_body=TICKET)
        ticket_id = json.loads(body)["id"]

        # When the delivery has given up on its acknowledgement (three attempts)
        def failed():
            return json.loads(http("GET", console + "dlq/delivery")[2])["messages"]

        wait_for(failed, "delivery failure in the dead-letter queue")

        # And the operator looks at the queue with the README's command
        assert replay.main(["delivery", "--show", "--local", console]) == 0
        shown = capsys.readouterr().out

        # Then it names the ticket and the event, never the customer's address or text
        assert f"{ticket_id} created" in shown and "RetriesExhausted" in shown and "MessageRejected" in shown
        assert "ann@example.com" not in shown and "double charged" not in shown

        # When SES accepts mail again and the operator replays the queue, then once more
        refusing.clear()
        assert replay.main(["delivery", "--replay", "--local", console]) == 0
        first = capsys.readouterr().out
        assert replay.main(["delivery", "--replay", "--local", console]) == 0
        second = capsys.readouterr().out

        # Then the customer got the acknowledgement exactly once
        emails = [m for m in json.loads(http("GET", console + "outbox")[2]) if m["channel"] == "email"]
        assert [(m["ticket_id"], m["event_type"], m["recipient"]) for m in emails] == [
            (ticket_id, "created", "ann@example.com")]
        assert (first.strip(), second.strip()) == ("delivery: 1 replayed, 0 kept", "delivery: 0 replayed, 0 kept")
        assert failed() == []
    assert status == 201
