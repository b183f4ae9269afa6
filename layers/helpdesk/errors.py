"""Domain errors. The API maps each to a status code in one place (functions/api)."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, details: list | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(DomainError):
    """Also what a wrong access token gets: a stranger cannot tell a ticket exists."""

    code = "not_found"


class InvalidRequest(DomainError):
    code = "invalid_request"


class Conflict(DomainError):
    """The ticket changed under us, or the transition is not allowed from its state."""

    code = "conflict"


class ConfigError(Exception):
    """The reviewed policy file is invalid: raised at load, naming the bad entry."""


class Forbidden(DomainError):
    """An agent acting outside what their groups allow (reading such a ticket is NotFound instead)."""

    code = "forbidden"


class PreconditionRequired(DomainError):
    """A change that must name the version it was made on (``If-Match``) and did not."""

    code = "precondition_required"


class RateLimited(DomainError):
    """Too many of something from one sender within a window (tickets, acknowledgements, messages)."""

    code = "rate_limited"

    def __init__(self, message: str, details: list | None = None, retry_after: int | None = None):
        super().__init__(message, details)
        self.retry_after = retry_after  # seconds, for a Retry-After header


class Stale(Conflict):
    """A change made on a version of the ticket that is no longer current: nothing was written. Says
    which version is current and what changed since the one the client saw."""

    def __init__(self, message: str, *, current_version: int, changes: list[dict]):
        super().__init__(message, changes)
        self.current_version = current_version
