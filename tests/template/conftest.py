"""The template tier's inputs: template.yaml as written and as SAM transforms it, and jobs/job.yaml.

These tests read templates only; nothing is deployed. They cover what moto's CloudFormation skips or
drops (README, "Local mode, the embedded AWS and what it does not emulate") and the least-privilege
conventions no linter knows about.

jobs/job.yaml is checked as written (every ``Fn::If`` branch, tests.template.walk) and resolved for each job
parameter set (tests.template.evaluate): the sets tools/render_jobs.py renders for the linters (every sample
job of template.yaml and one job with every optional part on) plus a few only these tests need.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from taskrunner.local.cfn_yaml import load
from taskrunner.local.stack import sam_transform
from tests.conftest import ROOT
from tests.template.evaluate import ACCOUNT, REGION, STACK, Evaluator, render_jobs

ROOT_TEMPLATE = ROOT / "template.yaml"
JOB_TEMPLATE = ROOT / "jobs" / "job.yaml"

# A pure transform uploads nothing: SAM only needs S3-shaped locations to accept the template.
PLACEHOLDER_CODE_URI = "s3://taskrunner-template-tests/code.zip"
PLACEHOLDER_TEMPLATE_URL = "https://s3.amazonaws.com/taskrunner-template-tests/job.yaml"
TRANSFORM_PARAMETERS = {
    "VpcId": "vpc-0123456789abcdef0",
    "Subnets": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
}

# Parameter sets the rendered jobs do not cover, with the platform elements they change: a Spot worker service
# on a stack that allows public IPs, an image pinned by digest with one SSM secret, a bare per-message job.
EXTRA_JOB_PARAMETERS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "spot-worker": (
        {
            "JobName": "spot-worker",
            "Image": "public.ecr.aws/docker/library/python:3.13-slim",
            "QueueMode": "service",
            "MinTasks": 1,
            "MaxTasks": 50,
            "MessagesPerTask": 4,
            "Capacity": "FARGATE_SPOT",
            "RetryExitCodes": "3,75",
            "MaxAttempts": 4,
            "Environment": '{"LOG_LEVEL": "debug"}',
        },
        {"AssignPublicIp": "ENABLED"},
    ),
    "pinned": (
        {
            "JobName": "pinned",
            "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/pinned@sha256:{'ab' * 32}",
            "Secrets": f'{{"TOKEN": "arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/pinned/token"}}',
            "S3Prefix": "pinned/",
        },
        {},
    ),
    "per-message": (
        {
            "JobName": "per-message",
            "Image": "public.ecr.aws/docker/library/python:3.13-slim",
            "QueueMode": "per-message",
            "MaxConcurrency": 8,
            "LocalCommand": "python -c pass",
        },
        {},
    ),
}


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


@pytest.fixture(scope="session")
def job_parameter_sets(root_template: dict[str, Any], job_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Job name → the parameters its stack receives: the rendered jobs' sets, then the extra ones above."""
    tool = render_jobs()
    sets: dict[str, dict[str, Any]] = tool.job_parameter_sets(root_template, job_template)
    for name, (parameters, platform) in EXTRA_JOB_PARAMETERS.items():
        sets[name] = parameters | {"Platform": ",".join(tool.platform_list(job_template, **platform))}
    return sets


def nested_stack_name(job_name: str) -> str:
    """What CloudFormation names a nested job stack: <root>-<logical id>-<suffix>."""
    return f"{STACK}-{job_name.title().replace('-', '')}Job-1A2B3C4D5E6F"


@pytest.fixture(scope="session")
def job_sets(job_template: dict[str, Any], job_parameter_sets: dict[str, dict[str, Any]]) -> dict[str, Evaluator]:
    """Job name → jobs/job.yaml resolved with that job's parameters."""
    return {
        name: Evaluator(job_template, parameters, stack_name=nested_stack_name(name))
        for name, parameters in job_parameter_sets.items()
    }


@pytest.fixture(scope="session")
def root(transformed_template: dict[str, Any]) -> Evaluator:
    """The transformed template.yaml resolved with its defaults (no operators, no boundary, a bucket of its own)."""
    return Evaluator(transformed_template, TRANSFORM_PARAMETERS)
