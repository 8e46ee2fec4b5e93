"""The live terminal view of ``taskrunner local`` (rich), and the plain line output of ``--no-view``."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskrunner.domain.runs import RunStatus
from taskrunner.local.activity import Entry
from taskrunner.local.runtime import LocalRuntime

STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.TIMED_OUT: "red",
    RunStatus.LAUNCH_FAILED: "red",
    RunStatus.RUNNING: "cyan",
    RunStatus.PENDING: "yellow",
    RunStatus.CLAIMED: "yellow",
    RunStatus.RETRYING: "magenta",
}
KIND_STYLE = {"error": "red", "run": "bold", "scaler": "magenta", "schedule": "blue", "worker": "cyan"}


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _ago(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%H:%M:%S")


def header(runtime: LocalRuntime, title: str) -> Text:
    status = runtime.status
    dlq = ", ".join(f"{k} {_n(v)}" for k, v in status.dead_letters.items())
    visible, in_flight = status.dispatch
    speed = runtime.clock.speed
    clock = runtime.clock.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
    text = Text()
    text.append(f"{title}  ", style="bold")
    text.append(f"embedded AWS {runtime.platform.endpoint}  stack {runtime.platform.stack_name}\n")
    text.append(f"schedule clock {clock}" + (f" (x{speed:g})" if speed != 1 else "") + "   ")
    text.append(f"dispatch queue {_n(visible)} visible / {_n(in_flight)} in flight   dead letters: {dlq}   ")
    text.append(f"scaler in {runtime.scaler_timer.seconds_left():.0f}s", style="dim")
    return text


def jobs_table(runtime: LocalRuntime) -> Table:
    table = Table(title="jobs", title_justify="left", box=None, header_style="bold dim")
    table.add_column("job")
    table.add_column("triggers")
    table.add_column("next tick", no_wrap=True)
    table.add_column("local command")
    schedules = {s["job"]: s for s in runtime.ticker.snapshot()}
    for name in runtime.catalog.names():
        entry = runtime.catalog.template.get(name)
        triggers = ", ".join(entry.triggers) if entry else "?"
        schedule = schedules.get(name)
        next_tick = ""
        if schedule:
            if schedule["error"]:
                next_tick = "[red]invalid[/]"
            elif schedule["next_at"] is not None:
                next_tick = schedule["next_at"].astimezone().strftime("%m-%d %H:%M")
        command = runtime.catalog.command(name)
        if command is None:
            shown = "[yellow]none: tasks reported as exit 0[/]"
        else:
            shown = escape(command.text) + ("" if command.source == "LocalCommand" else f" [dim]({command.source})[/]")
        table.add_row(name, escape(triggers), next_tick, shown)
    return table


def queues_table(runtime: LocalRuntime) -> Table:
    table = Table(title="queues", title_justify="left", box=None, header_style="bold dim")
    for column in ("job", "mode", "backlog", "in flight", "desired", "running", "stopping", "protected", "max desired"):
        table.add_column(column, justify="left" if column in {"job", "mode"} else "right")
    for q in runtime.status.queues:
        backlog = None if q.visible is None else q.visible + (q.delayed or 0)
        table.add_row(
            q.job,
            q.mode,
            _n(backlog),
            _n(q.in_flight),
            _n(q.desired),
            str(q.running),
            str(q.draining) if q.draining else "",
            str(q.protected) if q.protected else "",
            str(runtime.max_desired.get(q.job, 0)),
        )
    return table


def runs_table(runtime: LocalRuntime) -> Table:
    table = Table(title="recent runs", title_justify="left", box=None, header_style="bold dim")
    for column in ("run", "job", "trigger", "status", "attempt", "exit", "age", "reason"):
        table.add_column(column, overflow="ellipsis", no_wrap=column != "reason")
    for run in runtime.status.runs[:10]:
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(
            run.run_id[:10],
            run.job,
            str(run.trigger),
            f"[{style}]{run.status}[/]" if style else str(run.status),
            str(run.attempt),
            "" if run.exit_code is None else str(run.exit_code),
            _ago(run.created_at),
            escape((run.reason or "")[:80]),
        )
    return table


def decisions_table(runtime: LocalRuntime) -> Table:
    table = Table(title="scaler decisions", title_justify="left", box=None, header_style="bold dim")
    for column in ("time", "job", "desired", "launched", "reason"):
        table.add_column(column)
    shown = [d for d in runtime.decisions() if d.desired or d.launched or d.reason != "steady"]
    for decision in shown[-6:]:
        reason = decision.reason + (f" [red]{escape(decision.error)}[/]" if decision.error else "")
        table.add_row(_local(decision.at), decision.job, str(decision.desired), str(decision.launched), reason)
    return table


def activity_panel(runtime: LocalRuntime, lines: int = 12) -> Panel:
    entries = runtime.activity.recent(lines)
    # Each entry one line however narrow the terminal: the start names the job and what to fix.
    text = Text("\n", no_wrap=True, overflow="ellipsis").join(
        Text(e.line(), style=KIND_STYLE.get(e.kind, ""), no_wrap=True, overflow="ellipsis") for e in entries
    )
    return Panel(text, title="activity", title_align="left", border_style="dim")


def render(runtime: LocalRuntime, title: str = "taskrunner local") -> Group:
    return Group(
        header(runtime, title),
        jobs_table(runtime),
        queues_table(runtime),
        runs_table(runtime),
        decisions_table(runtime),
        activity_panel(runtime),
        Text("Ctrl-C stops. Other terminal: taskrunner --local run JOB | submit JOB -f FILE | runs", style="dim"),
    )


class LiveView:
    """Redraws :func:`render` once a second on its own thread until :meth:`stop`."""

    def __init__(self, runtime: LocalRuntime, console: Console, title: str = "taskrunner local") -> None:
        self._runtime = runtime
        self._title = title
        self._live = Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-view", daemon=True)

    def start(self) -> LiveView:
        self._live.start()
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._live.update(render(self._runtime, self._title), refresh=True)
            except Exception as exc:  # a drawing problem must not stop local mode
                self._live.update(Text(f"view error: {exc}", style="red"), refresh=True)
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._live.stop()


class LinePrinter:
    """``--no-view``: one line per activity entry (``--json``: one JSON object per line)."""

    def __init__(self, stream: IO[str], as_json: bool = False) -> None:
        self._stream = stream
        self._json = as_json
        self._lock = threading.Lock()

    def __call__(self, entry: Entry) -> None:
        line = entry.json() if self._json else entry.line()
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def wait_forever(stop: threading.Event | None = None) -> None:
    """Until Ctrl-C (KeyboardInterrupt in the main thread)."""
    while stop is None or not stop.is_set():
        time.sleep(0.5)
