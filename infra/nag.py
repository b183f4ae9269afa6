"""cdk-nag (AwsSolutions) as a synth-time validation, and the one way to acknowledge a finding.

Acknowledgements live next to the resource they concern, each with its reason; synth fails on any
finding nobody acknowledged. CDK records every acknowledged finding, with its reason, in
``cdk.out/validation-report.json`` (``suppressedViolations``): the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def check(app: cdk.App) -> None:
    """Run the AwsSolutions pack when ``app`` synthesizes."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, reasons: Mapping[str, str]) -> None:
    """Acknowledge findings on ``scope`` and below: rule as nag reports it (``AwsSolutions-X[finding]``) -> reason.

    The plugin-qualified id (``AwsSolutions::AwsSolutions-X``) lets CDK itself filter the finding and
    write it, with the reason, into the validation report.
    """
    cdk.Validations.of(scope).acknowledge(
        *(cdk.Acknowledgment(id=f"{PACK}::{rule}", reason=why) for rule, why in reasons.items())
    )
