"""CloudFormation: a stack's outputs and the parameters of its nested job stacks.

Developer tools find every resource of a deployed stack through its outputs, so a stack name and credentials are
all they need. What the job registry does not hold (a job's schedule expression and time zone are the Scheduler's,
not the Lambdas') is read back from the job's nested stack: the parameters its block in template.yaml gave it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskrunner.adapters.clients import client, error_code

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

NESTED_STACK = "AWS::CloudFormation::Stack"


class StackNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StackInfo:
    name: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)


class Stacks:
    def __init__(self, cloudformation: CloudFormationClient | None = None) -> None:
        self.cfn: CloudFormationClient = cloudformation or client("cloudformation")

    def describe(self, stack: str) -> StackInfo:
        """DescribeStacks; :class:`StackNotFound` when there is no such stack (CloudFormation's ValidationError)."""
        try:
            stacks = self.cfn.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                raise StackNotFound(stack) from exc
            raise
        if not stacks:
            raise StackNotFound(stack)
        found: Any = stacks[0]
        return StackInfo(
            name=str(found.get("StackName", stack)),
            status=str(found.get("StackStatus", "")),
            outputs={o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])},
            parameters={p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in found.get("Parameters", [])},
        )

    def resources(self, stack: str, resource_type: str | None = None) -> dict[str, str]:
        """Logical id → physical id of the stack's resources (of one type, if given)."""
        found: dict[str, str] = {}
        for page in self.cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
            for resource in page.get("StackResourceSummaries", []):
                if resource_type and resource["ResourceType"] != resource_type:
                    continue
                if resource.get("PhysicalResourceId"):
                    found[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
        return found

    def job_parameters(self, stack: str) -> dict[str, dict[str, str]]:
        """Job name → the parameters of its nested stack (``ScheduleExpression``, ``ScheduleTimezone`` ...).

        One ListStackResources and one DescribeStacks per job; a nested stack that cannot be described (being
        deleted, say) is left out rather than failing the others.
        """
        jobs: dict[str, dict[str, str]] = {}
        for physical in self.resources(stack, NESTED_STACK).values():
            try:
                parameters = self.describe(physical).parameters
            except (StackNotFound, ClientError):
                continue
            if name := parameters.get("JobName"):
                jobs[name] = parameters
        return jobs
