"""What every command shares: global options before or after it, "did you mean" for a job, one-line errors,
the console script, and the Lambda package never importing the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from taskrunner.cli import jobs as jobs_command
from taskrunner.cli import main
from tests.conftest import ROOT
from tests.integration.cli_helpers import cli, one_line_error
from tests.integration.conftest import Stack


def test_global_options_go_before_or_after_the_command(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    after = main(["jobs", "--json", "--stack", "taskrunner"])
    after_out = capsys.readouterr().out
    before = main(["--json", "--stack", "taskrunner", "jobs"])
    before_out = capsys.readouterr().out

    assert after == before == 0
    assert [json.loads(line)["job"] for line in after_out.splitlines()] == [
        json.loads(line)["job"] for line in before_out.splitlines()
    ]
    # Given twice, the one after the command wins.
    assert main(["--stack", "nope", "jobs", "--stack", "taskrunner"]) == 0
    capsys.readouterr()
    assert main(["--stack", "taskrunner", "jobs", "--stack", "nope"]) == 3
    assert "stack 'nope' not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "nightly-reprot"],
        ["runs", "nightly-reprot"],
        ["logs", "nightly-reprot"],
        ["pause", "nightly-reprot"],
        ["resume", "nightly-reprot"],
        ["submit", "nightly-reprot", "-f", "-"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_command_taking_a_job_says_did_you_mean(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"a": 1}\n'))

    code, out, err = cli(capsys, *argv)

    assert code == 2
    assert out == ""
    assert one_line_error(err) == (
        f"taskrunner {argv[0]}: unknown job 'nightly-reprot' in stack 'taskrunner': did you mean nightly-report?"
    )


@pytest.fixture
def delegated(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    calls: dict[str, list[str]] = {}
    for module in ("taskrunner.local.runner", "taskrunner.sim.cli"):

        def entry(argv: list[str], module: str = module) -> int:
            calls[module] = argv
            return 0

        monkeypatch.setattr(f"{module}.main", entry)
    return calls


def test_stack_and_json_before_local_or_simulate_are_passed_on(
    delegated: dict[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "dev", "--json", "local", "--no-view"]) == 0
    assert delegated["taskrunner.local.runner"] == ["--stack", "dev", "--json", "--no-view"]
    assert main(["local", "--stack", "dev", "--scenario", "demo"]) == 0
    assert delegated["taskrunner.local.runner"] == ["--stack", "dev", "--scenario", "demo"]
    assert main(["--json", "simulate", "burst.json"]) == 0
    assert delegated["taskrunner.sim.cli"] == ["--json", "burst.json"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "ops", "local"], "--profile does not apply to `local`: local mode runs its own embedded AWS"),
        (["--local", "local"], "--local does not apply to `local`: local mode runs its own embedded AWS"),
        (["--stack", "dev", "simulate", "s.json"], "--stack does not apply to `simulate`: the simulator needs no AWS"),
    ],
)
def test_target_options_a_delegate_has_no_use_for_are_refused_with_why(
    delegated: dict[str, list[str]], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in one_line_error(capsys.readouterr().err)
    assert not delegated


def test_an_unexpected_error_is_one_line_with_exit_1(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(jobs_command, "gather", broken)

    code, _, err = cli(capsys, "jobs")

    assert code == 1
    assert one_line_error(err) == (
        "taskrunner jobs: unexpected RuntimeError: boom second line (TASKRUNNER_DEBUG=1 prints the traceback)"
    )


def test_the_console_script_is_the_packages_main() -> None:
    [script] = [ep for ep in entry_points(group="console_scripts") if ep.name == "taskrunner"]

    assert script.value == "taskrunner.cli:main"
    assert script.load() is main


def test_python_m_taskrunner_cli_runs_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskrunner.cli", "--version"], capture_output=True, text=True, check=False, cwd=ROOT
    )

    assert result.returncode == 0
    assert result.stdout.startswith("taskrunner ")


def test_no_handler_imports_the_cli_or_the_developer_tools() -> None:
    """The Lambda package leaves cli/, local/ and sim/ out (src/Makefile): a handler importing them would fail."""
    probe = (
        "import sys, taskrunner.handlers.dispatcher, taskrunner.handlers.tracker, taskrunner.handlers.scaler; "
        "print([m for m in sys.modules if m.startswith(('taskrunner.cli', 'taskrunner.local', 'taskrunner.sim'))])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
    assert '"$(ARTIFACTS_DIR)/taskrunner/cli"' in (Path(ROOT) / "src" / "Makefile").read_text()
