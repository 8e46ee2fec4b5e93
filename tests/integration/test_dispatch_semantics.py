"""Exactly-once launches, overlap policies, capacity fallback and throttling against the deployed stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.dispatch import Dispatcher, Result
from taskrunner.domain.runs import RunStatus, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.faults import EcsFaults, inject
from tests.conftest import load_event
from tests.integration.conftest import Stack


def manual(job: str, **extra: Any) -> dict[str, Any]:
    return {"job": job, "trigger": "manual", "request_id": str(uuid.uuid4()), **extra}


def rid(body: dict[str, Any]) -> str:
    return run_id_for(idempotency_key(DispatchRequest.model_validate(body)))


@pytest.fixture
def ecs_calls() -> Iterator[EcsFaults]:
    with inject(EcsFaults()) as observed:
        yield observed


def test_run_task_carries_task_definition_network_capacity_and_identity(stack: Stack, ecs_calls: EcsFaults) -> None:
    upload = load_event("s3-object-created.json") | {"id": str(uuid.uuid4())}
    upload["detail"] = upload["detail"] | {"object": upload["detail"]["object"] | {"sequencer": "00AA"}}
    body = {"job": "thumbnails", "trigger": "s3", "event": upload}
    stack.submit(body)

    stack.dispatch_queue().drain()

    # Only this test's launch (a retry an earlier test scheduled may surface in the same drain).
    [request] = [r for r in ecs_calls.run_task_requests if r["startedBy"] == f"{rid(body)}-1"]
    subnets = stack.deployment.parameters["Subnets"].split(",")
    assert request["taskDefinition"] == "taskrunner-thumbnails"
    assert request["cluster"] == stack.outputs["ClusterArn"]
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    vpc = request["networkConfiguration"]["awsvpcConfiguration"]
    assert vpc["subnets"] == subnets
    assert vpc["assignPublicIp"] == "DISABLED"
    assert len(vpc["securityGroups"]) == 1
    assert vpc["securityGroups"][0].startswith("sg-")
    assert request["startedBy"] == f"{rid(body)}-1"
    assert request["clientToken"] == f"tr-{rid(body)}-1"
    assert {"key": "taskrunner:job", "value": "thumbnails"} in request["tags"]


def test_redelivered_event_launches_once_even_days_later(stack: Stack, ecs_calls: EcsFaults) -> None:
    """GIVEN the same order event delivered three times (EventBridge and SQS are at-least-once)
    WHEN the Dispatcher handles every copy, the last after the first run finished
    THEN one RunTask call was made and the run record is untouched by the copies."""
    event = load_event("order-placed.json") | {"id": str(uuid.uuid4())}
    body = {"job": "order-audit", "trigger": "event", "event": event}
    stack.submit(body, body)
    stack.dispatch_queue().drain()
    stack.client("ecs").stop_task(cluster=stack.outputs["ClusterName"], task=stack.run_record(rid(body))["task_arn"])  # type: ignore[index]
    stack.submit(body)
    stack.dispatch_queue().drain()

    assert len(ecs_calls.run_task_requests) == 1
    assert stack.run_record(rid(body))["status"] == "PENDING"  # type: ignore[index]


def test_forbid_skips_a_tick_while_a_run_is_active_and_records_why(stack: Stack) -> None:
    first, second = manual("nightly-report"), manual("nightly-report")
    stack.submit(first)
    stack.dispatch_queue().drain()
    stack.submit(second)
    stack.dispatch_queue().drain()

    assert stack.run_record(rid(first))["status"] == "PENDING"  # type: ignore[index]
    skipped = stack.run_record(rid(second))
    assert skipped is not None
    assert skipped["status"] == "SKIPPED"
    assert skipped["reason"].startswith("overlap-forbid")
    assert len(stack.tasks(family="taskrunner-nightly-report")) == 1


def test_forbid_runs_again_once_the_active_run_stopped(stack: Stack) -> None:
    first = manual("nightly-report")
    stack.submit(first)
    stack.dispatch_queue().drain()
    stack.client("ecs").stop_task(cluster=stack.outputs["ClusterName"], task=stack.run_record(rid(first))["task_arn"])  # type: ignore[index]

    second = manual("nightly-report")
    stack.submit(second)
    stack.dispatch_queue().drain()

    assert stack.run_record(rid(second))["status"] == "PENDING"  # type: ignore[index]


@pytest.fixture
def replace_job(stack: Stack) -> str:
    """A job with overlap Replace, registered the way job stacks register."""
    return stack.register_job("replacing-report", like="nightly-report", overlap="Replace", starting_deadline_s=0)


def test_replace_stops_the_active_run_then_starts_the_new_one(stack: Stack, replace_job: str) -> None:
    first, second = manual(replace_job), manual(replace_job)
    stack.submit(first)
    stack.dispatch_queue().drain()
    stack.submit(second)
    stack.dispatch_queue().drain()

    old = stack.task(stack.run_record(rid(first))["task_arn"])  # type: ignore[index]
    new = stack.task(stack.run_record(rid(second))["task_arn"])  # type: ignore[index]
    assert old["desiredStatus"] == "STOPPED"
    assert "replaced by run" in old["stoppedReason"]
    assert new["desiredStatus"] == "RUNNING"


def test_spot_capacity_failure_falls_back_to_on_demand(stack: Stack) -> None:
    upload = load_event("s3-object-created.json") | {"id": str(uuid.uuid4())}
    upload["detail"] = upload["detail"] | {"object": upload["detail"]["object"] | {"sequencer": uuid.uuid4().hex}}
    body = {"job": "thumbnails", "trigger": "s3", "event": upload}

    with inject(EcsFaults(capacity_failure_rate={"FARGATE_SPOT": 1.0})) as faults:
        stack.submit(body)
        stack.dispatch_queue().drain()

    providers = [r["capacityProviderStrategy"][0]["capacityProvider"] for r in faults.run_task_requests]
    assert providers == ["FARGATE_SPOT", "FARGATE"]
    assert stack.task(stack.run_record(rid(body))["task_arn"])["capacityProviderName"] == "FARGATE"  # type: ignore[index]


def test_throttled_launch_returns_the_message_and_launches_on_redelivery(stack: Stack) -> None:
    """GIVEN RunTask throttled on every call (botocore's adaptive retries exhausted)
    WHEN the Dispatcher handles a manual run
    THEN the message is reported failed with a short visibility back-off, nothing is recorded as launched,
    and the redelivery launches it."""
    body = manual("order-audit")
    stack.submit(body)
    queue = stack.dispatch_queue()
    with inject(EcsFaults(throttle_rate=1.0)) as faults:
        delivery = queue.poll_once()

    assert delivery.failed == 1
    assert faults.injected["throttle"] >= 2  # botocore retried before giving up
    assert stack.run_record(rid(body))["status"] == "CLAIMED"  # type: ignore[index]
    sqs = stack.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=stack.outputs["DispatchQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"

    stack.invoke("DispatchFunctionName", body)  # the redelivery, without waiting out the back-off
    assert stack.run_record(rid(body))["status"] == "PENDING"  # type: ignore[index]


class _DiesAfterLaunch(DynamoRunStore):
    """A runs table whose first PENDING write never happens: the Lambda died right after RunTask."""

    died = False

    def update(self, run_id: str, status: RunStatus, attempt: int, **fields: Any) -> bool:
        if status is RunStatus.PENDING and not self.died:
            self.died = True
            raise SystemExit("Lambda container killed")
        return super().update(run_id, status, attempt, **fields)


def test_lambda_dying_between_run_task_and_record_write_never_launches_twice(stack: Stack) -> None:
    registry = SsmRegistry(stack.outputs["RegistryPrefix"], stack.client("ssm"))
    cluster = EcsCluster(stack.client("ecs"))
    now = [datetime.now(UTC).timestamp()]
    dying = _DiesAfterLaunch(stack.outputs["RunsTableName"], stack.client("dynamodb"))
    request = DispatchRequest.model_validate(manual("order-audit"))

    with pytest.raises(SystemExit):
        Dispatcher(registry, dying, cluster, stack=stack.bounds(), clock=lambda: now[0]).dispatch(request)
    now[0] += 121  # the claim's lease (120 s) expires; SQS redelivers the message
    store = DynamoRunStore(stack.outputs["RunsTableName"], stack.client("dynamodb"))
    outcome = Dispatcher(registry, store, cluster, stack=stack.bounds(), clock=lambda: now[0]).dispatch(request)

    assert outcome.result is Result.ADOPTED
    started = [t for t in stack.tasks(family="taskrunner-order-audit") if t["startedBy"] == f"{outcome.run_id}-1"]
    assert len(started) == 1
    assert stack.run_record(outcome.run_id)["task_arn"] == started[0]["taskArn"]  # type: ignore[index]
