"""The security tier: every trust boundary, played by an attacker (docs/security.md lists them).

Policies are evaluated as deployed: the SAM-transformed root template and each sample job's nested stack,
resolved to concrete ARNs (:mod:`tests.security.cfn`) and judged by :mod:`tests.security.iam`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from taskrunner.local.cfn_yaml import load
from taskrunner.local.stack import sam_transform
from tests.conftest import ROOT
from tests.policies.stacks import TRANSFORM_PARAMETERS, with_placeholder_locations
from tests.security.cfn import Resolved

# Handlers run in-process here, as in the unit tier: metrics off (with a namespace, so a buffer cannot fail).
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "TaskrunnerSecurityTests")

#: An operator role, for the stacks deployed with OperatorPrincipalArns set.
OPERATOR = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Operator_0123"


def _transformed(parameters: dict[str, str]) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        transformed: dict[str, Any] = sam_transform(
            with_placeholder_locations(load(ROOT / "template.yaml")), TRANSFORM_PARAMETERS | parameters
        )
        return transformed


@pytest.fixture(scope="session")
def root() -> Resolved:
    """The platform stack as deployed with its defaults (no operators, a bucket of its own)."""
    return Resolved(_transformed({}), dict(TRANSFORM_PARAMETERS))


@pytest.fixture(scope="session")
def root_with_operators() -> Resolved:
    parameters = dict(TRANSFORM_PARAMETERS) | {"OperatorPrincipalArns": OPERATOR}
    return Resolved(_transformed(parameters), parameters)


def job_stack(root: Resolved, logical_id: str) -> Resolved:
    """One sample job's nested stack, with the parameters its block passes and the platform list resolved."""
    block = root.template["Resources"][logical_id]["Properties"]["Parameters"]
    parameters = {name: root.value(value) for name, value in block.items()}
    platform = root.resource("PlatformParameter")["Properties"]["Value"]
    parameters["Platform"] = platform  # CloudFormation resolves the parameter's name to its StringList value
    # A nested stack is named '<root>-<LogicalId>-<random>', and so are the resources it names itself.
    nested = f"{root.stack}-{logical_id}-1A2B3C4D"
    return Resolved(load(ROOT / "jobs" / "job.yaml"), {k: str(v) for k, v in parameters.items()}, stack=nested)


@pytest.fixture(scope="session")
def jobs(root: Resolved) -> dict[str, Resolved]:
    """Every sample job's stack, by JobName."""
    stacks = {}
    for logical_id, resource in root.template["Resources"].items():
        if resource["Type"] == "AWS::CloudFormation::Stack":
            stack = job_stack(root, logical_id)
            stacks[stack.parameters["JobName"]] = stack
    return stacks
