"""``taskrunner runs``: run history newest first, or ``runs RUN_ID``: one run with every attempt.

On a terminal the history table fits its width: the least useful columns give way first (short run ids,
then the task, a shorter creation time, the trigger, and the reason last), while status and attempt are never
squeezed. Piped or redirected, it is printed whole: every column, full ids.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_OK
from taskrunner.cli.lookups import SHORT_ID, job_names, run_or_job
from taskrunner.cli.target import Target
from taskrunner.domain.errors import PermanentError
from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.runs import Attempt, Run, RunStatus, log_stream

#: Width the reason column keeps before it is the one to go (shorter reasons wrap within it).
REASON_MIN = 20


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "runs",
        parents=[common],
        help="run history newest first, or one run with every attempt",
        description="Show JOB's runs (or every registered job's) newest first; with a RUN_ID (or a prefix of at "
        "least 6 characters), that run in detail with every attempt.",
    )
    parser.add_argument("ref", nargs="?", metavar="JOB|RUN_ID")
    parser.add_argument(
        "--status", type=str.upper, choices=[s.value for s in RunStatus], metavar="STATUS", help="only runs in STATUS"
    )
    parser.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)")
    parser.set_defaults(handler=handle)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value!r}")
    return number


# ------------------------------------------------------------------------------------------------------ history


@dataclass(frozen=True)
class Layout:
    """Which columns the history table shows, and how compact they are."""

    short_ids: bool = False
    task: bool = True
    short_created: bool = False
    trigger: bool = True
    reason: bool = True


#: Tried in order until one fits the terminal: each gives up the least useful thing left.
LAYOUTS = (
    Layout(),
    Layout(short_ids=True),
    Layout(short_ids=True, task=False),
    Layout(short_ids=True, task=False, short_created=True),
    Layout(short_ids=True, task=False, short_created=True, trigger=False),
    Layout(short_ids=True, task=False, short_created=True, trigger=False, reason=False),
)


def _history_table(runs: Sequence[Run], layout: Layout, reason_width: int | None = None) -> Table:
    table = output.table()
    # Every column but the reason and the job is no_wrap: status and attempt never collapse.
    table.add_column("run id", no_wrap=True)
    # The job gives way (…) only when nothing else is left to give: a 40-character name at 80 columns.
    table.add_column("job", overflow="ellipsis", min_width=8)
    if layout.trigger:
        table.add_column("trigger", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("created UTC" if layout.short_created else "created (UTC)", no_wrap=True)
    if layout.task:
        table.add_column("task", no_wrap=True)
    if layout.reason:
        table.add_column("reason", overflow="fold", ratio=1)
    for run in runs:
        row = [run.run_id[:SHORT_ID] if layout.short_ids else run.run_id, run.job]
        if layout.trigger:
            row.append(str(run.trigger))
        row += [output.status_text(run.status), str(run.attempt), output.utc(run.created_at, not layout.short_created)]
        if layout.task:
            row.append((run.task_arn or "").rsplit("/", 1)[-1])
        if layout.reason:
            reason = run.reason or ""
            row.append(escape(reason[:reason_width] if reason_width else reason))
        table.add_row(*row)
    return table


def history_table(runs: Sequence[Run], width: int | None) -> Table:
    """The history table for a terminal ``width`` columns wide, or whole (``width`` None)."""
    if width is None:
        return _history_table(runs, LAYOUTS[0])
    for layout in LAYOUTS:
        # Measured with reasons cut to REASON_MIN: the real table wraps longer ones within whatever is left.
        if output.natural_width(_history_table(runs, layout, REASON_MIN)) <= width:
            return _history_table(runs, layout)
    return _history_table(runs, LAYOUTS[-1])


def show_history(args: argparse.Namespace, target: Target, job: str | None) -> int:
    store = target.store()
    status = RunStatus(args.status) if args.status else None
    runs = store.history(job, args.limit, status) if job else store.newest(job_names(target), args.limit, status)
    if args.json:
        for run in runs:
            print(run.model_dump_json(exclude_none=True))
        return EXIT_OK
    if not runs:
        print("no runs" + (f" of {job}" if job else "") + (f" with status {status}" if status else ""))
        return EXIT_OK
    width = output.terminal_width()
    output.show(history_table(runs, width), width=width)
    return EXIT_OK


# ------------------------------------------------------------------------------------------------------- detail


def attempts_of(run: Run, container: str = "job") -> list[Attempt]:
    """The run's attempts, oldest first, each with its log stream. A record without per-attempt entries
    (written before the Tracker kept them) has its own fields stand as its latest attempt."""
    attempts = list(run.attempts) or [_latest(run)]
    return [
        a
        if a.log_stream or not a.task_arn
        else a.model_copy(update={"log_stream": log_stream(run.job, a.task_arn, container)})
        for a in attempts
    ]


def _latest(run: Run) -> Attempt:
    if run.status in {RunStatus.RETRYING, RunStatus.CLAIMED}:
        # The next attempt is not launched yet: the task, times and exit on the record are the previous attempt's.
        return Attempt(number=run.attempt, status=run.status, reason=run.reason)
    return Attempt(
        number=run.attempt,
        status=run.status,
        task_arn=run.task_arn,
        started_at=run.started_at,
        stopped_at=run.stopped_at,
        exit_code=run.exit_code,
        stop_code=run.stop_code,
        reason=run.reason,
        failure=run.failure,
    )


def run_record(run: Run, container: str = "job") -> dict[str, Any]:
    """The run as ``runs RUN_ID --json`` prints it: the stored record, with its attempts as :func:`attempts_of`."""
    record = run.model_dump(mode="json", exclude_none=True)
    record["attempts"] = [a.model_dump(mode="json", exclude_none=True) for a in attempts_of(run, container)]
    return record


def _took(attempt: Attempt) -> str:
    if attempt.started_at and attempt.stopped_at:
        return output.span((attempt.stopped_at - attempt.started_at).total_seconds())
    return ""


def detail(run: Run, width: int | None, container: str = "job") -> Group:
    facts = output.table(show_header=False)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("run", run.run_id)
    facts.add_row("job", run.job)
    trigger = str(run.trigger) + "".join(f", {k} {escape(v)}" for k, v in sorted(run.detail.items()))
    facts.add_row("trigger", trigger)
    facts.add_row("status", f"{output.status_text(run.status)} (attempt {run.attempt})")
    if run.reason:
        facts.add_row("reason", escape(run.reason))
    facts.add_row("created", f"{output.utc(run.created_at)} UTC ({output.ago(run.created_at)})")
    facts.add_row("updated", f"{output.utc(run.updated_at)} UTC")
    env = _request_env(run)
    if env:
        facts.add_row("env", escape(" ".join(f"{k}={v}" for k, v in sorted(env.items()))))

    attempts = output.table(title="attempts", title_justify="left", title_style="bold")
    for name in ("#", "status", "task", "started (UTC)", "took", "exit", "stop code", "reason"):
        attempts.add_column(name, no_wrap=name not in {"reason", "task"}, overflow="fold")
    streams: list[str] = []
    for attempt in attempts_of(run, container):
        task = (attempt.task_arn or "").rsplit("/", 1)[-1]
        attempts.add_row(
            str(attempt.number),
            output.status_text(attempt.status),
            task[:SHORT_ID] if width and task else task,
            output.utc(attempt.started_at),
            _took(attempt),
            "" if attempt.exit_code is None else str(attempt.exit_code),
            attempt.stop_code or "",
            escape(" ".join(x for x in (attempt.failure and f"[{attempt.failure}]", attempt.reason) if x)),
        )
        if attempt.log_stream:
            streams.append(f"attempt {attempt.number} log stream: {attempt.log_stream}")
    hint = f"output: taskrunner logs {run.run_id[:SHORT_ID] if width else run.run_id}"
    return Group(facts, "", attempts, *streams, hint)


def _request_env(run: Run) -> dict[str, str]:
    try:
        env = json.loads(run.request or "{}").get("env") or {}
    except (json.JSONDecodeError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}


def show_run(args: argparse.Namespace, target: Target, run: Run) -> int:
    container = _container(target, run.job)
    if args.json:
        output.json_line(run_record(run, container))
        return EXIT_OK
    width = output.terminal_width()
    output.show(detail(run, width, container), width=width)
    return EXIT_OK


def _container(target: Target, job: str) -> str:
    try:
        return target.registry().get(job).container
    except (PermanentError, ValueError):
        return "job"  # a job no longer registered: its streams were named after the default container


def handle(args: argparse.Namespace, target: Target) -> int:
    if args.ref is None:
        return show_history(args, target, None)
    found = run_or_job(target, args.ref)
    if isinstance(found, JobSpec):
        return show_history(args, target, found.name)
    return show_run(args, target, found)
