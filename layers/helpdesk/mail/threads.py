"""Threading: which ticket a message answers (references, reply tokens, our Message-IDs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import getaddresses
from typing import TYPE_CHECKING

from helpdesk.ids import CROCKFORD, REFERENCE_LENGTH
from helpdesk.mail.headers import Mailbox, split_address

if TYPE_CHECKING:
    from helpdesk.mail.inbound import InboundMail


_REFERENCE = re.compile(rf"(?<![0-9A-Za-z])(\[)?HD-([{CROCKFORD}]{{{REFERENCE_LENGTH}}})(?(1)\])(?![0-9A-Za-z])",
                        re.IGNORECASE)


def find_ticket_reference(subject: str) -> str | None:
    """The ticket reference in a subject (``HD-7KQ2M9``, ``[hd-7kq2m9]``...), upper-cased; a
    bracketed one wins over a bare one, the first over later ones."""
    matches = list(_REFERENCE.finditer(subject or ""))
    best = next((m for m in matches if m.group(1)), matches[0] if matches else None)
    return f"HD-{best.group(2).upper()}" if best else None


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # URL-safe base64, as ids.access_token makes them


def reply_token_from(recipients: Iterable[str | Mailbox], support_address: str) -> str | None:
    """The reply token in a ``support+<token>@domain`` recipient (To, Cc, or SES's envelope
    recipients), else None. The token is only a claim: check it with ``ids.tokens_match``."""
    base, domain = split_address(support_address)
    for recipient in recipients:
        if isinstance(recipient, Mailbox):
            address = recipient.address
        else:
            address = (getaddresses([recipient]) or [("", "")])[0][1]
        local, recipient_domain = split_address(address)
        tag_base, plus, token = local.partition("+")
        if (plus and recipient_domain == domain and tag_base.lower() == base.lower()
                and _TOKEN.fullmatch(token)):
            return token
    return None


def reply_address(support_address: str, token: str) -> str:
    """``support+<token>@domain``: the Reply-To that routes a customer's answer to its ticket."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("reply token must be URL-safe base64 characters")
    local, domain = split_address(support_address)
    return f"{local}+{token}@{domain}"


def message_ids(mail: InboundMail) -> list[str]:
    """Ids of the messages this one answers: In-Reply-To first, then References newest first."""
    ids = ([mail.in_reply_to] if mail.in_reply_to else []) + list(reversed(mail.references))
    return list(dict.fromkeys(ids))


def _id_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+", "-", text).strip("-") or "x"


def ascii_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", domain):
        raise ValueError("invalid domain")
    return domain


def new_message_id(ticket_id: str, event_id: str, domain: str) -> str:
    """``<ticket.event@domain>``: deterministic, so a retried send of one event reuses its
    Message-ID (the customer's client shows one mail) and a reply names its ticket."""
    if not ticket_id or not event_id:
        raise ValueError("ticket_id and event_id are required")
    return f"<{_id_part(ticket_id)}.{_id_part(event_id)}@{ascii_domain(domain)}>"


def ticket_id_from_message_id(message_id: str, domain: str) -> str | None:
    """The ticket a Message-ID made by :func:`new_message_id` for ``domain`` belongs to. It proves
    nothing (anyone can write any In-Reply-To): only a hint to look the ticket up by."""
    pattern = rf"<?(HD-[{CROCKFORD}]{{{REFERENCE_LENGTH}}})\.[^@<>\s]+@{re.escape(ascii_domain(domain))}>?"
    match = re.fullmatch(pattern, (message_id or "").strip(), re.IGNORECASE)
    return match.group(1).upper() if match else None
