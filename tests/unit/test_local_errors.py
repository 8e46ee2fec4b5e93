"""Local mode's errors are one line each, naming the job and the parameter to fix: before it starts (a bad job
block is refused with taskrunner validate's lines, live view or not), in the activity feed (live view and
--no-view alike) and for registry entries that the Lambdas would refuse."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from taskrunner.local import runner
from taskrunner.local.activity import Activity
from taskrunner.local.jobs import JobCatalog, LocalCommand
from taskrunner.local.tasks import _cannot_start
from taskrunner.local.view import LinePrinter, activity_panel
from tests.unit.fakes import spec_dict

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, old: str, new: str) -> Path:
    (tmp_path / "jobs").mkdir()
    shutil.copy(ROOT / "jobs" / "job.yaml", tmp_path / "jobs" / "job.yaml")
    text = (ROOT / "template.yaml").read_text()
    assert old in text
    (tmp_path / "template.yaml").write_text(text.replace(old, new, 1))
    return tmp_path


@pytest.mark.parametrize("view", [["--no-view"], []], ids=["no-view", "view"])
def test_a_bad_job_block_is_refused_before_anything_starts(tmp_path, monkeypatch, capsys, view):
    monkeypatch.chdir(_project(tmp_path, "OverlapPolicy: Forbid", "OverlapPolicy: forbid\n        Cpus: 2"))

    assert runner.main(view) == 1

    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines == [
        "taskrunner local: template.yaml: ReportJob (nightly-report) Cpus: unknown parameter (did you mean Cpu?)",
        "taskrunner local: template.yaml: ReportJob (nightly-report) OverlapPolicy: 'forbid' is not one of Allow, "
        "Forbid, Replace (did you mean Forbid?)",
        "taskrunner local: not started: fix the template (taskrunner validate checks it)",
    ]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / ".taskrunner" / "local.json").exists()


def test_a_failed_start_is_one_line_naming_the_job(tmp_path):
    template = _project(tmp_path, "x", "x") / "template.yaml"
    exc = RuntimeError("Stack ThumbnailsJob failed:\n  Parameter validation failed\n  details")
    line = runner.failure_line(exc, template)
    assert (
        line == "job thumbnails (ThumbnailsJob): RuntimeError: Stack ThumbnailsJob failed: "
        "Parameter validation failed details"
    )


def test_activity_entries_are_one_line_in_no_view_output():
    activity, stream = Activity(), io.StringIO()
    activity.subscribe(LinePrinter(stream))
    activity.add("error", "schedule loop: ValueError: bad\nsecond line\n  third", "nightly-report")
    [line] = stream.getvalue().splitlines()
    assert line.endswith(" error    nightly-report: schedule loop: ValueError: bad second line third")


def test_activity_entries_are_one_line_each_in_the_live_view():
    activity = Activity()
    activity.add("error", "cannot start: LocalCommand 'python nope.py': No such file or directory " * 4, "report")
    activity.add("run", "0b6f0f0d manual FAILED", "report")
    console = Console(width=80, file=io.StringIO(), color_system=None)
    console.print(activity_panel(SimpleNamespace(activity=activity)))  # type: ignore[arg-type]
    inside = console.file.getvalue().splitlines()[1:-1]  # type: ignore[attr-defined]
    assert len(inside) == 2
    assert "report: cannot start: LocalCommand 'python nope.py'" in inside[0]


def test_a_command_that_cannot_start_names_where_it_came_from():
    command = LocalCommand(["no-such-program", "x"], "LocalCommand")
    exc = FileNotFoundError(2, "No such file or directory", "no-such-program")
    assert _cannot_start(command, exc) == (
        "LocalCommand 'no-such-program x': No such file or directory: 'no-such-program'"
    )


class _Ssm:
    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = entries

    def get_paginator(self, _name: str) -> Any:
        entries = self.entries

        class Pages:
            def paginate(self, **_kwargs: Any) -> list[dict[str, Any]]:
                return [{"Parameters": [{"Name": f"/taskrunner/s/jobs/{k}", "Value": v} for k, v in entries.items()]}]

        return Pages()


def test_an_invalid_registry_entry_is_reported_once_per_problem_naming_the_parameter():
    bad = json.dumps(spec_dict(name="nightly-report", schedule_timezone="Europe/Berln", overlap="forbid"))
    told: list[tuple[str, str]] = []
    catalog = JobCatalog(
        ROOT, {}, _Ssm({"nightly-report": bad}), "/taskrunner/s/jobs", max_age_s=0, on_invalid=lambda *a: told.append(a)
    )

    assert catalog.specs() == {}
    catalog.specs()  # read again: not told twice

    assert sorted(told) == [
        ("nightly-report", "registry entry invalid: OverlapPolicy: Input should be 'Allow', 'Forbid' or 'Replace'"),
        (
            "nightly-report",
            "registry entry invalid: ScheduleTimezone: unknown time zone 'Europe/Berln' "
            "(an IANA name such as Europe/Berlin)",
        ),
    ]


class _S3:
    def create_bucket(self, **_kwargs: Any) -> None:
        pass

    def put_object(self, **_kwargs: Any) -> None:
        pass


def test_numbers_in_a_job_block_reach_the_nested_stack_as_strings(tmp_path):
    """``RetryExitCodes: 75`` is an int to YAML; CloudFormation passes it on as "75" (moto split the int)."""
    from taskrunner.local.stack import package

    template = {
        "Resources": {
            "AJob": {
                "Type": "AWS::Serverless::Application",
                "Properties": {
                    "Location": "jobs/job.yaml",
                    "Parameters": {"RetryExitCodes": 75, "Cpu": 512, "Ok": True, "Platform": {"Ref": "P"}},
                },
            }
        }
    }
    packaged = package(template, ROOT, _S3())
    assert packaged["Resources"]["AJob"]["Properties"]["Parameters"] == {
        "RetryExitCodes": "75",
        "Cpu": "512",
        "Ok": "true",
        "Platform": {"Ref": "P"},
    }
