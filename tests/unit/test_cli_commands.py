"""The CLI's pure parts: ``run --wait``'s exit codes and follow loop, what ``stop`` stops and says, a pause's
record, ``jobs``' next tick, durations, "did you mean", and the completion scripts (bash run for real)."""

from __future__ import annotations

import argparse
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskrunner.cli import completion
from taskrunner.cli.errors import CliError
from taskrunner.cli.inputs import duration_s, parse_env, since_time
from taskrunner.cli.jobs import next_tick
from taskrunner.cli.logs import FileSource
from taskrunner.cli.lookups import did_you_mean
from taskrunner.cli.main import build_parser
from taskrunner.cli.pause import pause_value
from taskrunner.cli.run import (
    EXIT_FAILED_NO_CODE,
    EXIT_LAUNCH_FAILED,
    EXIT_NOT_STARTED,
    EXIT_STOPPED,
    EXIT_TIMED_OUT,
    NO_RECORD_HINT_S,
    RETRY_SETTLE_S,
    exit_code_for,
    wait_for,
    will_retry,
)
from taskrunner.cli.runs import attempts_of
from taskrunner.cli.stop import current_task, stop_reason
from taskrunner.domain.runs import Attempt, RunStatus
from tests.unit.fakes import FakeClock, FakeRunStore, job_spec, make_run, manual_request

TASK = "arn:aws:ecs:us-east-1:123456789012:task/taskrunner/0123456789abcdef0123456789abcdef"


# ------------------------------------------------------------------------------------------------------ run --wait


@pytest.mark.parametrize(
    ("status", "exit_code", "expected"),
    [
        (RunStatus.SUCCEEDED, 0, 0),
        (RunStatus.FAILED, 3, 3),
        (RunStatus.FAILED, 137, 137),
        (RunStatus.FAILED, None, EXIT_FAILED_NO_CODE),
        (RunStatus.FAILED, 0, EXIT_FAILED_NO_CODE),
        (RunStatus.FAILED, 300, EXIT_FAILED_NO_CODE),
        (RunStatus.TIMED_OUT, 143, EXIT_TIMED_OUT),
        (RunStatus.STOPPED, 143, EXIT_STOPPED),
        (RunStatus.SKIPPED, None, EXIT_NOT_STARTED),
        (RunStatus.MISSED, None, EXIT_NOT_STARTED),
        (RunStatus.LAUNCH_FAILED, None, EXIT_LAUNCH_FAILED),
    ],
)
def test_wait_exits_with_the_tasks_code_or_the_documented_one(
    status: RunStatus, exit_code: int | None, expected: int
) -> None:
    assert exit_code_for(make_run(manual_request(), status=status, exit_code=exit_code)) == expected


def test_every_exit_code_of_wait_is_distinct_from_the_cli_own() -> None:
    own = {0, 1, 2, 3, 4, 124, 130}
    codes = {EXIT_FAILED_NO_CODE, EXIT_LAUNCH_FAILED, EXIT_NOT_STARTED, EXIT_STOPPED, EXIT_TIMED_OUT}
    assert len(codes) == 5
    assert not codes & own


class Timeline:
    """A fake clock and sleep: each sleep advances the clock, and may change the run's record first."""

    def __init__(self, store: FakeRunStore, changes: dict[int, tuple[RunStatus, int, dict[str, object]]]) -> None:
        self.clock = FakeClock(0)
        self.store = store
        self.changes = changes
        self.sleeps = 0

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.clock.advance(seconds)
        if self.sleeps in self.changes:
            status, attempt, fields = self.changes[self.sleeps]
            self.store.update("0123456789abcdef0123456789", status, attempt, **fields)


def test_wait_follows_the_run_across_attempts_to_its_end_and_reports_each_state() -> None:
    store = FakeRunStore()
    timeline = Timeline(
        store,
        {
            2: (RunStatus.PENDING, 1, {"task_arn": TASK}),
            3: (RunStatus.FAILED, 1, {"exit_code": 75, "failure": "exit"}),
            4: (RunStatus.RETRYING, 2, {"reason": "attempt 1 failed (exit): exit code 75; retry in 10s"}),
            6: (RunStatus.RUNNING, 2, {"task_arn": TASK}),
            8: (RunStatus.SUCCEEDED, 2, {"exit_code": 0}),
        },
    )
    lines: list[str] = []
    store.seed(make_run(manual_request()))

    spec = job_spec(retry={"max_attempts": 2, "retry_exit_codes": "75"})

    run = wait_for(
        store,
        "0123456789abcdef0123456789",
        None,
        report=lines.append,
        clock=timeline.clock,
        sleep=timeline.sleep,
        retries=lambda run: will_retry(spec, run),
    )

    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    assert [line.split(",")[0] for line in lines] == [
        "run 01234567 CLAIMED",
        "run 01234567 PENDING",
        "run 01234567 FAILED",
        "run 01234567 RETRYING",
        "run 01234567 RUNNING",
        "run 01234567 SUCCEEDED",
    ]
    assert "retry in 10s" in lines[3]


def test_a_failure_the_job_retries_is_the_end_only_if_no_retry_shows() -> None:
    """GIVEN a failed attempt the policy retries, but no RETRYING ever written (the Tracker could not schedule it)
    WHEN waited for THEN the failure is taken as the end after RETRY_SETTLE_S, not waited on forever."""
    store = FakeRunStore()
    store.seed(make_run(manual_request(), status=RunStatus.FAILED, exit_code=75, failure="exit"))
    timeline = Timeline(store, {})
    spec = job_spec(retry={"max_attempts": 2, "retry_exit_codes": "75"})

    run = wait_for(
        store,
        "0123456789abcdef0123456789",
        None,
        report=lambda line: None,
        clock=timeline.clock,
        sleep=timeline.sleep,
        retries=lambda run: will_retry(spec, run),
    )

    assert run is not None
    assert run.status is RunStatus.FAILED
    assert timeline.clock() == pytest.approx(RETRY_SETTLE_S)


@pytest.mark.parametrize(
    ("failure", "exit_code", "attempt", "expected"),
    [
        ("exit", 75, 1, True),
        ("exit", 3, 1, False),
        ("exit", 75, 2, False),
        ("start", None, 1, True),
        (None, 1, 1, False),
    ],
)
def test_will_retry_is_the_trackers_rule(
    failure: str | None, exit_code: int | None, attempt: int, expected: bool
) -> None:
    spec = job_spec(retry={"max_attempts": 2, "retry_exit_codes": "75"})
    run = make_run(manual_request(), status=RunStatus.FAILED, attempt=attempt, exit_code=exit_code, failure=failure)
    assert will_retry(spec, run) is expected


def test_wait_gives_up_at_its_timeout_and_hints_when_no_record_ever_appears() -> None:
    store = FakeRunStore()
    timeline = Timeline(store, {})
    lines: list[str] = []

    run = wait_for(
        store,
        "0123456789abcdef0123456789",
        NO_RECORD_HINT_S + 5,
        report=lines.append,
        clock=timeline.clock,
        sleep=timeline.sleep,
    )

    assert run is None
    assert timeline.clock() == pytest.approx(NO_RECORD_HINT_S + 5)
    [hint] = lines
    assert "no record after" in hint
    assert "dispatch dead-letter queue" in hint


# ------------------------------------------------------------------------------------------------------------ stop


def test_stop_reason_names_who_and_fits_ecs() -> None:
    assert stop_reason("alice") == "stopped by alice (taskrunner stop)"
    assert stop_reason("assumed-role/OnCall/bob", "  deploy\nfreeze ") == (
        "stopped by assumed-role/OnCall/bob (taskrunner stop): deploy freeze"
    )
    assert len(stop_reason("x", "y" * 1000)) == 255


@pytest.mark.parametrize(
    ("status", "task", "message"),
    [
        (RunStatus.SUCCEEDED, TASK, "already SUCCEEDED: nothing to stop"),
        (RunStatus.STOPPED, TASK, "already STOPPED"),
        (RunStatus.RETRYING, None, "between attempts"),
        (RunStatus.CLAIMED, None, "has no task yet (CLAIMED)"),
    ],
)
def test_stop_refuses_a_run_without_a_task_to_stop(status: RunStatus, task: str | None, message: str) -> None:
    with pytest.raises(CliError) as raised:
        current_task(make_run(manual_request(), status=status, task_arn=task))

    assert message in str(raised.value)
    assert raised.value.exit_code == 1


def test_stop_takes_the_current_attempts_task() -> None:
    other = TASK.replace("0123", "ffff")
    run = make_run(
        manual_request(),
        status=RunStatus.RUNNING,
        attempt=2,
        task_arn=TASK,
        attempts=(Attempt(number=1, task_arn=other, status=RunStatus.FAILED), Attempt(number=2, task_arn=TASK)),
    )
    assert current_task(run) == TASK


# ------------------------------------------------------------------------------------------------------ runs, logs


def test_a_record_without_attempts_shows_its_own_fields_as_its_latest_attempt() -> None:
    run = make_run(manual_request(), status=RunStatus.FAILED, attempt=2, task_arn=TASK, exit_code=3, reason="exit 3")

    [attempt] = attempts_of(run)

    assert (attempt.number, attempt.status, attempt.exit_code, attempt.reason) == (2, RunStatus.FAILED, 3, "exit 3")
    assert attempt.log_stream == "nightly-report/job/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("status", [RunStatus.RETRYING, RunStatus.CLAIMED])
def test_a_retry_not_launched_yet_has_no_task_of_its_own(status: RunStatus) -> None:
    """The record's task is attempt 1's until attempt 2 is launched: it is not shown (or followed, or stopped)
    as attempt 2's."""
    run = make_run(manual_request(), status=status, attempt=2, task_arn=TASK, exit_code=75, reason="retry in 10s")

    [attempt] = attempts_of(run)

    assert (attempt.number, attempt.status, attempt.task_arn, attempt.exit_code) == (2, status, None, None)
    assert attempt.reason == "retry in 10s"
    with pytest.raises(CliError):
        current_task(run)


def test_recorded_attempts_are_shown_each_with_its_own_stream() -> None:
    first = TASK.replace("0123", "aaaa")
    run = make_run(
        manual_request(),
        status=RunStatus.SUCCEEDED,
        attempt=2,
        task_arn=TASK,
        attempts={"2": {"task_arn": TASK, "status": "SUCCEEDED"}, "1": {"task_arn": first, "status": "FAILED"}},
    )

    attempts = attempts_of(run, container="app")

    assert [a.number for a in attempts] == [1, 2]
    assert attempts[0].log_stream == f"nightly-report/app/{first.rsplit('/', 1)[-1]}"


def test_a_log_file_is_read_in_whole_lines_and_the_last_partial_one_on_the_final_read(tmp_path: Path) -> None:
    path = tmp_path / "task.log"
    source = FileSource(path)
    path.write_bytes(b"one\ntw")

    assert [line.message for line in source.read()] == ["one"]
    with path.open("ab") as log:
        log.write(b"o\nthree")
    assert [line.message for line in source.read()] == ["two"]
    assert [line.message for line in source.read(final=True)] == ["three"]
    assert source.read(final=True) == []


# ------------------------------------------------------------------------------------------------------ pause, jobs


def test_a_pause_records_why_who_and_when() -> None:
    when = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert pause_value("alice", "deploy freeze", when) == "deploy freeze (by alice at 2026-11-26T09:30:00Z)"
    assert pause_value("alice", "", when) == "paused (by alice at 2026-11-26T09:30:00Z)"


def test_next_tick_of_a_cron_schedule_is_in_its_time_zone_across_daylight_saving() -> None:
    # 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer.
    winter = next_tick("cron(0 6 * * ? *)", "Europe/Berlin", None, datetime(2026, 11, 26, 12, tzinfo=UTC))
    summer = next_tick("cron(0 6 * * ? *)", "Europe/Berlin", None, datetime(2026, 7, 1, 12, tzinfo=UTC))

    assert winter.next_tick == datetime(2026, 11, 27, 5, tzinfo=UTC)
    assert summer.next_tick == datetime(2026, 7, 2, 4, tzinfo=UTC)


def test_next_tick_of_a_rate_schedule_counts_from_a_tick_it_has_seen() -> None:
    now = datetime(2026, 11, 26, 12, 7, tzinfo=UTC)

    seen = next_tick("rate(5 minutes)", "UTC", datetime(2026, 11, 26, 11, 1, tzinfo=UTC), now)
    unseen = next_tick("rate(5 minutes)", "UTC", None, now)

    assert seen.next_tick == datetime(2026, 11, 26, 12, 11, tzinfo=UTC)
    assert unseen.next_tick is None
    assert unseen.note == "first tick not seen yet"


def test_next_tick_of_a_past_at_schedule_or_a_bad_expression_says_why() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    assert next_tick("at(2026-01-01T00:00:00)", "UTC", None, now).note == "no further tick"
    assert next_tick("cron(nope)", "UTC", None, now).note.startswith("cannot evaluate")


# ----------------------------------------------------------------------------------------------------------- input


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


def test_since_takes_a_duration_back_from_now_or_a_time() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert since_time("15m", now) == now - timedelta(minutes=15)
    assert since_time("2026-11-26T05:00", now) == datetime(2026, 11, 26, 5, tzinfo=UTC)
    assert since_time("2026-11-26T06:00+01:00", now) == datetime(2026, 11, 26, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        since_time("yesterday", now)


def test_env_pairs_keep_equals_signs_and_empty_values() -> None:
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(CliError, match="NAME=VALUE"):
        parse_env(["novalue"])


def test_did_you_mean_offers_the_closest_jobs() -> None:
    jobs = ["image-worker", "nightly-report", "order-audit", "thumbnails"]
    assert did_you_mean("nightly-reprot", jobs) == ": did you mean nightly-report?"
    assert did_you_mean("thumbnail", jobs) == ": did you mean thumbnails?"
    assert did_you_mean("zzz", jobs) == ""


# ------------------------------------------------------------------------------------------------------ completion


def complete(script: str, *words: str) -> list[str]:
    """What bash offers for the words typed so far (the last one being completed), with the generated script."""
    typed = " ".join(f"'{w}'" for w in words)
    program = (
        f'{script}\nCOMP_WORDS=({typed}); COMP_CWORD={len(words) - 1}; _taskrunner; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def bash_script() -> str:
    return completion.script("bash", build_parser())


def test_bash_completes_commands_options_and_values(bash_script: str) -> None:
    assert complete(bash_script, "taskrunner", "ru") == ["run", "runs"]
    assert complete(bash_script, "taskrunner", "--stack", "prod", "lo") == ["logs", "local"]
    assert complete(bash_script, "taskrunner", "run", "nightly-report", "--w") == ["--wait"]
    assert complete(bash_script, "taskrunner", "runs", "--status", "TIM") == ["TIMED_OUT"]
    assert complete(bash_script, "taskrunner", "completion", "") == ["bash", "zsh", "fish"]
    # -f is --follow for logs (no value), --file for submit (a file)
    assert complete(bash_script, "taskrunner", "logs", "-f", "--s") == ["--stack", "--since"]
    assert complete(bash_script, "taskrunner", "logs", "-f", "") == []


def test_every_command_and_option_of_the_parser_is_in_every_script() -> None:
    parser = build_parser()
    global_options, commands = completion.commands(parser)
    scripts = {shell: completion.script(shell, parser) for shell in completion.SHELLS}
    names = {c.name for c in commands}
    assert {"jobs", "status", "logs", "stop", "pause", "resume", "run", "runs", "completion", "local"} <= names
    for shell, text in scripts.items():
        for option in global_options:
            assert (option.flags[0] if shell != "fish" else f"-l {option.flags[0][2:]}") in text, (shell, option)
        for command in commands:
            assert command.name in text, (shell, command.name)
            for option in command.options:
                long = next(f for f in option.flags if f.startswith("--"))
                assert (long if shell != "fish" else f"-l {long[2:]}") in text, (shell, command.name, long)
    assert scripts["zsh"].startswith("#compdef taskrunner")
    assert "bashcompinit" in scripts["zsh"]


def test_the_completion_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    from taskrunner.cli import main

    assert main(["completion", "fish"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# fish completion for taskrunner")
    assert "__fish_seen_subcommand_from runs" in out
    assert isinstance(build_parser(), argparse.ArgumentParser)
