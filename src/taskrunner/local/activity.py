"""What local mode did, as short lines: the live view's activity feed, ``--no-view``'s output, the log file."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Entry:
    at: float  # epoch seconds
    kind: str  # schedule, dispatch, task, worker, scaler, tracker, run, platform, demo, error
    message: str
    job: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        stamp = datetime.fromtimestamp(self.at, UTC).astimezone().strftime("%H:%M:%S")
        job = f" {self.job}" if self.job else ""
        return f"{stamp} {self.kind:<8}{job}: {self.message}"

    def json(self) -> str:
        when = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        return json.dumps({"at": when, "kind": self.kind, "job": self.job, "message": self.message, **self.fields})


class Activity:
    def __init__(self, keep: int = 500) -> None:
        self._entries: deque[Entry] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Entry], None]] = []

    def subscribe(self, listener: Callable[[Entry], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def add(self, kind: str, message: str, job: str | None = None, **fields: Any) -> Entry:
        # One entry is one line, in the live view, with --no-view and in the log: messages quote exceptions and
        # AWS errors, which may span lines (a trace, if any, travels in fields and goes to the log file only).
        entry = Entry(time.time(), kind, " ".join(str(message).split()), job, fields)
        with self._lock:
            self._entries.append(entry)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(entry)
        return entry

    def recent(self, n: int) -> list[Entry]:
        with self._lock:
            return list(self._entries)[-n:]
