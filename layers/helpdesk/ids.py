"""Ticket references people can read aloud, and access tokens nobody can guess."""

import hashlib
import secrets

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_LENGTH = 6  # 32**6 ~ 1e9 references; a collision is caught by a conditional put


def new_ticket_id() -> str:
    return "HD-" + "".join(secrets.choice(CROCKFORD) for _ in range(REFERENCE_LENGTH))


def new_access_token() -> str:
    """32 random bytes, URL-safe. Only its hash is ever stored."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(token: str | None, stored_hash: str | None) -> bool:
    if not token or not stored_hash:
        return False
    return secrets.compare_digest(hash_token(token), stored_hash)
