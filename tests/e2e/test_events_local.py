"""``taskrunner event KIND`` fits the running local stack: piped into ``taskrunner invoke --local``, each sample
does what its name says — an upload runs thumbnails, a schedule tick runs nightly-report (inside its starting
deadline), a manual request runs it, a pattern event runs order-audit, and the run's "task stopped" event ends
that run with the exit code it carries. thumbnails and nightly-report run their own LocalCommand (the sample
stand-ins); order-audit is played by examples/jobs/long.py so it is still running when its stop event comes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from taskrunner.domain.runs import Run, RunStatus
from taskrunner.domain.triggers import Trigger
from tests.e2e.local import Local, running_local, taskrunner


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with running_local(["--command", "order-audit=python examples/jobs/long.py 600"], read_activity=True) as started:
        yield started


def invoke_with_event(function: str, *event_args: str) -> dict[str, Any]:
    event = taskrunner("event", *event_args)
    assert event.returncode == 0, event.stderr
    invoked = taskrunner("invoke", function, "-e", "-", stdin=event.stdout)
    assert invoked.returncode == 0, invoked.stderr
    response: dict[str, Any] = json.loads(invoked.stdout)
    return response


def launched_run(response: dict[str, Any]) -> str:
    [run] = response["runs"]
    assert run["result"] == "launched", run
    run_id: str = run["run_id"]
    return run_id


def finished(local: Local, run_id: str) -> Run:
    return local.finished(run_id, timeout_s=60)


def test_an_upload_event_runs_thumbnails_on_the_uploaded_object(local: Local) -> None:
    local.client("s3").put_object(
        Bucket=local.outputs["DataBucketName"], Key="uploads/images/e2e-event.jpg", Body=b"jpeg"
    )

    run = finished(local, launched_run(invoke_with_event("DispatchFunction", "s3", "uploads/images/e2e-event.jpg")))

    assert (run.job, run.trigger, run.status) == ("thumbnails", Trigger.S3, RunStatus.SUCCEEDED), run


def test_a_schedule_tick_runs_nightly_report_within_its_deadline(local: Local) -> None:
    run = finished(local, launched_run(invoke_with_event("DispatchFunction", "schedule", "nightly-report")))

    assert (run.job, run.trigger, run.status) == ("nightly-report", Trigger.SCHEDULE, RunStatus.SUCCEEDED), run


def test_an_event_wrapped_as_the_dispatch_queue_delivers_it_runs_the_job(local: Local) -> None:
    before = {run.run_id for run in local.store().newest(["nightly-report"], 100)}

    response = invoke_with_event("DispatchFunction", "manual", "nightly-report", "--sqs")

    assert response == {"batchItemFailures": []}
    [new] = [run for run in local.store().newest(["nightly-report"], 100) if run.run_id not in before]
    run = finished(local, new.run_id)
    assert (run.trigger, run.status) == (Trigger.MANUAL, RunStatus.SUCCEEDED), run


def test_a_manual_request_runs_the_job(local: Local) -> None:
    run = finished(local, launched_run(invoke_with_event("DispatchFunction", "manual", "nightly-report")))

    assert (run.job, run.trigger, run.status) == ("nightly-report", Trigger.MANUAL, RunStatus.SUCCEEDED), run


def test_a_pattern_event_runs_order_audit_and_its_stop_event_ends_the_run(local: Local) -> None:
    run_id = launched_run(invoke_with_event("DispatchFunction", "pattern", "order-audit"))
    running = local.reaches(run_id, RunStatus.RUNNING)
    assert (running.job, running.trigger) == ("order-audit", Trigger.EVENT)

    invoke_with_event("TrackerFunction", "ecs-stopped", run_id, "--exit-code", "3")

    run = finished(local, run_id)
    assert (run.status, run.exit_code) == (RunStatus.FAILED, 3), run
