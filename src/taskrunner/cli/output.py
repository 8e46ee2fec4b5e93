"""How results are printed: tables sized for the terminal (whole when piped), times, statuses, JSON lines."""

from __future__ import annotations

import io
import json
import shutil
import sys
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table

from taskrunner.domain.runs import RunStatus

STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.TIMED_OUT: "red",
    RunStatus.LAUNCH_FAILED: "red",
    RunStatus.STOPPED: "magenta",
    RunStatus.RUNNING: "cyan",
    RunStatus.PENDING: "yellow",
    RunStatus.CLAIMED: "yellow",
    RunStatus.RETRYING: "yellow",
}
#: Wider than any table: the width a table is measured at before it is printed whole.
_UNBOUNDED = 10_000


def terminal_width() -> int | None:
    """The terminal's width when stdout is one; None when it is piped or redirected (print whole)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def natural_width(renderable: RenderableType) -> int:
    return Console(width=_UNBOUNDED).measure(renderable).maximum


def show(*renderables: RenderableType, width: int | None = None) -> None:
    """Print to stdout at ``width`` (the terminal's), or, when stdout is not a terminal, each at its natural width,
    so piped output is never squeezed into 80 columns nor truncated."""
    terminal = width or terminal_width()
    for renderable in renderables:
        if terminal:
            Console(width=terminal, highlight=False).print(renderable)
            continue
        # Piped: plain text at the table's natural width, without the padding rich adds to the last column.
        capture = Console(width=max(natural_width(renderable), 1), highlight=False, file=io.StringIO())
        with capture.capture() as captured:
            capture.print(renderable)
        sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def table(**kwargs: Any) -> Table:
    """The CLI's table style: a rule under the header, no vertical lines (they cost a column each)."""
    # No padding: the box's blank divider is the one space between columns (80 columns have none to spare).
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0, header_style="bold", **kwargs)


def status_text(status: RunStatus | str | None) -> str:
    if status is None:
        return ""
    try:
        style = STATUS_STYLE.get(RunStatus(status), "dim")
    except ValueError:
        style = "dim"
    return f"[{style}]{status}[/]"


def utc(moment: datetime | None, seconds: bool = True) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%m-%d %H:%M")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``3m ago``, ``2h ago``, ``5d ago``; ``in 14h`` for a time ahead."""
    if moment is None:
        return ""
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    text = span(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"


def json_line(value: Any) -> None:
    print(json.dumps(value, default=str, separators=(",", ":")))


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
