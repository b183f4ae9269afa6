"""The CDK app: the template agrees with the models and the settings, grants stay narrow, and
cdk-nag and cfn-lint pass."""

import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from cfnlint.api import ManualArgs, lint

from helpdesk.models import table_schema
from helpdesk.settings import Env
from infra.bundling import LocalPythonBundling
from infra.nag import PACK
from tests.infra.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = {name.value for name in Env}

# What each Env variable must point at when it is a reference (Ref of these types gives the name or ARN).
REFERENCED = {
    Env.TICKETS_TABLE: "AWS::DynamoDB::Table",
    Env.IDEMPOTENCY_TABLE: "AWS::DynamoDB::Table",
    Env.TOKEN_SECRET_ARN: "AWS::SecretsManager::Secret",
    Env.ESCALATION_STATE_MACHINE_ARN: "AWS::StepFunctions::StateMachine",
    Env.CUSTOMER_UPDATES_TOPIC_ARN: "AWS::SNS::Topic",
    Env.TEAM_ALERTS_TOPIC_ARN: "AWS::SNS::Topic",
    Env.MAIL_BUCKET: "AWS::S3::Bucket",
    Env.REPORT_BUCKET: "AWS::S3::Bucket",
    Env.USER_POOL_ID: "AWS::Cognito::UserPool",
    Env.USER_POOL_CLIENT_ID: "AWS::Cognito::UserPoolClient",
}
# The Env variables that are plain settings, and what a sensible value looks like.
LITERALS = {
    Env.PUBLIC_BASE_URL: lambda v: v.startswith("https://"),
    Env.SUPPORT_ADDRESS: lambda v: "@" in v,
    Env.TIME_SCALE: lambda v: float(v) > 0,
    Env.POLICY_FILE: lambda v: v.endswith(".toml"),
    Env.ALLOWED_ORIGINS: lambda v: all(o.startswith("https://") for o in v.split(",")),
}
TABLE_ADMIN = {"dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable"}


def of_type(synth, type_: str) -> dict:
    return {id_: r for id_, r in synth.resources.items() if r["Type"] == type_}


def variables(function: dict) -> dict:
    return function["Properties"].get("Environment", {}).get("Variables", {})


# -- storage --------------------------------------------------------------------------------------

def test_ticket_table_keys_and_indexes_are_the_models(synth):
    # Given the PynamoDB models' CreateTable-shaped schema
    schema = table_schema()

    # When the app is synthesized
    table = synth.resources[synth.logical_id(synth.stack.storage.tickets)]["Properties"]

    # Then CloudFormation creates exactly the keys and indexes the models use
    assert table["KeySchema"] == schema["KeySchema"]
    def same(key: str, field: str) -> bool:
        return sorted(table[key], key=lambda e: e[field]) == sorted(schema[key], key=lambda e: e[field])

    assert same("AttributeDefinitions", "AttributeName")
    assert same("GlobalSecondaryIndexes", "IndexName")  # names, key schemas and projections


def test_ticket_table_streams_both_images(synth):
    table = synth.resources[synth.logical_id(synth.stack.storage.tickets)]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.mark.parametrize("name", ["tickets", "idempotency"])
def test_tables_are_on_demand_encrypted_recoverable_and_unnamed(synth, name):
    table = synth.resources[synth.logical_id(getattr(synth.stack.storage, name))]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert "TableName" not in table  # CloudFormation names it; functions get the name through Env


def test_idempotency_table_is_what_powertools_expects(synth):
    table = synth.resources[synth.logical_id(synth.stack.storage.idempotency)]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_tickets_and_token_key_outlive_the_stack_unless_told_otherwise(synth, configured):
    def policies(s) -> list:
        storage = s.stack.storage
        return [s.resources[s.logical_id(c)]["DeletionPolicy"] for c in (storage.tickets, storage.token_secret)]

    assert policies(synth) == ["Retain", "Retain"]
    tickets = synth.resources[synth.logical_id(synth.stack.storage.tickets)]
    assert tickets["Properties"]["DeletionProtectionEnabled"] is True
    assert policies(configured) == ["Delete", "Delete"]  # -c retainData=false


# -- functions and their settings -------------------------------------------------------------------

def test_functions_set_only_settings_names_and_powertools_variables(synth):
    for id_, function in of_type(synth, "AWS::Lambda::Function").items():
        for name in variables(function):
            assert name in ENV_NAMES or name.startswith("POWERTOOLS_"), f"{id_} sets {name}, not in helpdesk Env"


@pytest.mark.parametrize("which", ["synth", "configured"])
def test_every_settings_variable_is_a_real_resource_or_a_sensible_literal(which, request):
    synth = request.getfixturevalue(which)
    for id_, function in of_type(synth, "AWS::Lambda::Function").items():
        for name, value in variables(function).items():
            if name not in ENV_NAMES:
                continue
            env = Env(name)
            if env is Env.PUBLIC_BASE_URL and isinstance(value, dict):  # no publicBaseUrl: the API's own stage URL
                parts = value["Fn::Join"][1]
                assert parts[0] == "https://", f"{id_}: {name}={value}"
                assert synth.resources[parts[1]["Ref"]]["Type"] == "AWS::ApiGateway::RestApi", f"{id_}: {name}={value}"
                continue
            if env in LITERALS:
                assert isinstance(value, str) and LITERALS[env](value), f"{id_}: {name}={value!r}"
                continue
            assert isinstance(value, dict), f"{id_}: {name}={value!r} is typed, not a reference"
            ((intrinsic, argument),) = value.items()
            target = argument if intrinsic == "Ref" else argument[0]
            assert intrinsic in ("Ref", "Fn::GetAtt") and target in synth.resources, f"{id_}: {name}={value}"
            assert synth.resources[target]["Type"] == REFERENCED[env], f"{id_}: {name} -> {target}"


def test_api_function_gets_the_stack_tables_and_token_key(synth):
    storage = synth.stack.storage
    env = variables(synth.resources[synth.logical_id(synth.stack.api.function)])
    assert env[Env.TICKETS_TABLE] == {"Ref": synth.logical_id(storage.tickets)}
    assert env[Env.IDEMPOTENCY_TABLE] == {"Ref": synth.logical_id(storage.idempotency)}
    assert env[Env.TOKEN_SECRET_ARN] == {"Ref": synth.logical_id(storage.token_secret)}
    assert Env.PUBLIC_BASE_URL not in env  # unset: the function derives it from the request
    assert env["POWERTOOLS_SERVICE_NAME"] == "helpdesk" and env["POWERTOOLS_METRICS_NAMESPACE"] == "Helpdesk"


def test_public_base_url_reaches_the_api_function_when_given(configured):
    env = variables(configured.resources[configured.logical_id(configured.stack.api.function)])
    assert env[Env.PUBLIC_BASE_URL] == "https://help.example.com"


def test_api_function_runs_the_handler_on_arm_with_both_layers(synth):
    function = synth.resources[synth.logical_id(synth.stack.api.function)]["Properties"]
    module, _, entry = function["Handler"].rpartition(".")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file() and entry == "handler"
    assert function["Runtime"] == "python3.12" and function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == 512 and function["Timeout"] == 10
    assert function["TracingConfig"] == {"Mode": "Active"}
    layers = of_type(synth, "AWS::Lambda::LayerVersion")
    assert sorted(ref["Ref"] for ref in function["Layers"]) == sorted(layers)
    assert all(layer["Properties"]["CompatibleArchitectures"] == ["arm64"] for layer in layers.values())


def test_log_groups_have_a_retention(synth):
    for id_, log_group in of_type(synth, "AWS::Logs::LogGroup").items():
        assert log_group["Properties"].get("RetentionInDays"), id_


def test_function_roles_cannot_administer_tables_or_use_wildcard_actions(synth):
    policies = of_type(synth, "AWS::IAM::Policy").values()
    for id_, function in of_type(synth, "AWS::Lambda::Function").items():
        role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
        role = synth.resources[role_id]["Properties"]
        assert not role.get("ManagedPolicyArns"), id_
        documents = [p["PolicyDocument"] for p in role.get("Policies", [])] + [
            p["Properties"]["PolicyDocument"] for p in policies if {"Ref": role_id} in p["Properties"]["Roles"]
        ]
        actions = set()
        for statement in (s for d in documents for s in d["Statement"]):
            assert statement["Effect"] == "Allow" and "NotAction" not in statement, id_
            actions |= {statement["Action"]} if isinstance(statement["Action"], str) else set(statement["Action"])
        assert {a for a in actions if a == "*" or a.endswith(":*") or a in TABLE_ADMIN} == set(), id_


# -- the API ----------------------------------------------------------------------------------------

def test_api_stage_throttles_traces_and_logs_without_bodies(synth):
    ((stage_id, stage),) = of_type(synth, "AWS::ApiGateway::Stage").items()
    properties = stage["Properties"]
    assert properties["TracingEnabled"] is True
    (settings,) = properties["MethodSettings"]
    assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False
    access_log = properties["AccessLogSetting"]
    assert {"requestId", "status", "ip"} <= json.loads(access_log["Format"]).keys()  # JSON lines
    log_group = access_log["DestinationArn"]["Fn::Join"][1][-1]["Ref"]
    assert synth.resources[log_group]["Type"] == "AWS::Logs::LogGroup"


def _api_invokes(app: Synthesized) -> list:
    """What the API's proxy integrations invoke (the ``{Ref}`` or ``{Fn::GetAtt}`` inside their URIs)."""
    return [m["Properties"]["Integration"]["Uri"]["Fn::Join"][1][-2] for m in of_type(app, "AWS::ApiGateway::Method").values()
            if m["Properties"].get("Integration", {}).get("Type") == "AWS_PROXY"]


def test_without_snapstart_the_api_invokes_the_function_and_publishes_no_version(synth):
    function = synth.resources[synth.logical_id(synth.stack.api.function)]["Properties"]

    assert "SnapStart" not in function
    assert of_type(synth, "AWS::Lambda::Version") == {} and of_type(synth, "AWS::Lambda::Alias") == {}
    # the root and {proxy+}; /agent and /agent/{proxy+}
    assert _api_invokes(synth) == [{"Fn::GetAtt": [synth.logical_id(synth.stack.api.function), "Arn"]}] * 4


def test_with_snapstart_the_api_invokes_the_live_alias_of_the_version_each_deploy_publishes(snapstart):
    api = snapstart.stack.api
    function = snapstart.resources[snapstart.logical_id(api.function)]["Properties"]
    ((version_id, version),) = of_type(snapstart, "AWS::Lambda::Version").items()
    ((alias_id, alias),) = of_type(snapstart, "AWS::Lambda::Alias").items()
    invokers = [p["Properties"] for p in of_type(snapstart, "AWS::Lambda::Permission").values()
                if p["Properties"]["Principal"] == "apigateway.amazonaws.com"]

    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Runtime"] == "python3.12"  # SnapStart for Python starts at 3.12
    assert version["DeletionPolicy"] == "Delete"  # a superseded version's snapshot is billed while it exists
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    assert _api_invokes(snapstart) == [{"Ref": alias_id}] * 4  # the root, {proxy+}, /agent, /agent/{proxy+}
    assert invokers and all(p["FunctionName"] == {"Ref": alias_id} for p in invokers)
    others = [f for i, f in of_type(snapstart, "AWS::Lambda::Function").items() if i != snapstart.logical_id(api.function)]
    assert all("SnapStart" not in f["Properties"] for f in others)  # only the API answers a waiting person


def test_waf_guards_the_stage_only_when_asked_and_answers_429_in_the_api_error_shape(synth, configured):
    assert of_type(synth, "AWS::WAFv2::WebACL") == {}

    ((acl_id, acl),) = of_type(configured, "AWS::WAFv2::WebACL").items()
    ((_, association),) = of_type(configured, "AWS::WAFv2::WebACLAssociation").items()
    ((stage_id, _),) = of_type(configured, "AWS::ApiGateway::Stage").items()
    properties = acl["Properties"]
    rate = next(r for r in properties["Rules"] if "RateBasedStatement" in r["Statement"])
    assert rate["Statement"]["RateBasedStatement"] == {"AggregateKeyType": "IP", "Limit": 300}  # -c wafRateLimit=300
    response = rate["Action"]["Block"]["CustomResponse"]
    body = json.loads(properties["CustomResponseBodies"][response["CustomResponseBodyKey"]]["Content"])
    assert response["ResponseCode"] == 429 and body["error"] == "rate_limited" and body["details"] == []
    assert properties["DefaultAction"] == {"Allow": {}} and properties["Scope"] == "REGIONAL"
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert {"Ref": stage_id} in association["Properties"]["ResourceArn"]["Fn::Join"][1]


def test_a_waf_rate_limit_below_wafs_minimum_is_refused(tmp_path):
    with pytest.raises(ValueError, match="wafRateLimit"):
        Synthesized(tmp_path, wafRateLimit="5")


def test_what_api_gateway_answers_itself_comes_in_the_api_error_shape_with_the_security_headers(synth):
    from infra import gateway_responses

    found = {r["Properties"]["ResponseType"]: r["Properties"]
             for r in of_type(synth, "AWS::ApiGateway::GatewayResponse").values()}
    methods = {m["Properties"]["HttpMethod"] for m in of_type(synth, "AWS::ApiGateway::Method").values()}

    # ANY, and GET /agent (the console's page): a method they do not cover is API Gateway's
    # MISSING_AUTHENTICATION_TOKEN, answered as our 405
    assert methods == {"ANY", "GET"}
    assert set(found) == {r.type for r in gateway_responses.RESPONSES}
    for response in gateway_responses.RESPONSES:
        properties = found[response.type]
        assert properties.get("StatusCode") == (str(response.status) if response.status else None), response.type
        assert properties["ResponseParameters"] == {
            f"gatewayresponse.header.{name}": f"'{value}'" for name, value in response.headers.items()}
        template = properties["ResponseTemplates"]["application/json"]
        rendered = json.loads(template.replace("$context.error.messageString", '"Missing Authentication Token"'))
        assert rendered["error"] == response.code and rendered["details"] == []
        assert json.loads(response.body("Missing Authentication Token")) == rendered  # what the local front answers
        assert {"Content-Security-Policy", "Cache-Control", "Strict-Transport-Security"} <= response.headers.keys()
    assert found["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "405"


def test_cors_preflight_only_for_configured_origins(synth, configured):
    def options_methods(s) -> list:
        methods = of_type(s, "AWS::ApiGateway::Method").values()
        return [m for m in methods if m["Properties"]["HttpMethod"] == "OPTIONS"]

    assert options_methods(synth) == []  # default: the form is served by the API itself (same origin)
    assert configured.stack.config.allowed_origins == ("https://www.example.com", "https://shop.example.com")
    assert options_methods(configured)


# -- what operators' commands read (helpdesk.deployment) ----------------------------------------------

def test_every_output_an_operators_command_reads_names_the_resource_cloudformation_named(synth):
    from helpdesk.deployment import STACK_NAME, Output

    stack = synth.stack
    expected = {
        Output.TICKETS_TABLE: stack.storage.tickets,
        Output.PUBLISHER_FAILURES: stack.notifications.publisher_failures,
        Output.DELIVERY_FAILURES: stack.notifications.delivery_failures,
        Output.EMAIL_FAILURES: stack.email.failures,
        Output.PUBLISHER_FUNCTION: stack.notifications.publisher,
        Output.DELIVERY_FUNCTION: stack.notifications.delivery,
        Output.EMAIL_FUNCTION: stack.email.function,
    }
    outputs = synth.template.to_json()["Outputs"]

    assert stack.stack_name == STACK_NAME  # the name the commands look the stack up by
    assert set(expected) <= set(outputs)
    for name, construct in expected.items():  # a Ref: the table's and function's names, the queue's URL
        assert outputs[name]["Value"] == {"Ref": synth.logical_id(construct)}, name


def test_failures_wait_no_longer_than_their_replay_can_send_once(synth):
    from helpdesk import replay

    queues = of_type(synth, "AWS::SQS::Queue")
    failures = [synth.logical_id(q) for q in (synth.stack.notifications.publisher_failures,
                                              synth.stack.notifications.delivery_failures, synth.stack.email.failures)]
    [mapping] = of_type(synth, "AWS::Lambda::EventSourceMapping").values()

    assert {queues[q]["Properties"]["MessageRetentionPeriod"] for q in failures} == {replay.RETENTION.total_seconds()}
    assert mapping["Properties"]["MaximumRecordAgeInSeconds"] == replay.STREAM_MAX_RECORD_AGE.total_seconds()
    assert replay.DEDUPE_SECONDS > (replay.RETENTION + replay.STREAM_MAX_RECORD_AGE).total_seconds()


# -- checks -----------------------------------------------------------------------------------------

def test_cdk_nag_finds_nothing_unacknowledged_and_every_acknowledgement_is_used(synth):
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == PACK]
    assert nag["conclusion"] == "success" and nag["violations"] == []
    used = {s["acknowledgedId"] for s in nag["suppressedViolations"]}
    acknowledged = {
        rule
        for construct in synth.app.node.find_all()
        for entry in construct.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in entry.data
        if rule.startswith(f"{PACK}::")
    }
    assert acknowledged - used == set(), "acknowledgements that match no finding"
    assert all(len(s["reason"]) > 40 for s in nag["suppressedViolations"])


def test_cdk_nag_finds_nothing_with_snapstart_either(snapstart):
    report = json.loads((snapstart.outdir / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == PACK]
    assert nag["conclusion"] == "success" and nag["violations"] == []


@pytest.mark.parametrize("app", ["synth", "configured", "snapstart"])
def test_cfn_lint_passes(app, request):
    matches = lint(
        json.dumps(request.getfixturevalue(app).template.to_json()),
        config=ManualArgs(ignore_checks=["W3005"], regions=["us-east-1"]),
    )
    assert [str(m) for m in matches] == []


def test_python_infra_app_py_synthesizes_offline(tmp_path):
    # The entry point as `python infra/app.py` runs it: infra/ first on sys.path, no credentials.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONPATH=f"{ROOT / 'layers'}:{ROOT}",
        CDK_OUTDIR=str(tmp_path),
        CDK_CONTEXT_JSON=json.dumps({"aws:cdk:bundling-stacks": []}),  # no bundling, like the fixtures
    )
    subprocess.run([sys.executable, "infra/app.py"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert json.loads((tmp_path / "Helpdesk.template.json").read_text())["Resources"]


# -- bundling ---------------------------------------------------------------------------------------

def test_asset_hash_follows_the_target_platform_and_python():
    def fingerprint(**target) -> str:
        defaults = {"into": "python", "python_version": "3.12", "platform": "manylinux2014_aarch64"}
        return LocalPythonBundling(ROOT / "layers" / "deps", **{**defaults, **target}).fingerprint()

    assert fingerprint() == fingerprint()
    assert fingerprint() != fingerprint(platform="manylinux2014_x86_64")
    assert fingerprint() != fingerprint(python_version="3.13")


def test_domain_layer_is_the_package_under_python(tmp_path):
    source = ROOT / "layers" / "helpdesk"
    bundling = LocalPythonBundling(source, into="python/helpdesk", python_version="3.12", platform="x")
    assert bundling.try_bundle(str(tmp_path), None) is True
    shipped = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert "python/helpdesk/models.py" in shipped and "python/helpdesk/config/policy.toml" in shipped
    assert all(".cpython-312." in p for p in shipped if p.endswith(".pyc"))  # never the host's bytecode


def test_shipped_bytecode_is_the_runtimes_and_never_checks_sources(tmp_path):
    """Lambda cannot write bytecode: what is not shipped compiled is compiled on every cold start."""
    bundling = LocalPythonBundling(ROOT / "layers" / "helpdesk", into="python/helpdesk", python_version="3.12",
                                   platform="x")
    if not bundling.compiler:
        pytest.skip("no python3.12 on this machine: the asset ships sources only (synth warns)")
    bundling.try_bundle(str(tmp_path), None)
    runtime_magic = subprocess.run([bundling.compiler, "-c", "import importlib.util, sys; "
                                    "sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"],
                                   check=True, capture_output=True).stdout
    header = (tmp_path / "python/helpdesk/__pycache__/models.cpython-312.pyc").read_bytes()[:8]
    assert header[:4] == runtime_magic
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked: zip mtimes do not matter
