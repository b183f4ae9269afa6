"""The escalation and notification constructs in the synthesized template: the state machine from the
one ASL file with a role that touches the ticket table only, the functions that drive chains, the two
encrypted topics, the publisher's stream source, the delivery's subscription, and team alerts."""

import json

import pytest

from helpdesk import notify, statemachine
from helpdesk.settings import Env
from infra.constructs.escalation import table_actions
from infra.constructs.notifications import parse_team_alert_emails, parse_team_alert_webhook
from tests.infra.conftest import Synthesized

# What CDK adds to a state machine's role for logging to CloudWatch Logs and for X-Ray: none of these
# actions supports a resource, so they come with Resource "*" (the only wildcard the role may have).
LOG_DELIVERY_AND_XRAY = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
}
ALERTS = {"billing": ["billing-leads@example.com"], "management": ["cso@example.com"], "*": ["oncall@example.com"]}
WEBHOOK = "https://hooks.example.com/helpdesk"


@pytest.fixture(scope="module")
def alerting(tmp_path_factory) -> Synthesized:
    """Team alerts configured as ``-c teamAlertEmails='{...}' -c teamAlertWebhook=https://...`` gives them."""
    return Synthesized(tmp_path_factory.mktemp("cdk.out"), teamAlertEmails=json.dumps(ALERTS),
                       teamAlertWebhook=WEBHOOK)


def ref(app: Synthesized, construct) -> dict:
    return {"Ref": app.logical_id(construct)}


def arn(app: Synthesized, construct) -> dict:
    return {"Fn::GetAtt": [app.logical_id(construct), "Arn"]}


def of_type(app: Synthesized, type_: str) -> dict:
    return {i: r for i, r in app.resources.items() if r["Type"] == type_}


def statements(app: Synthesized, role_id: str) -> list[dict]:
    """Every statement of every policy attached to the role (inline ones included)."""
    role = app.resources[role_id]["Properties"]
    documents = [p["PolicyDocument"] for p in role.get("Policies", [])] + [
        p["Properties"]["PolicyDocument"] for p in of_type(app, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]]
    return [s for d in documents for s in d["Statement"]]


def role_of(app: Synthesized, function) -> str:
    return app.resources[app.logical_id(function)]["Properties"]["Role"]["Fn::GetAtt"][0]


def listed(value) -> list:
    return value if isinstance(value, list) else [value]


def grants(app: Synthesized, role_id: str) -> dict[str, list]:
    """action -> the resources it is allowed on."""
    out: dict[str, list] = {}
    for statement in statements(app, role_id):
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        for action in listed(statement["Action"]):
            out.setdefault(action, []).extend(listed(statement["Resource"]))
    return out


# -- the state machine --------------------------------------------------------------------------------

def test_the_state_machine_is_the_asl_file_inlined_with_the_substitutions_of_helpdesk_statemachine(synth):
    machine = synth.resources[synth.logical_id(synth.stack.escalation.state_machine)]["Properties"]

    assert machine["StateMachineType"] == "STANDARD"
    assert machine["DefinitionString"] == statemachine.DEFINITION_FILE.read_text()  # inline, not an S3 asset
    expected = statemachine.substitutions("<table>")
    assert machine["DefinitionSubstitutions"] == expected | {"TicketsTable": ref(synth, synth.stack.storage.tickets)}
    assert set(machine["DefinitionSubstitutions"]) == statemachine.placeholders()


def test_the_state_machine_logs_every_transition_without_data_and_traces(synth):
    machine = synth.resources[synth.logical_id(synth.stack.escalation.state_machine)]["Properties"]

    logging = machine["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False
    log_group = arn(synth, synth.stack.escalation.log_group)
    assert logging["Destinations"] == [{"CloudWatchLogsLogGroup": {"LogGroupArn": log_group}}]
    assert machine["TracingConfiguration"] == {"Enabled": True}


def test_the_state_machine_role_touches_the_ticket_table_only(synth):
    # Given the state machine's role
    machine = synth.resources[synth.logical_id(synth.stack.escalation.state_machine)]["Properties"]
    role_id = machine["RoleArn"]["Fn::GetAtt"][0]
    role = synth.resources[role_id]["Properties"]
    table = arn(synth, synth.stack.storage.tickets)

    # When every statement attached to it is read
    found = statements(synth, role_id)

    # Then Step Functions alone assumes it, it has no managed policy, and exactly two statements: the
    # item actions the ASL's Tasks use, on the ticket table alone; the log delivery and X-Ray actions CDK
    # adds, which support no resource. No SNS, no other table, no index.
    trusted = [s["Principal"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
    assert trusted == [{"Service": "states.amazonaws.com"}]
    assert not role.get("ManagedPolicyArns") and not role.get("Policies")
    wildcard = [s for s in found if s["Resource"] == "*"]
    scoped = [s for s in found if s["Resource"] != "*"]
    assert [set(listed(s["Action"])) for s in wildcard] == [LOG_DELIVERY_AND_XRAY]
    assert [(set(listed(s["Action"])), listed(s["Resource"])) for s in scoped] == [
        ({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, [table])]
    assert all(s["Effect"] == "Allow" and "Condition" not in s and "NotAction" not in s for s in found)


def test_the_role_follows_the_definition_and_refuses_what_it_cannot_grant():
    definition = json.loads(statemachine.DEFINITION_FILE.read_text())
    assert table_actions(definition) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}

    publish = {"States": {"Tell": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "End": True}}}
    with pytest.raises(ValueError, match="Tell: arn:aws:states:::sns:publish has no grant"):
        table_actions(publish)
    other_table = {"States": {"Read": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem",
                                       "Parameters": {"TableName": "audit"}, "End": True}}}
    with pytest.raises(ValueError, match="TableName must be"):
        table_actions(other_table)
    check = {"States": {"Do": {"Type": "Parallel", "End": True, "Branches": [{"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:transactWriteItems", "End": True,
        "Parameters": {"TransactItems": [{"ConditionCheck": {"TableName": "${TicketsTable}"}},
                                         {"Delete": {"TableName": "${TicketsTable}"}}]}}}}]}}}
    assert table_actions(check) == {"dynamodb:ConditionCheckItem", "dynamodb:DeleteItem"}


@pytest.mark.parametrize("function", ["api", "email"])
def test_functions_that_change_tickets_start_and_stop_chains_of_this_state_machine_only(synth, function):
    fn = getattr(synth.stack, function).function
    machine = synth.stack.escalation.state_machine
    env = synth.resources[synth.logical_id(fn)]["Properties"]["Environment"]["Variables"]

    allowed = grants(synth, role_of(synth, fn))

    assert env[Env.ESCALATION_STATE_MACHINE_ARN] == ref(synth, machine)
    assert allowed["states:StartExecution"] == [ref(synth, machine)]
    [executions] = allowed["states:StopExecution"]
    parts = executions["Fn::Join"][1]
    assert parts[-3:] == [":execution:", {"Fn::GetAtt": [synth.logical_id(machine), "Name"]}, ":*"]
    assert not {a for a in allowed if a.startswith("states:")} - {"states:StartExecution", "states:StopExecution"}


# -- topics -------------------------------------------------------------------------------------------

def test_topics_are_unnamed_encrypted_with_a_rotated_customer_key_and_tls_only(synth):
    notifications = synth.stack.notifications
    key = synth.resources[synth.logical_id(notifications.key)]["Properties"]
    sns_use = [s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "sns.amazonaws.com"}]

    assert key["EnableKeyRotation"] is True
    assert [(set(s["Action"]), s["Condition"]) for s in sns_use] == [
        ({"kms:Decrypt", "kms:GenerateDataKey*"}, {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}})]
    for topic in (notifications.customer_updates, notifications.team_alerts):
        properties = synth.resources[synth.logical_id(topic)]["Properties"]
        assert properties["KmsMasterKeyId"] == arn(synth, notifications.key)
        assert "TopicName" not in properties
        [policy] = [p["Properties"] for p in of_type(synth, "AWS::SNS::TopicPolicy").values()
                    if p["Properties"]["Topics"] == [ref(synth, topic)]]
        tls_only = {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": ref(synth, topic),
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        assert tls_only.items() <= policy["PolicyDocument"]["Statement"][0].items()


@pytest.mark.parametrize("queue", ["publisher_failures", "delivery_failures"])
def test_dead_letter_queues_are_encrypted_tls_only_and_keep_two_weeks(synth, queue):
    construct = getattr(synth.stack.notifications, queue)
    properties = synth.resources[synth.logical_id(construct)]["Properties"]
    [policy] = [p["Properties"]["PolicyDocument"] for p in of_type(synth, "AWS::SQS::QueuePolicy").values()
                if p["Properties"]["Queues"] == [ref(synth, construct)]]

    assert properties["SqsManagedSseEnabled"] is True and properties["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy["Statement"])


# -- the publisher ------------------------------------------------------------------------------------

def test_the_publisher_reads_the_stream_from_the_start_filtered_with_partial_failures_and_a_dlq(synth):
    notifications = synth.stack.notifications
    [mapping] = [m["Properties"] for m in of_type(synth, "AWS::Lambda::EventSourceMapping").values()
                 if m["Properties"]["FunctionName"] == ref(synth, notifications.publisher)]

    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [synth.logical_id(synth.stack.storage.tickets), "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True and mapping["MaximumRetryAttempts"] == 5
    assert 0 < mapping["MaximumRecordAgeInSeconds"] <= 24 * 3600  # inside the stream's retention
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": arn(synth, notifications.publisher_failures)}}
    [pattern] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == notify.stream_filter_pattern()


def test_the_publisher_gets_its_settings_and_may_publish_to_the_two_topics_only(synth):
    notifications, storage = synth.stack.notifications, synth.stack.storage
    env = synth.resources[synth.logical_id(notifications.publisher)]["Properties"]["Environment"]["Variables"]

    allowed = grants(synth, role_of(synth, notifications.publisher))

    assert env[Env.CUSTOMER_UPDATES_TOPIC_ARN] == ref(synth, notifications.customer_updates)
    assert env[Env.TEAM_ALERTS_TOPIC_ARN] == ref(synth, notifications.team_alerts)
    assert env[Env.TICKETS_TABLE] == ref(synth, storage.tickets)
    assert env[Env.IDEMPOTENCY_TABLE] == ref(synth, storage.idempotency)
    assert env[Env.TOKEN_SECRET_ARN] == ref(synth, storage.token_secret)
    assert env[Env.PUBLIC_BASE_URL]["Fn::Join"][1][1] == ref(synth, synth.stack.api.rest_api)  # the API's own URL
    assert sorted(map(str, allowed["sns:Publish"])) == sorted(
        map(str, [ref(synth, notifications.customer_updates), ref(synth, notifications.team_alerts)]))
    assert allowed["kms:GenerateDataKey*"] == allowed["kms:Decrypt"] == [arn(synth, notifications.key)]
    assert allowed["dynamodb:GetItem"].count(arn(synth, storage.tickets)) == 1
    ticket_writes = [a for a, rs in allowed.items() if a.startswith("dynamodb:") and arn(synth, storage.tickets) in rs
                     and a not in ("dynamodb:GetItem",)]
    assert ticket_writes == []  # it never changes a ticket
    assert allowed["secretsmanager:GetSecretValue"] == [ref(synth, storage.token_secret)]


def test_a_public_base_url_reaches_the_notification_functions(configured):
    notifications = configured.stack.notifications
    for function in (notifications.publisher, notifications.delivery):
        env = configured.resources[configured.logical_id(function)]["Properties"]["Environment"]["Variables"]
        assert env[Env.PUBLIC_BASE_URL] == "https://help.example.com"


# -- the delivery -------------------------------------------------------------------------------------

def test_the_delivery_takes_customer_updates_through_notify_filter_with_a_dlq(synth):
    notifications = synth.stack.notifications
    [subscription] = [s["Properties"] for s in of_type(synth, "AWS::SNS::Subscription").values()
                      if s["Properties"]["Protocol"] == "lambda"
                      and s["Properties"]["TopicArn"] == ref(synth, notifications.customer_updates)]
    configs = [c["Properties"] for c in of_type(synth, "AWS::Lambda::EventInvokeConfig").values()
               if c["Properties"]["FunctionName"] == ref(synth, notifications.delivery)]

    assert subscription["TopicArn"] == ref(synth, notifications.customer_updates)
    assert subscription["Endpoint"] == arn(synth, notifications.delivery)
    assert subscription["FilterPolicy"] == notify.CUSTOMER_DELIVERY_FILTER
    assert subscription["FilterPolicyScope"] == "MessageAttributes"
    assert [c["DestinationConfig"] for c in configs] == [
        {"OnFailure": {"Destination": arn(synth, notifications.delivery_failures)}}]


def test_the_delivery_sends_from_the_support_domain_and_texts_without_touching_topics(synth):
    notifications = synth.stack.notifications
    env = synth.resources[synth.logical_id(notifications.delivery)]["Properties"]["Environment"]["Variables"]

    allowed = grants(synth, role_of(synth, notifications.delivery))

    assert env[Env.SUPPORT_ADDRESS] == "support@helpdesk.local"
    assert set(env) >= {Env.IDEMPOTENCY_TABLE, Env.PUBLIC_BASE_URL}
    [identity] = set(map(json.dumps, allowed["ses:SendEmail"] + allowed["ses:SendRawEmail"]))
    assert json.loads(identity)["Fn::Join"][1][-1] == ":identity/helpdesk.local"
    assert allowed["sns:Publish"] == ["*"]  # SMS to a phone number: no resource to name (cdk-nag acknowledged)
    assert not [a for a in allowed if a.startswith("kms:")]  # so it cannot publish to the encrypted topics
    assert not [a for a in allowed if a.startswith("dynamodb:") and arn(synth, synth.stack.storage.tickets)
                in allowed[a]]


# -- team alerts --------------------------------------------------------------------------------------

def team_subscriptions(app: Synthesized) -> list[dict]:
    """The team-alerts subscribers the context configures (not the delivery function's @mentions)."""
    topic = ref(app, app.stack.notifications.team_alerts)
    return [s["Properties"] for s in of_type(app, "AWS::SNS::Subscription").values()
            if s["Properties"]["TopicArn"] == topic and s["Properties"]["Protocol"] != "lambda"]


def test_nobody_gets_team_alerts_unless_configured(synth):
    assert team_subscriptions(synth) == []


def test_the_delivery_takes_only_the_mentions_from_team_alerts(synth):
    topic = ref(synth, synth.stack.notifications.team_alerts)
    [mentions] = [s["Properties"] for s in of_type(synth, "AWS::SNS::Subscription").values()
                  if s["Properties"]["TopicArn"] == topic]
    assert mentions["Protocol"] == "lambda" and mentions["FilterPolicy"] == notify.MENTION_DELIVERY_FILTER
    assert mentions["Endpoint"] == arn(synth, synth.stack.notifications.delivery)


def test_team_alert_emails_subscribe_with_notify_filters_and_the_webhook_gets_every_alert_raw(alerting):
    found = {(s["Protocol"], s["Endpoint"]): s for s in team_subscriptions(alerting)}

    assert set(found) == {("email", "billing-leads@example.com"), ("email", "cso@example.com"),
                          ("email", "oncall@example.com"), ("https", WEBHOOK)}
    assert found["email", "billing-leads@example.com"]["FilterPolicy"] == notify.team_filter("billing")
    assert found["email", "cso@example.com"]["FilterPolicy"] == notify.MANAGEMENT_FILTER
    assert found["email", "oncall@example.com"]["FilterPolicy"] == {"event_type": list(notify.TEAM_EVENTS)}
    assert {s.get("FilterPolicyScope") for p, s in found.items() if p[0] == "email"} == {"MessageAttributes"}
    assert found["https", WEBHOOK]["RawMessageDelivery"] is True and "FilterPolicy" not in found["https", WEBHOOK]


def test_team_alert_settings_are_checked_at_synth():
    assert parse_team_alert_emails({}) == parse_team_alert_emails("") == parse_team_alert_emails([]) == ()
    assert parse_team_alert_emails("a@example.com, b@example.com") == (("*", ("a@example.com", "b@example.com")),)
    assert parse_team_alert_emails('{"technical": "t@example.com"}') == (("technical", ("t@example.com",)),)
    with pytest.raises(ValueError, match="unknown key 'biling'"):
        parse_team_alert_emails({"biling": ["x@example.com"]})
    with pytest.raises(ValueError, match="not an email address"):
        parse_team_alert_emails({"billing": ["billing team"]})
    assert parse_team_alert_webhook("") is None
    with pytest.raises(ValueError, match="https://"):
        parse_team_alert_webhook("http://hooks.example.com/x")
