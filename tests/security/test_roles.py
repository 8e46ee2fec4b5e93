"""What a compromised job container (its task role) or a compromised function can reach — as deployed.

Each role's identity policies, resolved for its stack, are asked for what an attacker holding that role's
credentials would try: another job's files, folder, queue, tasks or secrets; every queue of the account.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.cfn import ACCOUNT, REGION, Resolved
from tests.security.conftest import job_stack
from tests.security.iam import Decision, Request, identity_decision


def policies(stack: Resolved, role: str) -> list[dict[str, Any]]:
    props = stack.resource(role)["Properties"]
    return [p["PolicyDocument"] for p in props.get("Policies", [])]


def may(stack: Resolved, role: str, action: str, resource: str, **context: str) -> bool:
    request = Request(str(stack.attribute(role, "Arn")), action, resource, context)
    return identity_decision(request, policies(stack, role)) is Decision.ALLOW


def bucket_of(root: Resolved) -> str:
    return str(root.ref("DataBucket"))


# --------------------------------------------------------------------------- a job's task role


def test_a_job_reads_only_its_own_prefix(root: Resolved, jobs: dict[str, Resolved]) -> None:
    thumbnails, bucket = jobs["thumbnails"], bucket_of(root)
    assert may(thumbnails, "TaskRole", "s3:GetObject", f"arn:aws:s3:::{bucket}/uploads/images/cat.jpg")
    assert not may(thumbnails, "TaskRole", "s3:GetObject", f"arn:aws:s3:::{bucket}/reports/2026-11-25.csv")
    assert not may(thumbnails, "TaskRole", "s3:PutObject", f"arn:aws:s3:::{bucket}/uploads/images/cat.jpg")
    assert not may(jobs["nightly-report"], "TaskRole", "s3:GetObject", f"arn:aws:s3:::{bucket}/uploads/images/a.jpg")


def test_a_job_mounts_only_its_own_access_point(jobs: dict[str, Resolved]) -> None:
    """Cross-job EFS: the report job's role cannot mount the thumbnails job's folder."""
    report = jobs["nightly-report"]
    file_system = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-0123456789abcdef0"
    own = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:access-point/{report.ref('AccessPoint')}"
    other = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:access-point/fsap-0thumbnails00000"
    assert may(
        report, "TaskRole", "elasticfilesystem:ClientMount", file_system, **{"elasticfilesystem:AccessPointArn": own}
    )
    assert not may(
        report, "TaskRole", "elasticfilesystem:ClientMount", file_system, **{"elasticfilesystem:AccessPointArn": other}
    )
    assert not may(report, "TaskRole", "elasticfilesystem:ClientRootAccess", file_system)


def test_a_worker_changes_task_protection_only_on_its_own_jobs_tasks(root: Resolved, jobs: dict[str, Resolved]) -> None:
    worker = jobs["image-worker"]
    cluster = str(root.attribute("Cluster", "Arn"))
    task = cluster.replace(":cluster/", ":task/") + "/0123456789abcdef0123456789abcdef"
    own = {"ecs:cluster": cluster, "aws:ResourceTag/taskrunner:job": "image-worker"}
    others = {"ecs:cluster": cluster, "aws:ResourceTag/taskrunner:job": "transcode"}
    assert may(worker, "TaskRole", "ecs:UpdateTaskProtection", task, **own)
    assert not may(worker, "TaskRole", "ecs:UpdateTaskProtection", task, **others)


@pytest.mark.parametrize("job", ["nightly-report", "thumbnails", "order-audit", "transcode"])
def test_a_job_that_is_not_a_service_cannot_touch_task_protection_at_all(jobs: dict[str, Resolved], job: str) -> None:
    task = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/c/0123"
    assert not may(jobs[job], "TaskRole", "ecs:UpdateTaskProtection", task, **{"aws:ResourceTag/taskrunner:job": job})


def test_a_worker_consumes_only_its_own_queue(jobs: dict[str, Resolved]) -> None:
    worker, transcode = jobs["image-worker"], jobs["transcode"]
    own, other = str(worker.attribute("WorkQueue", "Arn")), str(transcode.attribute("WorkQueue", "Arn"))
    assert may(worker, "TaskRole", "sqs:ReceiveMessage", own)
    assert not may(worker, "TaskRole", "sqs:ReceiveMessage", other)
    assert not may(worker, "TaskRole", "sqs:SendMessage", own), "a worker consumes; it does not produce"


# --------------------------------------------------------------------------- a job's execution role


def test_the_execution_role_reads_only_the_jobs_own_secrets(root: Resolved) -> None:
    own = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:report-db-AbCdEf"
    base = job_stack(root, "ReportJob")
    stack = Resolved(base.template, base.parameters | {"Secrets": f'{{"DB_PASSWORD": "{own}"}}'})
    assert may(stack, "ExecutionRole", "secretsmanager:GetSecretValue", own)
    other = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:billing-db-XyZ123"
    assert not may(stack, "ExecutionRole", "secretsmanager:GetSecretValue", other)
    assert not may(base, "ExecutionRole", "secretsmanager:GetSecretValue", own), "no Secrets, no secret access"


def test_the_execution_role_pulls_only_the_jobs_own_repository(jobs: dict[str, Resolved]) -> None:
    worker = jobs["image-worker"]  # its image is taskrunner-example-worker in this account's ECR
    repository = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/taskrunner-example-worker"
    assert may(worker, "ExecutionRole", "ecr:BatchGetImage", repository)
    assert not may(worker, "ExecutionRole", "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/billing")
    public = jobs["nightly-report"]  # a public image: no ECR permissions at all
    assert not may(public, "ExecutionRole", "ecr:BatchGetImage", repository)
    assert not may(public, "ExecutionRole", "ecr:GetAuthorizationToken", "*")


def test_the_execution_role_writes_only_the_jobs_own_log_group(jobs: dict[str, Resolved]) -> None:
    report = jobs["nightly-report"]
    own = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/taskrunner/taskrunner/jobs/nightly-report:log-stream:x"
    other = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/taskrunner/taskrunner/jobs/thumbnails:log-stream:x"
    assert may(report, "ExecutionRole", "logs:PutLogEvents", own)
    assert not may(report, "ExecutionRole", "logs:PutLogEvents", other)


# --------------------------------------------------------------------------- the functions


@pytest.mark.parametrize(
    ("role", "own"), [("DispatchFunctionRole", "DispatchQueue"), ("TrackerFunctionRole", "TrackerQueue")]
)
def test_a_function_consumes_only_its_own_queue(root: Resolved, role: str, own: str) -> None:
    """Regression: SAM's AWSLambdaSQSQueueExecutionRole let both receive and delete on every queue of the account."""
    assert may(root, role, "sqs:ReceiveMessage", str(root.attribute(own, "Arn")))
    for queue in ("DispatchQueue", "TrackerQueue", "DispatchDeadLetterQueue", "TrackerDeadLetterQueue"):
        if queue != own:
            assert not may(root, role, "sqs:ReceiveMessage", str(root.attribute(queue, "Arn"))), queue
    anything = f"arn:aws:sqs:{REGION}:{ACCOUNT}:payments-orders"
    assert not may(root, role, "sqs:ReceiveMessage", anything)
    assert not may(root, role, "sqs:DeleteMessage", anything)


def test_no_function_role_carries_a_managed_policy(root: Resolved) -> None:
    for role in ("DispatchFunctionRole", "ScalerFunctionRole", "TrackerFunctionRole"):
        assert "ManagedPolicyArns" not in root.resource(role)["Properties"], role


def test_the_dispatcher_passes_only_job_roles_of_its_stack(root: Resolved, jobs: dict[str, Resolved]) -> None:
    own = str(jobs["thumbnails"].attribute("TaskRole", "Arn"))
    admin = f"arn:aws:iam::{ACCOUNT}:role/Admin"
    sibling = f"arn:aws:iam::{ACCOUNT}:role/taskrunner-dev/jobs/taskrunner-dev-X-TaskRole-1"
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    assert may(root, "DispatchFunctionRole", "iam:PassRole", own, **to_ecs)
    assert not may(root, "DispatchFunctionRole", "iam:PassRole", admin, **to_ecs)
    assert not may(root, "DispatchFunctionRole", "iam:PassRole", sibling, **to_ecs)
