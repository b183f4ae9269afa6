"""Everything the local stack has "sent": the emails and text messages that would have left AWS.

Nothing leaves the machine. Whatever stands in for a delivery channel locally appends here (see
``infra/local/pumps.py``: the delivery function's emails and SMS, as sent through moto's SES and SNS;
team alerts, as a team's mailbox would receive them); the console shows the list (``/outbox`` as JSON,
``/outbox.html`` to read).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

from helpdesk import clock


@dataclass(frozen=True)
class OutboxMessage:
    channel: str  # email | sms | team-alert
    recipient: str
    subject: str | None
    body: str
    ticket_id: str | None
    event_type: str | None  # the timeline event that caused it: created, reply, escalated...
    time: str  # ISO 8601 UTC, ``2026-11-24T16:00:00Z``


class Outbox:
    """Thread-safe and in memory, like the rest of moto's state: it lives as long as the stack."""

    def __init__(self) -> None:
        self._messages: list[OutboxMessage] = []
        self._lock = threading.Lock()

    def append(self, *, channel: str, recipient: str, body: str, subject: str | None = None,
               ticket_id: str | None = None, event_type: str | None = None,
               time: str | None = None) -> OutboxMessage:
        message = OutboxMessage(channel=channel, recipient=recipient, subject=subject, body=body,
                                ticket_id=ticket_id, event_type=event_type,
                                time=time or clock.to_iso(clock.now()))
        with self._lock:
            self._messages.append(message)
        return message

    def messages(self) -> list[OutboxMessage]:
        with self._lock:
            return list(self._messages)

    def as_json(self) -> list[dict]:
        return [asdict(m) for m in self.messages()]
