"""The ticket table: the only place its keys and indexes are named.

One table holds each ticket (``sk = "TICKET"``) and its timeline events (``sk = "EVENT#<at>#<id>"``)
side by side, so a ticket and its history are one Query and a change plus its event is one
transaction. CDK, the local stack and the tests all build the table from :func:`table_schema`.
"""

from __future__ import annotations

import zlib
from datetime import datetime

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from helpdesk import clock, settings

TICKET_SK = "TICKET"
EVENT_SK_PREFIX = "EVENT#"
DUE_SHARDS = 8  # the due index's partitions: intake spreads over them, the sweep reads each


class IsoTimeAttribute(UnicodeAttribute):
    """UTC time stored as ``2026-11-24T16:00:00Z``: sortable, and what Step Functions Wait accepts."""

    def serialize(self, value: datetime) -> str:
        return clock.to_iso(value)

    def deserialize(self, value: str) -> datetime:
        return clock.from_iso(value)


def ticket_pk(ticket_id: str) -> str:
    return f"TICKET#{ticket_id}"


def due_shard(ticket_id: str) -> str:
    return f"DUE#{zlib.crc32(ticket_id.encode()) % DUE_SHARDS}"


class _TableMeta:
    table_name = settings.get(settings.Env.TICKETS_TABLE)
    region = None  # AWS_DEFAULT_REGION, shared with boto3 clients


class DueIndex(GlobalSecondaryIndex["Ticket"]):
    """Sparse: only tickets whose SLA clock runs carry ``due_shard``; the sweep reads it shard by shard."""

    class Meta:
        index_name = "due-index"
        projection = AllProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    next_due_at = IsoTimeAttribute(range_key=True)


class CustomerIndex(GlobalSecondaryIndex["Ticket"]):
    """A customer's tickets, newest last (only ticket items carry ``customer_email``)."""

    class Meta:
        index_name = "customer-index"
        projection = AllProjection()

    customer_email = UnicodeAttribute(hash_key=True)
    created_at = IsoTimeAttribute(range_key=True)


class Ticket(Model):
    class Meta(_TableMeta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=TICKET_SK)

    ticket_id = UnicodeAttribute()
    token_hash = UnicodeAttribute()
    channel = UnicodeAttribute()  # web | email
    customer_email = UnicodeAttribute()
    customer_name = UnicodeAttribute(null=True)
    customer_phone = UnicodeAttribute(null=True)
    customer_tier = UnicodeAttribute(default="standard")  # standard | vip
    subject = UnicodeAttribute()
    description = UnicodeAttribute()
    category = UnicodeAttribute()
    priority = UnicodeAttribute()  # low | normal | high | urgent
    department = UnicodeAttribute()
    tier = UnicodeAttribute()  # L1 | L2 | L3 | management
    status = UnicodeAttribute()  # new | open | pending_customer | resolved | closed
    created_at = IsoTimeAttribute()
    updated_at = IsoTimeAttribute()

    # The SLA clock (business-time deadlines from the priority's policy).
    first_response_due_at = IsoTimeAttribute()
    resolution_due_at = IsoTimeAttribute()
    first_responded_at = IsoTimeAttribute(null=True)
    resolved_at = IsoTimeAttribute(null=True)
    paused_at = IsoTimeAttribute(null=True)

    # The escalation chain: when the current tier's deadline passes (``next_due_at``, kind
    # ``due_kind``) the ticket goes to ``escalate_to``; ``escalation_plan`` says where it goes after
    # that ({"L2": {"at": ..., "to": "L3"}, ...}), so the state machine needs no Lambda to decide.
    next_due_at = IsoTimeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    due_kind = UnicodeAttribute(null=True)  # first_response | resolution
    escalate_to = UnicodeAttribute(null=True)
    escalation_plan = MapAttribute(null=True)
    breached = BooleanAttribute(default=False)
    escalation_count = NumberAttribute(default=0)
    transfer_count = NumberAttribute(default=0)
    version = VersionAttribute()

    due_index = DueIndex()
    customer_index = CustomerIndex()


class TicketEvent(Model):
    """One line of a ticket's timeline. ``public`` events are shown to the customer."""

    class Meta(_TableMeta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    ticket_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    type = UnicodeAttribute()  # created | message | reply | note | escalated | status_changed | ...
    at = IsoTimeAttribute()
    actor = UnicodeAttribute()  # customer | agent:<name> | system
    public = BooleanAttribute(default=True)
    body = UnicodeAttribute(null=True)
    data = MapAttribute(null=True)  # type-specific facts: from/to tier, reason, old/new status...


def event_sk(at: datetime, event_id: str) -> str:
    return f"{EVENT_SK_PREFIX}{clock.to_iso(at)}#{event_id}"


def table_schema() -> dict:
    """Keys and indexes of the ticket table, in DynamoDB's CreateTable shape (boto3 parameter names)."""
    schema = Ticket._get_schema()

    def pascal(d: dict) -> dict:
        return {k[0].upper() + k[1:]: v for k, v in d.items()}

    return {
        "AttributeDefinitions": [pascal(a) for a in schema["attribute_definitions"]],
        "KeySchema": [pascal(k) for k in schema["key_schema"]],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": gsi["index_name"],
                "KeySchema": sorted((pascal(k) for k in gsi["key_schema"]), key=lambda k: k["KeyType"]),
                "Projection": pascal(gsi["projection"]),
            }
            for gsi in schema["global_secondary_indexes"]
        ],
    }
