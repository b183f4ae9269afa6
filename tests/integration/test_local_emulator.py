"""The local stack's AWS emulator (infra/local/emulator.py) on moto: transactions are all or nothing
without copying tables, streams forget what every reader has read, one call at a time."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.exceptions import ClientError

from helpdesk.settings import Env
from infra.local.emulator import AwsLikeEmulator, DynamoDbTransactions
from infra.local.pumps import TableStream

WAIT_S = 60  # for another thread: generous, the machine may be busy


@pytest.fixture
def table(aws) -> str:
    return aws[Env.TICKETS_TABLE]


@pytest.fixture
def emulator(aws):
    with AwsLikeEmulator() as installed:
        yield installed


def key(pk: str, sk: str = "TICKET") -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def put(table: str, pk: str, **attributes: str) -> dict:
    return {"Put": {"TableName": table, "Item": key(pk) | {k: {"S": v} for k, v in attributes.items()}}}


def put_if_absent(table: str, pk: str) -> dict:
    return {"Put": {"TableName": table, "Item": key(pk), "ConditionExpression": "attribute_not_exists(pk)"}}


def item(table: str, pk: str) -> dict | None:
    return boto3.client("dynamodb").get_item(TableName=table, Key=key(pk), ConsistentRead=True).get("Item")


def stream_keys(stream: TableStream) -> list[tuple[str, str]]:
    return [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in stream.records()]


@pytest.mark.parametrize("second, error", [
    (lambda table: put_if_absent(table, "TICKET#taken"), "TransactionCanceledException"),
    (lambda table: put(table, "TICKET#taken", body="x" * 410_000), "ValidationException"),  # over 400 KB
], ids=["condition-fails", "item-too-large"])
def test_a_failed_transaction_keeps_what_another_thread_committed_meanwhile(table, second, error, monkeypatch):
    """moto alone copies the table when a transaction starts and puts the copy back when it fails:
    the other thread's acknowledged write vanished."""
    from moto.dynamodb.models.table import Table

    client = boto3.client("dynamodb")
    client.put_item(TableName=table, Item=key("TICKET#taken"))
    inside, go_on = threading.Event(), threading.Event()
    get_item = Table.get_item

    def pausing_at_the_second_item(self, hash_key, range_key=None, *args, **kwargs):
        if hash_key.value == "TICKET#taken" and threading.current_thread() is doomed:
            inside.set()
            assert go_on.wait(WAIT_S)
        return get_item(self, hash_key, range_key, *args, **kwargs)

    monkeypatch.setattr(Table, "get_item", pausing_at_the_second_item)
    failures = []

    def doomed_transaction():
        try:
            client.transact_write_items(TransactItems=[put(table, "TICKET#first"), second(table)])
        except ClientError as failure:
            failures.append(failure.response["Error"]["Code"])

    with DynamoDbTransactions():  # the fix alone: without the lock the two threads really interleave
        doomed = threading.Thread(target=doomed_transaction)
        doomed.start()
        assert inside.wait(WAIT_S)
        client.put_item(TableName=table, Item=key("TICKET#other") | {"by": {"S": "the other thread"}})  # acknowledged
        go_on.set()
        doomed.join(WAIT_S)

    assert failures == [error]
    assert item(table, "TICKET#other") == key("TICKET#other") | {"by": {"S": "the other thread"}}
    assert item(table, "TICKET#first") is None and item(table, "TICKET#taken") == key("TICKET#taken")


def test_a_cancelled_transaction_changes_nothing_and_emits_nothing_and_the_stream_flows_on(table, emulator):
    client = boto3.client("dynamodb")
    stream = TableStream(table)
    client.put_item(TableName=table, Item=key("TICKET#a") | {"status": {"S": "new"}})
    client.put_item(TableName=table, Item=key("TICKET#taken"))
    assert stream_keys(stream) == [("INSERT", "TICKET#a"), ("INSERT", "TICKET#taken")]

    # When a transaction updates one item, then finds the other's condition false
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": key("TICKET#a"), "UpdateExpression": "SET #s = :open",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":open": {"S": "open"}}}},
            put_if_absent(table, "TICKET#taken"),
        ])

    # Then it is cancelled with moto's reasons (PynamoDB and Step Functions read them), and changed nothing
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert item(table, "TICKET#a")["status"] == {"S": "new"}
    assert stream_keys(stream) == []

    # And the writes after it reach the same reader
    client.put_item(TableName=table, Item=key("TICKET#b"))
    assert stream_keys(stream) == [("INSERT", "TICKET#b")]


def test_an_item_over_400_kb_cancels_the_whole_transaction_cleanly(table, emulator):
    client = boto3.client("dynamodb")
    stream = TableStream(table)
    client.put_item(TableName=table, Item=key("TICKET#a") | {"note": {"S": "small"}})
    stream.records()

    for too_big in (put(table, "TICKET#big", body="x" * 410_000),
                    {"Update": {"TableName": table, "Key": key("TICKET#a"), "UpdateExpression": "SET body = :big",
                                "ExpressionAttributeValues": {":big": {"S": "x" * 410_000}}}}):
        with pytest.raises(ClientError) as refused:
            client.transact_write_items(TransactItems=[put(table, "TICKET#first", note="written first"), too_big])
        assert refused.value.response["Error"]["Code"] == "ValidationException"

    assert item(table, "TICKET#first") is None and item(table, "TICKET#big") is None
    assert item(table, "TICKET#a") == key("TICKET#a") | {"note": {"S": "small"}}
    assert stream_keys(stream) == []


def test_conditions_see_the_state_before_the_transaction(table, emulator):
    client = boto3.client("dynamodb")

    client.transact_write_items(TransactItems=[
        put(table, "TICKET#a", status="new"),
        {"ConditionCheck": {"TableName": table, "Key": key("TICKET#b"), "ConditionExpression": "attribute_not_exists(pk)"}},
    ])
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[
            {"Delete": {"TableName": table, "Key": key("TICKET#a")}},
            {"ConditionCheck": {"TableName": table, "Key": key("TICKET#a", "EVENT#1"),
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])

    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert item(table, "TICKET#a") is not None


# -- streams ----------------------------------------------------------------------------------------------

def shard_records(table: str) -> list:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].get_table(table).stream_shard.items


def test_records_every_reader_has_read_are_dropped_and_sequence_numbers_go_on(table, emulator):
    client = boto3.client("dynamodb")
    fast, slow = TableStream(table), TableStream(table)
    fast.records(), slow.records()  # both read (nothing yet): two readers at the start

    for n in range(3):
        client.put_item(TableName=table, Item=key(f"TICKET#{n}"))
    first = [r["dynamodb"]["SequenceNumber"] for r in fast.records()]
    assert len(shard_records(table)) == 3  # the slow reader has not read them

    assert [r["dynamodb"]["SequenceNumber"] for r in slow.records()] == first
    assert shard_records(table) == []  # everyone has: gone
    client.put_item(TableName=table, Item=key("TICKET#3"))
    [after] = fast.records()
    assert int(after["dynamodb"]["SequenceNumber"]) == int(first[-1]) + 1


def test_an_iterator_is_good_for_one_read_and_a_trimmed_position_says_so(table, emulator):
    client, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    arn = TableStream(table).arn
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    client.put_item(TableName=table, Item=key("TICKET#a"))

    [record] = streams.get_records(ShardIterator=iterator)["Records"]
    with pytest.raises(streams.exceptions.ExpiredIteratorException):
        streams.get_records(ShardIterator=iterator)
    with pytest.raises(streams.exceptions.TrimmedDataAccessException):  # read by every reader: dropped
        old = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                         SequenceNumber=record["dynamodb"]["SequenceNumber"])["ShardIterator"]
        streams.get_records(ShardIterator=old)


def test_the_pump_reads_on_after_an_expired_iterator_and_says_what_was_lost(table, emulator, caplog):
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    client = boto3.client("dynamodb")
    stream = TableStream(table)
    client.put_item(TableName=table, Item=key("TICKET#a"))
    assert stream_keys(stream) == [("INSERT", "TICKET#a")]
    backend = dynamodbstreams_backends["123456789012"]["us-east-1"]

    backend.shard_iterators.clear()  # every iterator expired (15 minutes without a read)
    client.put_item(TableName=table, Item=key("TICKET#b"))
    assert stream_keys(stream) == [("INSERT", "TICKET#b")]  # on after the last record read: nothing twice
    assert "expired" in caplog.text

    backend.shard_iterators.clear()  # ... and then nobody read the next ones before they were dropped
    client.put_item(TableName=table, Item=key("TICKET#c"))
    client.put_item(TableName=table, Item=key("TICKET#d"))
    other = TableStream(table)
    other.records()  # the only reader: what it has read goes
    assert stream_keys(stream) == []
    assert "trimmed before they were read" in caplog.text
    client.put_item(TableName=table, Item=key("TICKET#e"))
    assert stream_keys(stream) == [("INSERT", "TICKET#e")]


# -- queries ----------------------------------------------------------------------------------------------

def test_queries_answer_as_moto_does_from_one_partition(table):
    from datetime import timedelta

    from helpdesk import clock, sweep, tickets

    for n in range(3):
        opened = tickets.open_ticket(tickets.NewTicket(channel="web", customer_email=f"q{n}@example.com",
                                                       subject="Help", description="It broke."))
    tickets.add_customer_message(opened.ticket.ticket_id, opened.access_token, "More.")

    def answers() -> tuple:
        due = sweep.due_entries(clock.now() + timedelta(days=60))  # the due index, shard by shard
        return due, [e.sk for e in tickets.timeline(opened.ticket.ticket_id, public_only=False)]

    plain = answers()
    with AwsLikeEmulator():
        emulated = answers()

    assert emulated == plain and len(plain[0]) == 3 and len(plain[1]) == 2
