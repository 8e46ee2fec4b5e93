"""Local mode's runtime in-process: what it plays for moto while tasks run (reconciliation, StopTask)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskrunner.domain.runs import Run, RunStatus, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.moto_ecs import pin_task_states, unpin_task_states
from taskrunner.local.platform import local_platform
from taskrunner.local.runtime import LocalRuntime
from tests.conftest import ROOT
from tests.e2e.local import wait_for

TERMINAL = [status for status in RunStatus if status.terminal]
#: Long enough to be reconciled while it runs, short enough for a test.
SLOW = "python -c 'import time; time.sleep(6)'"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with local_platform(ROOT) as platform:
        pin_task_states()
        local = LocalRuntime(platform, ROOT, commands={"order-audit": SLOW})
        local.start()
        try:
            yield local
        finally:
            local.stop()
            unpin_task_states()


def manual_run(runtime: LocalRuntime, job: str) -> str:
    body = {"job": job, "trigger": "manual", "request_id": str(uuid.uuid4())}
    runtime.clients["sqs"].send_message(QueueUrl=runtime.outputs["DispatchQueueUrl"], MessageBody=json.dumps(body))
    return run_id_for(idempotency_key(DispatchRequest.model_validate(body)))


def status_is(runtime: LocalRuntime, run_id: str, *statuses: RunStatus) -> Callable[[], Run | None]:
    def probe() -> Run | None:
        run = runtime.runs_store.get(run_id)
        return run if run is not None and run.status in statuses else None

    return probe


def describe(runtime: LocalRuntime, task_arn: str) -> dict[str, Any]:
    ecs = runtime.clients["ecs"]
    [task] = ecs.describe_tasks(cluster=runtime.outputs["ClusterName"], tasks=[task_arn])["tasks"]
    return dict(task)


def test_reconciliation_while_a_local_task_runs_leaves_its_run_running(runtime: LocalRuntime) -> None:
    """GIVEN a run whose local process takes 6 s
    WHEN the Tracker reconciles twice while it runs (each one a DescribeTasks, which moto would advance to STOPPED)
    THEN the run stays RUNNING, and SUCCEEDS when the process exits 0."""
    run_id = manual_run(runtime, "order-audit")
    run = wait_for(status_is(runtime, run_id, RunStatus.RUNNING), 20, "the run to be RUNNING")

    for _ in range(2):
        before = runtime.reconciliations
        runtime.reconcile_timer.kick()
        wait_for(lambda before=before: runtime.reconciliations > before or None, 10, "a reconciliation")
        assert describe(runtime, run.task_arn or "")["lastStatus"] == "RUNNING"
        current = runtime.runs_store.get(run_id)
        assert current is not None
        assert current.status is RunStatus.RUNNING

    finished = wait_for(status_is(runtime, run_id, *TERMINAL), 20, "the run to finish")
    assert finished.status is RunStatus.SUCCEEDED
    assert finished.exit_code == 0


def test_stop_task_through_the_api_stops_the_local_process(runtime: LocalRuntime) -> None:
    """WHEN a running task is stopped with StopTask (a user, a Replace overlap policy)
    THEN its process gets SIGTERM, the run ends STOPPED (not FAILED), and its exit code is 128 + 15."""
    run_id = manual_run(runtime, "order-audit")
    run = wait_for(status_is(runtime, run_id, RunStatus.RUNNING), 20, "the run to be RUNNING")
    local = wait_for(lambda: next((t for t in runtime.run_tasks.active() if t.arn == run.task_arn), None), 5, "task")
    assert local.popen is not None

    runtime.clients["ecs"].stop_task(cluster=runtime.outputs["ClusterName"], task=run.task_arn, reason="by the test")

    stopped = wait_for(status_is(runtime, run_id, RunStatus.STOPPED), 20, "the run to be STOPPED")
    assert stopped.exit_code == 143
    assert "by the test" in (stopped.reason or "")
    assert local.popen.poll() is not None
