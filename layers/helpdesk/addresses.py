"""Customer addresses: we accept exactly the addresses we can write to.

SES sends to a 7-bit ASCII local part only (it has no SMTPUTF8), and to an internationalised domain
in its IDNA (punycode) form. An address we accept but cannot send to would send every update of its
ticket to the dead-letter queue while the customer waits: so the web form answers 422, the email
intake records the message as rejected, and the outbound builder refuses anything else, all by
this one check (email-validator's syntax rules, without DNS lookups).
"""

from __future__ import annotations

from helpdesk.errors import InvalidRequest

LOCAL_PART_MAX = 64  # RFC 5321 (octets; the local part is ASCII here)
ADDRESS_MAX = 254


class Undeliverable(InvalidRequest):
    code = "undeliverable_address"


def deliverable(address: str) -> str:
    """``address`` as we store it and send to it: lower case, the domain in IDNA form.

    Raises :class:`Undeliverable` (with email-validator's reason) for anything SES cannot send to:
    a non-ASCII local part, a quoted one, an IP literal, a reserved or dotless domain, a control
    character, surrounding space.
    """
    from email_validator import EmailNotValidError, validate_email  # ~20 ms of patterns: when first needed

    try:
        checked = validate_email(address, allow_smtputf8=False, check_deliverability=False)
    except EmailNotValidError as error:
        raise Undeliverable(f"{error}") from None
    local, _, domain = checked.ascii_email.rpartition("@")
    if len(local) > LOCAL_PART_MAX or len(checked.ascii_email) > ADDRESS_MAX:
        raise Undeliverable("The email address is too long.")
    return f"{local}@{domain}".lower()


def is_deliverable(address: str) -> bool:
    try:
        deliverable(address)
    except Undeliverable:
        return False
    return True
