"""Local mode's EventBridge Scheduler expressions: next invocation times, time zones, DST, and the ticker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from taskrunner.local.clock import Every, SimClock, Ticker, schedule_input
from taskrunner.local.schedules import ScheduleError, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def next_times(expression: str, after: datetime, n: int = 3, timezone: str = "UTC") -> list[datetime]:
    schedule = parse_schedule(expression, timezone, start=after)
    found: list[datetime] = []
    moment: datetime | None = after
    while moment is not None and len(found) < n:
        moment = schedule.next_after(moment)
        if moment is not None:
            found.append(moment)
    return found


# ----------------------------------------------------------------------------------------------------- cron


def test_the_sample_nightly_report_runs_at_six_berlin_time_in_winter_and_summer():
    """GIVEN nightly-report's cron(0 6 * * ? *) in Europe/Berlin
    THEN it runs at 05:00 UTC in winter (CET) and 04:00 UTC in summer (CEST)."""
    assert next_times("cron(0 6 * * ? *)", utc(2026, 1, 15, 12, 0), 2, "Europe/Berlin") == [
        utc(2026, 1, 16, 5, 0),
        utc(2026, 1, 17, 5, 0),
    ]
    assert next_times("cron(0 6 * * ? *)", utc(2026, 7, 15, 0, 0), 1, "Europe/Berlin") == [utc(2026, 7, 15, 4, 0)]


def test_minute_steps_and_hour_lists():
    assert next_times("cron(0/15 * * * ? *)", utc(2026, 3, 2, 10, 7)) == [
        utc(2026, 3, 2, 10, 15),
        utc(2026, 3, 2, 10, 30),
        utc(2026, 3, 2, 10, 45),
    ]
    assert next_times("cron(5 8,12,18 * * ? *)", utc(2026, 3, 2, 12, 5)) == [
        utc(2026, 3, 2, 18, 5),
        utc(2026, 3, 3, 8, 5),
        utc(2026, 3, 3, 12, 5),
    ]
    assert next_times("cron(10-30/10 9 * * ? *)", utc(2026, 3, 2, 0, 0)) == [
        utc(2026, 3, 2, 9, 10),
        utc(2026, 3, 2, 9, 20),
        utc(2026, 3, 2, 9, 30),
    ]


def test_weekdays_by_name_skip_the_weekend():
    """2026-01-16 is a Friday: after its 09:00 the next weekday run is Monday the 19th."""
    assert next_times("cron(0 9 ? * MON-FRI *)", utc(2026, 1, 16, 10, 0), 2) == [
        utc(2026, 1, 19, 9, 0),
        utc(2026, 1, 20, 9, 0),
    ]
    # 1-7 is SUN-SAT: 1 is Sunday.
    assert next_times("cron(0 9 ? * 1 *)", utc(2026, 1, 16, 10, 0), 1) == [utc(2026, 1, 18, 9, 0)]


def test_month_names_and_day_of_month():
    assert next_times("cron(0 8 1 JAN,JUL ? *)", utc(2026, 2, 1, 0, 0), 2) == [
        utc(2026, 7, 1, 8, 0),
        utc(2027, 1, 1, 8, 0),
    ]


def test_last_day_and_last_weekday_of_the_month():
    assert next_times("cron(0 0 L * ? *)", utc(2028, 2, 1, 0, 0), 2) == [utc(2028, 2, 29, 0, 0), utc(2028, 3, 31, 0, 0)]
    # 2026-05-31 is a Sunday: the last weekday of May 2026 is Friday the 29th.
    assert next_times("cron(0 0 LW * ? *)", utc(2026, 5, 1, 0, 0), 1) == [utc(2026, 5, 29, 0, 0)]


def test_nearest_weekday_stays_in_its_month():
    # 2026-08-15 is a Saturday → Friday the 14th; 2026-08-01 is a Saturday → Monday the 3rd (not July 31st).
    assert next_times("cron(0 9 15W * ? *)", utc(2026, 8, 1, 0, 0), 1) == [utc(2026, 8, 14, 9, 0)]
    assert next_times("cron(0 9 1W * ? *)", utc(2026, 7, 31, 0, 0), 1) == [utc(2026, 8, 3, 9, 0)]


def test_last_and_nth_weekday_of_the_month():
    # Last Friday of January 2026 is the 30th; first Monday of February 2026 is the 2nd.
    assert next_times("cron(15 10 ? * 6L *)", utc(2026, 1, 1, 0, 0), 2) == [
        utc(2026, 1, 30, 10, 15),
        utc(2026, 2, 27, 10, 15),
    ]
    assert next_times("cron(0 12 ? * 2#1 *)", utc(2026, 1, 10, 0, 0), 2) == [
        utc(2026, 2, 2, 12, 0),
        utc(2026, 3, 2, 12, 0),
    ]


def test_year_field_ends_the_schedule():
    assert next_times("cron(0 0 1 1 ? 2027-2028)", utc(2026, 6, 1, 0, 0), 5) == [
        utc(2027, 1, 1, 0, 0),
        utc(2028, 1, 1, 0, 0),
    ]


def test_a_time_skipped_by_spring_forward_is_skipped():
    """GIVEN 02:30 daily in Europe/Berlin, where 2026-03-29 jumps from 02:00 to 03:00
    THEN there is no run on the 29th (Scheduler skips a non-existent time)."""
    assert next_times("cron(30 2 * * ? *)", utc(2026, 3, 28, 12, 0), 2, "Europe/Berlin") == [
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_a_time_repeated_by_fall_back_runs_once():
    """GIVEN 02:30 daily in Europe/Berlin, where 2026-10-25 passes 02:30 twice
    THEN it runs once that day, at the first 02:30 (CEST), and next at 02:30 CET on the 26th."""
    assert next_times("cron(30 2 * * ? *)", utc(2026, 10, 24, 12, 0), 2, "Europe/Berlin") == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_other_time_zones():
    assert next_times("cron(0 9 * * ? *)", utc(2026, 1, 15, 0, 0), 1, "America/New_York") == [utc(2026, 1, 15, 14, 0)]
    assert next_times("cron(0 9 * * ? *)", utc(2026, 1, 15, 0, 0), 1, "Asia/Kolkata") == [utc(2026, 1, 15, 3, 30)]


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 6 * * * *)",  # neither day field is "?"
        "cron(0 6 ? * ? *)",  # both are
        "cron(0 6 * * ?)",  # five fields
        "cron(60 6 * * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 6 32 * ? *)",
        "cron(0 6 ? * 8 *)",
        "cron(0 6 ? * FOO *)",
        "cron(0/0 6 * * ? *)",
        "cron(0 6 ? * 2#6 *)",
        "rate(0 minutes)",
        "rate(5 weeks)",
        "every 5 minutes",
        "at(2026-13-01T00:00:00)",
    ],
)
def test_expressions_scheduler_rejects_are_rejected(expression: str):
    with pytest.raises(ScheduleError):
        parse_schedule(expression)


def test_unknown_time_zone_is_rejected():
    with pytest.raises(ScheduleError, match="time zone"):
        parse_schedule("cron(0 6 * * ? *)", "Mars/Olympus_Mons")


# ---------------------------------------------------------------------------------------------- rate and at


def test_rate_starts_at_once_then_keeps_its_interval():
    start = utc(2026, 3, 2, 10, 0, 20)
    schedule = parse_schedule("rate(5 minutes)", start=start)
    assert schedule.next_after(start - timedelta(microseconds=1)) == start
    assert schedule.next_after(start) == start + timedelta(minutes=5)
    assert schedule.next_after(start + timedelta(minutes=7)) == start + timedelta(minutes=10)
    assert parse_schedule("rate(1 hour)", start=start).next_after(start) == start + timedelta(hours=1)


def test_a_rate_in_days_is_24_hours_across_dst():
    start = utc(2026, 3, 28, 12, 0)
    schedule = parse_schedule("rate(1 day)", "Europe/Berlin", start=start)
    assert schedule.next_after(start) == utc(2026, 3, 29, 12, 0)


def test_at_runs_once_at_its_local_time():
    schedule = parse_schedule("at(2026-12-24T18:00:00)", "Europe/Berlin")
    assert schedule.next_after(utc(2026, 12, 1, 0, 0)) == utc(2026, 12, 24, 17, 0)
    assert schedule.next_after(utc(2026, 12, 24, 17, 0)) is None


# ------------------------------------------------------------------------------------------------ the ticker


class FakeTime:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_a_sped_up_clock_fires_a_daily_schedule_every_24_real_seconds():
    """GIVEN --speed 3600 (an hour per second) and a daily 06:00 schedule
    WHEN 49 real seconds pass
    THEN it has fired twice, with the Input the real schedule sends."""
    real = FakeTime(utc(2026, 1, 15, 6, 30).timestamp())
    ticker = Ticker(SimClock(3600, now=real))
    ticker.add("nightly-report", "cron(0 6 * * ? *)", "UTC")
    ticks = []
    for _ in range(49):
        real.now += 1
        ticks += ticker.due()
    assert [t.scheduled_at for t in ticks] == [utc(2026, 1, 16, 6, 0), utc(2026, 1, 17, 6, 0)]
    assert json.loads(ticks[0].body) == {
        "job": "nightly-report",
        "trigger": "schedule",
        "scheduled_at": "2026-01-16T06:00:00Z",
    }


def test_an_invalid_expression_is_reported_not_fired():
    ticker = Ticker(SimClock(1, now=FakeTime(0.0)))
    entry = ticker.add("broken", "cron(0 6 * * * *)")
    assert entry.error is not None
    assert ticker.due() == []


def test_too_many_ticks_at_once_are_skipped_and_counted():
    real = FakeTime(utc(2026, 1, 15, 0, 0).timestamp())
    ticker = Ticker(SimClock(3600, now=real))
    ticker.add("busy", "rate(1 minute)")
    real.now += 2  # two simulated hours: 121 invocations due
    ticks = ticker.due()
    [entry] = ticker.snapshot()
    assert len(ticks) == 50
    assert entry["skipped"] == 71


def test_schedule_input_is_scheduler_time_format():
    assert json.loads(schedule_input("j", utc(2026, 1, 2, 3, 4, 5))) == {
        "job": "j",
        "trigger": "schedule",
        "scheduled_at": "2026-01-02T03:04:05Z",
    }


def test_every_fires_once_per_interval_and_on_kick():
    clock = FakeTime(100.0)
    timer = Every(15, first_after_s=1, now=clock)
    assert not timer.due()
    clock.now = 101
    assert timer.due()
    assert not timer.due()
    clock.now = 116
    assert timer.due()
    timer.kick()
    assert timer.due()
    clock.now = 200  # late: no catching up
    assert timer.due()
    assert not timer.due()
