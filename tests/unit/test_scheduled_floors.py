"""Scheduled floors: minimum workers by schedule (cron + duration + count + time zone), parsed and validated in the
domain, applied by decide() as a last step, and used by the Scaler's round and the simulator."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from taskrunner.domain.floors import ScheduledFloor, floor_at, parse_duration, parse_floors
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec
from taskrunner.domain.scaling import Observation, ScalerState, ScalingSpec, decide
from taskrunner.sim.engine import simulate
from taskrunner.sim.scenario import parse_scenario
from tests.unit.fakes import spec_dict

OFFICE = "cron(0 8 ? * MON-FRI *)/10h=5@Europe/Berlin"
BERLIN = ZoneInfo("Europe/Berlin")


def at(year: int, month: int, day: int, hour: int, minute: int = 0, zone: ZoneInfo = BERLIN) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=zone).timestamp()


# --------------------------------------------------------------------------- the form


def test_the_compact_form_parses_into_floors() -> None:
    [office, saturday] = parse_floors(f"{OFFICE}; cron(0 9 ? * SAT *)/4h30m=2")

    assert office == ScheduledFloor(
        cron="cron(0 8 ? * MON-FRI *)", duration_s=36_000, workers=5, timezone="Europe/Berlin"
    )
    assert saturday.timezone == "UTC"
    assert saturday.duration_s == 4 * 3600 + 1800


def test_a_list_of_objects_and_nothing_parse_too() -> None:
    listed = [{"cron": "cron(0 8 ? * MON-FRI *)", "duration_s": 36_000, "workers": 5, "timezone": "Europe/Berlin"}]

    assert parse_floors(listed) == parse_floors(OFFICE)
    assert parse_floors("") == ()
    assert parse_floors(None) == ()
    assert parse_floors(" ; ") == ()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("cron(0 8 ? * MON-FRI *)=5", "expected cron(EXPR)/DURATION=WORKERS"),
        ("cron(0 8 * * MON-FRI *)/10h=5", "exactly one of day-of-month and day-of-week"),
        ("cron(0 8 ? * MON-FRI *)/10x=5", "expected cron(EXPR)/DURATION=WORKERS"),
        ("cron(0 8 ? * MON-FRI *)/0m=5", "greater than 0"),
        ("cron(0 8 ? * MON-FRI *)/40d=5", "less than or equal"),
        ("cron(0 8 ? * MON-FRI *)/10h=0", "greater than or equal to 1"),
        ("cron(0 8 ? * MON-FRI *)/10h=5@Mars/Olympus", "Mars/Olympus"),
        ("rate(1 hour)/10h=5", "expected cron(EXPR)/DURATION=WORKERS"),
    ],
)
def test_an_invalid_floor_is_one_clear_error(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_floors(text)


def test_durations_are_whole_minutes() -> None:
    assert parse_duration("90m") == 5400
    assert parse_duration("1d") == 86_400
    with pytest.raises(ValueError, match="whole days, hours and minutes"):
        parse_duration("10s")
    with pytest.raises(ValueError, match="whole minutes"):
        ScheduledFloor(cron="cron(0 8 ? * MON-FRI *)", duration_s=90, workers=1)


def test_the_registry_entry_carries_and_validates_them() -> None:
    entry = spec_dict(
        name="image-worker",
        queue_mode="service",
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/taskrunner-ImageWorker-1-WorkQueue-2",
        service="taskrunner-image-worker",
        scaling={"max_tasks": 20, "scheduled_floors": OFFICE},
    )

    spec = JobSpec.parse(entry)

    assert spec.scaling.scheduled_floors == parse_floors(OFFICE)
    with pytest.raises(InvalidJobSpec, match="exceeds max_tasks"):
        JobSpec.parse(entry | {"scaling": {"max_tasks": 3, "scheduled_floors": OFFICE}})
    with pytest.raises(InvalidJobSpec, match="scheduled floor"):
        JobSpec.parse(entry | {"scaling": {"scheduled_floors": "cron(0 8 ? * MON-FRI *)/10h"}})


# --------------------------------------------------------------------------- when a floor holds


def test_the_floor_holds_on_weekdays_from_8_to_18_in_its_time_zone() -> None:
    floors = parse_floors(OFFICE)

    assert floor_at(floors, at(2026, 12, 7, 8)) == 5  # Monday 08:00 Berlin
    assert floor_at(floors, at(2026, 12, 7, 17, 59)) == 5
    assert floor_at(floors, at(2026, 12, 7, 18)) == 0  # the window ends at 18:00
    assert floor_at(floors, at(2026, 12, 7, 7, 59)) == 0
    assert floor_at(floors, at(2026, 12, 5, 12)) == 0  # Saturday
    assert floor_at(floors, at(2026, 12, 7, 7, zone=ZoneInfo("UTC"))) == 5  # 08:00 in Berlin (UTC+1 in winter)
    assert floor_at(floors, at(2026, 7, 6, 6, zone=ZoneInfo("UTC"))) == 5  # 08:00 in Berlin (UTC+2 in summer)
    assert floor_at(floors, at(2026, 7, 6, 5, 59, zone=ZoneInfo("UTC"))) == 0


def test_overlapping_floors_take_the_largest() -> None:
    floors = parse_floors(f"{OFFICE}; cron(0 11 ? * MON *)/1h=8@Europe/Berlin")

    assert floor_at(floors, at(2026, 12, 7, 11, 30)) == 8
    assert floor_at(floors, at(2026, 12, 7, 12, 30)) == 5
    assert floor_at((), at(2026, 12, 7, 11, 30)) == 0


def test_a_window_that_crosses_midnight_holds_after_it() -> None:
    floors = parse_floors("cron(0 22 ? * FRI *)/6h=3")

    assert floor_at(floors, datetime(2026, 12, 5, 3, 59, tzinfo=UTC).timestamp()) == 3  # Saturday 03:59
    assert floor_at(floors, datetime(2026, 12, 5, 4, 0, tzinfo=UTC).timestamp()) == 0


# --------------------------------------------------------------------------- decide() with a floor


SPEC = ScalingSpec(mode="service", max_tasks=20, acceptable_latency_s=300, msg_processing_s=30)


def observe(now: float, *, visible: int = 0, desired: int = 0) -> Observation:
    return Observation(at=now, visible=visible, in_flight=0, delayed=0, running=desired, pending=0, desired=desired)


def test_an_idle_service_is_raised_to_its_floor() -> None:
    decision = decide(observe(1000.0), ScalerState.initial(), SPEC, floor=5)

    assert decision.desired == 5
    assert decision.reason == "scheduled-floor"
    assert decision.state.desired == 5


def test_a_floor_never_lowers_and_stays_within_max_tasks() -> None:
    busy = decide(observe(1000.0, visible=400, desired=12), ScalerState.initial(), SPEC, floor=5)
    capped = decide(observe(1000.0), ScalerState.initial(), SPEC, floor=50)

    assert busy.desired == decide(observe(1000.0, visible=400, desired=12), ScalerState.initial(), SPEC).desired
    assert busy.desired > 5
    assert capped.desired == SPEC.max_tasks


def test_when_the_window_ends_the_service_scales_in_on_its_queue_alone() -> None:
    """GIVEN a service held at a floor of 5 with an empty queue for an hour
    WHEN the floor's window ends
    THEN the floor's 5 is not in the scale-in window: it goes to zero after idle_before_zero_s, as without a floor."""
    state, now = ScalerState.initial(), 1000.0
    for _ in range(240):
        decision = decide(observe(now, desired=state.desired or 0), state, SPEC, floor=5)
        state, now = decision.state, now + 15
    assert decision.desired == 5
    assert all(rec == 0 for _, rec in state.recommendations)

    history = []
    for _ in range(20):
        decision = decide(observe(now, desired=state.desired or 0), state, SPEC)
        state, now = decision.state, now + 15
        history.append(decision.desired)

    assert history[-1] == 0
    assert max(history) <= 5


def test_per_message_mode_ignores_floors() -> None:
    spec = ScalingSpec(mode="per-message", max_tasks=20)
    obs = Observation(at=1.0, visible=0, in_flight=0, delayed=0, running=0, pending=0)

    assert decide(obs, ScalerState.initial(), spec, floor=5).launch == 0


# --------------------------------------------------------------------------- the simulator


def test_the_simulator_holds_the_floor_through_its_window() -> None:
    scenario = parse_scenario(
        {
            "name": "floor",
            "duration_s": 3 * 3600,
            "seed": 1,
            "arrivals": [{"from_s": 0, "to_s": 3 * 3600, "rate_per_s": 0.05}],
            "processing_s": {"mean": 10, "cv": 0.0},
            "acceptable_latency_s": 300,
            "max_tasks": 20,
            # t = 0 is 00:00 UTC: 6 workers from 01:00 to 02:00.
            "scheduled_floors": "cron(0 1 * * ? *)/1h=6",
        }
    )

    result = simulate(scenario, "taskrunner")

    inside = [s.desired for s in result.series if 3600 + 15 <= s.t < 7200]
    after = [s.desired for s in result.series if s.t >= 7200 + 600]
    assert inside
    assert min(inside) >= 6
    assert max(after) < 6
    assert "scheduled-floor" in result.reasons
