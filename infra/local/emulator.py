"""moto made safe for the local stack's threads, and like DynamoDB where a user would notice.

The local stack serves one in-process moto to many threads at once: the API front, the SMTP intake,
the Step Functions executions, the pumps and the sweep ticker. moto 5.2.5 is not written for that:
some of its shortcuts lose data under concurrent use, others cost in proportion to the tables.
:class:`AwsLikeEmulator` straightens them while the local stack runs (installed on ``start()``,
removed on ``stop()``):

- **One call at a time.** Every call into moto's backends holds one process-wide lock
  (:data:`CALL_LOCK`), so each AWS API call is atomic, as it is on AWS. Nothing inside a call waits
  for another thread: StartExecution only starts the execution's thread, StopExecution only sets
  its flag, SNS hands messages to SQS in the same call. The lock is re-entrant, for moto calling
  itself.
- **Transactions without table copies.** moto's TransactWriteItems deep-copies every table it
  touches (with its whole stream history) and, when the transaction is cancelled, puts the copy
  back: whatever other threads committed meanwhile vanishes, the table gets a new stream shard
  (readers stall silently), and each transaction costs time and memory in proportion to the
  tables. :func:`transact_write_items` checks every condition first, against the state before the
  transaction, keeps copies of only the items it writes, and on a failure puts back exactly those
  and drops the stream records it appended: a cancelled transaction changes nothing and emits
  nothing. Errors keep moto's shape (TransactionCanceledException with its CancellationReasons).
- **Queries that read one partition.** moto answers a Query by sorting every item of the table and
  then filtering them, so each request (a ticket's timeline, the sweep's due index) costs in
  proportion to the table. Here moto is handed only the items the key condition can match.
- **Nothing kept for moto's dashboard.** moto appends every model object it ever creates (each
  item version, stream record, shard iterator, queue message, execution) to a list on its class,
  for its server's dashboard, and never lets go: the process grows with every request. Here models
  are not tracked.
- **Streams that forget what was read.** moto keeps every stream record and every shard iterator
  ever issued. Here a record is dropped once every live iterator of its shard is past it (and at
  DynamoDB's 24-hour retention in any case); an iterator is good for one GetRecords call and
  expires after 15 minutes, as on AWS. Reading a dropped position answers
  TrimmedDataAccessException, an unknown or expired iterator ExpiredIteratorException, as AWS
  does. Sequence numbers stay unique and increasing.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber
from moto.core.common_models import BaseModel
from moto.core.exceptions import JsonRESTError
from moto.core.utils import utcnow
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

#: Held by every call into moto's backends while the emulator is installed.
CALL_LOCK = threading.RLock()
#: What the emulator did since the process started (the console's ``/status`` shows it).
COUNTS: Counter[str] = Counter()

STREAM_RETENTION = timedelta(hours=24)  # DynamoDB Streams keeps a record this long
ITERATOR_LIFETIME_S = 15 * 60  # a shard iterator expires this long after it was issued


_INHERITED = object()  # an attribute the owner did not define itself


class Patches:
    """Attributes replaced while started, put back on stop (a local stack :class:`Service`)."""

    name = "patches"

    def replacements(self) -> list[tuple[object, str, object]]:
        raise NotImplementedError

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] | None = None

    def start(self) -> None:
        if self._saved is not None:
            return
        replacements = self.replacements()
        self._saved = [(owner, attribute, vars(owner).get(attribute, _INHERITED))
                       for owner, attribute, _ in replacements]
        for owner, attribute, replacement in replacements:
            setattr(owner, attribute, replacement)

    def stop(self) -> None:
        if self._saved is None:
            return
        for owner, attribute, original in reversed(self._saved):
            if original is _INHERITED:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)
        self._saved = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- one call at a time -------------------------------------------------------------------------------

_process_request = BotocoreStubber.process_request


def _one_call_at_a_time(self: BotocoreStubber, request):
    with CALL_LOCK:
        return _process_request(self, request)


# -- untracked models ----------------------------------------------------------------------------------

def _untracked(cls, *args, **kwargs):
    return object.__new__(cls)


# -- transactions ---------------------------------------------------------------------------------------

@dataclass
class _Write:
    """One entry of a transaction: its operation, the table and the key of the item it targets."""

    kind: str  # ConditionCheck | Put | Update | Delete
    operation: dict[str, Any]
    table: Table
    hash_key: DynamoType
    range_key: DynamoType | None

    @classmethod
    def of(cls, backend: DynamoDBBackend, entry: dict[str, Any]) -> _Write:
        if len(entry) != 1:
            raise TransactWriteSingleOpException
        ((kind, operation),) = entry.items()
        if kind not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise MockValidationException(f"Unsupported transaction operation: {kind}")
        table = backend.get_table(operation["TableName"])
        hash_key, range_key = backend.get_keys_value(table, operation["Item"] if kind == "Put" else operation["Key"])
        return cls(kind, operation, table, hash_key, range_key)

    @property
    def target(self) -> tuple[str, DynamoType, DynamoType | None]:
        return self.table.name, self.hash_key, self.range_key

    def current(self) -> Item | None:
        return self.table.get_item(self.hash_key, self.range_key)

    def failed_condition(self) -> tuple[str, str, dict | None] | None:
        """moto's cancellation reason if the condition does not hold on the item as it is now."""
        expression = self.operation.get("ConditionExpression")
        if expression is None:
            return None
        current = self.current()
        condition = get_filter_expression(expression, self.operation.get("ExpressionAttributeNames"),
                                          self.operation.get("ExpressionAttributeValues"))
        if condition.expr(current):
            return None
        wants_item = self.operation.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None
        return "ConditionalCheckFailed", ConditionalCheckFailed().message, \
            current.to_json()["Attributes"] if wants_item else None

    def apply(self, backend: DynamoDBBackend) -> None:
        names, values = self.operation.get("ExpressionAttributeNames"), self.operation.get("ExpressionAttributeValues")
        if self.kind == "Put":
            backend.put_item(self.table.name, self.operation["Item"], expression_attribute_names=names,
                             expression_attribute_values=values)
        elif self.kind == "Update":
            backend.update_item(self.table.name, self.operation["Key"], self.operation["UpdateExpression"],
                                expression_attribute_names=names, expression_attribute_values=values)
        elif self.kind == "Delete":
            backend.delete_item(self.table.name, self.operation["Key"])

    def restore(self, item: Item | None) -> None:
        """Put ``item`` back as this entry's target (``None``: no item there)."""
        items = self.table.items
        if self.range_key is None:
            if item is None:
                items.pop(self.hash_key, None)
            else:
                items[self.hash_key] = item
            return
        if item is not None:
            items[self.hash_key][self.range_key] = item
            return
        if self.hash_key in items:
            items[self.hash_key].pop(self.range_key, None)
            if not items[self.hash_key]:
                del items[self.hash_key]


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems as DynamoDB runs it: all or nothing, conditions on the state before it."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    writes = [_Write.of(self, entry) for entry in transact_items]
    if len({w.target for w in writes}) != len(writes):
        raise MultipleTransactionsException()
    reasons = [w.failed_condition() for w in writes]
    if any(reasons):
        COUNTS["transactions_cancelled"] += 1
        raise TransactionCanceledException([r or (None, None, None) for r in reasons])

    before = [(w, copy.deepcopy(w.current())) for w in writes if w.kind != "ConditionCheck"]
    shards = {id(w.table.stream_shard): (w.table.stream_shard, len(w.table.stream_shard.items))
              for w in writes if w.table.stream_shard is not None}
    applied = 0
    try:
        for write in writes:
            write.apply(self)
            applied += 1
    except Exception as error:
        for write, item in reversed(before):  # update_item changes items in place: put the copies back
            write.restore(item)
        for shard, length in shards.values():
            del shard.items[length:]
        COUNTS["transactions_cancelled"] += 1
        if isinstance(error, MockValidationException):
            raise  # moto's answer to an invalid request (an item over 400 KB, say): a ValidationException
        reasons = [(None, None, None)] * len(writes)
        reasons[applied] = (type(error).__name__, str(error), None)
        raise TransactionCanceledException(reasons) from error


# -- queries ---------------------------------------------------------------------------------------------

_query = Table.query


def query(self: Table, hash_key: DynamoType | None, *args, **kwargs):
    """moto's Query, on only the items whose key attributes match (moto sorts the whole table first)."""
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    view = copy.copy(self)  # shallow: the same items, another all_items()
    view.all_items = lambda: _candidates(self, hash_key, index_name, kwargs.get("hash_key_conditions") or [])
    return _query(view, hash_key, *args, **kwargs)


def _candidates(table: Table, hash_key: DynamoType | None, index_name: str | None,
                conditions: list[tuple[str, DynamoType]]) -> list[Item]:
    if index_name is None:
        if hash_key is None or hash_key not in table.items:
            return []
        partition = table.items[hash_key]
        return list(partition.values()) if table.range_key_attr else [partition]
    everything = (item for partition in table.items.values()
                  for item in (partition.values() if table.range_key_attr else [partition]))
    return [item for item in everything if all(name in item.attrs and item.attrs[name] == value
                                               for name, value in conditions)]


# -- streams ---------------------------------------------------------------------------------------------

class TrimmedDataAccess(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("TrimmedDataAccessException",
                         "The operation attempted to read past the oldest stream record in a shard.")


class ExpiredIterator(JsonRESTError):
    def __init__(self) -> None:
        super().__init__("ExpiredIteratorException", "Iterator expired or unknown: get a new shard iterator.")


def _shard_records(self: StreamShard, start: int, quantity: int) -> list[dict[str, Any]]:
    """Up to ``quantity`` records from sequence number ``start`` (moto: the list index plus the shard's
    first sequence number, which :func:`_trim` moves on as it drops records)."""
    index = start - self.starting_sequence_number
    if index < 0:
        raise TrimmedDataAccess()
    return [record.to_json() for record in self.items[index:index + quantity]]


def _trim(shard: StreamShard, keep_from: int | None) -> int:
    """Drop the records before sequence number ``keep_from`` and those past the retention; how many."""
    oldest = utcnow() - STREAM_RETENTION
    drop = 0
    while drop < len(shard.items) and shard.items[drop].record["dynamodb"]["ApproximateCreationDateTime"] < oldest:
        drop += 1
    if keep_from is not None:
        drop = max(drop, min(keep_from - shard.starting_sequence_number, len(shard.items)))
    if drop > 0:
        del shard.items[:drop]
        shard.starting_sequence_number += drop
    return drop


def _issued(self: DynamoDBStreamsBackend, iterator: ShardIterator) -> ShardIterator:
    iterator.issued_at = time.monotonic()
    self.shard_iterators[iterator.arn] = iterator
    return iterator


def _forget_expired(self: DynamoDBStreamsBackend) -> None:
    oldest = time.monotonic() - ITERATOR_LIFETIME_S
    for arn in [a for a, i in self.shard_iterators.items() if getattr(i, "issued_at", 0.0) < oldest]:
        del self.shard_iterators[arn]


_get_shard_iterator = DynamoDBStreamsBackend.get_shard_iterator


def get_shard_iterator(self: DynamoDBStreamsBackend, arn: str, shard_id: str, shard_iterator_type: str,
                       sequence_number: str | None = None) -> ShardIterator:
    _forget_expired(self)
    return _issued(self, _get_shard_iterator(self, arn, shard_id, shard_iterator_type, sequence_number))


def get_records(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
    """Read with an iterator (used up), then drop what every live iterator of the shard has read."""
    _forget_expired(self)
    iterator = self.shard_iterators.pop(iterator_arn, None)
    if iterator is None:
        raise ExpiredIterator()
    page = iterator.get(limit)
    _issued(self, self.shard_iterators[page["NextShardIterator"]])
    shard = iterator.stream_shard
    readers = [i.sequence_number for i in self.shard_iterators.values() if i.stream_shard is shard]
    COUNTS["stream_records_trimmed"] += _trim(shard, min(readers) if readers else None)
    return page


# -- the service -------------------------------------------------------------------------------------------

class AwsLikeEmulator(Patches):
    """The straightenings above, for the local stack and for tests that run threads."""

    name = "aws-emulator"

    def replacements(self) -> list[tuple[object, str, Callable]]:
        return [
            (BotocoreStubber, "process_request", _one_call_at_a_time),
            (BaseModel, "__new__", staticmethod(_untracked)),
            (DynamoDBBackend, "transact_write_items", transact_write_items),
            (Table, "query", query),
            (StreamShard, "get", _shard_records),
            (DynamoDBStreamsBackend, "get_shard_iterator", get_shard_iterator),
            (DynamoDBStreamsBackend, "get_records", get_records),
        ]


class DynamoDbTransactions(Patches):
    """Only the transaction fix (for a test that shows it without the lock)."""

    name = "dynamodb-transactions"

    def replacements(self) -> list[tuple[object, str, Callable]]:
        return [(DynamoDBBackend, "transact_write_items", transact_write_items)]
