"""The template tier's inputs: template.yaml as written and as SAM transforms it, and jobs/job.yaml.

These tests read templates only; nothing is deployed. They cover what moto's CloudFormation skips or
drops (DESIGN.md, "Machine notes") and the least-privilege conventions no linter knows about.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from taskrunner.local.cfn_yaml import load
from taskrunner.local.stack import sam_transform
from tests.conftest import ROOT

ROOT_TEMPLATE = ROOT / "template.yaml"
JOB_TEMPLATE = ROOT / "jobs" / "job.yaml"

# A pure transform uploads nothing: SAM only needs S3-shaped locations to accept the template.
PLACEHOLDER_CODE_URI = "s3://taskrunner-template-tests/code.zip"
PLACEHOLDER_TEMPLATE_URL = "https://s3.amazonaws.com/taskrunner-template-tests/job.yaml"
TRANSFORM_PARAMETERS = {"VpcId": "vpc-0123456789abcdef0", "Subnets": "subnet-0aaa,subnet-0bbb"}


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


@pytest.fixture(scope="session")
def template_path() -> Path:
    return ROOT_TEMPLATE


@pytest.fixture(scope="session")
def root_template() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals, short-form intrinsics in long form)."""
    return load(ROOT_TEMPLATE)


@pytest.fixture(scope="session")
def transformed_template(root_template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after aws-sam-translator: what CloudFormation actually receives."""
    # The translator resolves pseudo parameters from a boto3 session, which needs a region.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return sam_transform(with_placeholder_locations(root_template), dict(TRANSFORM_PARAMETERS))


@pytest.fixture(scope="session")
def job_template() -> dict[str, Any]:
    """jobs/job.yaml: plain CloudFormation, instantiated once per job as a nested stack."""
    return load(JOB_TEMPLATE)
