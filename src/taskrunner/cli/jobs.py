"""``taskrunner jobs``: every job, its triggers, its next schedule tick, whether it is paused, its queue and
workers, and its last run.

The registry holds what the Lambdas need; a schedule's expression and time zone belong to EventBridge
Scheduler, so they are read back from each job's nested stack (the parameters its template block gave it).
The next tick is computed by local mode's Scheduler evaluator (``taskrunner.local.schedules``). A ``rate()``
schedule's phase is its creation time, which neither place records: its next tick is counted from the last
tick a run recorded, and is unknown before the first.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import BotoCoreError, ClientError
from rich.markup import escape

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_OK
from taskrunner.cli.target import Target
from taskrunner.domain.jobs import JobSpec, QueueMode
from taskrunner.domain.ports import QueueDepth, ServiceCounts
from taskrunner.domain.runs import Run
from taskrunner.domain.triggers import Trigger
from taskrunner.local.schedules import RateSchedule, ScheduleError, parse_schedule

#: How many of a job's newest runs are looked through for its last schedule tick.
TICK_SEARCH = 20


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "jobs",
        parents=[common],
        help="every job: triggers, next schedule tick, paused, queue, workers, last run",
        description="List every job in the stack's registry with its triggers, next schedule tick (in the "
        "schedule's time zone), whether it is paused, its queue depth and workers, and its last run. "
        "Registry entries that fail validation are listed after the table.",
    )
    parser.set_defaults(handler=handle)


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str
    next_tick: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class JobView:
    spec: JobSpec
    schedule: Schedule | None
    paused: str | None
    depth: QueueDepth | None
    workers: ServiceCounts | None
    last: Run | None


def next_tick(expression: str, timezone: str, last_tick: datetime | None, now: datetime) -> Schedule:
    try:
        # ``start`` only matters to rate(): the schedule's phase, taken from a tick that happened.
        parsed = parse_schedule(expression, timezone or "UTC", start=last_tick or now)
    except ScheduleError as exc:
        return Schedule(expression, timezone, note=f"cannot evaluate: {exc}")
    if isinstance(parsed, RateSchedule) and last_tick is None:
        return Schedule(expression, timezone, note="first tick not seen yet")
    tick = parsed.next_after(now)
    return Schedule(expression, timezone, tick, "" if tick else "no further tick")


def _last_tick(runs: list[Run]) -> datetime | None:
    for run in runs:
        if run.trigger is Trigger.SCHEDULE and (stamp := run.detail.get("scheduled_at")):
            try:
                return datetime.fromisoformat(stamp)
            except ValueError:
                continue
    return None


def gather(target: Target, now: datetime | None = None) -> tuple[list[JobView], dict[str, str], list[str]]:
    """Every job's view, the invalid registry entries, and notes on what could not be read."""
    now = now or datetime.now(UTC)
    registry = target.registry()
    specs = registry.all()
    invalid = registry.invalid()
    notes: list[str] = []
    try:
        parameters = target.stacks().job_parameters(target.stack)
    except (ClientError, BotoCoreError) as exc:
        parameters = {}
        notes.append(f"schedules unknown: cannot read the job stacks ({exc})")
    paused = target.pauses().reasons()
    queues = target.queues()
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        if spec.service:
            by_cluster[spec.cluster].append(spec.service)
    cluster = target.cluster()
    workers: dict[str, ServiceCounts] = {}
    for arn, services in by_cluster.items():
        workers |= cluster.describe(arn, services)
    store = target.store()
    views: list[JobView] = []
    for spec in sorted(specs, key=lambda s: s.name):
        runs = store.history(spec.name, TICK_SEARCH)
        params = parameters.get(spec.name, {})
        expression = params.get("ScheduleExpression", "")
        schedule = (
            next_tick(expression, params.get("ScheduleTimezone") or "UTC", _last_tick(runs), now)
            if expression
            else None
        )
        views.append(
            JobView(
                spec=spec,
                schedule=schedule,
                paused=paused.get(spec.name),
                depth=queues.depth(spec.queue_url) if spec.queue_url else None,
                workers=workers.get(spec.service) if spec.service else None,
                last=runs[0] if runs else None,
            )
        )
    return views, invalid, notes


def _pattern_summary(pattern: dict[str, Any]) -> str:
    shown = [f"{key} {', '.join(map(str, pattern[key]))}" for key in ("source", "detail-type") if key in pattern]
    return (
        "event "
        + ("; ".join(shown) if shown else "pattern")
        + (" …" if set(pattern) - {"source", "detail-type"} else "")
    )


def triggers(view: JobView) -> list[str]:
    spec, found = view.spec, []
    if view.schedule:
        found.append(f"schedule {view.schedule.expression} {view.schedule.timezone}")
    if spec.s3_bucket:
        found.append(f"s3 {spec.s3_prefix}*{spec.s3_suffix}")
    if spec.event_pattern:
        found.append(_pattern_summary(spec.event_pattern))
    if spec.queue_mode is not QueueMode.NONE:
        found.append(f"queue ({spec.queue_mode})")
    return found or ["manual only"]


def tick_text(schedule: Schedule | None, now: datetime) -> str:
    if schedule is None:
        return ""
    if schedule.next_tick is None:
        return f"[dim]{escape(schedule.note)}[/]"
    local = schedule.next_tick.astimezone(ZoneInfo(schedule.timezone or "UTC"))
    return f"{local:%Y-%m-%d %H:%M} {schedule.timezone} ({output.ago(schedule.next_tick, now)})"


def as_json(view: JobView) -> dict[str, Any]:
    spec = view.spec
    found: dict[str, Any] = {}
    if view.schedule:
        tick = view.schedule.next_tick
        found["schedule"] = {
            "expression": view.schedule.expression,
            "timezone": view.schedule.timezone,
            "next_tick": tick.astimezone(UTC).isoformat() if tick else None,
            "next_tick_local": tick.astimezone(ZoneInfo(view.schedule.timezone)).isoformat() if tick else None,
        } | ({"note": view.schedule.note} if view.schedule.note else {})
    if spec.s3_bucket:
        found["s3"] = {"bucket": spec.s3_bucket, "prefix": spec.s3_prefix, "suffix": spec.s3_suffix}
    if spec.event_pattern:
        found["event_pattern"] = spec.event_pattern
    if spec.queue_mode is not QueueMode.NONE:
        found["queue"] = {"mode": str(spec.queue_mode), "url": spec.queue_url}
    record: dict[str, Any] = {
        "job": spec.name,
        "triggers": found,
        "paused": view.paused is not None,
        "paused_reason": view.paused,
        "queue_depth": view.depth._asdict() if view.depth else None,
        "workers": view.workers._asdict() if view.workers else None,
        "last_run": None,
    }
    if view.last:
        record["last_run"] = {
            "run_id": view.last.run_id,
            "status": str(view.last.status),
            "trigger": str(view.last.trigger),
            "created_at": view.last.created_at.isoformat(),
        }
    return record


def handle(args: argparse.Namespace, target: Target) -> int:
    now = datetime.now(UTC)
    views, invalid, notes = gather(target, now)
    for note in notes:
        output.err(f"note: {note}")
    if args.json:
        for view in views:
            output.json_line(as_json(view))
        for name, reason in invalid.items():
            output.json_line({"job": name, "invalid": reason})
        return EXIT_OK
    table = output.table()
    for name in ("job", "triggers", "next tick", "paused", "queue", "workers", "last run"):
        table.add_column(name, overflow="fold", no_wrap=name in {"job", "paused", "queue", "workers"})
    for view in views:
        depth = (
            f"{view.depth.visible + view.depth.delayed} waiting, {view.depth.in_flight} in flight" if view.depth else ""
        )
        if view.spec.queue_url and view.depth is None:
            depth = "?"
        workers = (
            f"{view.workers.running}/{view.workers.desired}" if view.workers else ("?" if view.spec.service else "")
        )
        last = (
            f"{output.status_text(view.last.status)} {output.ago(view.last.created_at, now)} ({view.last.trigger})"
            if view.last
            else "[dim]none[/]"
        )
        table.add_row(
            view.spec.name,
            escape("\n".join(triggers(view))),
            tick_text(view.schedule, now),
            "[yellow]paused[/]" if view.paused is not None else "",
            depth,
            workers,
            last,
        )
    width = output.terminal_width()
    output.show(table, width=width)
    for view in views:
        if view.paused is not None:
            print(f"{view.spec.name} is paused: {view.paused} (`taskrunner resume {view.spec.name}`)")
    for name, reason in invalid.items():
        print(f"invalid registry entry {name}: {reason}")
    if not views and not invalid:
        print(f"no jobs in stack '{target.stack}'")
    return EXIT_OK
