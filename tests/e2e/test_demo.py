"""``taskrunner local --scenario demo`` end to end: schedule, upload and queue burst, each checked by the scenario.

The demo runs in its own process (the embedded AWS, the worker processes and the signal handling
are process-wide), from the repository root, as a developer would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT

TIMEOUT_S = 180


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "taskrunner.local.runner", "--scenario", "demo", "--json", "--no-view"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert completed.stdout.strip(), f"no summary on stdout; stderr:\n{completed.stderr[-4000:]}"
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must hold the summary alone, got:\n{completed.stdout[:2000]}"
    result: dict[str, Any] = json.loads(lines[0])
    result["_exit_code"] = completed.returncode
    result["_stderr"] = completed.stderr
    return result


def test_the_demo_passes_and_says_so_in_its_exit_code(summary: dict[str, Any]) -> None:
    assert summary["scenario"] == "demo"
    failed = [name for name, ok in summary["checks"].items() if not ok]
    assert not failed, f"failed checks {failed}; activity:\n{summary['_stderr'][-4000:]}"
    assert summary["passed"] is True
    assert summary["_exit_code"] == 0


def test_every_check_is_reported(summary: dict[str, Any]) -> None:
    assert set(summary["checks"]) >= {
        "schedule_run_succeeded",
        "report_written",
        "upload_run_succeeded",
        "thumbnail_read_object",
        "service_scaled_up",
        "all_messages_processed",
        "service_scaled_to_zero",
    }


def test_the_schedule_and_the_upload_each_ran_once_and_succeeded(summary: dict[str, Any]) -> None:
    by_job = {(run["job"], run["trigger"]): run for run in summary["runs"]}
    assert by_job[("nightly-report", "schedule")]["status"] == "SUCCEEDED"
    assert by_job[("nightly-report", "schedule")]["exit_code"] == 0
    assert by_job[("thumbnails", "s3")]["status"] == "SUCCEEDED"
    assert len(summary["runs"]) == 2


def test_the_burst_scaled_the_service_out_then_back_to_zero(summary: dict[str, Any]) -> None:
    assert summary["max_desired"] >= 2
    assert summary["messages_processed"] == summary["messages_sent"] == 40
    assert summary["service_desired"] == 0
    assert summary["service_workers"] == 0


def test_the_demo_finishes_well_inside_three_minutes(summary: dict[str, Any]) -> None:
    assert summary["seconds"] < 120
