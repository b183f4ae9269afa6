"""Ticket references people can read aloud, and access tokens nobody can guess.

An access token is HMAC-SHA256(secret, ticket id): 32 bytes nobody can compute without the secret
(kept in Secrets Manager), which lets the delivery function put the private link in every email
while the table stores only the token's SHA-256.
"""

import base64
import hashlib
import hmac
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
