"""The CDK app: ``npx cdk synth`` (via cdk.json) or ``python infra/app.py`` give the same template."""

from __future__ import annotations

import json
import sys
from pathlib import Path

# `python infra/app.py` puts infra/ first on sys.path, where infra/constructs/ would shadow the
# `constructs` library that aws_cdk imports: drop it (everything comes from PYTHONPATH=layers:.).
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import aws_cdk as cdk  # noqa: E402 (after the sys.path fix above)

from helpdesk.deployment import STACK_NAME  # noqa: E402
from infra import nag  # noqa: E402
from infra.stack import Config, HelpdeskStack  # noqa: E402

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def build(app: cdk.App) -> HelpdeskStack:
    """The stack and its checks, as deployed; tests build the same thing."""
    stack = HelpdeskStack(app, STACK_NAME, config=Config.from_context(app))  # operators' commands find it by it
    nag.check(app)
    return stack


def cdk_json_context() -> dict:
    """cdk.json's context (feature flags, defaults). The CLI's own context, ``-c`` included, takes precedence."""
    return json.loads(CDK_JSON.read_text())["context"]


if __name__ == "__main__":
    app = cdk.App(context=cdk_json_context())
    build(app)
    app.synth()
