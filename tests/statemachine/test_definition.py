"""The ASL file itself: what CDK and moto both receive (no AWS needed)."""

import json

import pytest

from helpdesk import statemachine

TABLE = "helpdesk-tickets"


def rendered() -> dict:
    return json.loads(statemachine.render_definition(statemachine.substitutions(TABLE)))


def test_the_definition_names_exactly_the_substitutions_cdk_passes():
    assert statemachine.placeholders() == {s.value for s in statemachine.Substitution}
    assert set(statemachine.substitutions(TABLE)) == statemachine.placeholders()


def test_rendering_fills_every_placeholder_and_keeps_valid_json():
    text = statemachine.render_definition(statemachine.substitutions(TABLE))

    assert "${" not in text
    assert f'"TableName": "{TABLE}"' in text
    assert json.loads(text)["StartAt"] == "Read"


@pytest.mark.parametrize(
    "values",
    [{}, {"TicketsTable": TABLE, "Extra": "x"}, {"TicketsTable": 'bad"name'}],
)
def test_a_missing_unknown_or_unsafe_substitution_is_refused(values):
    with pytest.raises(ValueError):
        statemachine.render_definition(values)


def test_jsonpath_only_and_few_states():
    definition = rendered()
    text = json.dumps(definition)

    assert "JSONata" not in text and "QueryLanguage" not in text
    assert set(definition["States"]) == {"Read", "Decide", "Sleep", "Escalate", "EscalateToManagement", "Done"}
    assert not any(state["Type"] in ("Pass", "Parallel", "Map") for state in definition["States"].values())


def test_every_dynamodb_task_retries_throttling_and_failures_with_backoff():
    for name, state in rendered()["States"].items():
        if state["Type"] != "Task":
            continue
        retry = state["Retry"][-1]
        assert any("ThrottlingException" in e for e in retry["ErrorEquals"]), name
        assert any("ProvisionedThroughputExceededException" in e for e in retry["ErrorEquals"]), name
        assert "States.TaskFailed" in retry["ErrorEquals"], name
        assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3, name


def test_escalations_are_conditional_versioned_and_reread_when_they_lose_a_race():
    states = rendered()["States"]
    for name in ("Escalate", "EscalateToManagement"):
        state = states[name]
        assert state["Resource"] == "arn:aws:states:::aws-sdk:dynamodb:transactWriteItems"
        update, put = (item[kind] for item, kind in zip(state["Parameters"]["TransactItems"], ("Update", "Put"), strict=True))
        assert "tier = :tier AND next_due_at = :due" in update["ConditionExpression"]
        assert "#status IN (:new, :open)" in update["ConditionExpression"]
        assert "version = version + :one" in update["UpdateExpression"]
        assert "escalation_count = escalation_count + :one" in update["UpdateExpression"]
        assert put["ConditionExpression"] == "attribute_not_exists(sk)"
        assert state["Catch"] == [{"ErrorEquals": ["DynamoDb.TransactionCanceledException"], "ResultPath": "$.read", "Next": "Read"}]
        # the first matching retrier decides: a lost condition is never retried, it is read again
        assert state["Retry"][0] == {"ErrorEquals": ["DynamoDb.TransactionCanceledException"], "MaxAttempts": 0}
    assert "REMOVE next_due_at, due_shard" in states["EscalateToManagement"]["Parameters"]["TransactItems"][0]["Update"]["UpdateExpression"]
    assert states["EscalateToManagement"].get("End") is True
