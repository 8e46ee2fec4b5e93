"""Scheduled floors: minimum workers by schedule, for load that is predictable (office hours, a nightly batch).

Like Application Auto Scaling's scheduled actions (a cron expression that sets a minimum capacity), a floor
raises a service's minimum for a while after each time its cron expression fires; outside its windows the
service scales on its queue as usual, down to ``min_tasks``. A floor never lowers anything: ``decide()``
takes the larger of its own decision and the floor, and the floor does not enter the scale-in window, so
when a window ends the service scales in on its backlog alone.

One floor is written ``cron(EXPR)/DURATION=WORKERS``, optionally ``@TIME_ZONE`` (IANA name; UTC if absent);
several are separated by ``;``. EXPR is an EventBridge Scheduler cron expression (six fields) and DURATION
whole minutes, hours or days (``90m``, ``10h``, ``8h30m``, ``1d``). For example, 5 workers on weekdays from
08:00 to 18:00 in Berlin, and 2 on Saturday mornings::

    ScheduledFloors: "cron(0 8 ? * MON-FRI *)/10h=5@Europe/Berlin; cron(0 9 ? * SAT *)/4h=2@Europe/Berlin"

The registry entry carries them as a list of objects (``cron``, ``duration_s``, ``workers``, ``timezone``);
either form is accepted wherever a job's scaling is read (registry, simulator scenarios, local mode).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskrunner.domain.cron import CronSchedule, ScheduleError, parse_schedule

#: A window longer than this is a different minimum (``min_tasks``), not a schedule.
MAX_DURATION_S = 31 * 86_400
_FLOOR = re.compile(r"^\s*(cron\([^)]*\))\s*/\s*([0-9dhm ]+?)\s*=\s*(\d+)\s*(?:@\s*(\S+))?\s*$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


class ScheduledFloor(BaseModel):
    """At least ``workers`` tasks for ``duration_s`` after each time ``cron`` fires (in ``timezone``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str
    duration_s: int = Field(gt=0, le=MAX_DURATION_S)
    workers: int = Field(ge=1, le=5000)
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _valid_cron(self) -> ScheduledFloor:
        if self.duration_s % 60:
            raise ValueError(f"scheduled floor {self.cron}: the duration must be whole minutes")
        try:
            schedule = parse_schedule(self.cron, self.timezone)
        except ScheduleError as exc:
            raise ValueError(f"scheduled floor: {exc}") from exc
        if not isinstance(schedule, CronSchedule):
            raise ValueError(f"scheduled floor {self.cron!r}: must be a cron(...) expression")
        return self


def parse_duration(text: str) -> int:
    """``90m``, ``10h``, ``8h30m``, ``1d`` → seconds."""
    match = _DURATION.match(text.replace(" ", "").lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"duration {text!r}: write whole days, hours and minutes, e.g. 10h, 90m, 8h30m, 1d")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60


def parse_floors(value: Any) -> tuple[ScheduledFloor, ...]:
    """The compact text form (``cron(...)/10h=5@Zone; …``), a list of objects, or nothing → validated floors.

    Raises ValueError with the offending part named, so a bad parameter is one clear line in the registry's
    invalid-entry report.
    """
    if value is None or value in ("", []):
        return ()
    if isinstance(value, str):
        floors = []
        for part in (p for p in value.split(";") if p.strip()):
            match = _FLOOR.match(part)
            if match is None:
                raise ValueError(
                    f"scheduled floor {part.strip()!r}: expected cron(EXPR)/DURATION=WORKERS[@TIME_ZONE], "
                    "e.g. cron(0 8 ? * MON-FRI *)/10h=5@Europe/Berlin"
                )
            cron, duration, workers, zone = match.groups()
            floors.append(
                ScheduledFloor(
                    cron=cron, duration_s=parse_duration(duration), workers=int(workers), timezone=zone or "UTC"
                )
            )
        return tuple(floors)
    if isinstance(value, list | tuple):
        return tuple(f if isinstance(f, ScheduledFloor) else ScheduledFloor.model_validate(f) for f in value)
    raise ValueError(f"scheduled floors: expected text or a list, not {type(value).__name__}")


@functools.lru_cache(maxsize=4096)
def _active(cron: str, timezone: str, duration_s: int, minute: int) -> bool:
    schedule = parse_schedule(cron, timezone)
    now = datetime.fromtimestamp(minute * 60, UTC)
    fired = schedule.next_after(now - timedelta(seconds=duration_s))
    return fired is not None and fired <= now


def floor_at(floors: Iterable[ScheduledFloor], at: float) -> int:
    """The largest floor whose window holds ``at`` (epoch seconds); 0 outside every window.

    Cron fires on whole minutes and durations are whole minutes, so the answer changes only on a minute
    boundary: it is computed once per minute and expression (the Scaler asks every 15 s for every job).
    """
    minute = int(at // 60)
    return max((f.workers for f in floors if _active(f.cron, f.timezone, f.duration_s, minute)), default=0)
