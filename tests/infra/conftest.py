"""The CDK app as deployed (``infra.app.build`` with cdk.json's context), synthesized without bundling."""

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.app import build, cdk_json_context
from infra.stack import HelpdeskStack

SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}  # no pip, no copying: the template is all these tests read


class Synthesized:
    """One synthesized app: its stack, its template and where the cloud assembly went (cdk-nag ran)."""

    def __init__(self, outdir: Path, **context: object) -> None:
        self.outdir = outdir
        self.app = cdk.App(context={**cdk_json_context(), **SKIP_BUNDLING, **context}, outdir=str(outdir))
        self.stack: HelpdeskStack = build(self.app)
        self.template = Template.from_stack(self.stack)  # synthesizes the app: cdk-nag fails it on any finding
        self.resources: dict = self.template.to_json()["Resources"]

    def logical_id(self, construct) -> str:
        """The logical id of an L2 construct's resource (or of an L1 resource)."""
        resource = getattr(construct.node, "default_child", None) or construct
        return self.stack.resolve(self.stack.get_logical_id(resource))


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Synthesized:
    return Synthesized(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def configured(tmp_path_factory) -> Synthesized:
    """The app with every optional setting, given as strings the way ``npx cdk deploy -c key=value`` gives them."""
    return Synthesized(
        tmp_path_factory.mktemp("cdk.out"),
        publicBaseUrl="https://help.example.com",
        allowedOrigins="https://www.example.com,https://shop.example.com",
        retainData="false",
        wafRateLimit="300",
        agentMfa="required",
        agentThreatProtection="true",
    )


@pytest.fixture(scope="module")
def snapstart(tmp_path_factory) -> Synthesized:
    """The app deployed with ``-c snapStart=true`` (a string, as the CLI gives it)."""
    return Synthesized(tmp_path_factory.mktemp("cdk.out"), snapStart="true")
