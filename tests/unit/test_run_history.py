"""Run history per attempt (issue 9): each attempt keeps its own task, times, exit code, stop code, reason and log
stream, and a final run's reason is its own — a run that succeeded on attempt 2 shows no reason of attempt 1.

The scenario goes through the real Dispatcher and Tracker (a failed first attempt, its retry, a success); the
integration tier runs the same scenario on the DynamoDB store (tests/integration/test_run_history.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskrunner.domain.dispatch import Dispatcher
from taskrunner.domain.failures import FailureKind
from taskrunner.domain.ports import RunStore
from taskrunner.domain.runs import Run, RunStatus, idempotency_key, log_stream, run_id_for
from taskrunner.domain.tracking import TaskState, Tracker, Verdict
from taskrunner.domain.triggers import requests_from
from tests.unit.fakes import (
    STACK,
    FakeClock,
    FakeCluster,
    FakeRegistry,
    FakeRetryScheduler,
    FakeRunStore,
    job_spec,
    manual_request,
)

JOB = job_spec(retry={"max_attempts": 3, "retry_exit_codes": [2]})


def stamp(clock: FakeClock, offset_s: float = 0) -> datetime:
    return datetime.fromtimestamp(clock(), UTC) + timedelta(seconds=offset_s)


def failed_then_succeeded(store: RunStore, request_id: str = "c0ffee00-1234-4bcd-9f00-00000000a11d") -> Run:
    """Attempt 1 runs and exits 2 (a listed code: it retries); attempt 2 runs and exits 0. The run, as stored."""
    registry, clock, cluster, retries = FakeRegistry(JOB), FakeClock(), FakeCluster(), FakeRetryScheduler()
    dispatcher = Dispatcher(registry, store, cluster, stack=STACK, clock=clock)
    tracker = Tracker(registry, store, retries, stack_name=STACK.name, clock=clock, rng=lambda: 0.5)
    request = manual_request(request_id=request_id)

    def run_to_the_end(exit_code: int) -> None:
        task = cluster.launched[-1]
        clock.advance(40)
        task.last_status, task.started_at = "RUNNING", stamp(clock)
        tracker.track(TaskState.model_validate(task.describe()))
        clock.advance(60)
        cluster.finish(task.arn, exit_code=exit_code)
        task.stopped_at = stamp(clock)
        tracker.track(TaskState.model_validate(task.describe()))

    dispatcher.dispatch(request)
    run_to_the_end(exit_code=2)
    (retry,) = retries.scheduled
    clock.advance(retry.delay_s)
    for again in requests_from(retry.body, registry.all):
        dispatcher.dispatch(again)
    run_to_the_end(exit_code=0)
    run = store.get(run_id_for(idempotency_key(request)))
    assert run is not None
    return run


def assert_history_per_attempt(run: Run) -> None:
    assert (run.status, run.attempt, run.exit_code, run.failure, run.reason) == (RunStatus.SUCCEEDED, 2, 0, None, None)
    first, second = run.attempt_record(1), run.attempt_record(2)
    assert first is not None
    assert second is not None
    assert first.task_arn != second.task_arn == run.task_arn
    assert (first.status, first.exit_code, first.failure, first.stop_code) == (
        RunStatus.FAILED,
        2,
        "exit",
        "EssentialContainerExited",
    )
    assert (first.reason or "").startswith("exit code 2")
    assert (second.status, second.exit_code, second.failure, second.reason, second.stop_code) == (
        RunStatus.SUCCEEDED,
        0,
        None,
        None,
        "EssentialContainerExited",
    )
    for attempt in (first, second):
        assert attempt.task_arn is not None
        assert attempt.log_stream == log_stream(run.job, attempt.task_arn)
        assert attempt.started_at is not None
        assert attempt.stopped_at is not None
        assert (attempt.stopped_at - attempt.started_at).total_seconds() == 60
    assert first.stopped_at is not None
    assert second.started_at is not None
    assert first.stopped_at < second.started_at
    assert (run.started_at, run.stopped_at) == (second.started_at, second.stopped_at)


def test_each_attempt_keeps_its_own_record_and_the_final_reason_is_its_own() -> None:
    assert_history_per_attempt(failed_then_succeeded(FakeRunStore()))


def test_a_lost_task_keeps_the_start_time_its_running_event_recorded() -> None:
    """A vanished task is recorded FAILED (lost) from what reconciliation knows, which has no times: the attempt
    keeps the start time its RUNNING event recorded."""
    store, clock = FakeRunStore(), FakeClock()
    registry, cluster = FakeRegistry(JOB), FakeCluster()
    dispatcher = Dispatcher(registry, store, cluster, stack=STACK, clock=clock)
    tracker = Tracker(registry, store, FakeRetryScheduler(), stack_name=STACK.name, clock=clock)
    request = manual_request()
    dispatcher.dispatch(request)
    (task,) = cluster.launched
    task.last_status, task.started_at = "RUNNING", stamp(clock, 30)
    tracker.track(TaskState.model_validate(task.describe()))
    run = store.get(run_id_for(idempotency_key(request)))
    assert run is not None
    lost = TaskState(task_arn=task.arn, cluster_arn=task.cluster, last_status="STOPPED", group=f"taskrunner:{run.job}")
    tracker.apply(run, 1, lost, Verdict(RunStatus.FAILED, FailureKind.LOST, "task not found by DescribeTasks"))

    after = store.get(run.run_id)
    assert after is not None
    record = after.attempt_record(1)
    assert record is not None
    assert (record.status, record.failure, record.task_arn) == (RunStatus.FAILED, "lost", task.arn)
    assert record.started_at == stamp(clock, 30)
