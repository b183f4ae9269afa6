"""The agent API on moto: the support team's half, driven with events shaped like events/api/agent_reply.json.

The claims are what API Gateway's Cognito authorizer hands the function (every value a string, the groups
comma-separated); the agents' directory (assigning, @mentions) is a user pool in moto.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from helpdesk import clock, ledger, notify, queue, tickets
from tests.conftest import sample_event

from infra.local.resources import SEED_AGENTS

# username: groups, as the local stack seeds them (and as the authorizer hands them over)
AGENTS = {agent.username: ",".join(agent.groups) for agent in SEED_AGENTS}


def claims(username: str | None) -> dict | None:
    if username is None:
        return None
    return {"cognito:username": username, "cognito:groups": AGENTS[username], "token_use": "id",
            "email": f"{username}@agents.helpdesk.example", "aud": "client", "exp": "Tue Nov 24 16:16:40 UTC 2026"}


@pytest.fixture
def directory(agent_pool):
    """The agents' user pool in moto with the local stack's seeded agents (the directory reads it)."""
    from helpdesk import directory as agent_directory

    agent_directory._cognito.cache_clear()
    yield agent_pool
    agent_directory._cognito.cache_clear()


@pytest.fixture
def api(directory):
    from functions.api import handler

    return handler


class Agent:
    """One agent's calls to the API (their claims on every request)."""

    def __init__(self, api, context, username: str | None):
        self.api, self.context, self.username = api, context, username

    def call(self, method: str, path: str, body=None, *, if_match=None, query=None, raw_claims=None):
        event = sample_event("api/agent_reply.json")
        event.update(httpMethod=method, path=path, pathParameters={"proxy": path.removeprefix("/agent/")},
                     body=None if body is None else json.dumps(body),
                     queryStringParameters=query, multiValueQueryStringParameters=(
                         {k: [v] for k, v in query.items()} if query else None))
        event["headers"].pop("If-Match")
        if if_match is not None:
            event["headers"]["If-Match"] = f'"{if_match}"' if isinstance(if_match, int) else if_match
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        event["requestContext"]["httpMethod"] = method
        context = claims(self.username) if raw_claims is None else raw_claims
        if context is None:
            del event["requestContext"]["authorizer"]
        else:
            event["requestContext"]["authorizer"]["claims"] = context
        response = self.api.handler(event, self.context)
        headers = {k: v[0] for k, v in (response.get("multiValueHeaders") or {}).items()} | (response.get("headers") or {})
        return response["statusCode"], headers, json.loads(response["body"]) if response["body"] else None

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def view(self, ticket_id: str) -> tuple[dict, int]:
        status, headers, body = self.get(f"/agent/tickets/{ticket_id}")
        assert status == 200, body
        return body, int(headers["ETag"].strip('"'))

    def act(self, ticket_id: str, action: str, body=None) -> dict:
        """An action on the version the agent sees now (as the console sends it)."""
        _, version = self.view(ticket_id)
        status, _, answer = self.post(f"/agent/tickets/{ticket_id}/{action}", body, if_match=version)
        assert status == 200, answer
        return answer


@pytest.fixture
def as_agent(api, lambda_context):
    return lambda username: Agent(api, lambda_context, username)


HANDOFF = {"need": "A refund of the second charge.", "tried": "Checked the payment log: charged twice.",
           "next_step": "Approve the refund in the billing tool."}


def open_ticket(category: str = "billing", subject: str = "Charged for a plan I cancelled",
                email: str = "ann@example.com", description: str = "Please look into it.") -> str:
    return tickets.open_ticket(tickets.NewTicket(channel="web", customer_email=email, subject=subject,
                                                 description=description, category=category,
                                                 customer_name="Ann Lee")).ticket.ticket_id


# -- who I am, what I work on ------------------------------------------------------------------------------

def test_an_agent_learns_who_they_are_from_their_groups(as_agent):
    status, _, me = as_agent("bea").get("/agent/me")

    assert status == 200
    assert (me["username"], me["tier"], me["departments"], me["manager"]) == ("bea", "L2", ["billing"], False)
    assert as_agent("maria").get("/agent/me")[2]["tier"] == "management"


def test_the_queue_shows_my_departments_at_my_tier_soonest_deadline_first(as_agent):
    # Given billing tickets of two priorities, a technical one, and a billing one escalated to L2
    normal = open_ticket(subject="Invoice address")  # billing, normal: 8 h
    urgent_later = open_ticket(subject="Refund please", description="I was double charged")  # billing, high: 2 h
    open_ticket(category="technical", subject="Export fails")
    escalated = open_ticket(subject="Wrong VAT")
    as_agent("lena").act(escalated, "escalate", {"to": "next", "handoff": HANDOFF})

    # When the L1 billing agent opens their queue
    status, _, page = as_agent("lena").get("/agent/queue")

    # Then only billing L1 tickets, the soonest deadline first, each row with its countdown
    assert status == 200 and page["queues"] == ["billing/L1"]
    assert [row["id"] for row in page["rows"]] == [urgent_later, normal]
    row = page["rows"][0]
    assert row["next_deadline"].endswith("Z") and row["seconds_left"] > 0 and row["at_risk"] is False
    assert (row["priority"], row["status"], row["tier"], row["customer"]) == ("high", "new", "L1", "Ann Lee")
    # and the L2 billing agent sees the escalated one at their tier, the L1 ones when asking for L1
    assert [r["id"] for r in as_agent("bea").get("/agent/queue")[2]["rows"]] == [escalated]
    assert len(as_agent("bea").get("/agent/queue", query={"tier": "L1"})[2]["rows"]) == 2
    # and an L1 agent asking for L2 sees nothing (not an error: nothing they may see)
    assert as_agent("lena").get("/agent/queue", query={"tier": "L2"})[2]["rows"] == []


def test_the_queue_pages_with_an_opaque_cursor_and_filters(as_agent):
    opened = [open_ticket(subject=f"Invoice {n}") for n in range(5)]
    lena = as_agent("lena")
    lena.act(opened[0], "assign", {"assignee": "me"})

    first = lena.get("/agent/queue", query={"limit": "2"})[2]
    second = lena.get("/agent/queue", query={"limit": "2", "cursor": first["cursor"]})[2]
    third = lena.get("/agent/queue", query={"limit": "2", "cursor": second["cursor"]})[2]

    ids = [r["id"] for page in (first, second, third) for r in page["rows"]]
    assert sorted(ids) == sorted(opened) and len(ids) == 5 and third["cursor"] is None
    assert [r["id"] for r in lena.get("/agent/queue", query={"assignee": "me"})[2]["rows"]] == [opened[0]]
    assert len(lena.get("/agent/queue", query={"assignee": "none"})[2]["rows"]) == 4
    assert lena.get("/agent/queue", query={"priority": "urgent"})[2]["rows"] == []
    assert lena.get("/agent/queue", query={"status": "bogus"})[0] == 400
    assert lena.get("/agent/queue", query={"cursor": "not-a-cursor"})[0] == 400


def test_breached_and_at_risk_filters_follow_the_clock(as_agent):
    policy_window = open_ticket(subject="Invoice address")  # normal: 8 business hours
    ticket = ledger.load(policy_window)
    lena = as_agent("lena")

    with clock.frozen(ticket.next_due_at - timedelta(minutes=30)):  # 30 min of 8 h left: at risk
        at_risk = lena.get("/agent/queue", query={"at_risk": "true"})[2]["rows"]
        breached = lena.get("/agent/queue", query={"breached": "true"})[2]["rows"]
    with clock.frozen(ticket.next_due_at + timedelta(minutes=5)):
        overdue = lena.get("/agent/queue", query={"breached": "true"})[2]["rows"]

    assert [r["id"] for r in at_risk] == [policy_window] and at_risk[0]["at_risk"] is True
    assert breached == []
    assert [r["id"] for r in overdue] == [policy_window] and overdue[0]["seconds_left"] < 0


# -- a ticket ----------------------------------------------------------------------------------------------

def test_the_ticket_view_puts_the_customer_first_and_shows_everything_an_agent_needs(as_agent):
    earlier = open_ticket(subject="Old question")
    tickets.resolve(earlier, "bea", "Answered on the phone.")
    tickets.rate(earlier, tickets.access_token(earlier), 4)
    ticket_id = open_ticket()
    lena = as_agent("lena")
    lena.act(ticket_id, "notes", {"body": "Customer called, upset."})

    view, version = lena.view(ticket_id)

    assert list(view)[0] == "customer"  # the panel comes first
    panel = view["customer"]
    assert (panel["email"], panel["value_tier"]) == ("ann@example.com", "standard")
    assert [(t["id"], t["outcome"], t["csat"]) for t in panel["tickets"]] == [(earlier, "resolved", 4)]
    assert version == view["ticket"]["version"] == 2
    assert [(e["type"], e["public"]) for e in view["timeline"]["entries"]] == [("created", True), ("note", False)]
    assert view["timeline"]["entries"][1]["agent"] == "lena"
    clocks = view["sla"]
    assert clocks["next_deadline"] == clock.to_iso(ledger.load(ticket_id).next_due_at)
    assert clocks["due_kind"] == "first_response" and clocks["seconds_left"] > 0 and clocks["paused_seconds"] == 0


def test_a_change_needs_the_version_seen_and_a_stale_one_says_what_changed(as_agent):
    ticket_id = open_ticket()
    lena, bea = as_agent("lena"), as_agent("bea")
    _, seen = lena.view(ticket_id)

    missing = lena.post(f"/agent/tickets/{ticket_id}/notes", {"body": "no version"})
    bea.act(ticket_id, "replies", {"body": "We are looking into it."})
    stale = lena.post(f"/agent/tickets/{ticket_id}/replies", {"body": "Here is my answer."}, if_match=seen)

    assert missing[0] == 428 and missing[2]["error"] == "precondition_required"
    status, headers, body = stale
    assert status == 409 and body["error"] == "conflict"
    assert body["current_version"] == seen + 1 == int(headers["ETag"].strip('"'))
    assert [(c["type"], c["agent"]) for c in body["details"]] == [("reply", "bea")]
    # nothing was lost or overwritten: one reply, bea's
    replies = [e for e in tickets.timeline(ticket_id, public_only=False) if e.type == "reply"]
    assert [(e.actor, e.body) for e in replies] == [("agent:bea", "We are looking into it.")]
    # and the stale agent's resend on the current version goes through
    assert lena.post(f"/agent/tickets/{ticket_id}/replies", {"body": "Here is my answer."},
                     if_match=body["current_version"])[0] == 200


def test_two_agents_replying_on_the_same_version_exactly_one_succeeds(as_agent):
    ticket_id = open_ticket()
    _, version = as_agent("lena").view(ticket_id)

    answers = [as_agent(name).post(f"/agent/tickets/{ticket_id}/replies", {"body": f"Answer from {name}"},
                                   if_match=version) for name in ("lena", "bea")]

    assert sorted(a[0] for a in answers) == [200, 409]
    assert answers[1][2]["current_version"] == version + 1
    assert len([e for e in tickets.timeline(ticket_id) if e.type == "reply"]) == 1


def test_an_l1_escalation_with_a_summary_reaches_the_l2_queue_and_shows_the_summary_first(as_agent):
    ticket_id = open_ticket()
    lena, bea = as_agent("lena"), as_agent("bea")

    done = lena.act(ticket_id, "escalate", {"to": "next", "handoff": HANDOFF})

    assert done["ticket"]["tier"] == "L2" and done["event"]["data"]["auto"] is False
    assert bea.get("/agent/queue")[2]["rows"][0]["id"] == ticket_id
    view, _ = bea.view(ticket_id)
    assert view["handoff"]["by"] == "lena" and view["handoff"]["handoff"] == HANDOFF
    assert view["escalations"][-1]["to_tier"] == "L2" and view["escalations"][-1]["auto"] is False
    # the L1 agent no longer sees it: a 404, like a ticket that does not exist
    assert lena.get(f"/agent/tickets/{ticket_id}")[0] == 404


def test_a_hand_off_summary_must_say_something(as_agent):
    ticket_id = open_ticket()
    lena = as_agent("lena")
    _, version = lena.view(ticket_id)

    status, _, body = lena.post(f"/agent/tickets/{ticket_id}/escalate",
                                {"to": "next", "handoff": {**HANDOFF, "tried": "nothing"}}, if_match=version)

    assert status == 422 and body["details"][0]["field"] == "handoff.tried"


def test_functional_transfers_count_and_past_the_cap_only_a_manager_transfers(as_agent):
    ticket_id = open_ticket(category="account", subject="Locked out of billing portal")  # accounts, L1
    priya, maria = as_agent("priya"), as_agent("maria")
    tickets.escalate(ticket_id, "system-test", "up", policy=None)
    tickets.escalate(ticket_id, "system-test", "up")  # L3: priya's tier
    for department in ("billing", "technical", "support"):
        priya.act(ticket_id, "escalate", {"to": department, "handoff": HANDOFF})

    _, version = priya.view(ticket_id)
    status, _, body = priya.post(f"/agent/tickets/{ticket_id}/escalate", {"to": "billing", "handoff": HANDOFF},
                                 if_match=version)

    assert status == 403 and body["error"] == "transfer_cap" and "manager" in body["message"]
    assert maria.act(ticket_id, "escalate", {"to": "billing", "handoff": HANDOFF})["ticket"]["department"] == "billing"
    assert ledger.load(ticket_id).transfer_count == 4


def test_reply_and_wait_stops_the_clock_and_reply_and_resolve_resolves(as_agent):
    waiting, done = open_ticket(), open_ticket(subject="Second")
    lena = as_agent("lena")

    lena.act(waiting, "replies", {"body": "Which invoice is it?", "then": "wait"})
    lena.act(done, "replies", {"body": "Refunded today.", "then": "resolve"})

    assert (ledger.load(waiting).status, ledger.load(waiting).next_due_at is not None) == ("pending_customer", True)
    resolved = ledger.load(done)
    assert resolved.status == "resolved" and resolved.first_responded_at is not None
    # the customer reads the answer once: the resolution carries it (with the survey), the reply is not sent
    events = tickets.timeline(done, public_only=False)
    assert [notify.routes(e) for e in events if e.type in ("reply", "status_changed")] == [(), (notify.CUSTOMER,)]
    assert [e.body for e in events if e.type == "status_changed"] == ["Refunded today."]


def test_a_note_mentioning_a_colleague_alerts_them_by_email_with_a_link(as_agent):
    ticket_id = open_ticket()
    result = as_agent("lena").act(ticket_id, "notes", {"body": "@bea can you approve? @nobody @omar"})

    assert result["mentioned"] == ["bea"]  # omar is technical: he may not see this ticket
    assert result["not_alerted"] == ["nobody", "omar"]
    note = [e for e in tickets.timeline(ticket_id, public_only=False) if e.type == "note"][0]
    [message] = notify.outgoing(note, ledger.load(ticket_id), topics={notify.TEAM: "arn:team"}, time_zone="UTC")
    attributes = message["request"]["MessageAttributes"]
    assert (attributes["event_type"]["StringValue"], attributes["agent"]["StringValue"]) == ("mention", "bea")
    alert = notify.mention_alert(json.loads(message["request"]["Message"])["default"])
    assert alert.recipient == "bea@agents.helpdesk.example"
    assert f"/agent/#/tickets/{ticket_id}" in alert.link and "approve" in (alert.summary or "")


def test_assigning_to_a_colleague_who_may_not_work_the_ticket_is_refused(as_agent):
    ticket_id = open_ticket()
    lena = as_agent("lena")
    _, version = lena.view(ticket_id)

    refused = lena.post(f"/agent/tickets/{ticket_id}/assign", {"assignee": "omar"}, if_match=version)
    assigned = lena.post(f"/agent/tickets/{ticket_id}/assign", {"assignee": "bea"}, if_match=version)

    assert refused[0] == 400 and refused[2]["details"][0]["field"] == "assignee"
    assert assigned[0] == 200 and assigned[2]["ticket"]["assignee"] == "bea"
    assert [a["username"] for a in lena.get(f"/agent/tickets/{ticket_id}/assignees")[2]["agents"]] == [
        "bea", "lena", "maria", "nina", "priya"]  # billing at L1 or above, and managers (nina: invited)


def test_merging_a_duplicate_closes_it_with_links_both_ways_and_tells_the_customer(as_agent):
    original, duplicate = open_ticket(subject="Refund"), open_ticket(subject="Refund again")
    other_customer = open_ticket(email="bob@example.com")
    lena = as_agent("lena")

    lena.act(duplicate, "merge", {"into": original, "note": "Same charge."})

    merged = ledger.load(duplicate)
    assert (merged.status, merged.merged_into, merged.queue_pk) == ("closed", original, None)
    [linked] = [e for e in tickets.timeline(original, public_only=False) if e.type == "merged"]
    assert linked.data.as_dict()["merged_from"] == duplicate
    closed = [e for e in tickets.timeline(duplicate) if e.type == "status_changed"][-1]
    update = notify.customer_update(closed, merged, time_zone="UTC", link="https://x/tickets/d?token=t")
    assert update.merged_into == original and original in update.merged_link
    _, version = lena.view(other_customer)
    assert lena.post(f"/agent/tickets/{other_customer}/merge", {"into": original}, if_match=version)[0] == 409


def test_managers_return_tickets_from_management_and_keep_customer_records(as_agent):
    ticket_id = open_ticket()
    for _ in range(3):
        tickets.escalate(ticket_id, "system-test", "up")
    maria, bea = as_agent("maria"), as_agent("bea")
    assert [r["id"] for r in maria.get("/agent/queue", query={"tier": "management"})[2]["rows"]] == [ticket_id]

    _, version = maria.view(ticket_id)
    refused = bea.post(f"/agent/tickets/{ticket_id}/return", {"tier": "L2", "note": "Please handle."}, if_match=version)
    returned = maria.act(ticket_id, "return", {"tier": "L2", "note": "Refund approved, please tell the customer."})

    assert refused[0] == 404  # bea may not even see a ticket with management
    assert returned["ticket"]["tier"] == "L2" and ledger.load(ticket_id).next_due_at > clock.now()
    assert bea.get("/agent/queue")[2]["rows"][0]["id"] == ticket_id

    put = maria.call("PUT", "/agent/customers/ann@example.com",
                     {"value_tier": "vip", "lifetime_value": 12500, "notes": "Founding customer."})
    assert put[0] == 200 and put[2]["value_tier"] == "vip"
    assert bea.call("PUT", "/agent/customers/ann@example.com", {"value_tier": "standard"})[0] == 403
    assert bea.view(ticket_id)[0]["customer"]["lifetime_value"] == 12500
    assert ledger.load(open_ticket(subject="New one")).customer_tier == "vip"  # routing knows too


def test_a_private_departments_tickets_stay_with_its_group_and_managers(as_agent):
    sensitive = open_ticket(subject="Harassment by another user", category="general")
    ordinary = open_ticket()
    ticket = ledger.load(sensitive)
    assert ticket.department == "trust-and-safety"

    assert as_agent("sam").view(sensitive)[0]["ticket"]["private"] is True
    assert as_agent("maria").get(f"/agent/tickets/{sensitive}")[0] == 200
    assert as_agent("bea").get(f"/agent/tickets/{sensitive}")[0] == 404
    assert sensitive not in [t["id"] for t in as_agent("lena").view(ordinary)[0]["customer"]["tickets"]]
    # its team alerts carry the reference and a link, no customer text
    tickets.escalate(sensitive, "sam", "Needs a manager's decision on the account.")
    escalated = [e for e in tickets.timeline(sensitive, public_only=False) if e.type == "escalated"][0]
    [message] = [m for m in notify.outgoing(escalated, ledger.load(sensitive), time_zone="UTC", private=True,
                                            topics={notify.TEAM: "arn:team", notify.CUSTOMER: "arn:c"})
                 if m["request"]["TopicArn"] == "arn:team"]
    text = json.loads(message["request"]["Message"])["email"]
    assert sensitive in text and "/agent/#/tickets/" in text
    assert "Harassment" not in text + message["request"]["Subject"] and "Ann" not in text
    assert "manager's decision" not in text


# -- who may do what ---------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/agent/me", None),
    ("GET", "/agent/queue", None),
    ("GET", "/agent/tickets/{id}", None),
    ("GET", "/agent/tickets/{id}/assignees", None),
    ("POST", "/agent/tickets/{id}/assign", {"assignee": "me"}),
    ("POST", "/agent/tickets/{id}/replies", {"body": "Hello"}),
    ("POST", "/agent/tickets/{id}/notes", {"body": "internal"}),
    ("POST", "/agent/tickets/{id}/escalate", {"to": "next", "handoff": HANDOFF}),
    ("POST", "/agent/tickets/{id}/wait", None),
    ("POST", "/agent/tickets/{id}/priority", {"priority": "urgent", "reason": "Customer is blocked."}),
    ("POST", "/agent/tickets/{id}/resolve", {"note": "Done."}),
    ("POST", "/agent/tickets/{id}/return", {"tier": "L1", "note": "Back to you."}),
    ("GET", "/agent/customers/ann@example.com", None),
    ("PUT", "/agent/customers/ann@example.com", {"value_tier": "vip"}),
    ("GET", "/agent/queue/counts", None),
    ("POST", "/agent/tickets/{id}/presence", {"state": "viewing"}),
    ("GET", "/agent/customers", None),
    ("GET", "/agent/report", None),
]

# Who calls: anonymous (no authorizer claims: API Gateway refuses such a request before the function;
# the function refuses it again), a customer's access token or an expired/other client's token (the
# same: no claims reach the function), and agents.
CALLERS = {
    "anonymous": None,
    "customer token": {},
    "access token": {"cognito:username": "lena", "cognito:groups": "L1,billing", "token_use": "access"},
    "L1 billing": "lena",
    "L2 billing": "bea",
    "L3": "priya",
    "manager": "maria",
    "other department": "tomas",
}

# The expected status per caller and route, on an L1 billing ticket (escalated to management for "return").
EXPECTED = {
    "anonymous": [401] * len(ROUTES),
    "customer token": [401] * len(ROUTES),
    "access token": [401] * len(ROUTES),
    "L1 billing": [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 403, 403, 200, 200, 403, 403],
    "L2 billing": [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 403, 403, 200, 200, 403, 403],
    "L3": [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 403, 403, 200, 200, 403, 403],
    "manager": [200] * 18,
    "other department": [200, 200, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 403, 403, 200, 404, 403, 403],
}


@pytest.mark.parametrize("caller", CALLERS)
def test_the_authorization_matrix(as_agent, caller):
    """Every agent route against every kind of caller: each cell asserted."""
    answers = []
    for n, (method, template, body) in enumerate(ROUTES):
        ticket_id = open_ticket(email=f"customer{n}@example.com")  # one ticket each: under the hourly limit
        if template.endswith("/return"):
            for _ in range(3):
                tickets.escalate(ticket_id, "system-test", "up")
        version = ledger.load(ticket_id).version
        who = CALLERS[caller]
        agent = as_agent(who if isinstance(who, str) else None)
        raw = who if isinstance(who, dict) else None
        status, _, answer = agent.call(method, template.format(id=ticket_id), body, raw_claims=raw,
                                       if_match=version if "/tickets/" in template else None)
        answers.append(status)
        if status >= 400:
            assert set(answer) >= {"error", "message"}, answer  # the API's error shape, always
    assert answers == EXPECTED[caller], list(zip([r[1] for r in ROUTES], answers, EXPECTED[caller], strict=True))


def test_the_queue_reads_an_index_and_never_the_table(as_agent, monkeypatch):
    open_ticket()
    calls = []
    original = queue._dynamodb

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(original(), name)

    monkeypatch.setattr(queue, "_dynamodb", lambda: Spy())

    as_agent("maria").get("/agent/queue")

    assert calls and set(calls) == {"query"}


# -- what the console needs besides the actions -----------------------------------------------------------

def test_agents_with_the_same_ticket_open_see_each_other_and_who_is_writing(as_agent):
    ticket_id = open_ticket()
    lena, bea = as_agent("lena"), as_agent("bea")

    assert lena.post(f"/agent/tickets/{ticket_id}/presence", {"state": "viewing"})[2] == {"others": []}
    seen_by_bea = bea.post(f"/agent/tickets/{ticket_id}/presence", {"state": "typing"})[2]["others"]
    seen_by_lena = lena.post(f"/agent/tickets/{ticket_id}/presence", {"state": "viewing"})[2]["others"]
    bea.post(f"/agent/tickets/{ticket_id}/presence", {"state": "left"})
    after_bea_left = lena.post(f"/agent/tickets/{ticket_id}/presence", {"state": "viewing"})[2]["others"]
    with clock.frozen(clock.now() + timedelta(minutes=2)):  # a console that stopped saying so is gone
        bea.post(f"/agent/tickets/{ticket_id}/presence", {"state": "viewing"})
    with clock.frozen(clock.now() + timedelta(minutes=4)):
        stale = as_agent("priya").post(f"/agent/tickets/{ticket_id}/presence", {"state": "viewing"})[2]["others"]

    assert [(o["username"], o["state"]) for o in seen_by_bea] == [("lena", "viewing")]
    assert [(o["username"], o["state"]) for o in seen_by_lena] == [("bea", "typing")]
    assert after_bea_left == [] and stale == []
    assert tickets.timeline(ticket_id, public_only=False)[-1].type == "created"  # presence is no timeline entry
    assert as_agent("omar").post(f"/agent/tickets/{ticket_id}/presence", {"state": "viewing"})[0] == 404


def test_the_counts_per_status_cover_the_same_queues_as_the_view(as_agent):
    waiting, _, _ = open_ticket(), open_ticket(subject="Two"), open_ticket(category="technical")
    lena = as_agent("lena")
    lena.act(waiting, "wait")

    counts = lena.get("/agent/queue/counts")[2]

    assert counts == {"counts": {"new": 1, "open": 0, "pending_customer": 1, "resolved": 0}, "queues": ["billing/L1"]}


def test_managers_find_the_transfer_capped_tickets(as_agent):
    capped, other = open_ticket(category="account", subject="Moved around"), open_ticket()
    maria = as_agent("maria")
    for department in ("billing", "technical", "support"):
        maria.act(capped, "escalate", {"to": department, "handoff": HANDOFF})

    rows = maria.get("/agent/queue", query={"capped": "true"})[2]["rows"]

    assert [r["id"] for r in rows] == [capped] and rows[0]["transfer_count"] == 3


def test_the_report_tells_what_each_agent_did_and_only_managers_read_it(as_agent):
    first, second = open_ticket(), open_ticket(subject="Second")
    lena, bea = as_agent("lena"), as_agent("bea")
    lena.act(first, "replies", {"body": "Looking into it."})
    lena.act(second, "escalate", {"to": "next", "handoff": HANDOFF})
    bea.act(second, "replies", {"body": "Refunded.", "then": "resolve"})

    status, _, body = as_agent("maria").get("/agent/report", query={"by": "priority"})

    assert status == 200 and body["rows"][-1]["opened"] == 2 and body["rows"][-1]["escalations_manual"] == 1
    agents = {row["agent"]: row for row in body["agents"]}
    assert (agents["lena"]["first_responses"], agents["lena"]["escalations"]) == (1, 1)
    assert (agents["bea"]["first_responses"], agents["bea"]["resolutions"]) == (1, 1)
    assert lena.get("/agent/report")[0] == 403
    assert as_agent("maria").get("/agent/report", query={"from": "yesterday"})[0] == 400


def test_managers_list_the_customer_records_a_page_at_a_time(as_agent):
    maria = as_agent("maria")
    for n in range(3):
        assert maria.call("PUT", f"/agent/customers/c{n}@example.com", {"value_tier": "vip"})[0] == 200

    first = maria.get("/agent/customers", query={"limit": "2"})[2]
    rest = maria.get("/agent/customers", query={"limit": "2", "cursor": first["cursor"]})[2]

    assert [c["email"] for c in first["customers"] + rest["customers"]] == [f"c{n}@example.com" for n in range(3)]
    assert rest["cursor"] is None
    me = as_agent("lena").get("/agent/me")[2]
    assert {"name": "trust-and-safety", "private": True} in me["all_departments"] and me["transfer_cap"] == 3


def test_resolving_sends_the_survey_and_the_customers_rating_lands_in_the_report(as_agent, lambda_context):
    from functions.api import handler

    ticket_id = open_ticket()
    as_agent("bea").act(ticket_id, "resolve", {"note": "We refunded the second charge."})

    # The customer's "resolved" update carries the survey link
    resolved = [e for e in tickets.timeline(ticket_id) if e.type == "status_changed"][-1]
    update = notify.customer_update(resolved, ledger.load(ticket_id), time_zone="UTC",
                                    link=tickets.private_link(ticket_id, "https://help.example.com"))
    assert update.survey_link.startswith(f"https://help.example.com/tickets/{ticket_id}/survey?token=")
    assert update.text == "We refunded the second charge."

    # The customer rates through the survey form
    event = sample_event("api/post_message.json")
    event.update(path=f"/tickets/{ticket_id}/survey", pathParameters={"ticket_id": ticket_id},
                 body=json.dumps({"score": 5, "comment": "Quick and kind"}))
    event["headers"]["X-Access-Token"] = tickets.access_token(ticket_id)
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    assert handler.handler(event, lambda_context)["statusCode"] == 201

    # And the manager's report counts it
    total = as_agent("maria").get("/agent/report")[2]["rows"][-1]
    assert (total["csat"], total["csat_responses"]) == (5.0, 1)
    assert as_agent("bea").view(ticket_id)[0]["customer"]["email"] == "ann@example.com"
