"""schedule.admit: Kubernetes CronJob semantics (startingDeadlineSeconds, concurrencyPolicy) plus a concurrency cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskrunner.domain.schedule import Action, Admission, admit, needs_active_tasks
from taskrunner.domain.triggers import DispatchRequest
from tests.unit.fakes import T0, event_request, job_spec, manual_request, retry_of, s3_request, schedule_request

TICK = datetime.fromtimestamp(T0, UTC)
ACTIVE = [
    "arn:aws:ecs:us-east-1:123456789012:task/taskrunner/aaa",
    "arn:aws:ecs:us-east-1:123456789012:task/taskrunner/bbb",
]


def at(seconds_after_tick: float) -> datetime:
    return TICK + timedelta(seconds=seconds_after_tick)


# --------------------------------------------------------------------------- starting deadline


def test_late_tick_is_skipped_as_missed():
    """GIVEN a job with a 300 s starting deadline
    WHEN its 05:00 tick is dispatched at 05:06
    THEN it is not run late: SKIP with a missed-deadline reason saying how late it was."""
    admission = admit(job_spec(starting_deadline_s=300), schedule_request(), at(360), [])
    assert admission.action is Action.SKIP
    assert admission.reason.startswith("missed-deadline")
    assert "360s late" in admission.reason
    assert "deadline 300s" in admission.reason


@pytest.mark.parametrize("delay", [0, 1, 299, 300])
def test_tick_within_the_deadline_launches(delay):
    assert admit(job_spec(starting_deadline_s=300), schedule_request(), at(delay), []).action is Action.LAUNCH


def test_without_a_deadline_any_delay_launches():
    assert admit(job_spec(), schedule_request(), at(86_400 * 3), []).action is Action.LAUNCH


def test_early_delivery_is_not_late():
    assert admit(job_spec(starting_deadline_s=1), schedule_request(), at(-30), []).action is Action.LAUNCH


@pytest.mark.parametrize("request_", [manual_request(), s3_request(), event_request()], ids=["manual", "s3", "event"])
def test_the_deadline_only_applies_to_schedule_ticks(request_: DispatchRequest):
    """Uploads, events and manual runs carry no tick time; a deadline cannot make them MISSED."""
    admission = admit(job_spec(starting_deadline_s=1), request_, at(10_000_000), [])
    assert admission.action is Action.LAUNCH


def test_deadline_is_checked_before_overlap():
    spec = job_spec(starting_deadline_s=60, overlap="Replace")
    admission = admit(spec, schedule_request(), at(120), ACTIVE)
    assert admission.action is Action.SKIP
    assert admission.reason.startswith("missed-deadline")
    assert admission.stop == ()


# --------------------------------------------------------------------------- overlap policy


@pytest.mark.parametrize("request_", [schedule_request(), manual_request()], ids=["schedule", "manual"])
def test_forbid_skips_while_a_run_is_active(request_: DispatchRequest):
    admission = admit(job_spec(overlap="Forbid"), request_, at(0), ACTIVE[:1])
    assert admission.action is Action.SKIP
    assert admission.reason == "overlap-forbid: 1 run(s) active"
    assert admission.stop == ()


def test_forbid_launches_when_nothing_is_active():
    assert admit(job_spec(overlap="Forbid"), schedule_request(), at(0), []) == Admission(Action.LAUNCH, "admitted")


@pytest.mark.parametrize("request_", [schedule_request(), manual_request()], ids=["schedule", "manual"])
def test_replace_launches_and_names_the_tasks_to_stop(request_: DispatchRequest):
    admission = admit(job_spec(overlap="Replace"), request_, at(0), ACTIVE)
    assert admission.action is Action.LAUNCH
    assert admission.stop == tuple(ACTIVE)
    assert admission.reason == "overlap-replace"


def test_replace_with_nothing_active_stops_nothing():
    admission = admit(job_spec(overlap="Replace"), schedule_request(), at(0), [])
    assert admission == Admission(Action.LAUNCH, "admitted")


def test_allow_launches_alongside_active_runs():
    admission = admit(job_spec(overlap="Allow"), schedule_request(), at(0), ACTIVE)
    assert admission == Admission(Action.LAUNCH, "admitted")


@pytest.mark.parametrize("request_", [s3_request(), event_request()], ids=["s3", "event"])
@pytest.mark.parametrize("overlap", ["Forbid", "Replace"])
def test_uploads_and_events_are_never_skipped_or_replaced(request_: DispatchRequest, overlap: str):
    """Uploads and events are data, not ticks: overlap policy does not drop them or stop other runs."""
    admission = admit(job_spec(overlap=overlap), request_, at(0), ACTIVE)
    assert admission == Admission(Action.LAUNCH, "admitted")


# --------------------------------------------------------------------------- max concurrency


@pytest.mark.parametrize(
    "request_", [schedule_request(), manual_request(), s3_request(), event_request()], ids=lambda r: str(r.trigger)
)
def test_allow_at_max_concurrency_defers(request_: DispatchRequest):
    admission = admit(job_spec(max_concurrency=2), request_, at(0), ACTIVE)
    assert admission.action is Action.DEFER
    assert admission.reason == "max-concurrency: 2/2 active"


def test_below_max_concurrency_launches():
    assert admit(job_spec(max_concurrency=3), s3_request(), at(0), ACTIVE).action is Action.LAUNCH


def test_above_max_concurrency_also_defers():
    assert admit(job_spec(max_concurrency=1), s3_request(), at(0), ACTIVE).action is Action.DEFER


@pytest.mark.parametrize("request_", [s3_request(), event_request()], ids=["s3", "event"])
def test_forbid_with_max_concurrency_defers_events_rather_than_skipping(request_: DispatchRequest):
    admission = admit(job_spec(overlap="Forbid", max_concurrency=1), request_, at(0), ACTIVE[:1])
    assert admission.action is Action.DEFER


def test_forbid_takes_precedence_over_max_concurrency_for_ticks():
    admission = admit(job_spec(overlap="Forbid", max_concurrency=1), schedule_request(), at(0), ACTIVE[:1])
    assert admission.action is Action.SKIP


def test_replace_is_not_capped_by_max_concurrency():
    """Replace stops what runs, so the cap is not exceeded once it has."""
    admission = admit(job_spec(overlap="Replace", max_concurrency=1), schedule_request(), at(0), ACTIVE)
    assert admission.action is Action.LAUNCH
    assert admission.stop == tuple(ACTIVE)


def test_no_cap_means_unlimited():
    many = [f"arn:task/{i}" for i in range(500)]
    assert admit(job_spec(), s3_request(), at(0), many).action is Action.LAUNCH


# --------------------------------------------------------------------------- retries


RUN_ID = "0123456789abcdef0123456789"


def test_a_retry_of_a_tick_is_not_missed_however_late():
    """The deadline governs when a tick starts; attempt 2 continues a run that already started in time."""
    retry = retry_of(schedule_request(), RUN_ID, 2)
    assert admit(job_spec(starting_deadline_s=60), retry, at(3600), []).action is Action.LAUNCH


@pytest.mark.parametrize("overlap", ["Forbid", "Replace"])
def test_a_retry_of_a_tick_is_not_subject_to_overlap(overlap):
    """Its own earlier attempt may still be stopping; Forbid must not skip it, Replace must not stop others."""
    admission = admit(job_spec(overlap=overlap), retry_of(manual_request(), RUN_ID, 2), at(0), ACTIVE)
    assert admission == Admission(Action.LAUNCH, "admitted")


def test_a_retry_still_waits_for_max_concurrency():
    admission = admit(job_spec(max_concurrency=2), retry_of(s3_request(), RUN_ID, 3), at(0), ACTIVE)
    assert admission.action is Action.DEFER


# --------------------------------------------------------------------------- needs_active_tasks


@pytest.mark.parametrize(
    ("spec_overrides", "request_", "needed"),
    [
        ({}, s3_request(), False),  # an upload burst with no cap: RunTask only, no ListTasks
        ({}, schedule_request(), False),  # Allow: nothing to look at
        ({"overlap": "Forbid"}, schedule_request(), True),
        ({"overlap": "Replace"}, manual_request(), True),
        ({"overlap": "Forbid"}, s3_request(), False),  # uploads ignore overlap
        ({"overlap": "Forbid"}, retry_of(schedule_request(), RUN_ID, 2), False),
        ({"max_concurrency": 3}, s3_request(), True),
        ({"max_concurrency": 3}, retry_of(schedule_request(), RUN_ID, 2), True),
    ],
)
def test_needs_active_tasks(spec_overrides, request_, needed):
    assert needs_active_tasks(job_spec(**spec_overrides), request_) is needed


@pytest.mark.parametrize(
    "request_", [schedule_request(), manual_request(), s3_request(), event_request()], ids=lambda r: str(r.trigger)
)
@pytest.mark.parametrize("overrides", [{}, {"overlap": "Forbid"}, {"overlap": "Replace"}, {"max_concurrency": 1}])
def test_skipping_list_tasks_never_changes_the_decision(request_, overrides):
    """When needs_active_tasks says no, admission with an empty list equals admission with the real one."""
    spec = job_spec(**overrides)
    if not needs_active_tasks(spec, request_):
        assert admit(spec, request_, at(0), []) == admit(spec, request_, at(0), ACTIVE)
    else:
        assert admit(spec, request_, at(0), []) != admit(spec, request_, at(0), ACTIVE)
