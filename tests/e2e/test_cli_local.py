"""The day-2 commands against ``taskrunner local``, as an on-call engineer types them in a second terminal:
``run --wait`` of a failing run, its output in ``logs``, ``stop`` of a long run, Ctrl-C while waiting, ``pause``
then a schedule tick, ``jobs`` and ``status``. Every command is the real CLI in a subprocess with ``--local``.

thumbnails' image is played by examples/jobs/fail.py (exit 3), order-audit's by examples/jobs/long.py (runs
long, exits on SIGTERM); the schedule clock runs 14,400 times faster, so nightly-report's daily tick comes
every 6 seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from taskrunner.domain.runs import Run, RunStatus
from taskrunner.domain.triggers import Trigger
from tests.conftest import ROOT
from tests.e2e.local import Local, cli_env, running_local, taskrunner, wait_for

SPEED = 14_400
TICK_S = 86_400 / SPEED
#: How long the Dispatcher may keep serving a cached pause list (SsmPauses' default max age) before it sees a pause.
PAUSE_CACHE_S = 30


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    commands = ["thumbnails=python examples/jobs/fail.py 3", "order-audit=python examples/jobs/long.py 600"]
    args = ["--speed", str(SPEED), *(arg for command in commands for arg in ("--command", command))]
    with running_local(args, read_activity=True) as instance:
        yield instance


def test_run_wait_exits_with_the_tasks_exit_code_and_logs_shows_its_output(local: Local) -> None:
    waited = taskrunner("run", "thumbnails", "--wait", "--timeout", "60", timeout_s=90)

    assert waited.returncode == 3, waited.stderr
    run_id = waited.stdout.strip()
    assert f"run {run_id[:8]} FAILED, attempt 1, exit code 3" in waited.stderr

    for ref in (run_id, run_id[:8], "thumbnails"):
        logs = taskrunner("logs", ref)
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.splitlines() == [f"run {run_id} attempt 1", "failing on purpose with exit code 3"]

    detail = json.loads(taskrunner("runs", run_id, "--json").stdout)
    [attempt] = detail["attempts"]
    assert (attempt["status"], attempt["exit_code"]) == ("FAILED", 3)


def test_a_long_run_stopped_with_stop_ends_stopped_with_who_and_why(local: Local) -> None:
    started = taskrunner("run", "order-audit")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    local.reaches(run_id, RunStatus.RUNNING)

    stopped = taskrunner("stop", run_id[:8], "--reason", "e2e: runaway")

    assert stopped.returncode == 0, stopped.stderr
    run = local.reaches(run_id, *[s for s in RunStatus if s.terminal])
    assert run.status is RunStatus.STOPPED, run
    assert run.stop_code == "UserInitiated"
    assert run.reason is not None
    assert run.reason.startswith("stopped by ")
    assert "(taskrunner stop): e2e: runaway" in run.reason
    logs = taskrunner("logs", run_id)
    assert logs.stdout.splitlines()[0] == "working: 0s of 600s"
    assert logs.stdout.splitlines()[-1] == "stopping on SIGTERM"


def test_ctrl_c_stops_waiting_and_leaves_the_run_running(local: Local) -> None:
    waiting = subprocess.Popen(
        [sys.executable, "-m", "taskrunner.cli", "run", "order-audit", "--wait", "--local"],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert waiting.stdout is not None
    run_id = waiting.stdout.readline().strip()
    local.reaches(run_id, RunStatus.RUNNING)

    waiting.send_signal(signal.SIGINT)
    _, err = waiting.communicate(timeout=30)

    assert waiting.returncode == 130
    assert f"taskrunner run: stopped waiting; run {run_id} goes on" in err
    assert "Traceback" not in err
    time.sleep(2)
    run = local.run(run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert taskrunner("stop", run_id).returncode == 0
    local.reaches(run_id, RunStatus.STOPPED)


def schedule_runs(local: Local, after: datetime) -> list[Run]:
    return [
        run
        for run in local.store().history("nightly-report", 200)
        if run.trigger is Trigger.SCHEDULE and run.created_at > after
    ]


def test_a_paused_job_s_schedule_ticks_start_no_run_and_jobs_shows_it_paused(local: Local) -> None:
    """GIVEN nightly-report's schedule ticking every 6 s WHEN it is paused
    THEN, once the Dispatcher has seen the pause, its ticks are recorded SKIPPED "paused" and no run starts;
    `jobs` shows it paused; after `resume` its ticks run again."""
    wait_for(lambda: schedule_runs(local, datetime(2000, 1, 1, tzinfo=UTC)) or None, 30, "a first scheduled run")
    paused = taskrunner("pause", "nightly-report", "--reason", "e2e")
    assert paused.returncode == 0, paused.stderr
    try:
        jobs = {j["job"]: j for j in map(json.loads, taskrunner("jobs", "--json").stdout.splitlines())}
        assert jobs["nightly-report"]["paused"] is True
        time.sleep(PAUSE_CACHE_S + 2)
        seen = datetime.now(UTC)
        ticks_before = sum(1 for a in local.activity if a["kind"] == "schedule")
        time.sleep(3 * TICK_S)

        assert sum(1 for a in local.activity if a["kind"] == "schedule") >= ticks_before + 2, "no tick came"
        runs = schedule_runs(local, seen)
        assert runs, "the paused job's ticks left no record"
        assert {run.status for run in runs} == {RunStatus.SKIPPED}, [(r.status, r.reason) for r in runs]
        assert all("paused" in (run.reason or "") for run in runs)
    finally:
        assert taskrunner("resume", "nightly-report").returncode == 0


def test_jobs_and_status_render(local: Local) -> None:
    jobs = taskrunner("jobs")
    status = taskrunner("status")

    assert jobs.returncode == 0, jobs.stderr
    for job in ("nightly-report", "thumbnails", "order-audit", "image-worker", "transcode"):
        assert job in jobs.stdout
    assert "Europe/Berlin" in jobs.stdout
    assert status.returncode == 0, status.stdout + status.stderr
    for section in ("dead letters", "alarms", "runs active", "failed (24 h)", "paused", "invalid entries"):
        assert section in status.stdout
    assert status.stdout.strip().splitlines()[-1] == "all clear"
    counts = json.loads(taskrunner("status", "--json").stdout)
    assert counts["runs_failed_24h"]["FAILED"] >= 1  # the thumbnails run that exited 3
