"""Every job gets its Environment the same way: the task definition carries it, for one-off, per-message and
service tasks alike (a service's tasks get no RunTask overrides, so anything else would miss them)."""

from __future__ import annotations

import uuid

from tests.integration.conftest import Stack


def container(stack: Stack, family: str) -> dict:  # type: ignore[type-arg]
    definition = stack.client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
    [job] = definition["containerDefinitions"]
    return dict(job)


def test_the_jobs_environment_is_in_its_task_definition(stack: Stack) -> None:
    env = {e["name"]: e["value"] for e in container(stack, f"{stack.stack_name}-nightly-report")["environment"]}
    assert env["REPORT_FORMAT"] == "csv"  # template.yaml: Environment: '{"REPORT_FORMAT": "csv"}'
    assert env["TASKRUNNER_JOB"] == "nightly-report"


def test_a_service_runs_the_task_definition_that_carries_it(stack: Stack) -> None:
    [service] = stack.client("ecs").describe_services(
        cluster=stack.outputs["ClusterName"], services=[f"{stack.stack_name}-image-worker"]
    )["services"]
    family = service["taskDefinition"].rsplit("/", 1)[-1].split(":")[0]
    env = {e["name"] for e in container(stack, family)["environment"]}
    assert family == f"{stack.stack_name}-image-worker"
    assert {"TASKRUNNER_QUEUE_URL", "TASKRUNNER_VISIBILITY_TIMEOUT_S"} <= env


def test_a_run_adds_only_its_own_values_as_overrides(stack: Stack) -> None:
    """The job's Environment is not repeated in RunTask's overrides (8 KiB limit; one mechanism)."""
    body = {"job": "nightly-report", "trigger": "manual", "request_id": str(uuid.uuid4())}
    stack.submit(body)
    stack.dispatch_queue(quiet=True).drain()
    [task] = [t for t in stack.tasks(f"{stack.stack_name}-nightly-report") if t["startedBy"].endswith("-1")][-1:]
    overrides = {e["name"] for e in task["overrides"]["containerOverrides"][0]["environment"]}
    assert "REPORT_FORMAT" not in overrides
    assert "TASKRUNNER_RUN_ID" in overrides


def test_containers_run_as_the_jobs_own_uid_never_root(stack: Stack) -> None:
    uids = {}
    for job in ("nightly-report", "thumbnails", "order-audit", "image-worker", "transcode"):
        user = container(stack, f"{stack.stack_name}-{job}")["user"]
        uid, gid = user.split(":")
        assert uid == gid != "0", job
        uids[job] = uid
    assert len(set(uids.values())) == len(uids), "each sample job has its own uid"
