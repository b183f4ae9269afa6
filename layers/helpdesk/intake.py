"""The email channel: one inbound message becomes a ticket, a message on its ticket, or a
rejected-mail record.

SES receives the mail for the support address (a receipt rule), stores it raw in the mail bucket at
``inbound/<SES message id>`` (an S3 action), then invokes the intake function with the receipt facts
(a Lambda action): verdicts and envelope recipients. :func:`receive` decides, in this order:

1. SES found a virus, or spam: rejected (``virus``, ``spam``) without reading the message. A sender
   that fails DMARC at a domain that asks to reject or quarantine such mail is rejected too
   (``spoofed``): the From address is what lets a reply join a customer's ticket.
2. The raw message is read and parsed (:mod:`helpdesk.mail`, which recovers what it can from broken
   MIME). No sender, or no text and no subject at all: rejected (``unparseable``, with why).
3. A machine sent it (an auto-reply, a bounce, a null envelope sender, a mailing list, our own
   address): rejected (``automated``). It never opens a ticket and is never acknowledged: that is how mail loops start.
   A sender we cannot write to (``helpdesk.addresses``: a non-ASCII local part, no real domain, a
   control character) is rejected too (``undeliverable``): every update of its ticket would fail.
4. It answers a ticket: its reply address carries the ticket's reply token (``support+<token>@``),
   or its subject carries the ticket's reference or its In-Reply-To/References one of our Message-IDs
   *and* the sender is that ticket's customer. It becomes a ``message`` on the ticket; a resolved
   ticket reopens within tickets.REOPEN_DAYS. After that, or once the ticket is closed, a new ticket opens
   that refers to the old one (``related_ticket_id``). Past what one ticket or one sender may add
   (``tickets.customer_message``), rejected (``rate_limited``).
5. Anything else opens a new ticket (channel ``email``, its category from the policy's keywords:
   ``routing.classify``) unless tickets were opened for the sender
   ``HELPDESK_NEW_TICKETS_PER_HOUR`` times in this clock hour already, by email or the web form:
   rejected (``rate_limited``; ``helpdesk.limits``).

The acknowledgement and every later update reach the customer through the timeline's one path (the
publisher and the delivery function), threaded under the customer's own email (the ``created``
event carries its Message-ID). Attachments are stored under ``attachments/<SES message id>/<n>/<file
name>`` and listed on the ticket and on its event (file name, type, size, S3 key).

Nothing here fails because of a message: only infrastructure errors (S3, DynamoDB, Secrets Manager)
raise, so that Lambda retries and then hands the event to the on-failure destination. The handler
makes each SES message id count once (Powertools idempotency).
"""

from __future__ import annotations

import secrets
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.message import Message
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import quote

from helpdesk import addresses, clock, ids, ledger, mail, notify, replay, routing, settings, tickets
from helpdesk.config import Policy, load_policy
from helpdesk.errors import NotFound, RateLimited
from helpdesk.models import RejectedMail, Ticket, rejected_pk
from helpdesk.settings import Env

RAW_PREFIX = "inbound/"  # the S3 action's object key prefix: SES stores each message at <prefix><message id>
ATTACHMENT_PREFIX = "attachments/"
RAW_MAIL_DAYS = 90  # raw messages (a bucket lifecycle rule) and rejected-mail records expire after this
CHANNEL = "email"
NO_SUBJECT = "(no subject)"
DEDUPE_SECONDS = replay.DEDUPE_SECONDS  # a processed SES message id is remembered until no replay can come

# Why a message opened no ticket (RejectedMail.reason).
SPAM, VIRUS, SPOOFED, AUTOMATED, UNPARSEABLE, UNDELIVERABLE, RATE_LIMITED = (
    "spam", "virus", "spoofed", "automated", "unparseable", "undeliverable", "rate_limited")

_SES_MESSAGE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_TRUNCATED = "\n\n[Shortened: the whole message is kept with the original email.]"


# -- what SES tells us -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Receipt:
    """The facts of one SES receipt (one record of the SES event the Lambda action sends)."""

    ses_message_id: str  # also the raw message's name in the bucket (after RAW_PREFIX)
    received_at: datetime
    recipients: tuple[str, ...] = ()  # the envelope recipients this rule matched
    source: str | None = None  # the envelope sender (MAIL FROM): "" for a null one (bounces); None: not told
    spam: str | None = None  # verdict statuses: PASS | FAIL | GRAY | PROCESSING_FAILED
    virus: str | None = None
    dmarc: str | None = None
    dmarc_policy: str | None = None  # the sender domain's DMARC policy when DMARC failed: none | quarantine | reject
    sender_hint: str | None = None  # commonHeaders.from: for the record when the message cannot be read
    subject_hint: str | None = None

    @classmethod
    def from_ses(cls, record: dict) -> Receipt:
        """A record of the SES event (``Records[n]``). Raises for anything that is not one: an
        event that is not from SES is an infrastructure error, not a message."""
        ses = record["ses"]
        message, receipt = ses["mail"], ses["receipt"]
        message_id = message["messageId"]
        if not _SES_MESSAGE_ID.fullmatch(message_id):
            raise ValueError("the SES messageId is not a valid object name")
        common = message.get("commonHeaders") or {}

        def status(name: str) -> str | None:
            return ((receipt.get(name) or {}).get("status") or "").upper() or None

        return cls(
            ses_message_id=message_id,
            received_at=clock.from_iso(receipt.get("timestamp") or message["timestamp"]).replace(microsecond=0),
            recipients=tuple(receipt.get("recipients") or message.get("destination") or ()),
            source=message.get("source"),
            spam=status("spamVerdict"), virus=status("virusVerdict"), dmarc=status("dmarcVerdict"),
            dmarc_policy=(receipt.get("dmarcPolicy") or "").lower() or None,
            sender_hint=next(iter(common.get("from") or ()), None),
            subject_hint=common.get("subject"),
        )

    @property
    def key(self) -> str:
        """Where the S3 action stored the raw message."""
        return RAW_PREFIX + self.ses_message_id


def receipts(event: dict) -> list[Receipt]:
    """The receipts in an SES event (SES sends one record per invocation)."""
    return [Receipt.from_ses(record) for record in event.get("Records") or ()]


class MailStore(Protocol):
    """The mail bucket: raw messages in, attachments out."""

    bucket: str

    def read(self, key: str) -> bytes: ...

    def put(self, key: str, content: bytes, *, content_type: str, filename: str) -> None: ...


class S3MailStore:
    def __init__(self, bucket: str, client=None):
        self.bucket = bucket
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, content: bytes, *, content_type: str, filename: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=content, ContentType=content_type,
                               ContentDisposition=_disposition(filename))


def _disposition(filename: str) -> str:
    """Download as a file, never rendered inline (HTTP headers are ASCII: RFC 6266/5987)."""
    fallback = re.sub(r'[^\x20-\x7e]|["\\]', "_", filename) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# -- what came of it ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    kind: str  # ticket (a new one) | message (on an existing one) | rejected
    ticket_id: str | None = None
    reason: str | None = None  # rejected: why (SPAM, VIRUS, ...)
    via: str | None = None  # message: how it was matched (reply_token | subject | message_id)
    reopened: bool = False
    related_ticket_id: str | None = None  # ticket: the older ticket it follows up

    def to_dict(self) -> dict:
        """JSON for logs and the idempotency record: ids and codes only, never an address or text."""
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


def receive(receipt: Receipt, store: MailStore, *, policy: Policy | None = None) -> Outcome:
    """Turn one received message into a ticket, a message on a ticket, or a rejected-mail record."""
    screened = _screen(receipt)
    if screened:
        return _reject(receipt, store, *screened, sender=_address(receipt.sender_hint), subject=receipt.subject_hint)

    raw = store.read(receipt.key)  # an infrastructure error (missing object, S3 down) raises: retried
    try:
        message = mail.parse_message(raw)
        inbound = mail.parse_inbound(message)
    except mail.UnparseableMail as error:
        return _reject(receipt, store, UNPARSEABLE, error.message, sender=_address(receipt.sender_hint),
                       subject=receipt.subject_hint)
    except Exception as error:  # noqa: BLE001 - a parser bug must not lose the message or fail forever
        return _reject(receipt, store, UNPARSEABLE, f"the parser failed: {type(error).__name__}",
                       sender=_address(receipt.sender_hint), subject=receipt.subject_hint)
    del raw

    support = support_address()
    domain = support.rpartition("@")[2]
    automated = (inbound.automated or _from_support(inbound.sender.address, support)
                 or _null_sender(receipt))
    if automated:
        return _reject(receipt, store, AUTOMATED, automated, sender=inbound.sender.address,
                       subject=inbound.subject, ticket_id=_named_ticket(inbound, domain))
    try:
        sender = addresses.deliverable(inbound.sender.address)  # as the ticket stores it: IDNA, lower case
    except addresses.Undeliverable as error:
        return _reject(receipt, store, UNDELIVERABLE, f"we cannot write to the sender's address: {error.message}",
                       sender=inbound.sender.address, subject=inbound.subject, ticket_id=_named_ticket(inbound, domain))

    policy = policy or load_policy()
    related = None
    answered = _answered_ticket(inbound, sender, receipt, support)
    if answered:
        ticket, via = answered
        outcome = _add_message(ticket, inbound, sender, message, receipt, store, via, policy)
        if outcome:
            return outcome
        related = ticket.ticket_id  # closed, or resolved too long ago: a new ticket refers to it

    try:
        opened = tickets.open_ticket(tickets.NewTicket(
            channel=CHANNEL, customer_email=sender, customer_name=_clip(inbound.sender.name, 200) or None,
            subject=_clip(ticket_subject(inbound.subject), tickets.SUBJECT_MAX) or NO_SUBJECT,
            description=_clip(inbound.text or inbound.full_text, tickets.DESCRIPTION_MAX, _TRUNCATED),
            category=routing.classify(policy, inbound.subject, inbound.text or inbound.full_text),
            source_message_id=notify.answerable_message_id(inbound.message_id), related_ticket_id=related),
            policy, files=lambda: _store_attachments(message, receipt, store))
    except RateLimited as error:
        return _reject(receipt, store, RATE_LIMITED, error.message, sender=sender, subject=inbound.subject)
    return Outcome("ticket", opened.ticket.ticket_id, related_ticket_id=related)


_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw|odp|vs|ynt)\s*(?:\[\d+\])?\s*[:：]\s*", re.IGNORECASE)
_BRACKETED_REFERENCE = re.compile(rf"\[\s*HD-[{ids.CROCKFORD}]{{{ids.REFERENCE_LENGTH}}}\s*\]\s*", re.IGNORECASE)


def ticket_subject(subject: str) -> str:
    """A new ticket's subject: the customer's, without reply prefixes (``Re:``, ``AW:``...) and
    bracketed references to other tickets (``[HD-7KQ2M9]``): our emails add the new ticket's own."""
    subject = _BRACKETED_REFERENCE.sub("", subject)
    while (match := _REPLY_PREFIX.match(subject)) and match.end() < len(subject):
        subject = subject[match.end():]
    return " ".join(_BRACKETED_REFERENCE.sub("", subject).split())


def support_address() -> str:
    """``support@domain`` from Env.SUPPORT_ADDRESS (which may carry a display name), lower case."""
    return parseaddr(settings.get(Env.SUPPORT_ADDRESS))[1].lower()


# -- screening ---------------------------------------------------------------------------------------

def _screen(receipt: Receipt) -> tuple[str, str] | None:
    if receipt.virus == "FAIL":
        return VIRUS, "SES virus verdict: FAIL"
    if receipt.spam == "FAIL":
        return SPAM, "SES spam verdict: FAIL"
    if receipt.dmarc == "FAIL" and receipt.dmarc_policy in ("reject", "quarantine"):
        return SPOOFED, f"DMARC verdict FAIL under the sender domain's policy {receipt.dmarc_policy!r}"
    return None


def _null_sender(receipt: Receipt) -> str | None:
    """A null envelope sender (MAIL FROM:<>): what bounces and auto-replies use (RFC 5321 4.5.5)."""
    return "null envelope sender <> (a bounce or an auto-reply)" if receipt.source in ("", "<>") else None


def _from_support(sender: str, support: str) -> str | None:
    """Our own address (or one of its reply addresses) as the sender: a loop."""
    local, _, domain = sender.lower().rpartition("@")
    base, _, support_domain = support.rpartition("@")
    if domain == support_domain and local.split("+")[0] == base:
        return "sent from the support address itself"
    return None


def _address(value: str | None) -> str | None:
    address = parseaddr(value or "")[1]
    return address.lower() if "@" in address else None


# -- threading ---------------------------------------------------------------------------------------

def _claims(inbound: mail.InboundMail, domain: str) -> list[tuple[str, str]]:
    """(ticket id, how) the message claims to answer, strongest first: the subject's reference, then
    our Message-IDs in In-Reply-To and References (newest first)."""
    claims = []
    if reference := mail.find_ticket_reference(inbound.subject):
        claims.append((reference, "subject"))
    for message_id in mail.message_ids(inbound):
        if ticket_id := mail.ticket_id_from_message_id(message_id, domain):
            claims.append((ticket_id, "message_id"))
    return list(dict.fromkeys(claims))


def _named_ticket(inbound: mail.InboundMail, domain: str) -> str | None:
    return next((ticket_id for ticket_id, _ in _claims(inbound, domain)), None)


def _find(ticket_id: str) -> Ticket | None:
    try:
        return ledger.load(ticket_id)
    except NotFound:
        return None


def _answered_ticket(inbound: mail.InboundMail, sender: str, receipt: Receipt,
                     support: str) -> tuple[Ticket, str] | None:
    """The ticket this message answers and how we know, or None for a new request."""
    recipients: Iterable = [*receipt.recipients, *inbound.to, *inbound.cc]
    token = mail.reply_token_from(recipients, support)
    claimed = ids.reply_token_ticket(token)
    if claimed and _reply_token_valid(claimed, token):
        ticket = _find(claimed)
        if ticket is not None:
            return ticket, "reply_token"
    for ticket_id, how in _claims(inbound, support.rpartition("@")[2]):
        ticket = _find(ticket_id)
        if ticket is not None and ticket.customer_email == sender:  # a stranger's mail opens its own ticket
            return ticket, how
    return None


def _reply_token_valid(ticket_id: str, token: str) -> bool:
    return secrets.compare_digest(token.strip().lower(), tickets.reply_token(ticket_id))


def _add_message(ticket: Ticket, inbound: mail.InboundMail, sender: str, message: Message, receipt: Receipt,
                 store: MailStore, via: str, policy: Policy) -> Outcome | None:
    """The customer's email as a ``message`` on the ticket (a waiting clock resumes, a recently
    resolved ticket reopens); None when the ticket is past reopening; rejected (``rate_limited``)
    past what one ticket or one sender may add (``tickets.customer_message``)."""
    try:
        _, event = tickets.customer_message(
            ticket, _clip(inbound.text or inbound.full_text, tickets.MESSAGE_MAX, _TRUNCATED) or None,
            sender=sender, policy=policy, files=lambda: _store_attachments(message, receipt, store),
            channel=CHANNEL, via=via, message_id=notify.answerable_message_id(inbound.message_id))
    except tickets.TicketClosed:
        return None
    except RateLimited as error:
        return _reject(receipt, store, RATE_LIMITED, error.message, sender=sender, subject=inbound.subject,
                       ticket_id=ticket.ticket_id)
    reopened = bool(event.data and event.data.as_dict().get("reopened"))
    return Outcome("message", ticket.ticket_id, via=via, reopened=reopened)


# -- attachments, rejections ------------------------------------------------------------------------

def _store_attachments(message: Message, receipt: Receipt, store: MailStore) -> list[dict]:
    """Each attachment to the bucket, one at a time; what the ticket lists about them."""
    listed = []
    for attachment in mail.iter_attachments(message):
        entry = {"filename": attachment.filename, "content_type": attachment.content_type,
                 "size": attachment.size}
        if attachment.inline:
            entry["inline"] = True
        if attachment.skipped:
            entry["skipped"] = attachment.skipped
        else:
            key = f"{ATTACHMENT_PREFIX}{receipt.ses_message_id}/{attachment.index}/{attachment.filename}"
            store.put(key, attachment.content, content_type=attachment.content_type, filename=attachment.filename)
            entry["key"] = key
        listed.append(entry)
    return listed


def _reject(receipt: Receipt, store: MailStore, reason: str, detail: str, *, sender: str | None,
            subject: str | None, ticket_id: str | None = None) -> Outcome:
    day = receipt.received_at.strftime("%Y-%m-%d")
    RejectedMail(
        rejected_pk(day), f"{clock.to_iso(receipt.received_at)}#{receipt.ses_message_id}",
        ses_message_id=receipt.ses_message_id, received_at=receipt.received_at, reason=reason,
        detail=_clip(detail, 500) or None, sender=_clip(sender, 254) or None,
        subject=_clip(subject, tickets.SUBJECT_MAX) or None, recipients=list(receipt.recipients)[:50] or None,
        s3_bucket=store.bucket, s3_key=receipt.key, ticket_id=ticket_id,
        expires_at=receipt.received_at + timedelta(days=RAW_MAIL_DAYS),
    ).save()
    return Outcome("rejected", ticket_id, reason=reason)


def _clip(text: str | None, limit: int, note: str = "") -> str:
    text = (text or "").strip()
    if len(text) <= limit:
        return text
    return text[:max(0, limit - len(note))].rstrip() + note


# -- for agents --------------------------------------------------------------------------------------

REJECTED_FIELDS = ("received_at", "reason", "detail", "sender", "subject", "recipients", "ticket_id",
                   "ses_message_id", "s3_bucket", "s3_key")


def rejected(*, days: int = 7, limit: int = 100, reason: str | None = None,
             until: datetime | None = None) -> list[dict]:
    """Rejected mail of the last ``days`` days (UTC) up to ``until`` (default now), newest first, at
    most ``limit`` records, optionally of one ``reason``; each a JSON-ready dict of REJECTED_FIELDS."""
    end = until or clock.now()
    found: list[dict] = []
    for n in range(max(days, 0)):
        day = (end - timedelta(days=n)).strftime("%Y-%m-%d")
        condition = RejectedMail.reason == reason if reason else None
        for item in RejectedMail.query(rejected_pk(day), scan_index_forward=False, filter_condition=condition):
            if item.received_at > end:
                continue
            found.append(_view(item))
            if len(found) >= limit:
                return found
    return found


def _view(item: RejectedMail) -> dict:
    view = {name: getattr(item, name) for name in REJECTED_FIELDS}
    view["received_at"] = clock.to_iso(item.received_at)
    view["recipients"] = list(item.recipients or [])
    return view

