"""What a compromised job container (its task role) or a compromised function can reach — as deployed.

Each role's identity policies, resolved for its stack, are asked for what an attacker holding that role's
credentials would try: another job's files, folder, queue, tasks or secrets; every queue of the account.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.policies.cfn import ACCOUNT, REGION, Stack
from tests.policies.iam import Decision, Request, identity_decision


def policies(stack: Stack, role: str) -> list[dict[str, Any]]:
    properties = stack.properties(role)
    # A managed policy's statements are not in the template: a role with one cannot be judged by its inline ones.
    assert "ManagedPolicyArns" not in properties, f"{stack.stack_name}.{role}: managed policies are not simulated"
    return [p["PolicyDocument"] for p in properties.get("Policies", [])]


def may(stack: Stack, role: str, action: str, resource: str, **context: str) -> bool:
    request = Request(action, resource, principal=stack.arn(role), context=context)
    return identity_decision(request, policies(stack, role)) is Decision.ALLOW


def bucket_of(root: Stack) -> str:
    return str(root.ref("DataBucket"))


# --------------------------------------------------------------------------- a job's task role


def test_a_job_reads_only_its_own_prefix(root: Stack, jobs: dict[str, Stack]) -> None:
    thumbnails, bucket = jobs["thumbnails"], bucket_of(root)
    assert may(thumbnails, "TaskRole", "s3:GetObject", f"arn:aws:s3:::{bucket}/uploads/images/cat.jpg")
    assert not may(thumbnails, "TaskRole", "s3:GetObject", f"arn:aws:s3:::{bucket}/reports/2026-11-25.csv")
    assert not may(thumbnails, "TaskRole", "s3:PutObject", f"arn:aws:s3:::{bucket}/uploads/images/cat.jpg")
    assert not may(jobs["nightly-report"], "TaskRole", "s3:GetObject", f"arn:aws:s3:::{bucket}/uploads/images/a.jpg")


def test_a_job_mounts_only_its_own_access_point(root: Stack, jobs: dict[str, Stack]) -> None:
    """Cross-job EFS: the report job's role cannot mount the thumbnails job's folder."""
    report = jobs["nightly-report"]
    file_system = root.arn("FileSystem")
    own, other = report.arn("AccessPoint"), jobs["thumbnails"].arn("AccessPoint")
    assert may(
        report, "TaskRole", "elasticfilesystem:ClientMount", file_system, **{"elasticfilesystem:AccessPointArn": own}
    )
    assert not may(
        report, "TaskRole", "elasticfilesystem:ClientMount", file_system, **{"elasticfilesystem:AccessPointArn": other}
    )
    assert not may(report, "TaskRole", "elasticfilesystem:ClientRootAccess", file_system)


def test_a_worker_changes_task_protection_only_on_its_own_jobs_tasks(root: Stack, jobs: dict[str, Stack]) -> None:
    worker = jobs["image-worker"]
    cluster = root.arn("Cluster")
    task = cluster.replace(":cluster/", ":task/") + "/0123456789abcdef0123456789abcdef"
    own = {"ecs:cluster": cluster, "aws:ResourceTag/taskrunner:job": "image-worker"}
    others = {"ecs:cluster": cluster, "aws:ResourceTag/taskrunner:job": "transcode"}
    assert may(worker, "TaskRole", "ecs:UpdateTaskProtection", task, **own)
    assert not may(worker, "TaskRole", "ecs:UpdateTaskProtection", task, **others)


@pytest.mark.parametrize("job", ["nightly-report", "thumbnails", "order-audit", "transcode"])
def test_a_job_that_is_not_a_service_cannot_touch_task_protection_at_all(jobs: dict[str, Stack], job: str) -> None:
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/c/0123"
    assert not may(jobs[job], "TaskRole", "ecs:UpdateTaskProtection", task, **{"aws:ResourceTag/taskrunner:job": job})


def test_a_worker_consumes_only_its_own_queue(jobs: dict[str, Stack]) -> None:
    worker, transcode = jobs["image-worker"], jobs["transcode"]
    own, other = worker.arn("WorkQueue"), transcode.arn("WorkQueue")
    assert may(worker, "TaskRole", "sqs:ReceiveMessage", own)
    assert not may(worker, "TaskRole", "sqs:ReceiveMessage", other)
    assert not may(worker, "TaskRole", "sqs:SendMessage", own), "a worker consumes; it does not produce"


def test_a_worker_reads_and_claims_only_its_own_jobs_drain_signal(root: Stack, jobs: dict[str, Stack]) -> None:
    """A compromised image-worker container, with its task role, tries the Scaler's state table: its own
    job's drain item is all it reaches, never another job's (which would stop that job's workers), nor any
    Scaler state item (which would steer another job's scaling), nor the table as a whole."""
    worker = jobs["image-worker"]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{root.ref('ScalerStateTable')}"
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
        assert may(worker, "TaskRole", action, table, **{"dynamodb:LeadingKeys": "drain/image-worker"}), action
        for key in ("drain/transcode", "image-worker", "transcode"):
            assert not may(worker, "TaskRole", action, table, **{"dynamodb:LeadingKeys": key}), (action, key)
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:Query"):
        assert not may(worker, "TaskRole", action, table, **{"dynamodb:LeadingKeys": "drain/image-worker"}), action


@pytest.mark.parametrize("job", ["nightly-report", "thumbnails", "order-audit", "transcode"])
def test_a_job_that_is_not_a_service_reads_no_drain_signal(root: Stack, jobs: dict[str, Stack], job: str) -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{root.ref('ScalerStateTable')}"
    assert not may(jobs[job], "TaskRole", "dynamodb:GetItem", table, **{"dynamodb:LeadingKeys": f"drain/{job}"})


# --------------------------------------------------------------------------- a job's execution role


def test_the_execution_role_reads_only_the_jobs_own_secrets(jobs: dict[str, Stack]) -> None:
    own = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:report-db-AbCdEf"
    base = jobs["nightly-report"]
    stack = base.with_parameters(Secrets=f'{{"DB_PASSWORD": "{own}"}}')
    assert may(stack, "ExecutionRole", "secretsmanager:GetSecretValue", own)
    other = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:billing-db-XyZ123"
    assert not may(stack, "ExecutionRole", "secretsmanager:GetSecretValue", other)
    assert not may(base, "ExecutionRole", "secretsmanager:GetSecretValue", own), "no Secrets, no secret access"


def test_the_execution_role_pulls_only_the_jobs_own_repository(jobs: dict[str, Stack]) -> None:
    worker = jobs["image-worker"]  # its image is taskrunner-example-worker in this account's ECR
    repository = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/taskrunner-example-worker"
    assert may(worker, "ExecutionRole", "ecr:BatchGetImage", repository)
    assert not may(worker, "ExecutionRole", "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/billing")
    public = jobs["nightly-report"]  # a public image: no ECR permissions at all
    assert not may(public, "ExecutionRole", "ecr:BatchGetImage", repository)
    assert not may(public, "ExecutionRole", "ecr:GetAuthorizationToken", "*")


def test_the_execution_role_writes_only_the_jobs_own_log_group(jobs: dict[str, Stack]) -> None:
    report = jobs["nightly-report"]
    own = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/taskrunner/taskrunner/jobs/nightly-report:log-stream:x"
    other = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/taskrunner/taskrunner/jobs/thumbnails:log-stream:x"
    assert may(report, "ExecutionRole", "logs:PutLogEvents", own)
    assert not may(report, "ExecutionRole", "logs:PutLogEvents", other)


# --------------------------------------------------------------------------- the functions


@pytest.mark.parametrize(
    ("role", "own"), [("DispatchFunctionRole", "DispatchQueue"), ("TrackerFunctionRole", "TrackerQueue")]
)
def test_a_function_consumes_only_its_own_queue(root: Stack, role: str, own: str) -> None:
    """Regression: SAM's AWSLambdaSQSQueueExecutionRole let both receive and delete on every queue of the account."""
    assert may(root, role, "sqs:ReceiveMessage", root.arn(own))
    for queue in ("DispatchQueue", "TrackerQueue", "DispatchDeadLetterQueue", "TrackerDeadLetterQueue"):
        if queue != own:
            assert not may(root, role, "sqs:ReceiveMessage", root.arn(queue)), queue
    anything = f"arn:aws:sqs:{REGION}:{ACCOUNT}:payments-orders"
    assert not may(root, role, "sqs:ReceiveMessage", anything)
    assert not may(root, role, "sqs:DeleteMessage", anything)


def test_no_function_role_carries_a_managed_policy(root: Stack) -> None:
    for role in ("DispatchFunctionRole", "ScalerFunctionRole", "TrackerFunctionRole"):
        assert "ManagedPolicyArns" not in root.properties(role), role


def test_the_dispatcher_passes_only_job_roles_of_its_stack(root: Stack, jobs: dict[str, Stack]) -> None:
    own = jobs["thumbnails"].arn("TaskRole")
    admin = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    sibling = f"arn:aws:iam::{ACCOUNT}:role/taskrunner-dev/jobs/taskrunner-dev-X-TaskRole-1"
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert may(root, "DispatchFunctionRole", "iam:PassRole", own, **to_ecs)
    assert not may(root, "DispatchFunctionRole", "iam:PassRole", admin, **to_ecs)
    assert not may(root, "DispatchFunctionRole", "iam:PassRole", sibling, **to_ecs)
