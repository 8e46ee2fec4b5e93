"""``taskrunner runs`` on a terminal of 80 and 120 columns, and piped: measured, not eyeballed."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from taskrunner.cli import output
from taskrunner.cli.runs import REASON_MIN, history_table
from taskrunner.domain.runs import Run, RunStatus
from taskrunner.domain.triggers import Trigger

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STATUSES = list(RunStatus)
LONG_REASON = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref"


def runs() -> list[Run]:
    """A page of history as it looks in an incident: every status, long reasons, a tenth attempt, long job names."""
    found = []
    for i, status in enumerate(STATUSES):
        found.append(
            Run(
                run_id=f"{i:02d}{'ab' * 12}",
                job=["nightly-report", "thumbnails", "image-worker", "order-audit"][i % 4],
                trigger=list(Trigger)[i % 4],
                idempotency_key=f"k{i}",
                status=status,
                attempt=10 if status is RunStatus.RETRYING else 1 + i % 3,
                created_at=T0 - timedelta(minutes=i),
                updated_at=T0,
                task_arn=f"arn:aws:ecs:eu-west-1:123456789012:task/taskrunner/{i:02d}{'c' * 30}",
                reason=LONG_REASON if i % 2 else f"exit code {i}",
            )
        )
    return found


def render(width: int | None) -> list[str]:
    table = history_table(runs(), width)
    console = Console(width=width or output.natural_width(table), file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(table)
    return captured.get().splitlines()


def row_of(lines: list[str], run: Run) -> str:
    [line] = [line for line in lines if run.run_id[:8] in line]
    return line


@pytest.mark.parametrize("width", [80, 120])
def test_history_fits_the_terminal_and_never_squeezes_status_or_attempt(width: int) -> None:
    lines = render(width)

    assert max(len(line) for line in lines) <= width
    header = lines[0].split()
    assert {"status", "attempt", "reason"} <= set(header)
    for run in runs():
        cells = row_of(lines, run).split()
        assert str(run.status) in cells, (run.status, cells)
        assert str(run.attempt) in cells


def test_at_80_columns_ids_are_short_and_the_task_and_trigger_give_way_first() -> None:
    lines = render(80)

    header = lines[0].split()
    assert "task" not in header
    assert "trigger" not in header
    assert all(run.run_id not in "\n".join(lines) for run in runs())
    assert runs()[0].run_id[:8] in lines[2]


def test_at_120_columns_the_reason_keeps_room_and_ids_are_short() -> None:
    lines = render(120)

    header = lines[0]
    assert "trigger" in header
    assert "reason" in header
    reason_start = header.index("reason")
    assert 120 - reason_start >= REASON_MIN
    # The long reason wraps inside its column rather than being cut.
    text = " ".join(line[reason_start:].strip() for line in lines)
    assert "failed to resolve ref" in text


def test_piped_the_table_is_whole_every_column_and_full_ids() -> None:
    lines = render(None)

    header = lines[0].split()
    for column in ("run", "id", "job", "trigger", "status", "attempt", "created", "task", "reason"):
        assert column in header
    text = "\n".join(lines)
    for run in runs():
        assert run.run_id in text
        assert (run.task_arn or "").rsplit("/", 1)[-1] in text
        assert (run.reason or "") in text


def test_a_forty_character_job_name_is_cut_before_status_is(monkeypatch: pytest.MonkeyPatch) -> None:
    long = [r.model_copy(update={"job": "j" * 40}) for r in runs()]
    table = history_table(long, 80)
    console = Console(width=80, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(table)
    lines = captured.get().splitlines()

    assert max(len(line) for line in lines) <= 80
    for run in long:
        assert str(run.status) in row_of(lines, run).split()
