"""``taskrunner status``: the stack at a glance, for the first minute of an incident.

Dead-letter queue depths (dispatch, tracker, every job's work queue), the stack's alarms in ALARM, runs active
now and failed in the last 24 hours, paused jobs and registry entries that fail validation. Exit code 4 when
something needs attention: a dead letter, an alarm, an invalid registry entry.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.markup import escape
from rich.table import Table

from taskrunner.adapters.alarms import Alarm
from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_ATTENTION, EXIT_OK
from taskrunner.cli.lookups import SHORT_ID
from taskrunner.cli.target import Target
from taskrunner.domain.runs import Run, RunStatus

ACTIVE = (RunStatus.RUNNING, RunStatus.PENDING, RunStatus.CLAIMED, RunStatus.RETRYING)
FAILED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LAUNCH_FAILED)
WINDOW = timedelta(hours=24)
#: Counts stop here (one query page each); more shows as "1000+".
COUNT_LIMIT = 1000
LATEST_FAILURES = 5


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "status",
        parents=[common],
        help="the stack at a glance: dead letters, alarms, active and failed runs, paused jobs, invalid entries",
        description="Dead-letter queue depths, alarms in ALARM, runs active and failed in the last 24 h, "
        "paused jobs and invalid registry entries. Exit code 4 when something needs attention.",
    )
    parser.set_defaults(handler=handle)


@dataclass
class Status:
    stack: str
    stack_status: str
    region: str
    #: Queue → messages (visible, in flight and delayed); None when it could not be read.
    dead_letters: dict[str, int | None] = field(default_factory=dict)
    alarms: list[Alarm] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    latest_failures: list[Run] = field(default_factory=list)
    paused: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)

    def attention(self) -> list[str]:
        found = [f"{queue} dead-letter queue holds {n}" for queue, n in self.dead_letters.items() if n]
        found += [f"alarm {alarm.name} is in ALARM" for alarm in self.alarms]
        found += [f"registry entry {name} is invalid" for name in self.invalid]
        return found


def gather(target: Target, now: datetime | None = None) -> Status:
    now = now or datetime.now(UTC)
    info = target.info()
    status = Status(target.stack, info.status, target.region)
    queues = target.queues()
    dlqs: dict[str, str | None] = {
        "dispatch": info.outputs.get("DispatchDeadLetterQueueUrl"),
        "tracker": info.outputs.get("TrackerDeadLetterQueueUrl"),
    }
    registry = target.registry()
    for spec in sorted(registry.all(), key=lambda s: s.name):
        if spec.queue_url:
            dlqs[spec.name] = queues.dead_letter_queue(spec.queue_url)
    for name, url in dlqs.items():
        depth = queues.depth(url) if url else None
        status.dead_letters[name] = sum(depth) if depth else None
    status.alarms = target.alarms().firing(target.stack, info.outputs.get("AlarmTopicArn"))
    store = target.store()
    status.active = {str(s): len(store.recent(s, limit=COUNT_LIMIT)) for s in ACTIVE}
    failures: list[Run] = []
    for state in FAILED:
        runs = store.recent(state, since=now - WINDOW, limit=COUNT_LIMIT)
        status.failed[str(state)] = len(runs)
        failures += runs[:LATEST_FAILURES]
    status.latest_failures = sorted(failures, key=lambda r: r.created_at, reverse=True)[:LATEST_FAILURES]
    status.paused = target.pauses().reasons()
    status.invalid = registry.invalid()
    return status


def _count(n: int) -> str:
    return f"{n}+" if n >= COUNT_LIMIT else str(n)


def as_json(status: Status) -> dict[str, Any]:
    return {
        "stack": status.stack,
        "stack_status": status.stack_status,
        "region": status.region,
        "dead_letters": status.dead_letters,
        "alarms": [
            {"name": a.name, "reason": a.reason, "since": a.since.isoformat() if a.since else None}
            for a in status.alarms
        ],
        "runs_active": status.active,
        "runs_failed_24h": status.failed,
        "latest_failures": [
            {
                "run_id": r.run_id,
                "job": r.job,
                "status": str(r.status),
                "created_at": r.created_at.isoformat(),
                "reason": r.reason,
            }
            for r in status.latest_failures
        ],
        "paused": status.paused,
        "invalid": status.invalid,
        "attention": status.attention(),
    }


def render(status: Status, now: datetime) -> Table:
    table = output.table(show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("stack", f"{status.stack} ({status.stack_status}) in {status.region}")
    letters = [
        f"{name} [red]{n}[/]" if n else f"{name} {'?' if n is None else 0}" for name, n in status.dead_letters.items()
    ]
    table.add_row("dead letters", " · ".join(letters))
    alarms = [f"[red]{escape(a.name)}[/] since {output.ago(a.since, now)}: {escape(a.reason)}" for a in status.alarms]
    table.add_row("alarms", "\n".join(alarms) or "none in ALARM")
    table.add_row("runs active", " · ".join(f"{s} {_count(n)}" for s, n in status.active.items()))
    failed = " · ".join(f"{s} {'[red]' if n else ''}{_count(n)}{'[/]' if n else ''}" for s, n in status.failed.items())
    latest = [
        f"  {output.ago(r.created_at, now)}  {r.job} {r.run_id[:SHORT_ID]} {output.status_text(r.status)}"
        + (f": {escape(r.reason)}" if r.reason else "")
        for r in status.latest_failures
    ]
    table.add_row("failed (24 h)", "\n".join([failed, *latest]))
    table.add_row(
        "paused", "\n".join(f"[yellow]{job}[/]: {escape(why)}" for job, why in status.paused.items()) or "none"
    )
    table.add_row(
        "invalid entries", "\n".join(f"[red]{name}[/]: {escape(why)}" for name, why in status.invalid.items()) or "none"
    )
    return table


def handle(args: argparse.Namespace, target: Target) -> int:
    now = datetime.now(UTC)
    status = gather(target, now)
    if args.json:
        output.json_line(as_json(status))
    else:
        width = output.terminal_width()
        output.show(render(status, now), width=width)
        attention = status.attention()
        print(f"needs attention: {'; '.join(attention)}" if attention else "all clear")
    return EXIT_ATTENTION if status.attention() else EXIT_OK
