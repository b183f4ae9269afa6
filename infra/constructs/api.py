"""The REST API: API Gateway hands every request to one function (Powertools resolver inside).

API Gateway contributes what it is good at: throttling per stage, JSON access logs, execution-error
logs (never request bodies), X-Ray tracing and, when origins are configured, CORS preflight. What it
answers by itself (a method ANY does not cover, a payload over 10 MB, throttling, WAF, its own
failures) comes in the API's error shape with the security headers (``infra.gateway_responses``).

With ``snapStart`` (context) the function runs with Lambda SnapStart: each deployment publishes a version
whose initialised environment Lambda snapshots, the alias ``live`` points at it and API Gateway invokes
the alias ($LATEST never uses a snapshot). The handler's runtime hooks load what requests would load
lazily before the snapshot and renew clients, secret and random state after each restore. SnapStart
for Python has a price (the cached snapshot, and each restore), so it is opt-in.

With ``wafRateLimit`` (context) a WAF web ACL guards the stage: requests per client IP per five
minutes above the limit get a JSON ``429 rate_limited`` (stage throttling is shared by everyone: one
abuser could use it all), plus AWS's IP reputation list and known-bad-inputs rules. WAF has a monthly
price (a web ACL and its rules), so it is opt-in.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from functions.api.schemas import ErrorBody  # the one error shape, also for what WAF answers
from helpdesk.settings import Env
from infra import gateway_responses
from infra.agent_pool import AGENT_PATH
from infra.constructs import LOG_RETENTION, PythonFunctions
from infra.constructs.storage import Storage
from infra.nag import acknowledge

THROTTLING_RATE_LIMIT = 25  # requests per second, steady: far above a support desk's traffic, far below abuse
THROTTLING_BURST_LIMIT = 50
STAGE_NAME = "v1"


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        functions: PythonFunctions,
        storage: Storage,
        allowed_origins: Sequence[str],
        public_base_url: str | None,
        log_removal_policy: cdk.RemovalPolicy,
        waf_rate_limit: int | None = None,
        snap_start: bool = False,
    ) -> None:
        super().__init__(scope, id)
        environment = {
            **storage.environment(),
        }
        if allowed_origins:
            environment[Env.ALLOWED_ORIGINS] = ",".join(allowed_origins)
        if public_base_url:
            environment[Env.PUBLIC_BASE_URL] = public_base_url
        self.function = functions.add(
            self,
            "Handler",
            source="functions/api",
            description="Helpdesk REST API (API Gateway proxy -> Powertools resolver)",
            environment=environment,
            memory_size=512,
            timeout=cdk.Duration.seconds(10),
            snap_start=snap_start,
        )
        # What API Gateway invokes: with SnapStart, the alias of the version deployed last.
        self.entry: lambda_.IFunction = lambda_.Alias(
            self, "Live", alias_name="live", version=self.function.current_version) if snap_start else self.function
        storage.tickets.grant_read_write_data(self.function)
        storage.idempotency.grant_read_write_data(self.function)
        storage.token_secret.grant_read(self.function)

        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION, removal_policy=log_removal_policy)
        self.rest_api = apigw.LambdaRestApi(
            self,
            "RestApi",
            handler=self.entry,
            description="Helpdesk: customer ticket form and ticket API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,  # API Gateway writes no log without this account-level role (kept on delete:
            # the account setting keeps pointing at it, for every API in the region)
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=THROTTLING_RATE_LIMIT,
                throttling_burst_limit=THROTTLING_BURST_LIMIT,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # would log request and response bodies: customers' messages
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=False,
                ),
            ),
            default_cors_preflight_options=apigw.CorsOptions(allow_origins=list(allowed_origins))
            if allowed_origins
            else None,
        )
        self.rest_api.node.find_child("Endpoint").override_logical_id("ApiUrl")  # a stable output name for scripts
        for response in gateway_responses.RESPONSES:  # what API Gateway answers itself, in our error shape
            self.rest_api.add_gateway_response(
                response.type.title().replace("_", ""), type=apigw.ResponseType.of(response.type),
                status_code=str(response.status) if response.status else None,
                # static values are quoted; quotes inside (the CSP's 'none') are kept as they are
                response_headers={name: f"'{value}'" for name, value in response.headers.items()},
                templates={"application/json": response.template()})
        acknowledge(
            self.rest_api,
            {
                "AwsSolutions-APIG2": "Proxy integration: the function validates every body and parameter "
                "with its Powertools/pydantic models and answers 422 in the API's error shape. API Gateway "
                "models would restate that schema in a second place (an empty validator would only silence "
                "this rule).",
                "AwsSolutions-APIG4": "Customers' routes are public by design: customers are anonymous (the "
                "form, POST /tickets), and a ticket is reachable only with its access token (HMAC-SHA256 of the "
                "ticket id under a key in Secrets Manager; the table stores only its SHA-256), checked by the "
                "function; stage throttling bounds abuse. GET /agent/ serves the agent console's sign-in page, "
                "which holds no data. Every other /agent/... route is behind the agents' Cognito authorizer.",
                "AwsSolutions-COG4": "Customers have no user pool: they do not sign up, and a ticket's access token "
                "is their credential (see AwsSolutions-APIG4). The agents' routes (/agent/{proxy+}) use the "
                "Cognito user pool authorizer; GET /agent/ is the sign-in page the console loads before any "
                "token exists.",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]": "The account-level role API Gateway assumes to write "
                "execution and access logs; the AWS-maintained policy covers the log groups API Gateway names "
                "itself.",
            },
        )
        if waf_rate_limit:
            self.web_acl = self._web_acl(waf_rate_limit)
        else:
            self.web_acl = None
            acknowledge(
                self.rest_api.deployment_stage,
                {
                    "AwsSolutions-APIG3": "WAF is opt-in (-c wafRateLimit=<requests per IP per 5 minutes>: a "
                    "rate-based rule plus AWS's IP reputation and known-bad-inputs rules) because a web ACL "
                    "has a monthly price; without it stage throttling caps request rates and the function "
                    "validates all input.",
                },
            )

    def protect_agent_routes(self, user_pool: cognito.IUserPool) -> apigw.CognitoUserPoolsAuthorizer:
        """Every method of ``/agent/{proxy+}`` behind the agents' user pool (an ID token in the
        ``Authorization`` header); ``GET /agent/``, the console's sign-in page, stays open. Both reach the
        same function; customers' routes (``/`` and ``/{proxy+}``) are unchanged."""
        authorizer = apigw.CognitoUserPoolsAuthorizer(self, "AgentAuthorizer", cognito_user_pools=[user_pool])
        root = self.rest_api.root  # a proxying LambdaRestApi refuses root.add_resource: build them as it would
        agent = apigw.Resource(root, AGENT_PATH, parent=root, path_part=AGENT_PATH)
        agent.add_method("GET")
        apigw.ProxyResource(agent, "{proxy+}", parent=agent, any_method=True, default_method_options=apigw.MethodOptions(
            authorizer=authorizer, authorization_type=apigw.AuthorizationType.COGNITO))
        return authorizer

    def stage_url(self, path: str) -> str:
        """The stage's URL for ``path``, built from the API's id and the stage's name rather than a
        reference to the stage: the user pool's invitation names the console, and the stage depends on
        the pool (through the authorizer's methods), so a reference would be a cycle."""
        stack = cdk.Stack.of(self)
        return (f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}.{stack.url_suffix}/"
                f"{STAGE_NAME}/{path.lstrip('/')}")

    def _web_acl(self, limit: int) -> wafv2.CfnWebACL:
        """The stage's web ACL: a per-IP rate limit answered in the API's error shape, and two AWS lists."""
        if not 10 <= limit <= 2_000_000_000:
            raise ValueError("wafRateLimit must be a number of requests per IP per 5 minutes, at least 10")

        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=f"helpdesk-{name}", sampled_requests_enabled=True)

        def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=(
                    wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(vendor_name="AWS", name=name))),
                visibility_config=visibility(name))

        rate_limited = ErrorBody(error="rate_limited", message="Too many requests from your address; "
                                 "please try again in a few minutes.").model_dump_json()
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("api"),
            custom_response_bodies={"rate-limited": wafv2.CfnWebACL.CustomResponseBodyProperty(
                content_type="APPLICATION_JSON", content=rate_limited)},
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="per-ip-rate", priority=0,
                    statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=(
                        wafv2.CfnWebACL.RateBasedStatementProperty(limit=limit, aggregate_key_type="IP"))),
                    action=wafv2.CfnWebACL.RuleActionProperty(block=wafv2.CfnWebACL.BlockActionProperty(
                        custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                            response_code=429, custom_response_body_key="rate-limited"))),
                    visibility_config=visibility("per-ip-rate")),
                managed("AWSManagedRulesAmazonIpReputationList", 1),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
            ],
        )
        wafv2.CfnWebACLAssociation(self, "WebAclAssociation", web_acl_arn=acl.attr_arn,
                                   resource_arn=self.rest_api.deployment_stage.stage_arn)
        return acl
