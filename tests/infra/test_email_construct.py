"""The email construct in the synthesized template: SES receipt rule -> mail bucket -> intake function,
with the bucket, the function and SES each allowed only what this path needs."""

from pathlib import Path

import pytest

from helpdesk import intake
from helpdesk.models import TTL_ATTRIBUTE
from helpdesk.settings import Env
from infra.constructs import email
from tests.infra.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Synthesized:
    """A deployment for a real domain, as `npx cdk deploy -c supportDomain=... -c retainData=false` makes it."""
    return Synthesized(tmp_path_factory.mktemp("cdk.out"), supportDomain="Help.Example.com", retainData="false")


def resource(app: Synthesized, construct) -> dict:
    return app.resources[app.logical_id(construct)]


def one(app: Synthesized, type_: str, **properties) -> tuple[str, dict]:
    """The one resource of ``type_`` whose properties include ``properties``."""
    [(id_, found)] = [(i, r) for i, r in app.resources.items() if r["Type"] == type_
                      and all(r["Properties"].get(k) == v for k, v in properties.items())]
    return id_, found


def ses_permission(app: Synthesized) -> dict:
    return one(app, "AWS::Lambda::Permission", Principal="ses.amazonaws.com")[1]


def bucket_policy(app: Synthesized) -> tuple[str, dict]:
    return one(app, "AWS::S3::BucketPolicy", Bucket=ref(app, app.stack.email.bucket))


def ref(app: Synthesized, construct) -> dict:
    return {"Ref": app.logical_id(construct)}


def arn(app: Synthesized, construct) -> dict:
    return {"Fn::GetAtt": [app.logical_id(construct), "Arn"]}


def objects(app: Synthesized, prefix: str) -> dict:
    return {"Fn::Join": ["", [arn(app, app.stack.email.bucket), f"/{prefix}*"]]}


def _source_arn(app: Synthesized) -> dict:
    return ses_permission(app)["Properties"]["SourceArn"]


def test_the_rule_set_receives_for_the_support_address_scans_then_stores_then_invokes(app):
    # Given the app for help.example.com
    email_ = app.stack.email

    # When it is synthesized
    _, rule_set = one(app, "AWS::SES::ReceiptRuleSet")
    rule = resource(app, email_.rule)

    # Then one rule set holds one rule for support@help.example.com (reply addresses included)
    assert rule_set["Properties"]["RuleSetName"] == "Helpdesk-email"
    assert rule["Properties"]["RuleSetName"] == ref(app, email_.rule_set)
    properties = rule["Properties"]["Rule"]
    assert properties["Recipients"] == ["support@help.example.com"]
    assert properties["Enabled"] is True and properties["ScanEnabled"] is True  # spam and virus verdicts
    # ...whose actions store the raw message first, then invoke the intake function asynchronously
    store, invoke = properties["Actions"]
    assert store == {"S3Action": {"BucketName": ref(app, email_.bucket), "ObjectKeyPrefix": intake.RAW_PREFIX}}
    assert invoke == {"LambdaAction": {"FunctionArn": arn(app, email_.function), "InvocationType": "Event"}}
    # ...created only once SES may write to the bucket and invoke the function (SES checks both)
    policy_id, _ = bucket_policy(app)
    assert set(rule["DependsOn"]) >= {policy_id, app.logical_id(email_.node.find_child("SesInvokesIntake"))}
    # ...and its name is an output, for the one command that activates it
    assert app.template.to_json()["Outputs"]["ReceiptRuleSetName"]["Value"] == ref(app, email_.rule_set)
    assert app.template.to_json()["Outputs"]["SupportAddress"]["Value"] == "support@help.example.com"


def test_only_ses_for_this_accounts_rule_may_invoke_the_function(app):
    properties = ses_permission(app)["Properties"]
    assert properties["Principal"] == "ses.amazonaws.com" and properties["Action"] == "lambda:InvokeFunction"
    assert properties["FunctionName"] == arn(app, app.stack.email.function)
    assert properties["SourceAccount"] == {"Ref": "AWS::AccountId"}
    joined = "".join(p if isinstance(p, str) else "{" + p["Ref"] + "}" for p in properties["SourceArn"]["Fn::Join"][1])
    assert joined == ("arn:{AWS::Partition}:ses:{AWS::Region}:{AWS::AccountId}:"
                      f"receipt-rule-set/Helpdesk-email:receipt-rule/{email.RULE_NAME}")


def test_the_mail_bucket_is_private_encrypted_tls_only_and_forgets_raw_mail(app):
    bucket = resource(app, app.stack.email.bucket)["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert "BucketName" not in bucket
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-raw-mail"] == {"Id": "expire-raw-mail", "Prefix": intake.RAW_PREFIX,
                                        "ExpirationInDays": intake.RAW_MAIL_DAYS, "Status": "Enabled"}
    _, policy = bucket_policy(app)
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Action"] == "s3:*"


def test_ses_may_only_put_raw_mail_for_this_accounts_rule(app):
    _, policy = bucket_policy(app)
    [ses] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
             if s.get("Principal") == {"Service": "ses.amazonaws.com"}]
    assert ses["Effect"] == "Allow" and ses["Action"] == "s3:PutObject"
    assert ses["Resource"] == objects(app, intake.RAW_PREFIX)
    conditions = ses["Condition"]["StringEquals"]
    assert conditions["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert conditions["aws:SourceArn"] == _source_arn(app)  # the same rule ARN the function's permission names


def test_the_intake_function_runs_the_handler_with_its_settings(app):
    function = resource(app, app.stack.email.function)["Properties"]
    module, _, entry = function["Handler"].rpartition(".")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file() and entry == "handler"
    assert (function["MemorySize"], function["Timeout"]) == (email.MEMORY_MB, email.TIMEOUT_S)
    variables = function["Environment"]["Variables"]
    storage = app.stack.storage
    assert variables[Env.MAIL_BUCKET] == ref(app, app.stack.email.bucket)
    assert variables[Env.SUPPORT_ADDRESS] == "support@help.example.com"
    assert variables[Env.TICKETS_TABLE] == ref(app, storage.tickets)
    assert variables[Env.IDEMPOTENCY_TABLE] == ref(app, storage.idempotency)
    assert variables[Env.TOKEN_SECRET_ARN] == ref(app, storage.token_secret)


def test_a_failed_invocation_is_retried_then_kept_in_an_encrypted_queue(app):
    _, config = one(app, "AWS::Lambda::EventInvokeConfig", FunctionName=ref(app, app.stack.email.function))
    properties = config["Properties"]
    assert properties["FunctionName"] == ref(app, app.stack.email.function)
    assert properties["MaximumRetryAttempts"] == 2 and properties["MaximumEventAgeInSeconds"] == 6 * 3600
    assert properties["DestinationConfig"] == {"OnFailure": {"Destination": arn(app, app.stack.email.failures)}}
    queue = resource(app, app.stack.email.failures)["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_function_reads_raw_mail_and_writes_attachments_and_nothing_else_in_the_bucket(app):
    role_id = resource(app, app.stack.email.function)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [s for p in app.resources.values() if p["Type"] == "AWS::IAM::Policy"
                  and {"Ref": role_id} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    s3 = {(s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"]), str(s["Resource"]))
          for s in statements if "s3:" in str(s["Action"])}
    assert s3 == {("s3:GetObject", str(objects(app, intake.RAW_PREFIX))),
                  ("s3:PutObject", str(objects(app, intake.ATTACHMENT_PREFIX)))}
    sqs = [s for s in statements if "sqs:" in str(s["Action"])]
    assert all(s["Resource"] == arn(app, app.stack.email.failures) for s in sqs) and sqs


def test_the_ticket_table_expires_short_lived_items_by_the_models_ttl_attribute(app):
    table = resource(app, app.stack.storage.tickets)["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_mail_outlives_the_stack_unless_told_otherwise(app):
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.constructs import PythonFunctions
    from infra.constructs.storage import Storage
    from tests.infra.conftest import SKIP_BUNDLING

    assert resource(app, app.stack.email.bucket)["DeletionPolicy"] == "Delete"  # -c retainData=false
    assert any(r["Type"] == "Custom::S3AutoDeleteObjects" for r in app.resources.values())

    # The default (retainData true), on the email construct alone: the bucket and its mail stay
    stack = cdk.Stack(cdk.App(context=SKIP_BUNDLING), "EmailOnly")
    storage = Storage(stack, "Storage", retain_data=True)
    functions = PythonFunctions(stack, "Functions", log_removal_policy=cdk.RemovalPolicy.RETAIN)
    kept = email.Email(stack, "Email", functions=functions, storage=storage, support_domain="helpdesk.local",
                       retain_data=True)
    resources = Template.from_stack(stack).to_json()["Resources"]
    assert resources[stack.resolve(stack.get_logical_id(kept.bucket.node.default_child))]["DeletionPolicy"] == "Retain"
    assert not any(r["Type"] == "Custom::S3AutoDeleteObjects" for r in resources.values())


def test_without_a_hosted_zone_the_domain_records_are_left_to_the_readme(app):
    assert not [r for r in app.resources.values() if r["Type"] in ("AWS::SES::EmailIdentity", "AWS::Route53::RecordSet")]


def test_with_its_hosted_zone_the_domain_gets_its_ses_identity_dkim_and_mx_records(tmp_path):
    zoned = Synthesized(tmp_path, supportDomain="Help.Example.com", hostedZoneId="Z0123456789EXAMPLE",
                        hostedZoneName="example.com.")

    identity_id, identity = one(zoned, "AWS::SES::EmailIdentity")
    records = [r["Properties"] for r in zoned.resources.values() if r["Type"] == "AWS::Route53::RecordSet"]
    cnames = [r for r in records if r["Type"] == "CNAME"]
    [mx] = [r for r in records if r["Type"] == "MX"]

    assert identity["Properties"]["EmailIdentity"] == "help.example.com"
    assert len(cnames) == 3 and all(r["HostedZoneId"] == "Z0123456789EXAMPLE" for r in records)
    assert [r["Name"] for r in cnames] == [  # the identity's own DKIM host names, as they are
        {"Fn::Join": ["", [{"Fn::GetAtt": [identity_id, f"DkimDNSTokenName{n}"]}, "."]]} for n in (1, 2, 3)]
    assert [r["ResourceRecords"] for r in cnames] == [
        [{"Fn::GetAtt": [identity_id, f"DkimDNSTokenValue{n}"]}] for n in (1, 2, 3)]
    assert mx["Name"] == "help.example.com."
    assert mx["ResourceRecords"] == [{"Fn::Join": ["", ["10 inbound-smtp.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}]


@pytest.mark.parametrize("zone", [{"hostedZoneId": "Z0123456789EXAMPLE"},
                                  {"hostedZoneId": "Z0123456789EXAMPLE", "hostedZoneName": "example.org"}])
def test_a_hosted_zone_must_be_named_and_hold_the_support_domain(tmp_path, zone):
    with pytest.raises(ValueError, match="hostedZone"):
        Synthesized(tmp_path, supportDomain="help.example.com", **zone)
