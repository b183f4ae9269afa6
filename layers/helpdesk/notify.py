"""Notifications: which timeline events go to which topic, and the few calls that send them.

There is one path (a transactional outbox): a use case writes the ticket and its timeline event in
one transaction; the table's stream hands the event's INSERT to the publisher function, which turns
it into SNS messages here; subscribers take what their filter policy asks for. Nobody who changes a
ticket publishes by hand, so a change and its notification cannot diverge.

``customer-updates`` (attributes ``event_type``, ``ticket_id``, ``channel``) carries the *public*
events a customer cares about, its body a :class:`~helpdesk.messages.CustomerUpdate` (JSON):

    created          "We have received your request HD-7KQ2M9 and will reply by ..." (their text quoted)
    escalated        "Your request HD-7KQ2M9 has been passed to our senior technical team; ..."
                     (never the escalation's ``summary``: that is for the next agent)
    reply            an agent's public answer, with its text
    status_changed   only to ``resolved``: the resolution summary and the satisfaction survey link

Not sent to customers: ``message`` (they wrote it), ``note`` (internal), ``priority_changed``,
``transferred``, ``at_risk``, ``breached``, other status changes (waiting on the customer, reopened),
and any event with ``public`` false.

``team-alerts`` (attributes ``event_type``, ``ticket_id``, ``department``, ``priority``, ``tier``;
for ``escalated`` the tier it reached) carries ``escalated`` (automatic or by hand, with the reason
and the agent's summary; the climb to management is marked as the SLA breach), ``at_risk`` and
``breached``, public or not, as ``MessageStructure=json``: ``email`` is a plain-text body,
``default`` (https webhooks, SQS, Lambda) a JSON ``{"text": <one line>, "alert": {...}}``.

The filter policies below are the only copies: CDK, the local stack and the tests subscribe with
them. Sending goes through :func:`publish`, :func:`send_email` and :func:`send_sms`: the local
stack wraps those to record its outbox.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from helpdesk import clock, mail, messages, replay, settings
from helpdesk.messages import CustomerUpdate, TeamAlert
from helpdesk.settings import Env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    from helpdesk.models import Ticket, TicketEvent

CUSTOMER = "customer-updates"
TEAM = "team-alerts"

CUSTOMER_EVENTS = ("created", "escalated", "reply", "status_changed")
CUSTOMER_STATUSES = ("resolved",)  # the status changes a customer hears about (and a merge's close)
TEAM_EVENTS = ("escalated", "transferred", "returned", "at_risk", "breached")
MENTION = "mention"  # a note's @mention: a team alert to that one agent (event_type attribute)

# -- filter policies (MessageAttributes scope), the one copy -----------------------------------------

#: The delivery function on ``customer-updates``: everything the publisher puts there.
CUSTOMER_DELIVERY_FILTER: dict[str, Any] = {"event_type": list(CUSTOMER_EVENTS)}

#: Management on ``team-alerts``: breaches, and escalations that reached management.
MANAGEMENT_FILTER: dict[str, Any] = {
    "$or": [{"event_type": ["breached"]}, {"event_type": ["escalated"], "tier": ["management"]}],
}


def team_filter(department: str, event_types: tuple[str, ...] = TEAM_EVENTS) -> dict[str, Any]:
    """A department's team (email list or chat webhook) on ``team-alerts``: its own tickets' alerts."""
    return {"department": [department], "event_type": list(event_types)}


#: The delivery function on ``team-alerts``: @mentions, which it emails to the agent named.
MENTION_DELIVERY_FILTER: dict[str, Any] = {"event_type": [MENTION]}


def stream_filter_pattern() -> dict[str, Any]:
    """The event source mapping's filter (one ``FilterCriteria`` pattern): only INSERTs of timeline
    events invoke the publisher; the publisher checks the same again (:func:`stream_event`)."""
    from helpdesk.models import EVENT_SK_PREFIX

    return {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": EVENT_SK_PREFIX}]}}}}


#: How long a published event id is remembered (idempotency records' TTL): longer than a failure can
#: wait for its replay in a dead-letter queue, so neither a retry nor a replay publishes it again.
DEDUPE_SECONDS = replay.DEDUPE_SECONDS


def dedupe():
    """The idempotency store and config of every send-once step (the publisher's and the delivery's):
    keyed on the message's ``key`` (see :func:`outgoing`), remembered for ``DEDUPE_SECONDS``."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    return (DynamoDBPersistenceLayer(table_name=settings.get(Env.IDEMPOTENCY_TABLE)),
            IdempotencyConfig(event_key_jmespath="key", raise_on_no_idempotency_key=True,
                              expires_after_seconds=DEDUPE_SECONDS))

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MESSAGE_ID = re.compile(r"<[^<>\s@]{1,200}@[^<>\s@]{1,200}>")  # one we can answer (mail.build_outbound accepts it)


class PoisonRecord(ValueError):
    """A stream record that can never be published (garbage image): fail it, so the event source
    mapping retries it, then sends it to the DLQ."""


# -- reading the stream ------------------------------------------------------------------------------

def stream_event(record: DynamoDBRecord) -> TicketEvent | None:
    """The timeline event a stream record inserted; ``None`` for anything else (ticket items,
    MODIFY, REMOVE). Raises :class:`PoisonRecord` for an event record that cannot be read."""
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName

    from helpdesk.models import EVENT_SK_PREFIX, TicketEvent, ticket_pk

    if record.event_name is not DynamoDBRecordEventName.INSERT:
        return None
    stream = record.dynamodb
    if stream is None:
        raise PoisonRecord("record without a dynamodb section")
    if not str(stream.keys.get("sk", "")).startswith(EVENT_SK_PREFIX):
        return None
    image = stream.raw_event.get("NewImage")
    if not image:
        raise PoisonRecord("event INSERT without NewImage: the stream must carry new images")
    try:  # the one place a stream image becomes a domain object: the model's own attributes
        event = TicketEvent.from_raw_data(image)
    except Exception as error:  # noqa: BLE001 - any undecodable attribute makes the record poison
        raise PoisonRecord(f"unreadable event image: {type(error).__name__}") from None
    missing = [name for name in ("ticket_id", "event_id", "type", "at") if not getattr(event, name, None)]
    if missing:
        raise PoisonRecord(f"event image without {', '.join(missing)}")
    if event.pk != ticket_pk(event.ticket_id):
        raise PoisonRecord("event image whose ticket_id does not match its key")
    return event


# -- the decision (pure) -----------------------------------------------------------------------------

def _data(event: TicketEvent) -> dict[str, Any]:
    data = event.data
    if data is None:
        return {}
    return data.as_dict() if hasattr(data, "as_dict") else dict(data)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def new_status(event: TicketEvent) -> str | None:
    """The status a ``status_changed`` event moved to (``data.to``)."""
    return _text(_data(event).get("to"))


def merged_into(event: TicketEvent) -> str | None:
    """The ticket a merge's ``status_changed`` (to closed) sent the conversation to."""
    return _text(_data(event).get("merged_into"))


def mentions(event: TicketEvent) -> list[dict[str, str]]:
    """The agents a note alerts: ``[{"username", "email"}]``."""
    found = _data(event).get("mentions") if event.type == "note" else None
    return [m for m in found or [] if isinstance(m, dict) and m.get("username") and m.get("email")]


def routes(event: TicketEvent) -> tuple[str, ...]:
    """The topics an event goes to: (), (CUSTOMER,), (TEAM,) or both."""
    out = []
    data = _data(event)
    if event.public and event.type in CUSTOMER_EVENTS and (
            event.type != "status_changed" or new_status(event) in CUSTOMER_STATUSES or merged_into(event)) and (
            data.get("then") != "resolve"):  # a reply that resolves: the resolution's email carries it
        out.append(CUSTOMER)
    if event.type in TEAM_EVENTS or mentions(event):
        out.append(TEAM)
    return tuple(out)


def _iso(moment) -> str | None:
    return clock.to_iso(moment) if moment else None


def survey_link(private_link: str) -> str:
    """The satisfaction survey of a ticket: its private link's page plus ``/survey``."""
    parts = urlsplit(private_link)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/survey"))


def _deadline(ticket: Ticket, due_kind: str | None):
    return ticket.resolution_due_at if due_kind == "resolution" else ticket.first_response_due_at


def _next_due(data: dict[str, Any], ticket: Ticket, tier: str) -> str | None:
    """When the tier an escalation reached must act: the event's word, else the ticket's deadline
    if the ticket is still with that tier (a later climb's deadline is not this one's)."""
    return _text(data.get("next_due_at")) or (_iso(ticket.next_due_at) if ticket.tier == tier else None)


def customer_update(event: TicketEvent, ticket: Ticket, *, time_zone: str, link: str = "",
                    reply_token: str | None = None) -> CustomerUpdate:
    """Everything the delivery function needs to write to the customer about ``event``."""
    # The ticket is read when the record is published, maybe after later changes: facts of the
    # moment come from the event first, the ticket's current state only fills the gaps.
    data = _data(event)
    tier = status = due_at = due_kind = survey = text = None
    if event.type == "created":
        due_at = _text(data.get("first_response_due_at")) or _iso(ticket.first_response_due_at)
        due_kind = "first_response"  # the customer's own text is never sent back (messages.SUBJECT_MAX)
    elif event.type == "escalated":  # data.summary is for the next agent, never for the customer
        tier = _text(data.get("to_tier")) or ticket.tier
        due_at = _next_due(data, ticket, tier)
        due_kind = _text(data.get("due_kind")) or ticket.due_kind
    elif event.type == "reply":
        text = event.body
    elif event.type == "status_changed":  # resolve(): the body is the summary the customer reads
        status, text = new_status(event), event.body
        survey = survey_link(link) if link and status in CUSTOMER_STATUSES else None
        merged_link = None
        if merged_into(event):  # the same customer's: their private link to where it goes on
            from helpdesk import tickets

            merged_link = tickets.private_link(merged_into(event))
    return CustomerUpdate(
        event_id=event.event_id, event_type=event.type, ticket_id=ticket.ticket_id, subject=ticket.subject,
        channel=ticket.channel, customer_email=ticket.customer_email, at=clock.to_iso(event.at),
        time_zone=time_zone, link=link, customer_name=ticket.customer_name,
        customer_phone=ticket.customer_phone, department=ticket.department, tier=tier, status=status,
        text=text, due_at=due_at, due_kind=due_kind, survey_link=survey, reply_token=reply_token,
        source_message_id=_text(data.get("source_message_id")) or getattr(ticket, "source_message_id", None),
        merged_into=merged_into(event), merged_link=merged_link if event.type == "status_changed" else None,
    )


def _agent(actor: str | None) -> str | None:
    return actor.removeprefix("agent:") if actor and actor.startswith("agent:") else None


def console_link(ticket_id: str, base_url: str | None = None) -> str:
    """The ticket in the agent console (a fragment: the console's page itself needs no token)."""
    base = (base_url if base_url is not None else settings.get(Env.PUBLIC_BASE_URL)).rstrip("/")
    return f"{base}/agent/#/tickets/{ticket_id}"


def team_alert(event: TicketEvent, ticket: Ticket, *, time_zone: str, private: bool = False,
               mention: dict[str, str] | None = None) -> TeamAlert:
    """The facts a team needs about an escalation, a transfer, an at-risk warning or a breach, or an
    agent about a note that mentions them. A private department's alerts carry no customer text (no
    subject, name, summary or note): only the reference, what happened, and the link."""
    data = _data(event)
    due_kind = _text(data.get("due_kind")) or ticket.due_kind or (
        "resolution" if ticket.first_responded_at else "first_response")
    moved = event.type in ("escalated", "returned")
    tier = (_text(data.get("to_tier")) if moved else None) or ticket.tier
    department = (_text(data.get("to_department")) if event.type == "transferred" else None) or ticket.department
    return TeamAlert(
        event_id=event.event_id, event_type=MENTION if mention else event.type, ticket_id=ticket.ticket_id,
        subject="" if private else ticket.subject,
        department=department, priority=ticket.priority, tier=tier, status=ticket.status,
        at=clock.to_iso(event.at), time_zone=time_zone, opened_at=_iso(ticket.created_at),
        channel=ticket.channel, customer_name=None if private else ticket.customer_name,
        customer_tier=ticket.customer_tier,
        from_tier=_text(data.get("from_tier")) if moved else None, reason=_text(data.get("reason")),
        summary=None if private else (event.body if mention else _text(data.get("summary"))), by=_agent(event.actor),
        breached=bool(data.get("breached")) or event.type == "breached" or None,
        due_kind=due_kind, due_at=_text(data.get("due_at")) or _iso(_deadline(ticket, due_kind)),
        next_due_at=_next_due(data, ticket, tier) if moved else None,
        from_department=_text(data.get("from_department")), link=console_link(ticket.ticket_id),
        private=private or None, recipient=(mention or {}).get("email"), mentioned=(mention or {}).get("username"),
    )


def _attributes(**values: str | None) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


def customer_request(update: CustomerUpdate, topic_arn: str) -> dict[str, Any]:
    """The ``sns.publish`` arguments for a customer update."""
    return {
        "TopicArn": topic_arn,
        "Message": update.to_json(),
        "MessageAttributes": _attributes(event_type=update.event_type, ticket_id=update.ticket_id,
                                         channel=update.channel),
    }


def team_request(alert: TeamAlert, topic_arn: str) -> dict[str, Any]:
    """The ``sns.publish`` arguments for a team alert: a plain email body and a JSON for the rest."""
    variants = {
        "default": json.dumps(messages.alert_payload(alert), ensure_ascii=False),
        "email": messages.alert_text(alert),
    }
    return {
        "TopicArn": topic_arn,
        "Subject": messages.alert_subject(alert),
        "MessageStructure": "json",
        "Message": json.dumps(variants, ensure_ascii=False),
        "MessageAttributes": _attributes(event_type=alert.event_type, ticket_id=alert.ticket_id,
                                         department=alert.department, priority=alert.priority, tier=alert.tier,
                                         agent=alert.mentioned),
    }


def outgoing(event: TicketEvent, ticket: Ticket, *, topics: dict[str, str], time_zone: str,
             link: str = "", reply_token: str | None = None, private: bool = False) -> list[dict[str, Any]]:
    """The messages ``event`` makes: ``{"key": <ticket>:<event id>:<topic>, "request": <publish arguments>}``
    (a mention's key adds the agent's username: one alert per agent named).

    The key makes each (event, topic) pair publish once: a retry after a failure on one topic
    never repeats the other.
    """
    out = []
    for route in routes(event):
        if route == CUSTOMER:
            update = customer_update(event, ticket, time_zone=ticket.customer_time_zone or time_zone, link=link,
                                     reply_token=reply_token)
            out.append({"key": f"{event.ticket_id}:{event.event_id}:{route}",
                        "request": customer_request(update, topics[CUSTOMER])})
        elif event.type == "note":
            for mention in mentions(event):
                alert = team_alert(event, ticket, time_zone=time_zone, private=private, mention=mention)
                out.append({"key": f"{event.ticket_id}:{event.event_id}:{route}:{mention['username']}",
                            "request": team_request(alert, topics[TEAM])})
        else:
            out.append({"key": f"{event.ticket_id}:{event.event_id}:{route}",
                        "request": team_request(team_alert(event, ticket, time_zone=time_zone, private=private),
                                                topics[TEAM])})
    return out


# -- the publisher's reads ---------------------------------------------------------------------------

def topic_arns() -> dict[str, str]:
    arns = {CUSTOMER: settings.get(Env.CUSTOMER_UPDATES_TOPIC_ARN), TEAM: settings.get(Env.TEAM_ALERTS_TOPIC_ARN)}
    missing = [name for name, arn in arns.items() if not arn]
    if missing:
        raise RuntimeError(f"no topic ARN for {', '.join(missing)}: set {Env.CUSTOMER_UPDATES_TOPIC_ARN} "
                           f"and {Env.TEAM_ALERTS_TOPIC_ARN}")
    return arns


def notifications(event: TicketEvent) -> list[dict[str, Any]]:
    """:func:`outgoing` for ``event``, reading what it needs: the ticket, and for the customer the
    private link and reply token (Reply-To); the policy's time zone to render times in."""
    destinations = routes(event)
    if not destinations:
        return []
    from helpdesk import ledger, tickets
    from helpdesk.config import load_policy

    ticket = ledger.load(event.ticket_id)
    policy = load_policy()
    token = link = None
    if CUSTOMER in destinations:
        token = tickets.reply_token(ticket.ticket_id)
        link = tickets.private_link(ticket.ticket_id)
    return outgoing(event, ticket, topics=topic_arns(), time_zone=policy.time_zone,
                    link=link or "", reply_token=token, private=policy.private(ticket.department))


# -- the delivery's rendering ------------------------------------------------------------------------

def support_mailbox() -> mail.Mailbox:
    """Env.SUPPORT_ADDRESS (``support@example.com`` or ``Name <support@example.com>``) as From."""
    name, address = parseaddr(settings.get(Env.SUPPORT_ADDRESS))
    return mail.Mailbox(address.lower(), name or messages.SIGNATURE)


def customer_mime(update: CustomerUpdate) -> bytes:
    """The customer's email as raw MIME: threaded under the ticket's root Message-ID.

    The acknowledgement (``created``) *is* the thread root; every later email has the Message-ID
    of its event (deterministic: a retried send is recognisable) and answers the root. A ticket
    opened by email (``source_message_id``) threads under the customer's own email too: the
    acknowledgement answers it, later emails name it first in References.
    """
    sender = support_mailbox()
    domain = sender.address.rpartition("@")[2]
    root = messages.thread_root_id(update.ticket_id, domain)
    email = messages.customer_email(update)
    first = update.event_type == "created"
    source = answerable_message_id(update.source_message_id)
    auto = {"created": mail.AUTO_REPLIED, "reply": None}.get(update.event_type, mail.AUTO_GENERATED)
    return mail.build_outbound(
        sender=sender, to=mail.Mailbox(update.customer_email, update.customer_name or ""),
        subject=email.subject, text=email.text, html=email.html,
        message_id=root if first else mail.new_message_id(update.ticket_id, update.event_id, domain),
        in_reply_to=source if first else root,
        references=((source,) if source else ()) + (() if first else (root,)),
        reply_to=mail.reply_address(sender.address, update.reply_token) if update.reply_token else None,
        headers={"X-Helpdesk-Ticket": update.ticket_id},
        auto_submitted=auto,
    )


def mention_alert(message: str) -> TeamAlert:
    """A mention as the delivery gets it from team-alerts (the ``default`` variant: ``{"text", "alert"}``)."""
    alert = TeamAlert.from_dict(json.loads(message)["alert"])
    if not alert.recipient:
        raise ValueError("a mention without the agent's address")
    return alert


def mention_mime(alert: TeamAlert) -> bytes:
    """The email to the agent a note mentions: the alert's text, from the support address."""
    sender = support_mailbox()
    domain = sender.address.rpartition("@")[2]
    text = messages.alert_text(alert)
    return mail.build_outbound(
        sender=sender, to=mail.Mailbox(alert.recipient, alert.mentioned or ""), subject=messages.alert_subject(alert),
        text=text, html=None, message_id=mail.new_message_id(alert.ticket_id, f"{alert.event_id}.{alert.mentioned}", domain),
        headers={"X-Helpdesk-Ticket": alert.ticket_id}, auto_submitted=mail.AUTO_GENERATED)


def answerable_message_id(value: str | None) -> str | None:
    """``value`` if our emails can name it in In-Reply-To/References (``<local@domain>``), else None."""
    return value if value and _MESSAGE_ID.fullmatch(value) else None


def sms_number(update: CustomerUpdate) -> str | None:
    """The customer's phone number if they gave one we can text (E.164)."""
    phone = (update.customer_phone or "").strip()
    return phone if _E164.match(phone) else None


# -- sending: the seams the local stack hooks --------------------------------------------------------

@functools.cache
def _client(service: str):
    import boto3

    return boto3.client(service)


def reset_clients() -> None:
    """Forget the cached AWS clients (tests and the local stack, when the endpoint changes)."""
    _client.cache_clear()


def publish(request: dict[str, Any]) -> str:
    """Publish one message (``sns.publish`` arguments); the SNS message id."""
    return _client("sns").publish(**request)["MessageId"]


class NotSent(Exception):
    """SES or SNS refused a message. Carries the error code only: AWS's own message can name the
    recipient, and whatever an exception says ends up in the logs."""


@contextlib.contextmanager
def _refusals(what: str) -> Iterator[None]:
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as error:
        raise NotSent(f"{what} not sent: {error.response.get('Error', {}).get('Code', 'error')}") from None


def send_email(raw: bytes, to: str) -> str:
    """Send one raw MIME message (From is in it) to one address through SES v2; the SES message id."""
    with _refusals("email"):
        response = _client("sesv2").send_email(Destination={"ToAddresses": [to]}, Content={"Raw": {"Data": raw}})
    return response["MessageId"]


def send_sms(phone: str, text: str) -> str | None:
    """Text one phone number through SNS (transactional SMS); the SNS message id, or None when the
    customer has opted out (they replied STOP: their choice, not a failure to retry or alarm on)."""
    client = _client("sns")
    with _refusals("sms"):
        try:
            response = client.publish(PhoneNumber=phone, Message=text, MessageAttributes={
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}})
        except client.exceptions.OptedOutException:
            return None
    return response["MessageId"]
