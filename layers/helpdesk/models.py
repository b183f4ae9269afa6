"""The ticket table: the only place its keys and indexes are named.

One table holds each ticket (``sk = "TICKET"``) and its timeline events (``sk = "EVENT#<at>#<id>"``)
side by side, so a ticket and its history are one Query and a change plus its event is one
transaction. CDK, the local stack and the tests all build the table from :func:`table_schema`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from helpdesk import clock, settings
from helpdesk.budget import Budget, fit
from helpdesk.utf8 import storable_item

TICKET_SK = "TICKET"
EVENT_SK_PREFIX = "EVENT#"
DUE_SHARDS = 8  # the due index's partitions: intake spreads over them, the sweep reads each
OPENED_SHARDS = 8  # the opened index's partitions per day: the same for the report
# The table's time-to-live attribute (epoch seconds): DynamoDB deletes short-lived items after it
# (email rate counters, rejected-mail records). CDK and the local stack enable TTL on this name.
TTL_ATTRIBUTE = "expires_at"

# A ticket's status: new -> open -> (pending_customer <-> open) -> resolved -> closed.
ACTIVE = ("new", "open")  # the SLA clock runs
PAUSED = "pending_customer"  # waiting on the customer: the clock stands still
CLOSED = ("resolved", "closed")


class IsoTimeAttribute(UnicodeAttribute):
    """UTC time stored as ``2026-11-24T16:00:00Z``: sortable, and what Step Functions Wait accepts."""

    def serialize(self, value: datetime) -> str:
        return clock.to_iso(value)

    def deserialize(self, value: str) -> datetime:
        return clock.from_iso(value)


def ticket_pk(ticket_id: str) -> str:
    return f"TICKET#{ticket_id}"


def _shard_of(ticket_id: str, shards: int) -> int:
    """A ticket's shard: stable, and spread evenly over ``shards``."""
    return zlib.crc32(ticket_id.encode()) % shards


def due_shard(ticket_id: str) -> str:
    """The ticket's partition in the due index."""
    return due_partition(_shard_of(ticket_id, DUE_SHARDS))


def due_partition(shard: int) -> str:
    return f"DUE#{shard}"


def opened_shard(ticket_id: str, created_at: datetime) -> str:
    """The ticket's partition in the opened index: its UTC day, spread over ``OPENED_SHARDS``."""
    return opened_partition(created_at.astimezone(UTC).date(), _shard_of(ticket_id, OPENED_SHARDS))


def opened_partition(day: date, shard: int) -> str:
    return f"OPENED#{day.isoformat()}#{shard}"


def query_pages(client, request: dict) -> Iterator[dict]:
    """Every page of one DynamoDB Query (a low-level ``client``), following ``LastEvaluatedKey``."""
    request = dict(request)
    while True:
        page = client.query(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class _TableMeta:
    table_name = settings.get(settings.Env.TICKETS_TABLE)
    region = None  # AWS_DEFAULT_REGION, shared with boto3 clients


class _Item:
    """What every write (``save``, and ``TransactWrite.save``, which serialises the same way) holds:
    only text DynamoDB accepts (strings in attributes, maps and lists pass through
    ``utf8.storable``), within the model's size budget (``helpdesk.budget``: what gives way is said
    in the item's ``omitted`` map)."""

    budget = Budget()

    def serialize(self, null_check: bool = True) -> dict:
        return fit(storable_item(super().serialize(null_check=null_check)), self.budget)


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


class OpenedIndex(GlobalSecondaryIndex["Ticket"]):
    """Tickets by the day they were opened (keys only): the SLA report reads a day's tickets, never
    the table. Written once, at creation, so later changes to a ticket cost the index nothing."""

    class Meta:
        index_name = "opened-index"
        projection = KeysOnlyProjection()

    opened_shard = UnicodeAttribute(hash_key=True)
    created_at = IsoTimeAttribute(range_key=True)


# What a queue row shows: the queue and assignee indexes project these (besides the keys), so a page
# of a tier case view is one Query per queue, never a read of the tickets themselves. No key attribute
# of any index is listed (DynamoDB refuses projecting key attributes): a row's deadline is in queue_sort.
QUEUE_ROW = (
    "ticket_id", "subject", "requester", "customer_tier", "priority", "status", "tier",
    "department", "assignee", "due_kind", "first_response_due_at", "resolution_due_at", "transfer_count",
    "updated_at", "breached",
)


class QueueIndex(GlobalSecondaryIndex["Ticket"]):
    """The tier case views: one partition per department and tier (``QUEUE#billing#L1``), ordered by
    ``queue_sort`` (helpdesk.queue): with management, then running clocks by deadline, then waiting on
    the customer, then resolved. Closed tickets leave it (sparse)."""

    class Meta:
        index_name = "queue-index"
        projection = IncludeProjection(list(QUEUE_ROW))

    queue_pk = UnicodeAttribute(hash_key=True)
    queue_sort = UnicodeAttribute(range_key=True)


class AssigneeIndex(GlobalSecondaryIndex["Ticket"]):
    """An agent's own tickets (``ASSIGNEE#<username>``), in queue order; unassigned and closed tickets
    are not in it."""

    class Meta:
        index_name = "assignee-index"
        projection = IncludeProjection(list(QUEUE_ROW))

    assignee_pk = UnicodeAttribute(hash_key=True)
    queue_sort = UnicodeAttribute(range_key=True)


class Ticket(_Item, Model):
    class Meta(_TableMeta):
        pass

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=TICKET_SK)

    ticket_id = UnicodeAttribute()
    token_hash = UnicodeAttribute()
    channel = UnicodeAttribute()  # web | email
    customer_email = UnicodeAttribute()
    customer_name = UnicodeAttribute(null=True)
    # Who asked, as a queue row names them: the name, else the address (customer_email is a key of the
    # customer index, which DynamoDB does not project as a non-key attribute into another index).
    requester = UnicodeAttribute(null=True)
    customer_phone = UnicodeAttribute(null=True)
    customer_tier = UnicodeAttribute(default="standard")  # standard | vip
    customer_time_zone = UnicodeAttribute(null=True)  # IANA zone the customer's browser gave: their times use it
    subject = UnicodeAttribute()
    description = UnicodeAttribute()
    category = UnicodeAttribute()
    priority = UnicodeAttribute()  # low | normal | high | urgent
    department = UnicodeAttribute()
    tier = UnicodeAttribute()  # L1 | L2 | L3 | management
    status = UnicodeAttribute()  # new | open | pending_customer | resolved | closed
    created_at = IsoTimeAttribute()
    opened_shard = UnicodeAttribute(null=True)  # the opened index: day and shard, set at creation
    updated_at = IsoTimeAttribute()

    # The SLA clock (business-time deadlines from the priority's policy).
    first_response_due_at = IsoTimeAttribute()
    resolution_due_at = IsoTimeAttribute()
    first_responded_at = IsoTimeAttribute(null=True)
    resolved_at = IsoTimeAttribute(null=True)
    paused_at = IsoTimeAttribute(null=True)
    # Each earlier wait on the customer, "<start>/<end>" (ISO 8601 intervals): a priority change
    # recomputes the deadlines from creation and credits these waits again.
    pauses = ListAttribute(of=UnicodeAttribute, null=True)

    # The escalation chain: when the current tier's deadline passes (``next_due_at``, kind
    # ``due_kind``) the ticket goes to ``escalate_to``; ``escalation_plan`` says where it goes after
    # that ({"L2": {"at": ..., "to": "L3"}, ...}), so the state machine needs no Lambda to decide.
    next_due_at = IsoTimeAttribute(null=True)
    due_shard = UnicodeAttribute(null=True)
    due_kind = UnicodeAttribute(null=True)  # first_response | resolution
    escalate_to = UnicodeAttribute(null=True)
    escalation_plan = MapAttribute(null=True)
    # The name of the escalation execution that owns the clock when it is not the ticket id (a chain
    # restarted because the deadline moved earlier); any other execution of the ticket ends itself.
    escalation_chain = UnicodeAttribute(null=True)
    breached = BooleanAttribute(default=False)
    escalation_count = NumberAttribute(default=0)
    transfer_count = NumberAttribute(default=0)
    # The support desk: who works the ticket (a Cognito username), where it shows in the tier case views
    # (helpdesk.queue sets these on every commit), the customer's latest rating, a merge.
    assignee = UnicodeAttribute(null=True)
    queue_pk = UnicodeAttribute(null=True)
    queue_sort = UnicodeAttribute(null=True)
    assignee_pk = UnicodeAttribute(null=True)
    csat_score = NumberAttribute(null=True)
    merged_into = UnicodeAttribute(null=True)
    # The email channel: the customer's Message-ID that opened the ticket (our emails answer it), the
    # older ticket this one follows up (a reply after the reopen window), and the files that came
    # with the customer's emails ([{filename, content_type, size, key | skipped, inline}], keys in
    # the mail bucket).
    source_message_id = UnicodeAttribute(null=True)
    related_ticket_id = UnicodeAttribute(null=True)
    attachments = ListAttribute(null=True)
    customer_messages = NumberAttribute(null=True)  # messages the customer added (tickets.customer_message caps them)
    omitted = MapAttribute(null=True)  # what the size budget left out: {"attachments": 2950, ...}
    version = VersionAttribute()

    budget = Budget(lists=(("attachments",),), texts=(("description",),))

    due_index = DueIndex()
    customer_index = CustomerIndex()
    opened_index = OpenedIndex()
    queue_index = QueueIndex()
    assignee_index = AssigneeIndex()


class TicketEvent(_Item, Model):
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
    version = NumberAttribute(null=True)  # the ticket's version this event's change made (helpdesk.ledger)
    # Only on a ``resolved`` status change: it schedules the auto-close (the sweep closes the ticket 7 days
    # later without a customer reply) by sitting in the sparse due index itself (helpdesk.sweep).
    due_shard = UnicodeAttribute(null=True)
    next_due_at = IsoTimeAttribute(null=True)
    due_kind = UnicodeAttribute(null=True)  # auto_close
    omitted = MapAttribute(null=True)  # what the size budget left out: {"attachments": 2950, "body": 1200}

    budget = Budget(lists=(("data", "attachments"),), texts=(("body",),))


class RejectedMail(_Item, Model):
    """Inbound email that opened no ticket and reached none (spam, virus, an auto-reply, a bounce, a
    list, a flood, an unreadable message), kept for agents with the raw message's place in the mail
    bucket. One partition per UTC day, oldest first; it expires with the raw message.
    """

    class Meta(_TableMeta):
        pass

    pk = UnicodeAttribute(hash_key=True)  # REJECTED#2026-11-24
    sk = UnicodeAttribute(range_key=True)  # <received_at>#<SES message id>
    ses_message_id = UnicodeAttribute()
    received_at = IsoTimeAttribute()
    reason = UnicodeAttribute()  # spam | virus | spoofed | automated | unparseable | undeliverable | rate_limited
    detail = UnicodeAttribute(null=True)  # in words: which header, which verdict, what was missing
    sender = UnicodeAttribute(null=True)  # the address, when one could be read
    subject = UnicodeAttribute(null=True)
    recipients = ListAttribute(of=UnicodeAttribute, null=True)  # SES's envelope recipients
    s3_bucket = UnicodeAttribute(null=True)
    s3_key = UnicodeAttribute(null=True)  # the raw message
    ticket_id = UnicodeAttribute(null=True)  # the ticket it names (subject or our Message-ID), unverified
    expires_at = TTLAttribute(null=True, attr_name=TTL_ATTRIBUTE)
    omitted = MapAttribute(null=True)  # what the size budget left out

    budget = Budget(lists=(("recipients",),), texts=(("detail",), ("subject",)))


class Customer(_Item, Model):
    """What the support desk knows about a customer beyond their tickets: set by managers, shown first
    on every ticket of theirs (an agent sees the customer's value before offering any compensation)."""

    class Meta(_TableMeta):
        pass

    # One partition for every record: managers list them (a Query), agents read one (a GetItem per ticket
    # opened or viewed). Records are few and set by hand: the partition's throughput is far from binding.
    pk = UnicodeAttribute(hash_key=True, default="CUSTOMERS")
    sk = UnicodeAttribute(range_key=True)  # the customer's address
    email = UnicodeAttribute()
    value_tier = UnicodeAttribute(default="standard")  # standard | vip
    lifetime_value = NumberAttribute(null=True)  # in the policy's currency, whole units
    notes = UnicodeAttribute(null=True)
    updated_at = IsoTimeAttribute()
    updated_by = UnicodeAttribute()  # the manager (Cognito username)
    version = VersionAttribute()


CUSTOMERS_PK = "CUSTOMERS"


class Presence(_Item, Model):
    """Who has a ticket open, or is writing on it, now: each agent's console says so every few seconds
    (collision detection). Short-lived: it ends when the agent's console stops saying so."""

    class Meta(_TableMeta):
        pass

    pk = UnicodeAttribute(hash_key=True)  # TICKET#<id>: next to the ticket, never in its timeline
    sk = UnicodeAttribute(range_key=True)  # PRESENCE#<username>
    username = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    state = UnicodeAttribute()  # viewing | typing
    at = IsoTimeAttribute()
    expires_at = TTLAttribute(null=True, attr_name=TTL_ATTRIBUTE)


PRESENCE_SK_PREFIX = "PRESENCE#"


def rejected_pk(day: str) -> str:
    return f"REJECTED#{day}"


class SenderCounter(_Item, Model):
    """How much one address did in one clock hour: tickets opened, messages added (``helpdesk.limits``)."""

    class Meta(_TableMeta):
        pass

    pk = UnicodeAttribute(hash_key=True)  # RATE#<tickets | messages>#<address digest>#<2026-11-24T09>
    sk = UnicodeAttribute(range_key=True, default="RATE")
    count = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True, attr_name=TTL_ATTRIBUTE)


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
