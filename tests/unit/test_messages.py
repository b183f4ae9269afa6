"""What customers and teams read (helpdesk.messages), and which events go to which topic
(helpdesk.notify's pure decision). No AWS: models are built in memory, never saved."""

import json
from datetime import UTC, datetime

import pytest

from helpdesk import mail, messages, notify
from helpdesk.messages import CustomerUpdate, TeamAlert
from helpdesk.models import Ticket, TicketEvent

BERLIN = "Europe/Berlin"
LINK = "https://help.example.com/tickets/HD-7KQ2M9?token=abc"


def update(**changes) -> CustomerUpdate:
    base = dict(event_id="e1", event_type="created", ticket_id="HD-7KQ2M9", subject="Refund for a double charge",
                channel="web", customer_email="ana@example.com", at="2026-11-24T09:00:00Z", time_zone=BERLIN,
                link=LINK, customer_name="Ana Lima", department="billing", due_at="2026-11-24T13:00:00Z",
                due_kind="first_response")
    return CustomerUpdate(**(base | changes))


def alert(**changes) -> TeamAlert:
    base = dict(event_id="e2", event_type="escalated", ticket_id="HD-7KQ2M9", subject="Refund for a double charge",
                department="billing", priority="high", tier="L2", status="open", at="2026-11-24T11:00:00Z",
                time_zone=BERLIN, opened_at="2026-11-24T09:00:00Z", channel="web", customer_name="Ana Lima",
                customer_tier="vip", from_tier="L1", due_kind="first_response", due_at="2026-11-24T11:00:00Z",
                next_due_at="2026-11-24T13:00:00Z")
    return TeamAlert(**(base | changes))


# -- what the customer reads -----------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "sentence"), [
    ({}, "We have received your request HD-7KQ2M9 and will reply by Tue 24 Nov 2026, 14:00 CET."),
    ({"due_at": None}, "We have received your request HD-7KQ2M9 and will reply as soon as we can."),
    ({"event_type": "escalated", "tier": "L2"},
     "Your request HD-7KQ2M9 has been passed to our senior billing team; we will reply by Tue 24 Nov 2026, 14:00 CET."),
    ({"event_type": "escalated", "tier": "L3", "department": "customer-success", "due_kind": "resolution"},
     "Your request HD-7KQ2M9 has been passed to our customer success specialists; "
     "we will update you by Tue 24 Nov 2026, 14:00 CET."),
    ({"event_type": "escalated", "tier": "management", "due_at": None},
     "Your request HD-7KQ2M9 has been passed to a support manager, who will follow it personally."),
    ({"event_type": "reply", "text": "Done."}, "Our billing team has replied to your request HD-7KQ2M9."),
    ({"event_type": "status_changed", "status": "resolved"}, "We have resolved your request HD-7KQ2M9."),
])
def test_each_update_opens_with_one_sentence_saying_what_happened_and_what_is_next(changes, sentence):
    assert messages.headline(update(**changes)) == sentence


def test_the_acknowledgement_of_a_web_request_starts_the_thread_and_later_emails_answer_it():
    assert messages.email_subject(update()) == "[HD-7KQ2M9] Refund for a double charge"
    assert messages.email_subject(update(event_type="reply")) == "Re: [HD-7KQ2M9] Refund for a double charge"
    assert messages.email_subject(update(channel="email")) == "Re: [HD-7KQ2M9] Refund for a double charge"


def test_both_parts_of_an_email_say_the_same_thing():
    email = messages.customer_email(update(event_type="reply", text="We refunded you.\nDana"))

    for part in (email.text, email.html):
        assert "Hello Ana Lima," in part
        assert "Our billing team has replied to your request HD-7KQ2M9." in part
        assert "We refunded you." in part and LINK in part.replace("&amp;", "&")
    assert "> We refunded you.\n> Dana" in email.text


def test_the_acknowledgement_echoes_nothing_the_requester_wrote_but_a_short_subject():
    # Given a request opened in someone else's name, its every field a phishing attempt
    lure = "Your account is locked: verify it at https://evil.example/login within 24 hours or lose it"
    ack = update(subject=lure, customer_name="Visit evil.example/login", text=lure)

    # When its acknowledgement is written
    email = messages.customer_email(ack)

    # Then neither the name nor the text appear, and the subject is cut short
    for part in (email.text, email.html):
        assert "Visit" not in part and "within 24 hours" not in part and "Hello," in part
    assert "evil.example" not in email.text.split("\n", 3)[3]  # nothing past the greeting and headline
    assert email.subject == "[HD-7KQ2M9] Your account is locked: verify it at https://evil.example/l…"
    assert len(email.subject) <= len("[HD-7KQ2M9] ") + messages.SUBJECT_MAX


def test_the_html_part_escapes_whatever_people_wrote():
    email = messages.customer_email(update(subject="<b>hi</b>", customer_name="<script>x</script>",
                                           event_type="reply", text="<img src=x onerror=alert(1)>"))

    assert "<script>" not in email.html and "<img" not in email.html and "<b>" not in email.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in email.html


def test_the_resolution_asks_how_we_did():
    survey = "https://help.example.com/tickets/HD-7KQ2M9/survey?token=abc"
    email = messages.customer_email(update(event_type="status_changed", status="resolved", survey_link=survey))

    assert "How did we do?" in email.text and survey in email.text
    assert f'href="{survey}"' in email.html
    assert "reopen" in email.text


def test_a_text_message_is_short_and_carries_no_link():
    for changes in ({}, {"event_type": "escalated", "tier": "L2", "department": "customer-success"},
                    {"event_type": "reply", "text": "x" * 5000}, {"event_type": "status_changed", "status": "resolved"}):
        sms = messages.customer_sms(update(**changes))
        assert "HD-7KQ2M9" in sms and len(sms) <= 160 and "http" not in sms


def test_the_thread_root_is_one_id_per_ticket_that_intake_recognises():
    root = messages.thread_root_id("HD-7KQ2M9", "helpdesk.local")

    assert root == "<HD-7KQ2M9.thread@helpdesk.local>"
    assert mail.ticket_id_from_message_id(root, "helpdesk.local") == "HD-7KQ2M9"


def test_an_update_survives_the_wire_and_ignores_fields_it_does_not_know():
    original = update(text="Grüße")

    assert CustomerUpdate.from_json(original.to_json()) == original
    assert CustomerUpdate.from_dict(original.to_dict() | {"added_later": 1}) == original


# -- what a team reads -----------------------------------------------------------------------------

def test_a_team_alert_reads_well_as_a_plain_email():
    text = messages.alert_text(alert())

    assert text.splitlines()[0] == "HD-7KQ2M9 escalated from L1 to L2 (billing, high priority)."
    assert "Reason:    the first response was due Tue 24 Nov 2026, 12:00 CET" in text
    assert "Next:      L2 has until Tue 24 Nov 2026, 14:00 CET" in text
    assert "Customer:  Ana Lima (VIP), via web" in text


@pytest.mark.parametrize(("changes", "summary"), [
    ({"event_type": "at_risk", "from_tier": None, "next_due_at": None},
     "HD-7KQ2M9 at risk: first response, due Tue 24 Nov 2026, 12:00 CET (billing, high priority, L2)"),
    ({"event_type": "breached", "due_kind": "resolution"},
     "HD-7KQ2M9 breached its resolution target (billing, high priority, L2)"),
])
def test_warnings_and_breaches_say_which_deadline(changes, summary):
    assert messages.alert_summary(alert(**changes)) == summary


def test_the_alert_subject_is_what_sns_accepts_for_email():
    subject = messages.alert_subject(alert(department="kundendienst-für-ärger" * 5))

    assert subject.isascii() and len(subject) < 100 and "\n" not in subject
    assert subject.startswith("[HD-7KQ2M9] Escalated from L1 to L2")


# -- which events go where (notify) ------------------------------------------------------------------

AT = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)


def event(type_: str, public: bool = True, actor: str = "system", body: str | None = "text", **data) -> TicketEvent:
    return TicketEvent("TICKET#HD-7KQ2M9", f"EVENT#2026-11-24T11:00:00Z#{type_}", ticket_id="HD-7KQ2M9",
                       event_id=f"id-{type_}", type=type_, at=AT, actor=actor, public=public,
                       body=body, data=data or None)


def ticket(**changes) -> Ticket:
    due = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    fields = dict(ticket_id="HD-7KQ2M9", token_hash="h", channel="web", customer_email="ana@example.com",
                  customer_name="Ana Lima", subject="Refund", description="d", category="billing", priority="high",
                  department="billing", tier="L2", status="open", created_at=AT, updated_at=AT,
                  first_response_due_at=due, resolution_due_at=due,
                  next_due_at=datetime(2026, 11, 24, 13, 0, tzinfo=UTC), due_kind="first_response")
    return Ticket("TICKET#HD-7KQ2M9", **(fields | changes))


# What the escalation state machine writes (infra/statemachines/escalation.asl.json), and tickets.escalate.
AUTOMATIC = dict(from_tier="L1", to_tier="L2", reason="first_response overdue at L1", due_kind="first_response",
                 due_at="2026-11-24T11:00:00Z", auto=True)
MANUAL = dict(from_tier="L1", to_tier="L2", reason="manual", auto=False, summary="Needs a refund approval.",
              due_kind="first_response")


@pytest.mark.parametrize(("item", "expected"), [
    (event("created"), (notify.CUSTOMER,)),
    (event("reply"), (notify.CUSTOMER,)),
    (event("escalated", from_tier="L1", to_tier="L2"), (notify.CUSTOMER, notify.TEAM)),
    (event("escalated", public=False, from_tier="L1", to_tier="L2"), (notify.TEAM,)),
    (event("status_changed", **{"from": "open", "to": "resolved"}), (notify.CUSTOMER,)),
    (event("status_changed", **{"from": "open", "to": "pending_customer"}), ()),
    (event("at_risk", public=False), (notify.TEAM,)),
    (event("breached", public=False), (notify.TEAM,)),
    (event("note", public=False), ()),
    (event("reply", public=False), ()),
    (event("message"), ()),
    (event("priority_changed"), ()),
    (event("transferred", public=False, from_department="billing", to_department="technical"), (notify.TEAM,)),
    (event("returned", public=False, from_tier="management", to_tier="L2"), (notify.TEAM,)),
    (event("note", public=False, mentions=[{"username": "bea", "email": "bea@agents.example.com"}]), (notify.TEAM,)),
    (event("reply", then="resolve"), ()),  # the resolution's email carries the answer
    (event("status_changed", **{"from": "open", "to": "resolved"}, with_reply="r1"), (notify.CUSTOMER,)),
    (event("status_changed", **{"from": "open", "to": "closed"}, merged_into="HD-AAAAAA"), (notify.CUSTOMER,)),
    (event("status_changed", **{"from": "resolved", "to": "closed"}, auto=True), ()),
])
def test_each_event_goes_to_the_topics_whose_readers_care(item, expected):
    assert notify.routes(item) == expected


def test_a_team_alert_is_a_plain_email_and_a_json_for_everyone_else():
    [message] = notify.outgoing(event("breached", public=False), ticket(), topics={notify.TEAM: "arn:team"},
                                time_zone=BERLIN)
    request = message["request"]
    variants = json.loads(request["Message"])

    assert message["key"] == "HD-7KQ2M9:id-breached:team-alerts"
    assert request["MessageStructure"] == "json" and set(variants) == {"default", "email"}
    assert json.loads(variants["default"])["alert"]["event_type"] == "breached"
    assert variants["email"].startswith("HD-7KQ2M9 breached its first response target")
    assert {k: v["StringValue"] for k, v in request["MessageAttributes"].items()} == {
        "event_type": "breached", "ticket_id": "HD-7KQ2M9", "department": "billing", "priority": "high", "tier": "L2"}


def test_the_filter_policies_only_name_attributes_the_publisher_sets():
    customer = set(notify.customer_request(update(), "arn")["MessageAttributes"])
    team = set(notify.team_request(alert(), "arn")["MessageAttributes"])

    assert set(notify.CUSTOMER_DELIVERY_FILTER) <= customer
    assert set(notify.team_filter("billing")) <= team
    assert {key for rule in notify.MANAGEMENT_FILTER["$or"] for key in rule} <= team


def test_an_automatic_escalation_tells_the_team_why_and_the_customer_by_when():
    escalated = event("escalated", body=None, **AUTOMATIC)

    alert = notify.team_alert(escalated, ticket(), time_zone=BERLIN)
    update = notify.customer_update(escalated, ticket(), time_zone=BERLIN, link=LINK)

    assert "Reason:    first response overdue at L1 (due Tue 24 Nov 2026, 12:00 CET)" in messages.alert_text(alert)
    assert (update.tier, update.due_at) == ("L2", "2026-11-24T13:00:00Z")
    assert messages.headline(update) == ("Your request HD-7KQ2M9 has been passed to our senior billing team; "
                                         "we will reply by Tue 24 Nov 2026, 14:00 CET.")


def test_a_manual_escalation_carries_its_summary_to_the_team_only():
    escalated = event("escalated", actor="agent:dana", body=None, **MANUAL)

    alert_text = messages.alert_text(notify.team_alert(escalated, ticket(), time_zone=BERLIN))
    update = notify.customer_update(escalated, ticket(), time_zone=BERLIN, link=LINK)

    assert "Reason:    escalated by dana" in alert_text and "Summary:   Needs a refund approval." in alert_text
    assert "refund approval" not in update.to_json()


def test_a_promise_is_only_made_from_the_deadline_of_the_tier_the_customer_is_told_about():
    escalated = event("escalated", body=None, **AUTOMATIC)

    update = notify.customer_update(escalated, ticket(tier="L3"), time_zone=BERLIN)  # climbed again since

    assert update.due_at is None
    assert messages.headline(update) == "Your request HD-7KQ2M9 has been passed to our senior billing team."


def test_the_climb_to_management_is_a_breach_for_management_to_see():
    escalated = event("escalated", body=None, **(AUTOMATIC | {"to_tier": "management", "from_tier": "L3",
                                                              "reason": "resolution overdue at L3", "breached": True}))
    [customer, team] = notify.outgoing(escalated, ticket(tier="management", next_due_at=None), time_zone=BERLIN,
                                       topics={notify.CUSTOMER: "arn:c", notify.TEAM: "arn:t"})

    variants = json.loads(team["request"]["Message"])
    assert variants["email"].startswith("HD-7KQ2M9 escalated from L3 to management, SLA breached (billing")
    assert team["request"]["MessageAttributes"]["tier"]["StringValue"] == "management"
    assert messages.headline(CustomerUpdate.from_json(customer["request"]["Message"])) == (
        "Your request HD-7KQ2M9 has been passed to a support manager, who will follow it personally.")


def test_the_stream_filter_lets_through_exactly_what_the_publisher_reads():
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBStreamEvent

    from tests.conftest import sample_event

    pattern = notify.stream_filter_pattern()

    def passes(record: dict) -> bool:
        prefix = pattern["dynamodb"]["Keys"]["sk"]["S"][0]["prefix"]
        return record["eventName"] in pattern["eventName"] and record["dynamodb"]["Keys"]["sk"]["S"].startswith(prefix)

    for name in ("created", "escalated", "ticket_modified"):
        event = sample_event(f"stream/{name}.json")
        wanted = [notify.stream_event(r) is not None for r in DynamoDBStreamEvent(event).records]
        assert [passes(r) for r in event["Records"]] == wanted
