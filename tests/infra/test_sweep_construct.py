"""The SLA sweep and report in the synthesized template (cdk-nag has passed when the fixture exists)."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import Synthesized


def _of_type(synth: Synthesized, type_: str) -> dict:
    return {k: v for k, v in synth.resources.items() if v["Type"] == type_}


def _function(synth: Synthesized, construct) -> dict:
    return synth.resources[synth.logical_id(construct)]


def _statements(synth: Synthesized, role) -> list[dict]:
    role_id = synth.logical_id(role)
    out = []
    for policy in _of_type(synth, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def _actions(statements: list[dict]) -> set[str]:
    actions = set()
    for s in statements:
        actions |= set([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return actions


def test_the_sweep_runs_every_5_minutes_and_the_report_daily(synth):
    sweep = synth.stack.sweep
    rules = _of_type(synth, "AWS::Events::Rule")
    by_target = {r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: r["Properties"] for r in rules.values()}
    assert by_target[synth.logical_id(sweep.sweep_function)]["ScheduleExpression"] == "rate(5 minutes)"
    assert by_target[synth.logical_id(sweep.report_function)]["ScheduleExpression"] == "cron(15 0 * * ? *)"


def test_sweep_minutes_comes_from_context(tmp_path):
    other = Synthesized(tmp_path, sweepMinutes="15")
    rule = other.resources[other.logical_id(other.stack.sweep.sweep_schedule)]
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"


def test_the_sweep_reads_the_due_index_never_scans_and_may_restart_chains(synth):
    sweep = synth.stack.sweep
    statements = _statements(synth, sweep.sweep_function.role)
    actions = _actions(statements)
    assert "dynamodb:Scan" not in actions and not any(a.endswith("*") and a.startswith("dynamodb") for a in actions)
    assert {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem",
            "states:DescribeExecution", "states:StartExecution", "states:StopExecution"} <= actions
    assert "due-index" in json.dumps([s["Resource"] for s in statements])
    env = _function(synth, sweep.sweep_function)["Properties"]["Environment"]["Variables"]
    assert {"HELPDESK_TICKETS_TABLE", "HELPDESK_ESCALATION_STATE_MACHINE_ARN"} <= set(env)


def test_the_report_bucket_is_private_encrypted_and_tls_only(synth):
    sweep = synth.stack.sweep
    bucket = synth.resources[synth.logical_id(sweep.bucket)]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policies = [p for p in _of_type(synth, "AWS::S3::BucketPolicy").values()
                if p["Properties"]["Bucket"] == {"Ref": synth.logical_id(sweep.bucket)}]
    (policy,) = policies
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy["Properties"]["PolicyDocument"]["Statement"])
    report_actions = _actions(_statements(synth, sweep.report_function.role))
    assert "s3:PutObject" in report_actions and "dynamodb:Scan" in report_actions  # the first version scans
    env = _function(synth, sweep.report_function)["Properties"]["Environment"]["Variables"]
    assert env["HELPDESK_REPORT_BUCKET"] == {"Ref": synth.logical_id(sweep.bucket)}


def test_alarms_on_breach_rate_dead_letter_queues_and_errors_notify_team_alerts(synth):
    alarms = _of_type(synth, "AWS::CloudWatch::Alarm")
    topic = {"Ref": synth.logical_id(synth.stack.notifications.team_alerts)}
    assert alarms and all(a["Properties"]["AlarmActions"] == [topic] for a in alarms.values())
    names = [a["Properties"].get("MetricName") for a in alarms.values()]
    assert names.count("BreachRate") == 1
    assert names.count("ApproximateNumberOfMessagesVisible") == 3  # publisher, delivery, email intake DLQs
    assert names.count("Errors") == 6  # sweep, report, api, email intake, publisher, delivery
    (api_5xx,) = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "5XXError"]
    assert api_5xx["Namespace"] == "AWS/ApiGateway" and api_5xx["Threshold"] == 1  # the API's 500s are no function errors
    breach = next(a for a in alarms.values() if a["Properties"].get("MetricName") == "BreachRate")["Properties"]
    assert (breach["Namespace"], breach["Dimensions"]) == ("Helpdesk", [{"Name": "service", "Value": "helpdesk"}])
    key = synth.resources[synth.logical_id(synth.stack.notifications.key)]["Properties"]["KeyPolicy"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key["Statement"])


def test_a_dashboard_shows_the_sweep_and_the_report(synth):
    (dashboard,) = _of_type(synth, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for name in ("AtRiskWarnings", "ChainsRepaired", "AutoClosed", "ThirtyDayEscalations", "BreachRate"):
        assert name in body


@pytest.mark.parametrize("minutes", [0])
def test_sweep_minutes_out_of_range_is_refused(tmp_path, minutes):
    with pytest.raises(Exception, match="sweepMinutes"):
        Synthesized(tmp_path, sweepMinutes=str(minutes))
