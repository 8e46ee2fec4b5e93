"""taskrunner's own templates as CloudFormation receives them, and the stacks they deploy, resolved.

template.yaml is a SAM template: CloudFormation receives it transformed (aws-sam-translator), which here runs
offline on a copy whose local code and nested-application paths are S3-shaped placeholders, as `sam package`
would make them. jobs/job.yaml is plain CloudFormation, deployed once per job block as a nested stack.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import pytest

from taskrunner.local.cfn_yaml import load
from taskrunner.local.stack import sam_transform
from tests.conftest import ROOT
from tests.policies.cfn import ACCOUNT, REGION, Stack, render_jobs

ROOT_TEMPLATE = ROOT / "template.yaml"
JOB_TEMPLATE = ROOT / "jobs" / "job.yaml"

# A pure transform uploads nothing: SAM only needs S3-shaped locations to accept the template.
PLACEHOLDER_CODE_URI = "s3://taskrunner-template-tests/code.zip"
PLACEHOLDER_TEMPLATE_URL = "https://s3.amazonaws.com/taskrunner-template-tests/job.yaml"
#: What a deployment must give: the network (samconfig.toml's parameter overrides for a real account).
TRANSFORM_PARAMETERS = {
    "VpcId": "vpc-0123456789abcdef0",
    "Subnets": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
}

# Operators for a stack deployed with OperatorPrincipalArns: a wildcard entry (SSO roles' paths carry the region
# they were provisioned from) and an exact one.
OPERATORS = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Operators_*"
ONCALL = f"arn:aws:iam::{ACCOUNT}:role/oncall"
#: An operator's role that the wildcard entry admits.
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Operators_0123abcd"
WITH_OPERATORS = {"OperatorPrincipalArns": f"{OPERATORS},{ONCALL}"}


def with_placeholder_locations(template: dict[str, Any]) -> dict[str, Any]:
    """A deep copy with local CodeUri and nested-application paths replaced, as `sam package` would."""
    packaged = copy.deepcopy(template)
    function_globals = packaged.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = PLACEHOLDER_CODE_URI
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = PLACEHOLDER_CODE_URI
        elif resource["Type"] == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            props["Location"] = PLACEHOLDER_TEMPLATE_URL
    return packaged


@cache
def root_template() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals, short-form intrinsics in long form)."""
    return load(ROOT_TEMPLATE)


@cache
def job_template() -> dict[str, Any]:
    """jobs/job.yaml: plain CloudFormation, instantiated once per job as a nested stack."""
    return load(JOB_TEMPLATE)


@cache
def _transformed(parameters: str) -> dict[str, Any]:
    # The translator resolves pseudo parameters from a boto3 session, which needs a region.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        transformed: dict[str, Any] = sam_transform(with_placeholder_locations(root_template()), json.loads(parameters))
        return transformed


def transformed(**parameters: str) -> dict[str, Any]:
    """template.yaml as CloudFormation receives it for these parameters (SAM transforms with their values)."""
    return _transformed(json.dumps(TRANSFORM_PARAMETERS | parameters, sort_keys=True))


def root_stack(**parameters: str) -> Stack:
    """The platform stack deployed with these parameters (the network given, every other one its default)."""
    return Stack(transformed(**parameters), TRANSFORM_PARAMETERS | parameters)


def job_stacks(root: Stack) -> dict[str, Stack]:
    """JobName → the nested stack each job block of the root deploys from jobs/job.yaml."""
    stacks = [root.nested(logical_id, job_template()) for logical_id in render_jobs().sample_jobs(root_template())]
    return {stack.parameters["JobName"]: stack for stack in stacks}
