"""Local mode's clocks: a schedule clock that may run faster than real time, and the schedule ticker.

Only job schedules follow the sped-up clock (``--speed 3600``: an hour of schedule per real second,
so a nightly job runs every 24 s). The Scaler's 15-second observations, the Tracker's reconciliation
and the tasks themselves run in real time: a faster schedule clock exercises the schedules without
making the workers or the scaling policy lie about time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from taskrunner.local.schedules import Schedule, ScheduleError, parse_schedule

#: A schedule firing faster than this many ticks per real second is throttled (the rest are skipped, and said so).
MAX_TICKS_PER_CHECK = 50
_EPSILON = timedelta(microseconds=1)


class SimClock:
    """Wall-clock time sped up ``speed`` times, starting from the real time at construction."""

    def __init__(self, speed: float = 1.0, now: Callable[[], float] = time.time) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real = now
        self._origin = now()

    def now(self) -> datetime:
        elapsed = (self._real() - self._origin) * self.speed
        return datetime.fromtimestamp(self._origin, UTC) + timedelta(seconds=elapsed)


def scheduled_time(moment: datetime) -> str:
    """``<aws.scheduler.scheduled-time>``: ISO 8601 in UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_input(job: str, moment: datetime) -> str:
    """The Input a job's ``AWS::Scheduler::Schedule`` sends to the dispatch queue (jobs/job.yaml)."""
    return json.dumps({"job": job, "trigger": "schedule", "scheduled_at": scheduled_time(moment)})


@dataclass
class JobSchedule:
    job: str
    expression: str
    timezone: str
    schedule: Schedule | None
    error: str | None = None
    next_at: datetime | None = None
    fired: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Tick:
    job: str
    scheduled_at: datetime
    body: str


@dataclass
class Ticker:
    """Each job's next invocation on the schedule clock; :meth:`due` returns the ticks that have come."""

    clock: SimClock
    schedules: dict[str, JobSchedule] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, job: str, expression: str, timezone: str = "UTC") -> JobSchedule:
        now = self.clock.now()
        try:
            schedule = parse_schedule(expression, timezone or "UTC", start=now)
        except ScheduleError as exc:
            entry = JobSchedule(job, expression, timezone, None, error=str(exc))
        else:
            # "Strictly after" a microsecond ago: a rate schedule fires at once, as Scheduler does on creation.
            entry = JobSchedule(job, expression, timezone, schedule, next_at=schedule.next_after(now - _EPSILON))
        with self._lock:
            self.schedules[job] = entry
        return entry

    def due(self) -> list[Tick]:
        now = self.clock.now()
        ticks: list[Tick] = []
        with self._lock:
            for entry in self.schedules.values():
                fired = 0
                while entry.schedule is not None and entry.next_at is not None and entry.next_at <= now:
                    if fired < MAX_TICKS_PER_CHECK:
                        ticks.append(Tick(entry.job, entry.next_at, schedule_input(entry.job, entry.next_at)))
                        entry.fired += 1
                        fired += 1
                    else:
                        entry.skipped += 1
                    entry.next_at = entry.schedule.next_after(entry.next_at)
        return ticks

    def fire_now(self, job: str) -> Tick:
        """One invocation of ``job``'s schedule now (the demo's "fire once"), scheduled at the current minute."""
        now = self.clock.now().replace(second=0, microsecond=0)
        with self._lock:
            entry = self.schedules.get(job)
            if entry is not None:
                entry.fired += 1
        return Tick(job, now, schedule_input(job, now))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "job": e.job,
                    "expression": e.expression,
                    "timezone": e.timezone,
                    "next_at": e.next_at,
                    "fired": e.fired,
                    "skipped": e.skipped,
                    "error": e.error,
                }
                for e in self.schedules.values()
            ]


class Every:
    """A real-time interval timer: :meth:`due` is true once per ``interval_s`` (and at once after :meth:`kick`)."""

    def __init__(self, interval_s: float, *, first_after_s: float = 0.0, now: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._now = now
        self._next = now() + first_after_s
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = self._now()
            if now < self._next:
                return False
            self._next += self.interval_s
            if self._next <= now:  # late (a slow round): keep the interval from now, do not catch up
                self._next = now + self.interval_s
            return True

    def kick(self) -> None:
        """Fire at the next check, then continue every ``interval_s`` from then."""
        with self._lock:
            self._next = self._now()

    def seconds_left(self) -> float:
        with self._lock:
            return max(0.0, self._next - self._now())
