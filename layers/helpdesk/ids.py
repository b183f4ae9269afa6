"""Ticket references people can read aloud, and access tokens nobody can guess.

An access token is HMAC-SHA256(secret, ticket id): 32 bytes nobody can compute without the secret
(kept in Secrets Manager), which lets the delivery function put the private link in every email
while the table stores only the token's SHA-256.
"""

import base64
import hashlib
import hmac
import re
import secrets

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_LENGTH = 6  # 32**6 ~ 1e9 references; a collision is caught by a conditional put


def new_ticket_id() -> str:
    return "HD-" + "".join(secrets.choice(CROCKFORD) for _ in range(REFERENCE_LENGTH))


def access_token(ticket_id: str, secret: bytes) -> str:
    digest = hmac.new(secret, ticket_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(token: str | None, stored_hash: str | None) -> bool:
    if not token or not stored_hash:
        return False
    return secrets.compare_digest(hash_token(token), stored_hash)


# A ticket's reply token: the tag of its reply address, ``support+<token>@domain``, that routes a
# customer's answer to the ticket whoever sends it. Mail servers may change the case of a local part,
# so it is lower case only: the ticket id, then 120 bits of HMAC-SHA256 (a message distinct from the
# access token's, so neither token reveals the other) in base32. Nothing is stored: it is recomputed.
REPLY_TOKEN_MAC_BYTES = 15  # 24 base32 characters, no padding
_REPLY_TOKEN = re.compile(rf"(hd-[{CROCKFORD.lower()}]{{{REFERENCE_LENGTH}}})-[a-z2-7]{{24}}")


def reply_token(ticket_id: str, secret: bytes) -> str:
    """``hd-7kq2m9-<24 base32 characters>``, lower case."""
    digest = hmac.new(secret, b"reply-token\0" + ticket_id.upper().encode(), hashlib.sha256).digest()
    mac = base64.b32encode(digest[:REPLY_TOKEN_MAC_BYTES]).decode().lower()
    return f"{ticket_id.lower()}-{mac}"


def reply_token_ticket(token: str | None) -> str | None:
    """The ticket a reply token claims (``HD-7KQ2M9``), whatever its case; None if it is no reply token.
    A claim only: check it with :func:`reply_token_matches`."""
    match = _REPLY_TOKEN.fullmatch((token or "").strip().lower())
    return match.group(1).upper() if match else None


def reply_token_matches(token: str | None, secret: bytes) -> bool:
    """True if ``token`` (any case) is the reply token of the ticket it names."""
    ticket_id = reply_token_ticket(token)
    return bool(ticket_id) and secrets.compare_digest(token.strip().lower(), reply_token(ticket_id, secret))
