"""The template tier's inputs: template.yaml as written and as SAM transforms it, and jobs/job.yaml.

These tests read templates only; nothing is deployed. They cover what moto's CloudFormation skips or
drops (README, "Local mode, the embedded AWS and what it does not emulate") and the least-privilege
conventions no linter knows about.

jobs/job.yaml is checked as written (every ``Fn::If`` branch, tests.template.walk) and resolved for each job
parameter set (tests.policies.cfn): the sets tools/render_jobs.py renders for the linters (every sample
job of template.yaml and one job with every optional part on) plus a few only these tests need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.policies import stacks
from tests.policies.cfn import ACCOUNT, REGION, STACK, Stack, nested_stack_name, render_jobs

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


@pytest.fixture(scope="session")
def template_path() -> Path:
    return stacks.ROOT_TEMPLATE


@pytest.fixture(scope="session")
def root_template() -> dict[str, Any]:
    """template.yaml as written (SAM resources, Globals, short-form intrinsics in long form)."""
    return stacks.root_template()


@pytest.fixture(scope="session")
def transformed_template() -> dict[str, Any]:
    """template.yaml after aws-sam-translator: what CloudFormation actually receives."""
    return stacks.transformed()


@pytest.fixture(scope="session")
def job_template() -> dict[str, Any]:
    """jobs/job.yaml: plain CloudFormation, instantiated once per job as a nested stack."""
    return stacks.job_template()


@pytest.fixture(scope="session")
def job_parameter_sets(root_template: dict[str, Any], job_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Job name → the parameters its stack receives: the rendered jobs' sets, then the extra ones above."""
    tool = render_jobs()
    sets: dict[str, dict[str, Any]] = tool.job_parameter_sets(root_template, job_template)
    for name, (parameters, platform) in EXTRA_JOB_PARAMETERS.items():
        sets[name] = parameters | {"Platform": ",".join(tool.platform_list(job_template, **platform))}
    return sets


def job_logical_id(job_name: str, root_template: dict[str, Any]) -> str:
    """The logical id of the job block that deploys a job: its own, or '<JobName>Job' for a set of these tests."""
    blocks = {str(p["JobName"]): logical_id for logical_id, p in render_jobs().sample_jobs(root_template).items()}
    return blocks.get(job_name) or "".join(part.title() for part in job_name.split("-")) + "Job"


@pytest.fixture(scope="session")
def job_sets(
    root: Stack,
    root_template: dict[str, Any],
    job_template: dict[str, Any],
    job_parameter_sets: dict[str, dict[str, Any]],
) -> dict[str, Stack]:
    """Job name → jobs/job.yaml deployed as a nested stack of the root with that job's parameters.

    Each set's Platform is a sample platform list: the stack receives the name of the root's PlatformParameter,
    which holds that list, as a job block's `Platform: !Ref PlatformParameter` passes it.
    """
    platform_parameter = root.ref("PlatformParameter")
    return {
        name: Stack(
            job_template,
            parameters | {"Platform": platform_parameter},
            name=nested_stack_name(STACK, job_logical_id(name, root_template)),
            ssm={platform_parameter: parameters["Platform"]},
        )
        for name, parameters in job_parameter_sets.items()
    }


@pytest.fixture(scope="session")
def root() -> Stack:
    """The transformed template.yaml resolved with its defaults (no operators, no boundary, a bucket of its own)."""
    return stacks.root_stack()
