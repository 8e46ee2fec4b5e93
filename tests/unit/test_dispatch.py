"""Dispatcher: one request → at most one task, exactly once, against in-memory fakes of its ports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskrunner.domain.dispatch import CAPACITY_FAILURE, Dispatcher, Result, family_of
from taskrunner.domain.errors import LaunchRejected, PermanentError, TryLater, UnknownJob
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec
from taskrunner.domain.ports import LaunchResult
from taskrunner.domain.runs import Run, RunStatus, client_token, idempotency_key, run_id_for, started_by
from taskrunner.domain.triggers import DispatchRequest, requests_from
from tests.unit.fakes import (
    CLUSTER_ARN,
    STACK,
    ConditionFailed,
    FakeClock,
    FakeCluster,
    FakePauses,
    FakeRegistry,
    FakeRunStore,
    SimulatedCrash,
    job_spec,
    make_run,
    manual_request,
    retry_of,
    s3_event,
    s3_request,
    schedule_request,
    spec_dict,
)

LEASE_S = 120.0
SPOT_CAPACITY = {"arn": CLUSTER_ARN, "reason": "Capacity is unavailable at this time. Please try again later."}


class World:
    """A Dispatcher wired to fakes; ``dispatch`` is one Lambda invocation handling one delivery."""

    def __init__(self, *specs: JobSpec) -> None:
        self.registry = FakeRegistry(*specs) if specs else FakeRegistry(job_spec(), job_spec(name="thumbnails"))
        self.clock = FakeClock()
        self.store = FakeRunStore(clock=self.clock)
        self.cluster = FakeCluster()
        self.pauses = FakePauses()
        self.dispatcher = Dispatcher(
            self.registry, self.store, self.cluster, stack=STACK, clock=self.clock, lease_s=LEASE_S, pauses=self.pauses
        )

    def dispatch(self, request: DispatchRequest):  # type: ignore[no-untyped-def]
        return self.dispatcher.dispatch(request)

    def run(self, request: DispatchRequest) -> Run:
        run = self.store.get(run_id_for(idempotency_key(request)))
        assert run is not None
        return run


@pytest.fixture
def world() -> World:
    return World()


# --------------------------------------------------------------------------- the happy path


def test_launches_once_and_records_pending_with_the_task(world: World):
    """GIVEN a new schedule tick
    WHEN it is dispatched
    THEN RunTask is called once and the run is PENDING with the task's ARN."""
    request = schedule_request()
    outcome = world.dispatch(request)

    assert outcome.result is Result.LAUNCHED
    (call,) = world.cluster.requests
    (task,) = world.cluster.launched
    assert outcome.task_arn == task.arn
    assert outcome.run_id == run_id_for(idempotency_key(request))
    assert call["startedBy"] == started_by(outcome.run_id, 1)
    assert call["clientToken"] == client_token(outcome.run_id, 1)
    run = world.run(request)
    assert run.status is RunStatus.PENDING
    assert run.task_arn == task.arn
    assert run.lease_until is None
    assert run.detail == {"scheduled_at": "2026-11-26T05:00:00+00:00"}
    assert run.idempotency_key == idempotency_key(request)


def test_duplicate_delivery_launches_nothing(world: World):
    request = s3_request(job="thumbnails")
    first = world.dispatch(request)
    world.clock.advance(3600)
    second = world.dispatch(request)

    assert second.result is Result.DUPLICATE
    assert second.run_id == first.run_id
    assert second.reason == "PENDING"
    assert len(world.cluster.requests) == 1


def test_duplicate_of_a_finished_run_launches_nothing(world: World):
    request = manual_request()
    world.dispatch(request)
    world.store.update(world.run(request).run_id, RunStatus.SUCCEEDED, 1)

    assert world.dispatch(request).result is Result.DUPLICATE
    assert len(world.cluster.requests) == 1


def test_the_same_upload_parsed_from_three_deliveries_is_one_run(world: World):
    body = json.dumps({"job": "thumbnails", "trigger": "s3", "event": s3_event()})
    outcomes = [world.dispatch(r) for _ in range(3) for r in requests_from(body, world.registry.all)]
    assert [o.result for o in outcomes] == [Result.LAUNCHED, Result.DUPLICATE, Result.DUPLICATE]
    assert len(world.cluster.launched) == 1


def test_unknown_job_is_a_permanent_error_and_claims_nothing(world: World):
    with pytest.raises(UnknownJob, match="unknown job 'no-such-job'") as caught:
        world.dispatch(manual_request("no-such-job"))
    assert isinstance(caught.value, PermanentError)
    assert world.store.items == {}
    assert world.cluster.requests == []


def test_invalid_registry_entry_claims_nothing():
    world = World()
    world.registry.entries["broken"] = spec_dict(name="broken", capacity="EC2")
    with pytest.raises(InvalidJobSpec):
        world.dispatch(manual_request("broken"))
    assert world.store.items == {}


# --------------------------------------------------------------------------- concurrency and crashes


def test_concurrent_claim_with_a_live_lease_is_try_later(world: World):
    """GIVEN another invocation claimed the run a moment ago and is still launching
    WHEN the same event arrives again
    THEN TryLater (the message comes back after the lease), no RunTask, the claim untouched."""
    request = manual_request()
    run_id = run_id_for(idempotency_key(request))
    world.store.seed(make_run(request, run_id).model_copy(update={"lease_until": world.clock() + LEASE_S}))
    world.clock.advance(LEASE_S - 1)

    with pytest.raises(TryLater) as caught:
        world.dispatch(request)

    assert caught.value.delay_s == int(LEASE_S)
    assert run_id in caught.value.reason
    assert world.cluster.requests == []
    assert world.store.status(run_id) is RunStatus.CLAIMED


def test_lambda_died_after_run_task_redelivery_adopts_the_task():
    """GIVEN the first invocation called RunTask and died before recording PENDING (claim still CLAIMED)
    WHEN the message is redelivered after the lease expired
    THEN the task found by startedBy is adopted and recorded; RunTask is not called again."""
    world = World()
    request = schedule_request()
    world.store.crash_on_next_update = SimulatedCrash("Lambda timed out")
    with pytest.raises(SimulatedCrash):
        world.dispatch(request)
    (task,) = world.cluster.launched
    assert world.run(request).status is RunStatus.CLAIMED

    with pytest.raises(TryLater):  # redelivered too early: the lease is still live
        world.dispatch(request)

    world.clock.advance(LEASE_S + 1)
    outcome = world.dispatch(request)

    assert outcome.result is Result.ADOPTED
    assert outcome.task_arn == task.arn
    assert len(world.cluster.requests) == 1
    run = world.run(request)
    assert (run.status, run.task_arn, run.reason) == (RunStatus.PENDING, task.arn, "adopted after lost record")


def test_adoption_ignores_overlap_policy():
    """The adopted task is this run's own; Forbid must not count it as another run and skip."""
    world = World(job_spec(overlap="Forbid"))
    request = schedule_request()
    world.store.crash_on_next_update = SimulatedCrash()
    with pytest.raises(SimulatedCrash):
        world.dispatch(request)
    world.clock.advance(LEASE_S + 1)

    assert world.dispatch(request).result is Result.ADOPTED
    assert world.run(request).status is RunStatus.PENDING


def test_expired_claim_without_a_task_launches():
    """GIVEN a claim whose Lambda died before RunTask (no task has its startedBy)
    WHEN redelivered after the lease
    THEN it launches normally."""
    world = World()
    request = manual_request()
    run_id = run_id_for(idempotency_key(request))
    world.store.seed(make_run(request, run_id).model_copy(update={"lease_until": world.clock() + LEASE_S}))
    world.clock.advance(LEASE_S + 1)

    outcome = world.dispatch(request)
    assert outcome.result is Result.LAUNCHED
    assert world.run(request).status is RunStatus.PENDING


def test_claim_holds_a_lease_while_run_task_is_in_flight(world: World):
    """GIVEN the Lambda dies inside RunTask
    THEN the run stays CLAIMED with a lease of ``lease_s`` from the claim, so only its expiry frees it."""
    request = manual_request()
    world.cluster.script(SimulatedCrash("Lambda timed out in RunTask"))
    with pytest.raises(SimulatedCrash):
        world.dispatch(request)
    run = world.run(request)
    assert run.status is RunStatus.CLAIMED
    assert run.lease_until == world.clock() + LEASE_S


def test_second_invocation_during_the_first_ones_run_task_is_try_later():
    """GIVEN invocation A is inside RunTask for an event
    WHEN invocation B receives the same event at that moment (SQS redelivered it early)
    THEN B gets TryLater and launches nothing; A finishes and records its task."""
    world = World()
    request = manual_request()
    seen: list[BaseException] = []

    class Reentrant(FakeCluster):
        def run_task(self, call: dict[str, Any]) -> LaunchResult:
            if len(self.requests) == 0:
                try:
                    world.dispatch(request)
                except TryLater as exc:
                    seen.append(exc)
            return super().run_task(call)

    world.cluster = Reentrant()
    world.dispatcher.cluster = world.cluster
    outcome = world.dispatch(request)

    assert outcome.result is Result.LAUNCHED
    assert len(seen) == 1
    assert len(world.cluster.requests) == 1
    assert world.run(request).status is RunStatus.PENDING


# --------------------------------------------------------------------------- admission


def test_forbid_with_an_active_run_records_skipped():
    world = World(job_spec(overlap="Forbid"))
    world.cluster.add_task(family="taskrunner-nightly-report")
    request = schedule_request()

    outcome = world.dispatch(request)

    assert outcome.result is Result.SKIPPED
    assert outcome.reason == "overlap-forbid: 1 run(s) active"
    assert world.cluster.requests == []
    run = world.run(request)
    assert (run.status, run.reason) == (RunStatus.SKIPPED, "overlap-forbid: 1 run(s) active")


def test_forbid_only_counts_the_jobs_own_family():
    world = World(job_spec(overlap="Forbid", task_definition="taskrunner-nightly-report:4"))
    world.cluster.add_task(family="taskrunner-thumbnails")
    world.cluster.add_task(family="taskrunner-nightly-report", desired="STOPPED")
    world.cluster.add_task(family="taskrunner-nightly-report", cluster="arn:aws:ecs:us-east-1:1:cluster/other")
    assert world.dispatch(schedule_request()).result is Result.LAUNCHED


def test_missed_deadline_records_missed():
    world = World(job_spec(starting_deadline_s=60))
    request = schedule_request()
    world.clock.advance(600)

    outcome = world.dispatch(request)

    assert outcome.result is Result.MISSED
    assert outcome.reason.startswith("missed-deadline: 600s late")
    assert world.cluster.requests == []
    assert world.run(request).status is RunStatus.MISSED


def test_skipped_run_is_not_retried_by_a_redelivery():
    world = World(job_spec(overlap="Forbid"))
    world.cluster.add_task(family="taskrunner-nightly-report")
    request = schedule_request()
    world.dispatch(request)
    world.cluster.tasks.clear()

    assert world.dispatch(request).result is Result.DUPLICATE
    assert world.cluster.requests == []


def test_replace_stops_the_active_tasks_then_launches():
    world = World(job_spec(overlap="Replace"))
    old = [world.cluster.add_task(family="taskrunner-nightly-report") for _ in range(2)]
    request = schedule_request()

    outcome = world.dispatch(request)

    assert outcome.result is Result.LAUNCHED
    assert [c[0] for c in world.cluster.mutating_calls()] == ["stop_task", "stop_task", "run_task"]
    assert [arn for arn, _ in world.cluster.stopped] == old
    assert all(f"replaced by run {outcome.run_id}" in reason for _, reason in world.cluster.stopped)
    assert all(len(reason) <= 255 for _, reason in world.cluster.stopped)
    assert world.cluster.active_tasks(CLUSTER_ARN, "taskrunner-nightly-report") == [outcome.task_arn]


def test_max_concurrency_defers_and_releases_the_claim():
    """GIVEN a job at its concurrency cap
    WHEN an upload arrives
    THEN TryLater, and the claim is released so the redelivery can launch once there is room."""
    world = World(job_spec(name="thumbnails", max_concurrency=1))
    busy = world.cluster.add_task(family="taskrunner-thumbnails")
    request = s3_request(job="thumbnails")

    with pytest.raises(TryLater, match="max-concurrency: 1/1 active") as caught:
        world.dispatch(request)
    assert caught.value.delay_s == 30
    assert world.cluster.requests == []
    assert world.store.items[world.run(request).run_id]["lease_until"] == 0

    world.cluster.stop_task(CLUSTER_ARN, busy, "done")
    assert world.dispatch(request).result is Result.LAUNCHED


# --------------------------------------------------------------------------- launch failures


def test_spot_capacity_failure_falls_back_to_on_demand_with_a_distinct_token():
    world = World(job_spec(capacity="FARGATE_SPOT_WITH_FALLBACK"))
    world.cluster.script(LaunchResult(failures=[SPOT_CAPACITY]))
    request = schedule_request()

    outcome = world.dispatch(request)

    assert outcome.result is Result.LAUNCHED
    assert outcome.fallback is True
    spot, on_demand = world.cluster.requests
    assert spot["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE_SPOT"
    assert on_demand["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE"
    assert spot["clientToken"] != on_demand["clientToken"]
    assert spot["startedBy"] == on_demand["startedBy"] == started_by(outcome.run_id, 1)
    (task,) = world.cluster.launched
    assert task.capacity_provider == "FARGATE"
    assert world.run(request).status is RunStatus.PENDING
    assert world.store.items[outcome.run_id]["fallback"] is True


@pytest.mark.parametrize(
    "reason",
    [
        "Capacity is unavailable at this time. Please try again later or in a different availability zone",
        "RESOURCE:FARGATE",
        "Insufficient capacity",
    ],
)
def test_capacity_failure_without_fallback_is_try_later_and_releases_the_claim(reason):
    world = World(job_spec(capacity="FARGATE_SPOT"))
    world.cluster.script(LaunchResult(failures=[{"arn": CLUSTER_ARN, "reason": reason}]))
    request = schedule_request()

    with pytest.raises(TryLater, match="no Fargate capacity") as caught:
        world.dispatch(request)

    assert caught.value.delay_s == 60
    assert len(world.cluster.requests) == 1
    run = world.run(request)
    assert run.status is RunStatus.CLAIMED
    assert run.lease_until == 0

    outcome = world.dispatch(request)  # the redelivery, at once
    assert outcome.result is Result.LAUNCHED
    assert len(world.cluster.requests) == 2


def test_capacity_failure_on_both_spot_and_on_demand_is_try_later():
    world = World(job_spec(capacity="FARGATE_SPOT_WITH_FALLBACK"))
    world.cluster.script(LaunchResult(failures=[SPOT_CAPACITY]), LaunchResult(failures=[SPOT_CAPACITY]))
    with pytest.raises(TryLater, match="no Fargate capacity"):
        world.dispatch(schedule_request())
    assert len(world.cluster.requests) == 2
    assert world.run(schedule_request()).status is RunStatus.CLAIMED


def test_non_capacity_failure_records_launch_failed_and_is_permanent(world: World):
    world.cluster.script(LaunchResult(failures=[{"arn": CLUSTER_ARN, "reason": "MISSING", "detail": "no such family"}]))
    request = schedule_request()

    with pytest.raises(LaunchRejected, match="RunTask failed") as caught:
        world.dispatch(request)

    assert "MISSING" in str(caught.value)
    run = world.run(request)
    assert run.status is RunStatus.LAUNCH_FAILED
    assert run.reason is not None
    assert "MISSING" in run.reason
    assert "no such family" in run.reason
    assert len(world.cluster.requests) == 1


def test_launch_failed_run_is_not_relaunched_by_a_redelivery(world: World):
    world.cluster.script(LaunchResult(failures=[{"reason": "MISSING"}]))
    request = schedule_request()
    with pytest.raises(PermanentError):
        world.dispatch(request)
    assert world.dispatch(request).result is Result.DUPLICATE
    assert len(world.cluster.requests) == 1


def test_permanent_error_from_run_task_records_launch_failed(world: World):
    world.cluster.script(PermanentError("RunTask rejected: InvalidParameterException: bad subnet"))
    request = manual_request()
    with pytest.raises(PermanentError, match="bad subnet"):
        world.dispatch(request)
    run = world.run(request)
    assert run.status is RunStatus.LAUNCH_FAILED
    assert run.reason == "RunTask rejected: InvalidParameterException: bad subnet"


def test_throttled_run_task_is_try_later_and_releases_the_claim(world: World):
    world.cluster.script(TryLater("RunTask ThrottlingException after retries", delay_s=30))
    request = manual_request()

    with pytest.raises(TryLater, match="ThrottlingException"):
        world.dispatch(request)

    assert world.run(request).lease_until == 0
    assert world.dispatch(request).result is Result.LAUNCHED


def test_empty_run_task_answer_is_try_later(world: World):
    world.cluster.script(LaunchResult())
    request = manual_request()
    with pytest.raises(TryLater, match="neither a task nor a failure"):
        world.dispatch(request)
    assert world.run(request).lease_until == 0


def test_failure_classification_reads_the_reason_not_the_arn():
    """GIVEN a job named "capacity-planner" whose launch fails for a non-capacity reason
    WHEN the failure's ARN contains the word "capacity"
    THEN it is still a permanent LAUNCH_FAILED, not an endless capacity retry."""
    world = World(job_spec(name="capacity-planner", task_definition="taskrunner-capacity-planner"))
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/taskrunner-capacity-planner:3"
    world.cluster.script(LaunchResult(failures=[{"arn": arn, "reason": "MISSING"}]))
    request = manual_request("capacity-planner")

    with pytest.raises(PermanentError):
        world.dispatch(request)
    assert world.run(request).status is RunStatus.LAUNCH_FAILED


@pytest.mark.parametrize(
    ("reason", "capacity"),
    [
        ("Capacity is unavailable at this time", True),
        ("RESOURCE:MEMORY", True),
        ("Insufficient memory", True),
        ("MISSING", False),
        ("ATTRIBUTE", False),
        ("AGENT", False),
    ],
)
def test_capacity_failure_pattern(reason, capacity):
    assert bool(CAPACITY_FAILURE.search(reason)) is capacity


# --------------------------------------------------------------------------- retries


def failed_first_attempt(world: World, request: DispatchRequest) -> str:
    """Attempt 1 launches and fails; the Tracker marks attempt 2 RETRYING (what it does before re-dispatching)."""
    world.dispatch(request)
    run_id = world.run(request).run_id
    (task,) = world.cluster.launched
    world.cluster.finish(task.arn, exit_code=2)
    assert world.store.update(run_id, RunStatus.FAILED, 1, exit_code=2)
    assert world.store.update(run_id, RunStatus.RETRYING, 2, reason="attempt 1 failed (exit): exit code 2")
    return run_id


def test_retry_launches_the_next_attempt_as_its_own_task():
    """GIVEN attempt 1 of run R failed and the Tracker marked attempt 2 RETRYING
    WHEN the retry (the original request with run_id R, attempt 2) is dispatched
    THEN attempt 2 launches with its own clientToken and startedBy, recorded on the same run."""
    world = World()
    original = manual_request()
    run_id = failed_first_attempt(world, original)

    outcome = world.dispatch(retry_of(original, run_id, 2))

    assert (outcome.result, outcome.run_id) == (Result.LAUNCHED, run_id)
    first_call, retry_call = world.cluster.requests
    assert retry_call["clientToken"] == client_token(run_id, 2) != first_call["clientToken"]
    assert retry_call["startedBy"] == started_by(run_id, 2)
    env = {e["name"]: e["value"] for e in retry_call["overrides"]["containerOverrides"][0]["environment"]}
    assert (env["TASKRUNNER_RUN_ID"], env["TASKRUNNER_ATTEMPT"]) == (run_id, "2")
    run = world.run(original)
    assert (run.status, run.attempt, run.task_arn) == (RunStatus.PENDING, 2, outcome.task_arn)


def test_retry_redelivered_launches_nothing_more():
    world = World()
    original = manual_request()
    run_id = failed_first_attempt(world, original)
    world.dispatch(retry_of(original, run_id, 2))

    assert world.dispatch(retry_of(original, run_id, 2)).result is Result.DUPLICATE
    assert len(world.cluster.requests) == 2


def test_the_original_event_redelivered_during_a_retry_launches_nothing():
    world = World()
    original = s3_request()
    failed_first_attempt(world, original)

    assert world.dispatch(original).result is Result.DUPLICATE
    assert world.run(original).status is RunStatus.RETRYING
    assert len(world.cluster.requests) == 1


def test_stale_retry_of_an_earlier_attempt_launches_nothing():
    """A delayed retry for attempt 2 arriving when the run is already at attempt 3."""
    world = World()
    original = manual_request()
    run_id = failed_first_attempt(world, original)
    world.dispatch(retry_of(original, run_id, 2))
    world.store.update(run_id, RunStatus.FAILED, 2)
    world.store.update(run_id, RunStatus.RETRYING, 3)

    assert world.dispatch(retry_of(original, run_id, 2)).result is Result.DUPLICATE
    assert len(world.cluster.requests) == 2


def test_retry_of_a_run_that_does_not_exist_launches_nothing(world: World):
    outcome = world.dispatch(retry_of(manual_request(), "0123456789abcdef0123456789", 2))
    assert outcome.result is Result.DUPLICATE
    assert world.cluster.requests == []
    assert world.store.items == {}


def test_retry_crash_after_run_task_adopts_this_attempts_task_not_the_last_ones():
    """GIVEN the Lambda launching attempt 2 died after RunTask, before recording it
    WHEN the retry is redelivered after the lease
    THEN attempt 2's task (startedBy R-2) is adopted; attempt 1's stopped task (R-1) is not."""
    world = World()
    original = manual_request()
    run_id = failed_first_attempt(world, original)
    first_task = world.cluster.launched[0].arn
    world.store.crash_on_next_update = SimulatedCrash()
    with pytest.raises(SimulatedCrash):
        world.dispatch(retry_of(original, run_id, 2))
    second_task = world.cluster.launched[1].arn

    world.clock.advance(LEASE_S + 1)
    outcome = world.dispatch(retry_of(original, run_id, 2))

    assert outcome.result is Result.ADOPTED
    assert outcome.task_arn == second_task != first_task
    assert ("tasks_started_by", started_by(run_id, 2)) in world.cluster.calls
    assert len(world.cluster.requests) == 2
    assert (world.run(original).status, world.run(original).attempt) == (RunStatus.PENDING, 2)


def test_retry_of_a_forbid_tick_is_not_skipped_by_its_own_stopping_task():
    world = World(job_spec(overlap="Forbid", starting_deadline_s=60))
    original = schedule_request()
    run_id = failed_first_attempt(world, original)
    world.cluster.add_task(family="taskrunner-nightly-report")  # e.g. attempt 1 still shutting down
    world.clock.advance(3600)  # long past the tick's starting deadline

    assert world.dispatch(retry_of(original, run_id, 2)).result is Result.LAUNCHED


def test_retry_request_never_yields_an_invalid_run_task_request():
    """A retry's run id comes from the message; an oversized one must be refused as permanent, not
    become a clientToken/startedBy ECS rejects (the fake cluster checks ECS's documented limits)."""
    world = World()
    body = {"job": "nightly-report", "trigger": "manual", "request_id": "12345678", "run_id": "r" * 100, "attempt": 2}

    with pytest.raises(PermanentError, match="run_id"):
        requests_from(body, world.registry.all)  # refused at parsing: there is no request to dispatch

    assert world.cluster.requests == []
    assert world.store.items == {}


@pytest.mark.parametrize("attempt", [2, 3, 10])
def test_a_valid_retry_yields_a_run_task_request_within_ecs_limits(attempt: int):
    """The same path with a run id the store knows: one RunTask request, whose token and startedBy fit ECS."""
    world = World(job_spec(retry={"max_attempts": 10}))
    original = manual_request()
    run_id = failed_first_attempt(world, original)
    if attempt > 2:
        world.store.update(run_id, RunStatus.RETRYING, attempt, reason="attempt failed")
    body = json.loads(retry_of(original, run_id, attempt).model_dump_json(by_alias=True, exclude_defaults=True))

    for request in requests_from(body, world.registry.all):
        world.dispatch(request)

    first, retry = world.cluster.requests  # the failed first attempt's, and this retry's
    assert first["startedBy"] != retry["startedBy"] == started_by(run_id, attempt)
    assert len(retry["clientToken"]) <= 64
    assert len(retry["startedBy"]) <= 128


# --------------------------------------------------------------------------- ECS calls


def test_an_upload_to_a_job_without_a_cap_costs_no_list_tasks(world: World):
    """Burst economy: with nothing to admit against, RunTask is the only ECS call per event."""
    world.dispatch(s3_request(job="thumbnails"))
    assert [name for name, _ in world.cluster.calls] == ["run_task"]


def test_a_capped_job_lists_its_tasks_before_launching():
    world = World(job_spec(name="thumbnails", max_concurrency=5))
    world.dispatch(s3_request(job="thumbnails"))
    assert [name for name, _ in world.cluster.calls] == ["active_tasks", "run_task"]


# --------------------------------------------------------------------------- the fakes keep the store's contract


def test_store_updates_only_move_forward():
    store = FakeRunStore()
    run = make_run(manual_request())
    store.claim(run, now=0)
    assert store.update(run.run_id, RunStatus.RUNNING, 1)
    assert not store.update(run.run_id, RunStatus.PENDING, 1, task_arn="late")
    assert store.status(run.run_id) is RunStatus.RUNNING
    assert "task_arn" not in store.items[run.run_id]
    assert store.update(run.run_id, RunStatus.SUCCEEDED, 1)
    assert not store.update(run.run_id, RunStatus.FAILED, 1)
    assert store.status(run.run_id) is RunStatus.SUCCEEDED


def test_store_orders_attempts_before_states():
    store = FakeRunStore()
    run = make_run(manual_request())
    store.claim(run, now=0)
    assert store.update(run.run_id, RunStatus.FAILED, 1)
    assert store.update(run.run_id, RunStatus.RETRYING, 2)
    assert not store.update(run.run_id, RunStatus.SUCCEEDED, 1)  # a late event of attempt 1
    assert (store.status(run.run_id), store.get(run.run_id).attempt) == (RunStatus.RETRYING, 2)  # type: ignore[union-attr]


def test_store_update_of_a_missing_run_writes_nothing():
    store = FakeRunStore()
    assert not store.update("missing", RunStatus.RUNNING, 1)
    assert store.items == {}


def test_store_release_needs_a_claim():
    store = FakeRunStore()
    with pytest.raises(ConditionFailed):
        store.release("missing")
    run = make_run(manual_request())
    store.claim(run, now=0)
    store.update(run.run_id, RunStatus.PENDING, 1)
    with pytest.raises(ConditionFailed):
        store.release(run.run_id)


def test_family_of():
    assert family_of("arn:aws:ecs:us-east-1:1:task-definition/fam:3") == "fam"
    assert family_of("fam:3") == "fam"
    assert family_of("fam") == "fam"
