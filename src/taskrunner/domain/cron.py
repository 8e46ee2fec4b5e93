"""EventBridge Scheduler expressions, evaluated locally: ``rate(...)``, ``cron(...)`` and ``at(...)``.

moto's CloudFormation skips ``AWS::Scheduler::Schedule``, so local mode fires each job's schedule
itself. This module answers one question per expression: when is the next invocation after a given
instant? It follows EventBridge Scheduler's documented semantics:

* ``cron(minutes hours day-of-month month day-of-week year)``, evaluated in the schedule's time
  zone. Exactly one of day-of-month and day-of-week is ``?``. Fields take ``*``, lists (``,``),
  ranges (``-``, month and day names too) and steps (``/``); day-of-month also ``L`` (last day),
  ``LW`` (last weekday) and ``15W`` (weekday nearest the 15th); day-of-week ``1-7`` = ``SUN-SAT``,
  ``6L`` (last Friday of the month) and ``2#1`` (first Monday).
* Daylight saving time: a local time that does not exist (the hour skipped in spring) is skipped;
  a local time that occurs twice (autumn) runs once, at its first occurrence.
* ``rate(value unit)``: units minute(s), hour(s), day(s); a day is 24 hours, whatever the time
  zone. Without a start date, Scheduler invokes at once and then every interval: the first
  invocation is at ``start``.
* ``at(yyyy-mm-ddThh:mm:ss)``: once, at that wall-clock time in the schedule's time zone.

Invocations are whole minutes (Scheduler's precision without a flexible time window).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["AtSchedule", "CronSchedule", "RateSchedule", "Schedule", "ScheduleError", "parse_schedule"]

#: How far ahead a cron expression is searched (a 29 February on a given weekday recurs within 28 years).
_SEARCH_DAYS = 366 * 30
_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS = {name.upper(): i for name, i in _MONTHS.items()}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_AT = re.compile(r"^at\(\s*(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


class ScheduleError(ValueError):
    """An expression EventBridge Scheduler would reject (or that this evaluator does not support)."""


class Schedule(Protocol):
    @property
    def expression(self) -> str: ...

    def next_after(self, after: datetime) -> datetime | None:
        """The first invocation strictly after ``after`` (aware), in UTC; None when there is none."""
        ...


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("give an aware datetime")
    return moment.astimezone(UTC)


def parse_schedule(expression: str, timezone: str = "UTC", start: datetime | None = None) -> Schedule:
    """Parse ``expression`` as EventBridge Scheduler does. ``start``: a rate schedule's first invocation."""
    text = expression.strip()
    zone = _zone(timezone)
    if match := _RATE.match(text):
        value, unit = int(match.group(1)), match.group(2).removesuffix("s")
        if value < 1:
            raise ScheduleError(f"{expression}: the rate must be a positive integer")
        return RateSchedule(text, timedelta(seconds=value * _UNIT_SECONDS[unit]), _aware(start or datetime.now(UTC)))
    if match := _AT.match(text):
        try:
            local = datetime.fromisoformat(match.group(1))
        except ValueError as exc:
            raise ScheduleError(f"{expression}: {exc}") from exc
        return AtSchedule(text, local.replace(tzinfo=zone).astimezone(UTC))
    if match := _CRON.match(text):
        return CronSchedule.parse(text, match.group(1), zone)
    raise ScheduleError(f"{expression!r}: expected rate(value unit), cron(fields) or at(yyyy-mm-ddThh:mm:ss)")


@dataclass(frozen=True)
class RateSchedule:
    expression: str
    interval: timedelta
    start: datetime

    def next_after(self, after: datetime) -> datetime | None:
        after = _aware(after)
        if after < self.start:
            return self.start
        periods = (after - self.start) // self.interval + 1
        return self.start + periods * self.interval


@dataclass(frozen=True)
class AtSchedule:
    expression: str
    when: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.when if _aware(after) < self.when else None


# ------------------------------------------------------------------------------------------------------------ cron


def _number(token: str, names: dict[str, int], field: str) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise ScheduleError(f"{field}: {token!r} is not a number{' or a name' if names else ''}")
    return int(token)


def _values(spec: str, low: int, high: int, field: str, names: dict[str, int] | None = None) -> frozenset[int]:
    """``*``, ``a``, ``a-b``, ``*/n``, ``a/n``, ``a-b/n`` and comma-separated lists of them."""
    names = names or {}
    found: set[int] = set()
    for part in spec.split(","):
        if not part:
            raise ScheduleError(f"{field}: empty list item in {spec!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"{field}: invalid step in {part!r}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, names, field), _number(b, names, field)
        else:
            first = _number(base, names, field)
            last = high if step_text else first
        if not (low <= first <= high and low <= last <= high):
            raise ScheduleError(f"{field}: {part!r} is outside {low}-{high}")
        if first <= last:
            found.update(range(first, last + 1, step))
        else:  # a range that wraps (FRI-MON, NOV-FEB), as EventBridge allows
            span = list(range(first, high + 1)) + list(range(low, last + 1))
            found.update(span[::step])
    return frozenset(found)


@dataclass(frozen=True)
class _DayOfMonth:
    days: frozenset[int] = frozenset()
    last: bool = False  # L
    last_weekday: bool = False  # LW
    nearest_weekday: int | None = None  # 15W

    def matches(self, day: date) -> bool:
        length = calendar.monthrange(day.year, day.month)[1]
        if self.last:
            return day.day == length
        if self.last_weekday:
            return day == _nearest_weekday(day.replace(day=length))
        if self.nearest_weekday is not None:
            target = min(self.nearest_weekday, length)
            return day == _nearest_weekday(day.replace(day=target))
        return day.day in self.days


def _nearest_weekday(target: date) -> date:
    """Quartz ``W``: the weekday nearest ``target`` without leaving its month."""
    weekday = target.weekday()  # Monday 0 .. Sunday 6
    if weekday < 5:
        return target
    length = calendar.monthrange(target.year, target.month)[1]
    if weekday == 5:  # Saturday → Friday, unless that leaves the month
        return target - timedelta(days=1) if target.day > 1 else target + timedelta(days=2)
    # Sunday → Monday, unless that leaves the month
    return target + timedelta(days=1) if target.day < length else target - timedelta(days=2)


def _aws_weekday(day: date) -> int:
    """1 = Sunday .. 7 = Saturday."""
    return (day.weekday() + 1) % 7 + 1


@dataclass(frozen=True)
class _DayOfWeek:
    days: frozenset[int] = frozenset()
    last_of_month: int | None = None  # 6L: the month's last Friday
    nth: tuple[int, int] | None = None  # 2#1: (Monday, first)

    def matches(self, day: date) -> bool:
        weekday = _aws_weekday(day)
        if self.last_of_month is not None:
            length = calendar.monthrange(day.year, day.month)[1]
            return weekday == self.last_of_month and day.day + 7 > length
        if self.nth is not None:
            wanted, n = self.nth
            return weekday == wanted and (day.day - 1) // 7 + 1 == n
        return weekday in self.days


def _day_of_month(spec: str) -> _DayOfMonth:
    upper = spec.upper()
    if upper == "L":
        return _DayOfMonth(last=True)
    if upper == "LW":
        return _DayOfMonth(last_weekday=True)
    if upper.endswith("W"):
        day = upper[:-1]
        if not day.isdigit() or not 1 <= int(day) <= 31:
            raise ScheduleError(f"day-of-month: invalid {spec!r}")
        return _DayOfMonth(nearest_weekday=int(day))
    return _DayOfMonth(days=_values(spec, 1, 31, "day-of-month"))


def _day_of_week(spec: str) -> _DayOfWeek:
    upper = spec.upper()
    if upper == "L":
        return _DayOfWeek(days=frozenset({7}))  # Quartz: L alone is the last day of the week, Saturday
    if upper.endswith("L"):
        return _DayOfWeek(last_of_month=_number(upper[:-1], _DAYS, "day-of-week"))
    if "#" in upper:
        day, _, nth = upper.partition("#")
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise ScheduleError(f"day-of-week: invalid {spec!r} (# takes 1-5)")
        weekday = _number(day, _DAYS, "day-of-week")
        if not 1 <= weekday <= 7:
            raise ScheduleError(f"day-of-week: {spec!r} is outside 1-7")
        return _DayOfWeek(nth=(weekday, int(nth)))
    return _DayOfWeek(days=_values(spec, 1, 7, "day-of-week", _DAYS))


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    zone: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    years: frozenset[int]
    day_of_month: _DayOfMonth | None  # None: "?"
    day_of_week: _DayOfWeek | None

    @classmethod
    def parse(cls, expression: str, fields_text: str, zone: ZoneInfo) -> CronSchedule:
        fields = fields_text.split()
        if len(fields) != 6:
            raise ScheduleError(
                f"{expression}: a cron expression has six fields (minutes hours day-of-month month day-of-week year)"
            )
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise ScheduleError(f"{expression}: exactly one of day-of-month and day-of-week must be '?'")
        return cls(
            expression=expression,
            zone=zone,
            minutes=tuple(sorted(_values(minute, 0, 59, "minutes"))),
            hours=tuple(sorted(_values(hour, 0, 23, "hours"))),
            months=_values(month, 1, 12, "month", _MONTHS),
            years=_values(year, 1970, 2199, "year"),
            day_of_month=None if dom == "?" else _day_of_month(dom),
            day_of_week=None if dow == "?" else _day_of_week(dow),
        )

    def _day_matches(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.day_of_month is not None:
            return self.day_of_month.matches(day)
        assert self.day_of_week is not None
        return self.day_of_week.matches(day)

    def next_after(self, after: datetime) -> datetime | None:
        after = _aware(after)
        local_start = after.astimezone(self.zone).replace(tzinfo=None)
        day = local_start.date()
        for _ in range(_SEARCH_DAYS):
            if day.year > max(self.years):
                return None
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        found = self._resolve(datetime(day.year, day.month, day.day, hour, minute), after)
                        if found is not None:
                            return found
            day += timedelta(days=1)
        return None

    def _resolve(self, local: datetime, after: datetime) -> datetime | None:
        """The UTC instant of a local wall-clock time, if it exists and is after ``after``."""
        instant = local.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) != local:
            return None  # skipped by a spring-forward transition
        return instant if instant > after else None
