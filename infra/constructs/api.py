"""The REST API: API Gateway hands every request to one function (Powertools resolver inside).

API Gateway contributes what it is good at: throttling per stage, JSON access logs, execution-error
logs (never request bodies), X-Ray tracing and, when origins are configured, CORS preflight.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from constructs import Construct

from helpdesk.settings import Env
from infra.constructs import LOG_RETENTION, PythonFunctions
from infra.constructs.storage import Storage
from infra.nag import acknowledge

THROTTLING_RATE_LIMIT = 25  # requests per second, steady: far above a support desk's traffic, far below abuse
THROTTLING_BURST_LIMIT = 50


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
        )
        storage.tickets.grant_read_write_data(self.function)
        storage.idempotency.grant_read_write_data(self.function)
        storage.token_secret.grant_read(self.function)

        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION, removal_policy=log_removal_policy)
        self.rest_api = apigw.LambdaRestApi(
            self,
            "RestApi",
            handler=self.function,
            description="Helpdesk: customer ticket form and ticket API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,  # API Gateway writes no log without this account-level role (kept on delete:
            # the account setting keeps pointing at it, for every API in the region)
            deploy_options=apigw.StageOptions(
                stage_name="v1",
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
        acknowledge(
            self.rest_api,
            {
                "AwsSolutions-APIG2": "Proxy integration: the function validates every body and parameter "
                "with its Powertools/pydantic models and answers 422 in the API's error shape. API Gateway "
                "models would restate that schema in a second place (an empty validator would only silence "
                "this rule).",
                "AwsSolutions-APIG4": "Public by design: customers are anonymous (the form, POST /tickets) "
                "and every route is a customer's. A ticket is reachable only with its access token "
                "(HMAC-SHA256 of the ticket id under a key in Secrets Manager; the table stores only its "
                "SHA-256), checked by the function. Stage throttling bounds abuse.",
                "AwsSolutions-COG4": "No user pool: customers do not sign up; a ticket's access token is the "
                "credential (see AwsSolutions-APIG4).",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]": "The account-level role API Gateway assumes to write "
                "execution and access logs; the AWS-maintained policy covers the log groups API Gateway names "
                "itself.",
            },
        )
        acknowledge(
            self.rest_api.deployment_stage,
            {
                "AwsSolutions-APIG3": "WAF is the documented next step (AWS managed common rules plus a "
                "rate-based rule); until then stage throttling caps request rates and the function validates "
                "all input.",
            },
        )
