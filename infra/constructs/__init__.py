"""One construct per capability, and the shared way they build their Lambda functions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from helpdesk.settings import Env
from infra.bundling import python_code
from infra.nag import acknowledge

ROOT = Path(__file__).resolve().parents[2]
LOG_RETENTION = logs.RetentionDays.ONE_MONTH

POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "helpdesk",
    "POWERTOOLS_METRICS_NAMESPACE": "Helpdesk",
}


class PythonFunctions(Construct):
    """The two layers every function shares, and the one way to build a function.

    Runtime and architecture are decided here once: the architecture also picks the wheels that pip
    installs into the dependency layer. Each function gets its own log group (bounded retention) and
    its own role that may only write to that log group and send traces; capabilities add grants.
    """

    runtime = lambda_.Runtime.PYTHON_3_12
    architecture = lambda_.Architecture.ARM_64

    def __init__(self, scope: Construct, id: str, *, log_removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, id)
        self.log_removal_policy = log_removal_policy
        self.domain_layer = self._layer("Domain", "helpdesk", "python/helpdesk", "Helpdesk domain package")
        self.dependency_layer = self._layer("Dependencies", "deps", "python", "Helpdesk dependencies")

    def _layer(self, id: str, folder: str, into: str, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            id,
            code=self._code(f"layers/{folder}", into=into),
            compatible_runtimes=[self.runtime],
            compatible_architectures=[self.architecture],
            description=description,
        )

    def add(
        self,
        scope: Construct,
        id: str,
        *,
        source: str,
        description: str,
        environment: Mapping[Env, str],
        memory_size: int = 256,
        timeout: cdk.Duration = cdk.Duration.seconds(10),
        snap_start: bool = False,
    ) -> lambda_.Function:
        """A function made of the folder ``source`` (``functions/api``), entry point ``handler.handler`` there.

        The folder keeps its repository path inside the archive, so the handler's absolute imports
        (``from functions.api import pages``) work alike in Lambda, in tests and on the local stack.
        ``environment`` is keyed by :class:`Env`: a function gets only variables the code reads by name.
        ``snap_start``: Lambda SnapStart on its published versions (invoke ``current_version`` or an alias
        of it); a superseded version is deleted with its snapshot, which is billed while it exists.
        """
        log_group = logs.LogGroup(
            scope, f"{id}Logs", retention=LOG_RETENTION, removal_policy=self.log_removal_policy
        )
        role = iam.Role(scope, f"{id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(role)
        function = lambda_.Function(
            scope,
            id,
            description=description,
            runtime=self.runtime,
            architecture=self.architecture,
            handler=f"{source.replace('/', '.')}.handler.handler",
            code=self._code(source, into=source),
            layers=[self.domain_layer, self.dependency_layer],
            memory_size=memory_size,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
            environment={**POWERTOOLS_ENVIRONMENT, **{name.value: value for name, value in environment.items()}},
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            current_version_options=lambda_.VersionOptions(removal_policy=cdk.RemovalPolicy.DESTROY)
            if snap_start else None,
        )
        if snap_start:  # CDK warns in case nobody publishes a version: the caller invokes current_version
            cdk.Validations.of(function).acknowledge(cdk.Acknowledgment(
                id="Annotation::@aws-cdk/aws-lambda:snapStartRequirePublish",
                reason="Every deployment publishes current_version, which the API's alias points at"))
        acknowledge(
            function,
            {
                "AwsSolutions-L1": "python3.12 on purpose: the dependency layer's wheels are resolved for it "
                "(pip --python-version); move runtime and layer together once the tests pass on a newer Python.",
            },
        )
        acknowledge(
            role,
            {
                "AwsSolutions-IAM5[Resource::*]": "X-Ray tracing: xray:PutTraceSegments and "
                "xray:PutTelemetryRecords support no resource-level permissions.",
            },
        )
        return function

    def _code(self, source: str, *, into: str) -> lambda_.Code:
        return python_code(ROOT / source, runtime=self.runtime, architecture=self.architecture, into=into)
