"""Outbound MIME: what our emails to customers look like on the wire, threaded and marked."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from helpdesk import clock
from helpdesk.addresses import Undeliverable, deliverable
from helpdesk.mail.headers import ADDRESS, MSG_ID, Mailbox, clean_header, split_address
from helpdesk.mail.threads import ascii_domain

AUTO_REPLIED = "auto-replied"  # RFC 3834 Auto-Submitted values for build_outbound
AUTO_GENERATED = "auto-generated"


_STRUCTURAL = {"from", "to", "cc", "bcc", "subject", "message-id", "in-reply-to", "references",
               "reply-to", "date", "mime-version", "content-type", "content-transfer-encoding",
               "auto-submitted"}
_MAX_REFERENCES = 20


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _mailbox_header(value: str | Mailbox, *, recipient: bool = False) -> Address:
    """A From, To or Reply-To mailbox. A recipient must be an address SES can send to
    (``helpdesk.addresses.deliverable``, the one check of a customer address); our own addresses
    (From, Reply-To: configured, and a test domain locally) must be well-formed 7-bit ASCII."""
    if isinstance(value, Mailbox):
        name, address = value.name, value.address
    elif "<" in value:
        name, address = (getaddresses([value]) or [("", "")])[0]
    else:
        name, address = "", value
    if _CONTROL.search(address) or (isinstance(value, str) and _CONTROL.search(value)):
        raise ValueError("invalid email address: control characters")
    if recipient:
        try:
            address = deliverable(address)
        except Undeliverable as error:
            raise ValueError(f"undeliverable address: {error.message}") from None
    local, domain = split_address(address)
    if not local or not domain or not ADDRESS.fullmatch(f"{local}@{domain}") or not local.isascii():
        raise ValueError("invalid email address")
    return Address(display_name=clean_header(name), username=local, domain=ascii_domain(domain))


def _msgid(value: str) -> str:
    value = value.strip()
    value = value if value.startswith("<") else f"<{value}>"
    if not MSG_ID.fullmatch(value) or "@" not in value:
        raise ValueError("invalid message id")
    return value


def build_outbound(*, sender: str | Mailbox, to: str | Mailbox | Iterable[str | Mailbox], subject: str,
                   text: str, html: str | None, message_id: str, in_reply_to: str | None = None,
                   references: Iterable[str] = (), reply_to: str | Mailbox | None = None,
                   headers: Mapping[str, str] | None = None, auto_submitted: str | None = None,
                   date: datetime | None = None) -> bytes:
    """A ready-to-send MIME message (multipart/alternative: plain and HTML, quoted-printable UTF-8,
    CRLF) threaded under ``in_reply_to``/``references`` so the customer's client keeps the
    conversation together. ``auto_submitted`` (AUTO_REPLIED for acknowledgements, AUTO_GENERATED
    for notifications) marks it per RFC 3834 and asks Exchange not to auto-answer it.
    Raises ValueError for an invalid address, id or header, and for a recipient SES cannot send to."""
    if auto_submitted not in (None, AUTO_REPLIED, AUTO_GENERATED):
        raise ValueError("auto_submitted must be auto-replied or auto-generated")
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _mailbox_header(sender)
    recipients = [to] if isinstance(to, (str, Mailbox)) else list(to)
    if not recipients:
        raise ValueError("no recipient")
    msg["To"] = [_mailbox_header(r, recipient=True) for r in recipients]
    if reply_to:
        msg["Reply-To"] = _mailbox_header(reply_to)
    msg["Subject"] = clean_header(subject)
    msg["Date"] = format_datetime((date or clock.now()).astimezone(UTC))
    msg["Message-ID"] = _msgid(message_id)
    chain = [_msgid(r) for r in references]
    if in_reply_to:
        parent = _msgid(in_reply_to)
        msg["In-Reply-To"] = parent
        if parent not in chain:
            chain.append(parent)
    if chain:  # RFC 5322 3.6.4: keep the first (the thread's root) and the most recent ones
        chain = list(dict.fromkeys(chain))
        chain = chain if len(chain) <= _MAX_REFERENCES else chain[:1] + chain[-(_MAX_REFERENCES - 1):]
        msg["References"] = " ".join(chain)
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (headers or {}).items():
        if name.lower() in _STRUCTURAL or not re.fullmatch(r"[!-9;-~]+", name):
            raise ValueError(f"header {name!r} cannot be set here")
        msg[name] = value
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()
