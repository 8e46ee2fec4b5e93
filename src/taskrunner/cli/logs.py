"""``taskrunner logs RUN_ID|JOB``: a run's task output (for a JOB, its latest run's).

Against AWS: the task's awslogs stream in CloudWatch Logs (group ``/taskrunner/<stack>/jobs/<job>``, stream
``<job>/<container>/<task id>``). In local mode: the task's log file, ``.taskrunner/logs/<job>/<task id>.log``
(local mode's stand-in for the stream). ``--follow`` keeps reading until the run ends, moving on to each new
attempt's task as retries start them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from taskrunner.adapters.logs import CloudWatchLogs, LogEvent, LogStreamNotFound, group_name
from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from taskrunner.cli.inputs import since_time
from taskrunner.cli.lookups import SHORT_ID, run_or_job
from taskrunner.cli.run import RETRY_SETTLE_S, will_retry
from taskrunner.cli.runs import attempts_of
from taskrunner.cli.target import Target
from taskrunner.domain.errors import PermanentError
from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.runs import Attempt, Run, RunStatus, log_stream

POLL_S = 1.0
#: Pages read in one go at most (a stream's end is when CloudWatch hands back the token it was given).
MAX_PAGES = 1000


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "logs",
        parents=[common],
        help="a run's task output (a JOB's latest run); --follow until it ends",
        description="Print the output of a run's task: its CloudWatch Logs stream, or in local mode its log file. "
        "A JOB means its latest run. By default the run's latest attempt.",
    )
    parser.add_argument("ref", metavar="RUN_ID|JOB")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    parser.add_argument("--since", type=_since, metavar="WHEN", help="only events since WHEN: 15m, 2h, 1d or a time")
    parser.add_argument("--attempt", type=int, metavar="N", help="attempt N's task (default: the latest attempt)")
    parser.set_defaults(handler=handle)


def _since(value: str) -> datetime:
    try:
        return since_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


@dataclass(frozen=True)
class Line:
    timestamp: datetime | None
    message: str


class Source(Protocol):
    @property
    def where(self) -> str: ...

    def read(self, final: bool = False) -> list[Line]:
        """What was written since the last read; raises LogStreamNotFound while there is nothing at all."""
        ...


@dataclass
class CloudWatchSource:
    logs: CloudWatchLogs
    group: str
    stream: str
    since: datetime | None = None
    token: str | None = None

    @property
    def where(self) -> str:
        return f"log stream {self.stream} in {self.group}"

    def read(self, final: bool = False) -> list[Line]:
        events: list[LogEvent] = []
        for _ in range(MAX_PAGES):
            page = self.logs.read(self.group, self.stream, since=self.since, token=self.token)
            events += page.events
            if page.token is None or page.token == self.token:
                break
            self.token = page.token
        return [Line(e.timestamp, e.message) for e in events]


@dataclass
class FileSource:
    path: Path
    offset: int = 0
    partial: bytes = field(default=b"", repr=False)

    @property
    def where(self) -> str:
        return f"log file {self.path}"

    def read(self, final: bool = False) -> list[Line]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError as exc:
            raise LogStreamNotFound(str(self.path)) from exc
        self.offset += len(data)
        # A line still being written waits for its end, except on the last read.
        *complete, self.partial = (self.partial + data).split(b"\n")
        if final and self.partial:
            complete, self.partial = [*complete, self.partial], b""
        return [Line(None, raw.decode(errors="replace").rstrip("\r")) for raw in complete]


def source_for(target: Target, run: Run, attempt: Attempt, container: str, since: datetime | None) -> Source:
    task_id = (attempt.task_arn or "").rsplit("/", 1)[-1]
    if target.local:
        return FileSource(target.root / ".taskrunner" / "logs" / run.job / f"{task_id}.log")
    stream = attempt.log_stream or log_stream(run.job, attempt.task_arn or "", container)
    return CloudWatchSource(target.logs(), group_name(target.stack, run.job), stream, since)


def _attempt(run: Run, number: int, container: str) -> Attempt | None:
    return next((a for a in attempts_of(run, container) if a.number == number), None)


def _emit(lines: list[Line], attempt: int, as_json: bool) -> None:
    for line in lines:
        if as_json:
            stamp = line.timestamp.isoformat() if line.timestamp else None
            output.json_line({"timestamp": stamp, "attempt": attempt, "message": line.message})
        else:
            sys.stdout.write(line.message + "\n")
    sys.stdout.flush()


def _no_task(run: Run, number: int) -> CliError:
    if number != run.attempt and not run.attempts:
        return CliError(
            f"run {run.run_id} attempt {number}'s task is not recorded (this record keeps its latest attempt only)",
            EXIT_FAILED,
        )
    why = f": {run.reason}" if run.reason else ""
    return CliError(f"run {run.run_id} attempt {number} has no task ({run.status}{why})", EXIT_FAILED)


def follow_logs(
    target: Target,
    run: Run,
    container: str,
    *,
    pinned: int | None,
    follow: bool,
    since: datetime | None,
    as_json: bool,
    retries: Callable[[Run], bool] = lambda run: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Print the attempt's output; with ``follow``, until the run ends (a failure ``retries`` says is retried is
    not the end, unless no retry shows within ``RETRY_SETTLE_S``, as for ``run --wait``)."""
    store = target.store()
    current = pinned or run.attempt
    source: Source | None = None
    ended: tuple[RunStatus, int, float] | None = None
    while True:
        if run.status.terminal and (ended is None or ended[:2] != (run.status, run.attempt)):
            ended = (run.status, run.attempt, clock())
        settled = ended is not None and (not retries(run) or clock() - ended[2] >= RETRY_SETTLE_S)
        finished = (run.status.terminal and settled) or (pinned is not None and run.attempt > pinned)
        attempt = _attempt(run, current, container)
        if source is None and attempt is not None and attempt.task_arn:
            source = source_for(target, run, attempt, container, since)
        if source is None:
            if not follow or finished:
                raise _no_task(run, current)
        else:
            try:
                _emit(source.read(final=finished or not follow), current, as_json)
            except LogStreamNotFound as exc:
                if not follow or finished:
                    raise CliError(
                        f"no output of run {run.run_id} attempt {current}: no {source.where}", EXIT_FAILED
                    ) from exc
        if not follow or finished:
            return EXIT_OK
        if pinned is None and run.attempt > current:
            # The attempt's task has stopped and a retry started another: its last lines, then the next task's.
            if source is not None:
                with contextlib.suppress(LogStreamNotFound):
                    _emit(source.read(final=True), current, as_json)
            current, source = run.attempt, None
            output.err(f"--- run {run.run_id[:SHORT_ID]} attempt {current} ---")
            continue
        sleep(POLL_S)
        run = store.get(run.run_id) or run


def handle(args: argparse.Namespace, target: Target) -> int:
    found = run_or_job(target, args.ref)
    if isinstance(found, JobSpec):
        latest = target.store().history(found.name, 1)
        if not latest:
            raise CliError(f"no runs of {found.name} yet", EXIT_FAILED)
        run, container = latest[0], found.container
    else:
        run = found
        registered = _spec(target, run.job)
        container = registered.container if registered else "job"
    if args.attempt is not None and not 1 <= args.attempt <= run.attempt:
        raise CliError(f"run {run.run_id} has attempts 1 to {run.attempt}, not {args.attempt}", EXIT_USAGE)
    if args.since is not None and target.local:
        output.err("note: local log files carry no timestamps: --since is ignored in local mode")
    spec = found if isinstance(found, JobSpec) else _spec(target, run.job)
    return follow_logs(
        target,
        run,
        container,
        pinned=args.attempt,
        follow=args.follow,
        since=None if target.local else args.since,
        as_json=args.json,
        retries=(lambda run: will_retry(spec, run)) if spec else (lambda run: False),
    )


def _spec(target: Target, job: str) -> JobSpec | None:
    try:
        return target.registry().get(job)
    except (PermanentError, ValueError):
        return None  # the job left the registry: nothing will retry its runs
