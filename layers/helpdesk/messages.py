"""What each timeline event says to a customer or to a team (pure functions, no I/O).

Two shapes travel on the topics: a :class:`CustomerUpdate` (the body of a ``customer-updates``
message: everything the delivery function needs to write the email and the SMS, so it reads no
table) and a :class:`TeamAlert` (``team-alerts``: rendered here as a plain-text email and as a
JSON payload for chat webhooks). The voice is the same everywhere: one sentence that says what
happened and what comes next, with the ticket reference and a time in the team's time zone, e.g.
"Your request HD-7KQ2M9 has been passed to our senior technical team; we will reply by
Tue 24 Nov 2026, 14:00 CET."
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import json
from dataclasses import dataclass
from typing import Any

from helpdesk import clock, mail

SIGNATURE = "Customer Support"
# Characters of the ticket's subject in our emails' subjects. Short: the acknowledgement goes to
# whatever address a request names, so it echoes nothing else the sender wrote (helpdesk.limits
# bounds how many one address gets); every later email keeps the same subject for the thread.
SUBJECT_MAX = 60


def thread_root_id(ticket_id: str, domain: str) -> str:
    """The Message-ID every email about a ticket answers (``<HD-7KQ2M9.thread@domain>``).

    The acknowledgement of a web ticket carries it as its own Message-ID; every later email names
    it in In-Reply-To/References, so the customer's client keeps one conversation per ticket. It is
    in :func:`mail.new_message_id`'s format, so ``mail.ticket_id_from_message_id`` recognises it.
    """
    return mail.new_message_id(ticket_id, "thread", domain)


# --- the two shapes on the topics -----------------------------------------------------------------

@dataclass(frozen=True)
class _Wire:
    """JSON in, JSON out; unknown keys are ignored so either side can be deployed first."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class CustomerUpdate(_Wire):
    """The body of a ``customer-updates`` message. Times are ISO 8601 UTC (``...Z``)."""

    event_id: str
    event_type: str  # the timeline event: created | escalated | reply | status_changed
    ticket_id: str
    subject: str
    channel: str  # how the customer reached us: web | email
    customer_email: str
    at: str
    time_zone: str  # render times in it
    link: str = ""  # the customer's private link (it carries the access token: never log it)
    customer_name: str | None = None
    customer_phone: str | None = None  # E.164, when the customer asked for SMS updates
    department: str | None = None  # the ticket's department (words for "our billing team")
    tier: str | None = None  # escalated: the tier the ticket went to
    status: str | None = None  # status_changed: the new status
    text: str | None = None  # reply: the agent's answer; resolved: the resolution summary
    due_at: str | None = None  # the next promise to the customer, if any
    due_kind: str | None = None  # first_response (we will reply by) | resolution (we will update you by)
    survey_link: str | None = None  # resolved: where the customer rates our help
    reply_token: str | None = None  # for the ``support+<token>@`` Reply-To (mail.reply_address)
    source_message_id: str | None = None  # email: the customer's Message-ID that opened the ticket
    merged_into: str | None = None  # closed as a duplicate: the ticket the conversation goes on in
    merged_link: str | None = None  # the customer's private link to that ticket
    version: int = 1


@dataclass(frozen=True)
class TeamAlert(_Wire):
    """The facts of a ``team-alerts`` message (its ``default``/``https`` variant is this as JSON)."""

    event_id: str
    event_type: str  # escalated | transferred | returned | at_risk | breached | mention
    ticket_id: str
    subject: str
    department: str
    priority: str
    tier: str  # where the ticket is now (escalated: the tier it went to)
    status: str  # the ticket's status when the alert was published
    at: str
    time_zone: str
    opened_at: str | None = None
    channel: str | None = None
    customer_name: str | None = None
    customer_tier: str | None = None  # standard | vip
    from_tier: str | None = None  # escalated: the tier it left
    reason: str | None = None  # as written by whoever raised the event ("first_response overdue at L1")
    summary: str | None = None  # a manual escalation's summary for the next person
    by: str | None = None  # the agent who raised it (None: the system)
    breached: bool | None = None  # the SLA is breached (the climb to management, a breach warning)
    due_kind: str | None = None  # first_response | resolution: the deadline at issue
    due_at: str | None = None  # that deadline
    next_due_at: str | None = None  # escalated: when the new tier's time runs out
    from_department: str | None = None  # transferred: the department it left
    link: str | None = None  # the ticket in the agent console
    private: bool | None = None  # a private department's ticket: no customer text in the alert
    recipient: str | None = None  # mention: the agent's address
    mentioned: str | None = None  # mention: the agent's username
    version: int = 1


# --- words ----------------------------------------------------------------------------------------

def _when(iso: str | None, zone: str) -> str:
    return clock.human(clock.from_iso(iso), zone) if iso else ""


def _department(department: str | None) -> str:
    return (department or "support").replace("-", " ").replace("_", " ")


def team_name(department: str | None, tier: str | None) -> str:
    """Who has the ticket, as a customer reads it: "our senior technical team"."""
    department = _department(department)
    if tier == "management":
        return "a support manager"
    if tier == "L3":
        return f"our {department} specialists"
    if tier == "L2":
        return f"our senior {department} team"
    return f"our {department} team"


def _due_kind_words(due_kind: str | None) -> str:
    return "resolution" if due_kind == "resolution" else "first response"


def _promise(update: CustomerUpdate) -> str:
    """"will reply by <time>" (or "update you by" once we have replied); "" without a due time."""
    if not update.due_at:
        return ""
    verb = "update you" if update.due_kind == "resolution" else "reply"
    return f"will {verb} by {_when(update.due_at, update.time_zone)}"


def notice_kind(update: CustomerUpdate) -> str:
    """created | escalated | reply | resolved | merged: what the customer is being told."""
    if update.event_type == "status_changed":
        if update.merged_into:
            return "merged"
        return "resolved" if update.status in ("resolved", "closed") else "status_changed"
    return update.event_type


def headline(update: CustomerUpdate) -> str:
    """The one sentence that says what happened (the email's first line and the SMS)."""
    ref = update.ticket_id
    kind = notice_kind(update)
    if kind == "created":
        promise = _promise(update)
        return f"We have received your request {ref} and " + (f"{promise}." if promise else "will reply as soon as we can.")
    if kind == "escalated":
        if update.tier == "management":
            return f"Your request {ref} has been passed to a support manager, who will follow it personally."
        promise = _promise(update)
        return f"Your request {ref} has been passed to {team_name(update.department, update.tier)}" + (
            f"; we {promise}." if promise else ".")
    if kind == "reply":
        team = team_name(update.department, None)
        return f"{team[0].upper()}{team[1:]} has replied to your request {ref}."
    if kind == "resolved":
        return f"We have resolved your request {ref}."
    if kind == "merged":
        return (f"Your request {ref} is about the same thing as your request {update.merged_into}: "
                f"we have joined them, and will answer you on {update.merged_into}.")
    return f"There is news on your request {ref}."


# --- customer email -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def email_subject(update: CustomerUpdate) -> str:
    """``[HD-7KQ2M9] <their subject>``, as a reply (``Re:``) except the acknowledgement of a web
    request: one subject per ticket keeps the conversation in one thread in every client."""
    subject = " ".join((update.subject or "").split())
    if len(subject) > SUBJECT_MAX:
        subject = subject[:SUBJECT_MAX - 1].rstrip() + "…"
    line = f"[{update.ticket_id}] {subject}".rstrip()
    first = update.event_type == "created" and update.channel != "email"
    return line if first else f"Re: {line}"


def _blocks(update: CustomerUpdate) -> list[tuple]:
    """The email as blocks (``("p", text)``, ``("quote", text)``, ``("link", before, label, url)``),
    rendered below as plain text and as HTML, so both parts always say the same thing."""
    kind = notice_kind(update)
    # The acknowledgement echoes nothing the requester wrote but the shortened subject: not even
    # the name (the web form is not a relay for someone else's words to a victim's address).
    name = "" if kind == "created" else " ".join((update.customer_name or "").split())
    blocks: list[tuple] = [("p", f"Hello {name}," if name else "Hello,"), ("p", headline(update))]
    if kind == "reply" and update.text:
        blocks.append(("quote", update.text.strip()))
    if kind == "resolved":
        if update.text:
            blocks.append(("quote", update.text.strip()))
        blocks.append(("p", "If anything is still not right, reply to this email and we will reopen your request."))
        if update.survey_link:
            blocks.append(("link", "How did we do? Rate our help, it takes a minute:", "Rate our help",
                           update.survey_link))
    if kind == "merged" and update.merged_link:
        blocks.append(("link", "The conversation goes on here:", f"Open {update.merged_into}", update.merged_link))
    if update.link:
        before = {
            "reply": "Answer by replying to this email, or at your private link:",
            "resolved": "Your request and its history stay at your private link:",
        }.get(kind, "Add details by replying to this email, or follow your request at your private link:")
        blocks.append(("link", before, "Open your request", update.link))
    blocks.append(("p", SIGNATURE))
    note = f"Reference {update.ticket_id}."
    if update.link:
        note += " The links in this email are personal: please do not forward it."
    blocks.append(("small", note))
    return blocks


def _text(blocks: list[tuple]) -> str:
    out = []
    for block in blocks:
        if block[0] == "quote":
            out.append("\n".join(f"> {line}".rstrip() for line in block[1].splitlines()))
        elif block[0] == "link":
            out.append(f"{block[1]}\n{block[3]}")
        else:
            out.append(block[1])
    return "\n\n".join(out) + "\n"


def _html(blocks: list[tuple], title: str) -> str:
    e = html_lib.escape
    body = []
    for block in blocks:
        if block[0] == "quote":
            body.append('<blockquote style="margin:0 0 1em;padding:0 0 0 1em;border-left:3px solid #ccc;'
                        f'white-space:pre-wrap">{e(block[1])}</blockquote>')
        elif block[0] == "link":
            body.append(f'<p>{e(block[1])}<br><a href="{e(block[3], quote=True)}">{e(block[2])}</a></p>')
        elif block[0] == "small":
            body.append(f'<p style="color:#666;font-size:12px">{e(block[1])}</p>')
        else:
            body.append(f"<p>{e(block[1])}</p>")
    return ('<!doctype html>\n<html><head><meta charset="utf-8"><title>' + e(title) + "</title></head>\n"
            '<body style="font-family:sans-serif;line-height:1.5;max-width:40em">\n'
            + "\n".join(body) + "\n</body></html>\n")


def customer_email(update: CustomerUpdate) -> Email:
    """The customer's email: subject, plain text and HTML (every value escaped in the HTML)."""
    blocks = _blocks(update)
    subject = email_subject(update)
    return Email(subject=subject, text=_text(blocks), html=_html(blocks, subject))


def customer_sms(update: CustomerUpdate) -> str:
    """A short text: the reference and one sentence (no link: private links do not belong in SMS)."""
    kind = notice_kind(update)
    sentence = headline(update)
    if kind == "reply":
        sentence += " Please see your email."
    elif kind == "resolved":
        sentence += " Reply to our email if anything is still not right."
    return sentence


# --- team alerts ----------------------------------------------------------------------------------

def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _facts_line(alert: TeamAlert) -> str:
    return f"{_department(alert.department)}, {alert.priority} priority, {alert.tier}"


def alert_summary(alert: TeamAlert) -> str:
    """One line: what happened to which ticket (a chat message, an email subject's words)."""
    ref, kind = alert.ticket_id, _due_kind_words(alert.due_kind)
    if alert.event_type == "escalated":
        moved = f"from {alert.from_tier} to {alert.tier}" if alert.from_tier else f"to {alert.tier}"
        breach = ", SLA breached" if alert.breached else ""
        return f"{ref} escalated {moved}{breach} ({_department(alert.department)}, {alert.priority} priority)"
    if alert.event_type == "at_risk":
        due = f", due {_when(alert.due_at, alert.time_zone)}" if alert.due_at else ""
        return f"{ref} at risk: {kind}{due} ({_facts_line(alert)})"
    if alert.event_type == "breached":
        return f"{ref} breached its {kind} target ({_facts_line(alert)})"
    if alert.event_type == "transferred":
        return (f"{ref} transferred from {_department(alert.from_department)} to {_department(alert.department)}"
                f" by {alert.by or 'an agent'} ({alert.priority} priority, {alert.tier})")
    if alert.event_type == "returned":
        return f"{ref} returned from management to {alert.tier} ({_department(alert.department)}, {alert.priority} priority)"
    if alert.event_type == "mention":
        return f"{alert.by or 'A colleague'} mentioned you on {ref} ({_facts_line(alert)})"
    return f"{ref}: {alert.event_type} ({_facts_line(alert)})"


def alert_subject(alert: TeamAlert) -> str:
    """The email subject of a team alert (SNS: ASCII, one line, under 100 characters)."""
    words = alert_summary(alert).removeprefix(alert.ticket_id).strip()
    return _ascii(f"[{alert.ticket_id}] {words[:1].upper()}{words[1:]}")[:99]


def _reason(alert: TeamAlert) -> str:
    if alert.event_type in ("transferred", "returned", "mention"):
        verb = {"transferred": "transferred", "returned": "returned", "mention": "mentioned you"}[alert.event_type]
        return f"{verb} by {alert.by or 'an agent'}"
    if alert.reason == "manual" or (alert.by and not alert.reason):
        return f"escalated by {alert.by or 'an agent'}"
    kind, due = _due_kind_words(alert.due_kind), _when(alert.due_at, alert.time_zone)
    if alert.reason:
        return alert.reason.replace("_", " ") + (f" (due {due})" if due else "")
    if due:
        return f"the {kind} {'is' if alert.event_type == 'at_risk' else 'was'} due {due}"
    return f"the {kind} deadline is near" if alert.event_type == "at_risk" else f"the {kind} deadline passed"


def alert_text(alert: TeamAlert) -> str:
    """The alert as a plain email body: what happened, why, what is next, then the ticket. A private
    department's alert says only what happened and where to look: no customer text."""
    lines = [alert_summary(alert) + ".", "", f"Reason:    {_reason(alert)}"]
    if alert.summary:
        label = "Note:      " if alert.event_type == "mention" else "Summary:   "
        summary = alert.summary.strip().splitlines() or [""]
        lines += [f"{label}{summary[0]}", *(f"           {line}".rstrip() for line in summary[1:])]
    if alert.event_type in ("escalated", "returned"):
        if alert.next_due_at:
            lines.append(f"Next:      {alert.tier} has until {_when(alert.next_due_at, alert.time_zone)}")
        elif alert.tier == "management":
            lines.append("Next:      with management: nothing left to escalate to")
    customer = " ".join((alert.customer_name or "").split()) or "(no name)"
    if alert.customer_tier == "vip":
        customer += " (VIP)"
    if alert.channel:
        customer += f", via {alert.channel}"
    opened = f", opened {_when(alert.opened_at, alert.time_zone)}" if alert.opened_at else ""
    if alert.private:
        lines += ["", f"Ticket:    {alert.ticket_id} (a private department's ticket: read it in the console)"]
    else:
        lines += ["", f"Ticket:    {alert.ticket_id} - {' '.join(alert.subject.split())}", f"Customer:  {customer}"]
    lines += [f"Queue:     {_facts_line(alert)}", f"Status:    {alert.status}{opened}"]
    if alert.link:
        lines.append(f"Open:      {alert.link}")
    return "\n".join(lines) + "\n"


def alert_payload(alert: TeamAlert) -> dict[str, Any]:
    """The JSON for webhooks and queues: a chat-style ``text`` line plus the structured facts."""
    return {"text": alert_summary(alert), "alert": alert.to_dict()}
