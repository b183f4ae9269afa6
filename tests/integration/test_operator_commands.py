"""The operator's commands against a deployed stack: every name comes from the stack's CloudFormation
outputs (``describe_stacks`` answered by botocore's Stubber: moto's CloudFormation would need every
moto extra), the data from moto; never a guessed name. A missing stack or output is one line, not a
traceback."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from helpdesk import clock, deployment, replay, report, tickets
from helpdesk.deployment import Output
from helpdesk.settings import Env

OPENED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class CloudFormation:
    """What ``describe_stacks`` answers, stubbed: each call of an operator's command gets its answer."""

    def __init__(self, monkeypatch):
        self.client = boto3.client("cloudformation")
        self.stub = Stubber(self.client)
        self.stub.activate()
        made = deployment.aws_client
        monkeypatch.setattr(deployment, "aws_client", lambda service, **config: self.client
                            if service == "cloudformation" else self.other(made, service, config))
        self.clients: dict[str, object] = {}

    def other(self, made, service: str, config: dict):
        return self.clients.get(service) or made(service, **config)

    def deployed(self, outputs: dict[str, str], name: str = deployment.STACK_NAME) -> None:
        """The next describe_stacks finds ``name`` with ``outputs`` (what ``cdk deploy`` leaves behind)."""
        self.stub.add_response("describe_stacks", {"Stacks": [{
            "StackName": name, "CreationTime": OPENED, "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}, {"StackName": name})

    def missing(self, name: str) -> None:
        self.stub.add_client_error("describe_stacks", service_error_code="ValidationError", http_status_code=400,
                                   service_message=f"Stack with id {name} does not exist",
                                   expected_params={"StackName": name})


@pytest.fixture
def cloudformation(aws, monkeypatch):
    stub = CloudFormation(monkeypatch)
    yield stub
    stub.stub.assert_no_pending_responses()


def test_make_report_reads_the_table_the_stack_names_not_a_guessed_one(aws, cloudformation, monkeypatch, capsys):
    # Given a deployed stack whose ticket table CloudFormation named, and a ticket in it
    with clock.frozen(OPENED):
        tickets.open_ticket(tickets.NewTicket(channel="web", customer_email="ada@example.com", subject="Help",
                                              description="It broke."))
    cloudformation.deployed({Output.TICKETS_TABLE: aws[Env.TICKETS_TABLE]})
    monkeypatch.setenv(Env.TICKETS_TABLE.value, "helpdesk-tickets-guessed")  # whatever the shell says

    # When the operator runs the README's command
    code = report.main(["--from", "2026-11-01", "--to", "2026-11-03", "--by", "day", "--json"])

    # Then the report covers the stack's table
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["day"], r["opened"]) for r in rows] == [("2026-11-02", 1), ("*", 1)]


def test_without_the_stack_the_commands_say_so_in_one_line(cloudformation, capsys):
    # Given no stack of that name in the account and region
    cloudformation.missing("Helpdesk-typo")
    cloudformation.missing("Helpdesk-typo")
    # When the operator runs the report and the replay against it
    codes = [report.main(["--stack", "Helpdesk-typo"]), replay.main(["delivery", "--show", "--stack", "Helpdesk-typo"])]

    # Then both end with status 2 and a line saying what to do, no traceback
    err = capsys.readouterr().err
    assert codes == [2, 2]
    assert err.count("error: no stack 'Helpdesk-typo' in us-east-1: deploy it, pass --stack NAME, or --local") == 2
    assert "Traceback" not in err


def test_a_stack_from_before_the_outputs_is_named_as_such(cloudformation, capsys):
    # Given a stack deployed before it had the TicketsTableName output
    cloudformation.deployed({"ApiUrl": "https://example.execute-api.us-east-1.amazonaws.com/v1/"})

    # When the operator asks for the report
    code = report.main([])

    # Then they learn which output is missing
    assert code == 2
    assert "stack 'Helpdesk' has no output TicketsTableName: deploy this version of the stack" in capsys.readouterr().err


def test_replay_finds_queues_table_and_functions_in_the_outputs_and_runs_the_function_by_name(aws, cloudformation):
    # Given a deployed stack's outputs (queues, table, functions: all named by CloudFormation)
    sqs = boto3.client("sqs")
    urls = {q: sqs.create_queue(QueueName=f"Helpdesk-{q}-failures-X1Y2")["QueueUrl"] for q in replay.QUEUES}
    cloudformation.deployed({
        Output.PUBLISHER_FAILURES: urls["publisher"], Output.DELIVERY_FAILURES: urls["delivery"],
        Output.EMAIL_FAILURES: urls["email"], Output.TICKETS_TABLE: aws[Env.TICKETS_TABLE],
        Output.PUBLISHER_FUNCTION: "Helpdesk-Publisher-A1", Output.DELIVERY_FUNCTION: "Helpdesk-Delivery-B2",
        Output.EMAIL_FUNCTION: "Helpdesk-IntakeFunction-C3",
    })
    lambda_ = cloudformation.clients["lambda"] = boto3.client("lambda")
    stubbed = Stubber(lambda_)

    def answer(payload: dict, error: str | None = None) -> dict:
        body = json.dumps(payload).encode()
        return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body)),
                **({"FunctionError": error} if error else {})}

    event = {"Records": []}
    stubbed.add_response("invoke", answer({"outcomes": []}),
                         {"FunctionName": "Helpdesk-IntakeFunction-C3", "Payload": json.dumps(event).encode()})
    stubbed.add_response("invoke", answer({"errorType": "NotSent", "errorMessage": "ann@example.com refused"},
                                          error="Unhandled"))

    # When the replay resolves the stack and runs two functions
    with stubbed:
        target = replay.deployed()
        first = target.invoke("email", event)
        with pytest.raises(replay.ReplayFailed) as failed:
            target.invoke("delivery", event)

    # Then it used the stack's names, and a function error is the replay's failure, address masked
    assert target.queue_urls == urls and target.table == aws[Env.TICKETS_TABLE]
    assert first == {"outcomes": []}
    assert str(failed.value) == "Helpdesk-Delivery-B2 failed again: NotSent: a***@example.com refused"


def test_the_local_console_port_is_the_one_make_dev_uses():
    from infra.local.config import DEFAULT_PORTS, LocalEnv

    assert DEFAULT_PORTS[LocalEnv.CONSOLE_PORT] == deployment.LOCAL_CONSOLE_PORT
