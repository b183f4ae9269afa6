"""The local stack under concurrent use, through its real entry points: HTTP to the API front, SMTP
to the intake, the escalation chains and the sweep ticker, with SLA time compressed so that every
ticket climbs to management while the clients race. Whatever the interleaving:

- every write that was acknowledged (201, or 250 for mail) is there afterwards;
- every ticket gets exactly its notifications: one acknowledgement, and one customer email and one
  team alert per climb (management's too), nothing twice;
- no ticket climbs twice from the same tier.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from http.client import HTTPConnection

import pytest

from infra.local.testing import wait_for
from tests.e2e.local_stack import LocalStackProcess, console, email, http, running, send, settled, tickets_of

TIME_SCALE = 36_000  # ten hours of SLA per second: a ticket climbs L1 -> management in a few seconds
LADDER = ["L1", "L2", "L3", "management"]
CLIENTS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The per-sender limits are raised: these clients race on purpose (tests/integration/test_api_limits.py
    # tests the limits themselves).
    with running(tmp_path_factory.mktemp("local-stack") / "output.log", HELPDESK_TIME_SCALE=str(TIME_SCALE),
                 HELPDESK_MESSAGES_PER_HOUR="1000", HELPDESK_NEW_TICKETS_PER_HOUR="1000",
                 logged_failure="email intake failed for") as stack:  # the failing mail below
        yield stack


def open_ticket(stack: LocalStackProcess, customer: str, category: str = "billing") -> dict:
    status, _, body = http("POST", stack.api_url + "tickets", timeout=60, json_body={
        "name": "Race", "email": customer, "subject": f"Race for {customer}",
        "description": "Opened while others race.", "category": category})
    assert status == 201, body
    return json.loads(body) | {"customer": customer}


def add_message(stack: LocalStackProcess, ticket: dict, body: str) -> int:
    status, _, _ = http("POST", f"{stack.api_url}tickets/{ticket['id']}/messages?token={ticket['access_token']}",
                        json_body={"body": body}, timeout=60)
    return status


def view(stack: LocalStackProcess, ticket: dict) -> dict:
    status, _, text = http("GET", f"{stack.api_url}tickets/{ticket['id']}?token={ticket['access_token']}",
                           headers={"Accept": "application/json"}, timeout=60)
    assert status == 200, text
    return json.loads(text)


def reply_by_mail(stack: LocalStackProcess, ticket: dict, body: str) -> bool:
    """A customer's email reply (the reference in the subject); True when the intake accepted it."""
    return send(stack, email(f"Re: [{ticket['id']}] Race", body, sender=ticket["customer"])) == {}


def open_by_mail(stack: LocalStackProcess, customer: str) -> dict:
    assert send(stack, email(f"Race by mail for {customer}", "Opened by mail while others race.", sender=customer)) == {}
    [found] = tickets_of(stack, customer)
    return {"id": found["ticket_id"], "customer": customer, "department": found["department"]}


def climbed_to_management(stack: LocalStackProcess, ids: list[str]) -> dict[str, dict]:
    """The tickets, once every one of them is with management (its chain has ended)."""
    def all_there() -> dict[str, dict] | None:
        found = {t["ticket_id"]: t for t in console(stack, "tickets") if t["ticket_id"] in ids}
        return found if len(found) == len(ids) and all(t["tier"] == "management" for t in found.values()) else None

    return wait_for(all_there, what=f"{len(ids)} tickets to reach management")


def assert_notified_exactly(stack: LocalStackProcess, tickets: dict[str, dict]) -> None:
    """Each ticket (console items by id; all with management) got its notifications, each once; the
    sweep's at-risk warnings to the teams are the sweep's business, not counted here."""
    settled(stack)
    outbox = console(stack, "outbox")
    for tid, ticket in tickets.items():
        climbs = LADDER.index(ticket["tier"]) - LADDER.index("L1")
        assert ticket["escalation_count"] == climbs == 3, ticket
        customer, team = ticket["customer_email"], f"team:{ticket['department']}"
        expected = ([("email", customer, "created")] + [("email", customer, "escalated")] * climbs
                    + [("team-alert", team, "escalated")] * climbs + [("team-alert", "team:management", "escalated")])
        sent = [m for m in outbox if m["ticket_id"] == tid and m["event_type"] != "at_risk"]
        assert Counter((m["channel"], m["recipient"], m["event_type"]) for m in sent) == Counter(expected), \
            json.dumps(sent, indent=1)
        climbed_from = [m["subject"].split("Escalated from ")[1].split(" to ")[0] for m in sent if m["recipient"] == team]
        assert sorted(climbed_from, key=LADDER.index) == LADDER[:3], climbed_from  # never twice from one tier


def messages_in(stack: LocalStackProcess, ticket: dict) -> list[str]:
    return [e["body"] for e in view(stack, ticket)["timeline"] if e["type"] == "message"]


def test_parallel_messages_on_one_ticket_all_stay_while_it_climbs(stack):
    # Given a ticket whose chain is climbing
    ticket = open_ticket(stack, "parallel@example.com")

    # When 8 clients post 4 messages each at once, racing the escalations
    bodies = [f"message {n} from the parallel clients" for n in range(CLIENTS * 4)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(lambda body: add_message(stack, ticket, body), bodies))

    # Then every acknowledged message is on the ticket, and it climbed once per tier
    acknowledged = [b for b, s in zip(bodies, statuses) if s == 201]
    assert set(statuses) <= {201, 409} and len(acknowledged) >= len(bodies) // 2, statuses
    climbed = climbed_to_management(stack, [ticket["id"]])
    assert sorted(messages_in(stack, ticket)) == sorted(acknowledged)
    assert_notified_exactly(stack, climbed)


def test_email_replies_race_web_messages_while_other_customers_open_tickets(stack):
    # Given a ticket opened on the web
    ticket = open_ticket(stack, "lena.race@example.de")

    # When its customer answers by mail and on the web at once, while others open tickets both ways
    def web_messages(n: int) -> list[str]:
        return [body for k in range(4) if add_message(stack, ticket, body := f"web message {n}.{k}") == 201]

    def mail_replies(n: int) -> list[str]:
        return [body for k in range(4) if reply_by_mail(stack, ticket, body := f"mail reply {n}.{k}")]

    with ThreadPoolExecutor(CLIENTS) as pool:
        web = [pool.submit(web_messages, n) for n in range(3)]
        mail = [pool.submit(mail_replies, n) for n in range(3)]
        opened_on_web = [pool.submit(open_ticket, stack, f"web{n}@example.com", category)
                         for n, category in enumerate(["billing", "technical", "account"] * 4)]
        opened_by_mail = [pool.submit(open_by_mail, stack, f"mail{n}@example.org") for n in range(4)]
        acknowledged = [body for f in web + mail for body in f.result()]
        others = [f.result() for f in opened_on_web + opened_by_mail]

    # Then every acknowledged message is on the ticket, every other ticket exists, and everyone was
    # told exactly what happened
    assert len(acknowledged) == 24
    assert sorted(messages_in(stack, ticket)) == sorted(acknowledged)
    for other in others:
        if "access_token" in other:
            assert view(stack, other)["id"] == other["id"]
    climbed = climbed_to_management(stack, [ticket["id"]] + [o["id"] for o in others])
    assert_notified_exactly(stack, climbed)


def utf7_mail() -> EmailMessage:
    """Text that decodes to a lone surrogate: a write DynamoDB refuses (issue 10)."""
    message = email("Broken charset", "placeholder", sender="utf7@example.net")
    message.set_content("+2AA- lone surrogate".encode(), maintype="text", subtype="plain", cte="7bit",
                        params={"charset": "utf-7"})
    return message


def many_attachments_mail() -> EmailMessage:
    """Three thousand attachments with long names: a ticket item past DynamoDB's 400 KB (issue 10)."""
    message = email("Scans", "Please see the attached scans.", sender="scanner@example.net")
    for n in range(3000):
        message.add_attachment(b"x", maintype="application", subtype="octet-stream",
                               filename=f"scan-{n:04d}-{'a-very-long-file-name-' * 4}.pdf")
    return message


def test_normal_traffic_flows_on_after_writes_that_failed(stack):
    # Given mail whose writes fail (the intake logs it; SES accepted the mail all the same)
    for message in (utf7_mail(), many_attachments_mail()):
        send(stack, message)

    # When customers open tickets both ways afterwards
    web = [open_ticket(stack, f"after{n}@example.com") for n in range(3)]
    mail = [open_by_mail(stack, f"after{n}@example.org") for n in range(2)]

    # Then every one of them climbs and everyone is told, as if nothing had failed
    climbed = climbed_to_management(stack, [t["id"] for t in web + mail])
    assert_notified_exactly(stack, climbed)


def test_forty_parallel_connections_are_all_answered(stack):
    """The API front's listen queue held 5: 25 of 40 clients connecting at once got a reset."""
    ready = threading.Barrier(40)
    host, port = "127.0.0.1", stack.api_port

    def get() -> int:
        connection = HTTPConnection(host, port, timeout=60)
        ready.wait()
        try:
            connection.request("GET", "/openapi.json")
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(lambda _: get(), range(40)))

    assert statuses == [200] * 40
