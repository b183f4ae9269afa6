"""The API function's cold start (import time) and warm intake, each as a ratio to its bare floor.

The import is compared with ``import boto3`` (the floor of any function that talks to AWS). Two more
figures keep the ratio honest: what a first POST /tickets still loads on first use (``api_import_primed``:
the import plus the SnapStart ``prime`` hook, which loads exactly that) and the libraries alone (the
Powertools resolver with validation, pydantic, Logger and Metrics, PynamoDB), below which no cut goes.
"""

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from tests.conftest import FakeLambdaContext, sample_event  # also sets the moto environment

ROUNDS = 7
INTAKES = 60


LIBRARIES = ("aws_lambda_powertools.event_handler.openapi.params, aws_lambda_powertools.metrics, "
             "aws_lambda_powertools.logging, pydantic, pynamodb.models")


def _import_ms(module: str, env: dict | None = None, then: str = "") -> float:
    code = f"import time; t = time.perf_counter(); import {module}; {then or 'pass'}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=env or os.environ)
    return float(out.stdout) * 1000


def _from_sources_ms(module: str) -> float:
    """Import with no usable bytecode, as Lambda would if the asset shipped none (it cannot write any)."""
    with tempfile.TemporaryDirectory() as empty:
        return _import_ms(module, os.environ | {"PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"})


def cold_start() -> list[tuple[str, float, str]]:
    api, boto, primed, libraries = [], [], [], []
    for _ in range(ROUNDS):  # alternate, so machine noise hits all alike
        boto.append(_import_ms("boto3"))
        api.append(_import_ms("functions.api.handler"))
        primed.append(_import_ms("functions.api.handler", then="functions.api.handler.prime()"))
        libraries.append(_import_ms(LIBRARIES))
    api_ms, boto_ms = statistics.median(api), statistics.median(boto)
    primed_ms, libraries_ms = statistics.median(primed), statistics.median(libraries)
    sources_ms = statistics.median(_from_sources_ms("functions.api.handler") for _ in range(3))
    return [("api_import", round(api_ms, 1), "ms"), ("boto3_import", round(boto_ms, 1), "ms"),
            ("api_cold_start_ratio", round(api_ms / boto_ms, 2), "x (target <= 1.5)"),
            ("api_import_primed", round(primed_ms, 1),
             f"ms ({primed_ms / boto_ms:.2f}x: the import plus what a first POST /tickets loads on first use)"),
            ("api_libraries_import", round(libraries_ms, 1),
             f"ms ({libraries_ms / boto_ms:.2f}x: the libraries alone, the floor of any cut)"),
            ("api_import_without_bytecode", round(sources_ms, 1), "ms (the same import if the asset shipped no bytecode)")]


def warm_intake() -> list[tuple[str, float, str]]:
    """Intake through the handler against the bare writes it needs, interleaved call by call, on the
    local stack's moto (its emulator: no table copied per transaction, so neither call's cost grows
    with the table; alternating the two keeps them on tables of the same size anyway).
    """
    from infra.local.aws import local_aws
    from infra.local.emulator import AwsLikeEmulator

    emulator = AwsLikeEmulator()
    emulator.start()
    try:
        return _warm_intake(local_aws)
    finally:
        emulator.stop()


def _warm_intake(local_aws) -> list[tuple[str, float, str]]:

    rows = []
    for keyed, label in ((False, "intake"), (True, "intake_idempotent")):
        with local_aws():
            import boto3

            from functions.api import handler
            from helpdesk import clock
            from helpdesk.models import due_shard, opened_shard

            context, event = FakeLambdaContext(), sample_event("api/post_ticket_json.json")
            ddb = boto3.client("dynamodb")
            table, idempotency_table = os.environ["HELPDESK_TICKETS_TABLE"], os.environ["HELPDESK_IDEMPOTENCY_TABLE"]

            def intake(key: str | None):
                headers = {k: v for k, v in event["headers"].items() if k != "Idempotency-Key"}
                if key:
                    headers["Idempotency-Key"] = key
                multi = {k: [v] for k, v in headers.items()}
                # each request from another address: one address gets a few acknowledgements an hour
                body = json.dumps(json.loads(event["body"]) | {"email": f"c{uuid.uuid4().hex[:12]}@example.com"})
                response = handler.handler(event | {"headers": headers, "multiValueHeaders": multi, "body": body},
                                           context)
                assert response["statusCode"] == 201, response["body"]

            def bare(key: str | None):
                """What intake must write: ticket + created event in one transaction (+ the idempotency record)."""
                ticket_id, now = f"HD-{uuid.uuid4().hex[:6].upper()}", clock.now()
                indexed = {  # the ticket's entries in the due, customer, opened and queue indexes
                    "due_shard": {"S": due_shard(ticket_id)}, "next_due_at": {"S": clock.to_iso(now)},
                    "customer_email": {"S": "ann@example.com"}, "created_at": {"S": clock.to_iso(now)},
                    "opened_shard": {"S": opened_shard(ticket_id, now)},
                    "queue_pk": {"S": "QUEUE#billing#L1"}, "queue_sort": {"S": f"1#{clock.to_iso(now)}"}}
                created = {"pk": {"S": f"TICKET#{ticket_id}"}, "sk": {"S": "EVENT#x"}, "body": {"S": event["body"]}}
                ddb.get_item(TableName=table, Key={"pk": {"S": "CUSTOMERS"}, "sk": {"S": "ann@example.com"}})  # a VIP?
                ddb.update_item(  # the address's hourly acknowledgement counter (helpdesk.limits)
                    TableName=table, Key={"pk": {"S": f"RATE#tickets#{uuid.uuid4().hex}"}, "sk": {"S": "RATE"}},
                    UpdateExpression="ADD #c :one SET expires_at = :ttl", ExpressionAttributeNames={"#c": "count"},
                    ExpressionAttributeValues={":one": {"N": "1"}, ":ttl": {"N": "1"}, ":limit": {"N": "10"}},
                    ConditionExpression="attribute_not_exists(#c) OR #c < :limit")
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": table, "Item": created | {"sk": {"S": "TICKET"}, **indexed},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"TableName": table, "Item": created}},
                ])
                if key:
                    ddb.put_item(TableName=idempotency_table, Item={"id": {"S": key}, "status": {"S": "INPROGRESS"}},
                                 ConditionExpression="attribute_not_exists(id)")
                    ddb.update_item(TableName=idempotency_table, Key={"id": {"S": key}},
                                    UpdateExpression="SET #s = :done, #d = :data",
                                    ExpressionAttributeNames={"#s": "status", "#d": "data"},
                                    ExpressionAttributeValues={":done": {"S": "COMPLETED"}, ":data": {"S": event["body"]}})

            spent = {intake: 0.0, bare: 0.0}
            # Powertools keeps disabled metrics and prints them at 100 values: not bench output.
            with contextlib.redirect_stdout(io.StringIO()):
                for round_ in range(INTAKES + 1):
                    for fn in (intake, bare):
                        start = time.perf_counter()
                        fn(str(uuid.uuid4()) if keyed else None)
                        if round_:  # the first round warms clients and caches
                            spent[fn] += time.perf_counter() - start
            full, floor = spent[intake] / INTAKES * 1000, spent[bare] / INTAKES * 1000
            rows += [(f"{label}_warm", round(full, 2), "ms"), (f"{label}_bare_writes", round(floor, 2), "ms"),
                     (f"{label}_ratio", round(full / floor, 2), "x (target <= 2)")]
    return rows


def token_timing(pairs: int = 200) -> list[tuple[str, float, str]]:
    """A wrong token on an existing ticket against any token on a missing one, through the handler:
    both are 404s, and should take the same time (pairs alternate which goes first)."""
    from infra.local.aws import local_aws

    with local_aws():
        from functions.api import handler

        context, event = FakeLambdaContext(), sample_event("api/get_ticket.json")
        created = json.loads(handler.handler(sample_event("api/post_ticket_json.json"), context)["body"])

        def get(ticket_id: str) -> float:
            request = event | {"path": f"/tickets/{ticket_id}", "pathParameters": {"ticket_id": ticket_id},
                               "queryStringParameters": {"token": "W" * 43},
                               "multiValueQueryStringParameters": {"token": ["W" * 43]}}
            start = time.perf_counter()
            assert handler.handler(request, context)["statusCode"] == 404
            return time.perf_counter() - start

        wrong, missing = [], []
        with contextlib.redirect_stdout(io.StringIO()):
            for n in range(pairs + 10):
                order = ((created["id"], wrong), ("HD-000000", missing))
                for ticket_id, spent in order if n % 2 else order[::-1]:
                    spent.append(get(ticket_id))
        wrong, missing = wrong[10:], missing[10:]  # the first calls warm clients and caches
    slower = sum(w > m for w, m in zip(wrong, missing, strict=True)) / pairs
    return [("token_wrong_median", round(statistics.median(wrong) * 1000, 2), "ms (an existing ticket)"),
            ("token_missing_median", round(statistics.median(missing) * 1000, 2), "ms (no such ticket)"),
            ("token_wrong_slower_share", round(slower * 100, 1), "% of pairs (50 is no difference)")]


def run() -> list[tuple[str, float, str]]:
    return cold_start() + warm_intake() + token_timing()
