"""The Tracker against the deployed stack: state changes travel the real rule to its queue; retries re-dispatch."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from taskrunner.domain.runs import idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.ecs_events import task_state_change
from tests.conftest import load_event
from tests.integration.conftest import Stack


def launch(stack: Stack, job: str) -> tuple[str, dict[str, Any]]:
    body = {"job": job, "trigger": "manual", "request_id": str(uuid.uuid4())}
    stack.submit(body)
    stack.dispatch_queue().drain()
    run_id = run_id_for(idempotency_key(DispatchRequest.model_validate(body)))
    run = stack.run_record(run_id)
    assert run is not None
    assert run["task_arn"], run
    return run_id, stack.task(run["task_arn"])


def deliver(stack: Stack, *events: dict[str, Any]) -> None:
    stack.publish(*events)
    stack.tracker_queue().drain()


def status(stack: Stack, run_id: str) -> str:
    run = stack.run_record(run_id)
    assert run is not None
    return str(run["status"])


@pytest.fixture
def retrying_job(stack: Stack) -> str:
    """A job with 3 attempts and exit code 3 retryable."""
    return stack.register_job("flaky-audit", retry={"max_attempts": 3, "retry_exit_codes": "3", "backoff_base_s": 2})


def test_state_changes_move_a_run_forward_to_succeeded(stack: Stack) -> None:
    run_id, task = launch(stack, "order-audit")

    deliver(stack, task_state_change(task, "RUNNING", version=2))
    assert status(stack, run_id) == "RUNNING"
    deliver(stack, task_state_change(task, "STOPPED", exit_code=0, version=3))

    run = stack.run_record(run_id)
    assert run is not None
    assert run["status"] == "SUCCEEDED"
    assert run["exit_code"] == 0
    assert "expires_at" not in run or run["expires_at"]  # finished runs carry their TTL


def test_late_duplicate_and_out_of_order_events_never_move_a_run_back(stack: Stack) -> None:
    """GIVEN a run whose STOPPED event arrives first
    WHEN the older PENDING and RUNNING events arrive late, and the STOPPED one twice
    THEN the run stays SUCCEEDED."""
    run_id, task = launch(stack, "order-audit")
    stopped = task_state_change(task, "STOPPED", exit_code=0, version=3)

    deliver(stack, stopped, task_state_change(task, "RUNNING", version=2), task_state_change(task, "PENDING"), stopped)

    assert status(stack, run_id) == "SUCCEEDED"


def test_a_retryable_exit_code_re_dispatches_the_same_run_as_attempt_2(stack: Stack, retrying_job: str) -> None:
    run_id, task = launch(stack, retrying_job)

    deliver(stack, task_state_change(task, "STOPPED", exit_code=3))
    run = stack.run_record(run_id)
    assert run is not None
    assert run["status"] == "RETRYING"
    assert run["attempt"] == 2
    assert "exit code 3" in run["reason"]

    # The retry waits out its back-off (an SQS delay) on the dispatch queue; deliver it without waiting.
    sqs = stack.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=stack.outputs["DispatchQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert int(attrs["ApproximateNumberOfMessagesDelayed"]) >= 1
    retry_body = {"job": retrying_job, "trigger": "manual", "run_id": run_id, "attempt": 2}
    retry_body["request_id"] = json.loads(str(run["request"]))["request_id"]
    stack.invoke("DispatchFunctionName", retry_body)
    stack.invoke("DispatchFunctionName", retry_body)  # the delayed copy arriving too launches nothing new

    retried = stack.run_record(run_id)
    assert retried is not None
    assert retried["status"] == "PENDING"
    assert retried["attempt"] == 2
    second = stack.task(retried["task_arn"])
    assert second["startedBy"] == f"{run_id}-2"
    # A late event of attempt 1 cannot touch attempt 2.
    deliver(stack, task_state_change(task, "STOPPED", exit_code=0, version=9))
    assert status(stack, run_id) == "PENDING"


def test_a_non_retryable_exit_code_fails_the_run_for_good(stack: Stack, retrying_job: str) -> None:
    run_id, task = launch(stack, retrying_job)

    deliver(stack, task_state_change(task, "STOPPED", exit_code=1))

    run = stack.run_record(run_id)
    assert run is not None
    assert run["status"] == "FAILED"
    assert run["failure"] == "exit"


def test_a_start_failure_retries_even_without_retryable_exit_codes(stack: Stack, retrying_job: str) -> None:
    run_id, task = launch(stack, retrying_job)

    deliver(
        stack,
        task_state_change(
            task,
            "STOPPED",
            stop_code="TaskFailedToStart",
            stopped_reason="CannotPullContainerError: pull access denied",
        ),
    )

    run = stack.run_record(run_id)
    assert run is not None
    assert run["status"] == "RETRYING"
    assert "start" in run["reason"]


def test_reconciliation_recovers_a_lost_stop_event(stack: Stack) -> None:
    """GIVEN a run whose task stopped but whose STOPPED event was lost
    WHEN the minute's reconciliation runs
    THEN the run is finished from DescribeTasks and no longer counts as active (Forbid is not stuck)."""
    run_id, task = launch(stack, "nightly-report")
    stack.client("ecs").stop_task(cluster=stack.outputs["ClusterName"], task=task["taskArn"], reason="lost event")

    report = stack.invoke("TrackerFunctionName", {"action": "reconcile"})

    assert report["recovered"] >= 1
    assert status(stack, run_id) in {"STOPPED", "FAILED", "SUCCEEDED"}


def test_reconciliation_stops_a_run_past_its_timeout_and_its_stop_records_timed_out(stack: Stack) -> None:
    """GIVEN a run RUNNING past its job's timeout
    WHEN reconciliation runs
    THEN it stops the task with the timeout reason, and the task's own STOPPED event records TIMED_OUT with the
    exit code the task really had (143 after SIGTERM), not one reconciliation made up."""
    run_id, task = launch(stack, stack.register_job("quick-audit", timeout_s=1))
    old = task_state_change(task, "RUNNING")
    old["detail"]["startedAt"] = "2026-01-01T00:00:00+00:00"
    deliver(stack, old)

    stack.invoke("TrackerFunctionName", {"action": "reconcile"})

    stopped = stack.task(task["taskArn"])
    assert stopped["desiredStatus"] == "STOPPED"
    assert "timed out" in stopped["stoppedReason"]
    deliver(stack, task_state_change(task, "STOPPED", exit_code=143, stopped_reason=stopped["stoppedReason"]))
    run = stack.run_record(run_id)
    assert run is not None
    assert (run["status"], run["exit_code"], run["failure"]) == ("TIMED_OUT", 143, "timeout")


def test_reconciliation_records_timed_out_when_the_stop_event_is_lost(stack: Stack) -> None:
    run_id, task = launch(stack, stack.register_job("quick-audit", timeout_s=1))
    old = task_state_change(task, "RUNNING")
    old["detail"]["startedAt"] = "2026-01-01T00:00:00+00:00"
    deliver(stack, old)

    stack.invoke("TrackerFunctionName", {"action": "reconcile"})  # stops it; its STOPPED event never arrives
    stack.invoke("TrackerFunctionName", {"action": "reconcile"})  # DescribeTasks shows it stopped, for the timeout

    assert status(stack, run_id) == "TIMED_OUT"


def test_a_state_change_of_another_cluster_on_the_queue_is_dead_lettered_with_its_reason(stack: Stack) -> None:
    """The queue policy admits only the stack's rule; should anything else put an event there, it moves nothing."""
    sqs = stack.client("sqs")
    sqs.send_message(
        QueueUrl=stack.outputs["TrackerQueueUrl"], MessageBody=json.dumps(load_event("ecs-task-stopped.json"))
    )
    stack.tracker_queue().drain()

    messages = sqs.receive_message(
        QueueUrl=stack.outputs["TrackerDeadLetterQueueUrl"], MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert any("another cluster" in m["MessageAttributes"]["taskrunner-reason"]["StringValue"] for m in messages)


def test_a_direct_invoke_with_a_state_change_is_refused(stack: Stack) -> None:
    """On AWS only the tracker queue carries state changes; a direct invoke could forge one (SUCCEEDED)."""
    run_id, task = launch(stack, "order-audit")

    response = stack.invoke("TrackerFunctionName", task_state_change(task, "STOPPED", exit_code=0))

    assert "accepts state changes only from its queue" in response["dead_lettered"]
    assert status(stack, run_id) == "PENDING"
