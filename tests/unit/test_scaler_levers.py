"""The levers that make a Scaler round fit 5,000 jobs, each shown not to change what gets scaled.

Idle jobs are observed in full only every 4th round (their queue every round), states are written only when they
changed, per-message workers are counted from task events (ListTasks only to reconcile), ECS calls are paced by the
Scaler's share of each quota, and launches drain outside the round. A throttled or failed observation never lowers
capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskrunner.domain.autoscale import (
    SERVICE_MODIFY_BURST,
    Autoscaler,
    Launcher,
    phase_of,
    state_changed,
)
from taskrunner.domain.pacing import TokenBucket
from taskrunner.domain.ports import QueueDepth, ServiceCounts
from taskrunner.domain.scaling import ScalerState
from taskrunner.domain.tracking import TaskState, per_message_worker
from tests.unit.fakes import ACCOUNT, CLUSTER_ARN, STACK, FakeCluster, FakeRegistry, job_spec
from tests.unit.test_autoscale import States

T = 1_800_000_000.0


@dataclass
class Queues:
    """Depth by queue URL (0 unless set); every read recorded."""

    visible: dict[str, int] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    failing: bool = False

    def depth(self, queue_url: str) -> QueueDepth | None:
        self.reads.append(queue_url)
        if self.failing:
            return None
        return QueueDepth(self.visible.get(queue_url, 0), 0, 0)


@dataclass
class Services:
    """ECS services: counts by name; describe may fail (throttled: the batch is left out, as the adapter does)."""

    counts: dict[str, ServiceCounts] = field(default_factory=dict)
    described: list[list[str]] = field(default_factory=list)
    updates: list[tuple[str, int]] = field(default_factory=list)
    throttled: bool = False

    def describe(self, cluster: str, services: list[str]) -> dict[str, ServiceCounts]:
        assert len(services) <= 10, "DescribeServices takes at most 10 services"
        self.described.append(list(services))
        if self.throttled:
            return {}
        return {s: self.counts.get(s, ServiceCounts(0, 0, 0)) for s in services}

    def set_desired(self, cluster: str, service: str, desired: int) -> None:
        self.updates.append((service, desired))
        running, pending, _ = self.counts.get(service, ServiceCounts(0, 0, 0))
        self.counts[service] = ServiceCounts(running, pending, desired)


def service_job(name: str, **scaling: Any) -> Any:
    return job_spec(
        name=name,
        queue_mode="service",
        service=f"taskrunner-{name}",
        queue_url=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/taskrunner-{name}-WorkQueue-1",
        scaling={"max_tasks": 20, "acceptable_latency_s": 300, "msg_processing_s": 30} | scaling,
    )


def per_message_job(name: str) -> Any:
    return job_spec(
        name=name,
        queue_mode="per-message",
        queue_url=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/taskrunner-{name}-WorkQueue-1",
        scaling={"max_tasks": 50, "acceptable_latency_s": 600, "msg_processing_s": 60},
    )


@dataclass
class World:
    now: list[float]
    queues: Queues
    services: Services
    cluster: FakeCluster
    states: States
    scaler: Autoscaler

    def round(self) -> dict[str, Any]:
        results = {r.job: r for r in self.scaler.round()}
        self.now[0] += 15
        return results


def world(*specs: Any, states: States | None = None, **options: Any) -> World:
    now, queues, services, cluster = [T], Queues(), Services(), FakeCluster()
    states = states or States()
    scaler = Autoscaler(
        FakeRegistry(*specs),
        queues,
        services,
        cluster,
        states,
        stack=STACK,
        clock=lambda: now[0],
        sleep=lambda _: None,
        **options,
    )
    return World(now, queues, services, cluster, states, scaler)


# --------------------------------------------------------------------------- idle cadence


def test_an_idle_job_is_observed_in_full_every_4th_round_and_its_queue_every_round() -> None:
    """GIVEN an idle service (empty queue, desired 0) and a busy one (desired 2)
    WHEN 12 rounds run
    THEN the busy one is described every round, the idle one in 3 of them, 4 rounds apart; both queues are read
    every round."""
    idle, busy = service_job("quiet"), service_job("steady")
    w = world(idle, busy)
    w.services.counts["taskrunner-steady"] = ServiceCounts(2, 0, 2)
    w.queues.visible[busy.queue_url] = 0

    observed: dict[str, list[int]] = {"quiet": [], "steady": []}
    for i in range(12):
        for job in w.round():
            observed[job].append(i)

    assert observed["steady"] == list(range(12))
    assert len(observed["quiet"]) == 3
    assert [b - a for a, b in zip(observed["quiet"], observed["quiet"][1:], strict=False)] == [4, 4]
    assert w.queues.reads.count(idle.queue_url) == w.queues.reads.count(busy.queue_url) == 12


def test_a_first_message_on_an_idle_queue_scales_out_in_the_next_round_not_the_next_full_observation() -> None:
    """GIVEN an idle service that has just been observed in full (its next full observation 4 rounds away)
    WHEN a message arrives
    THEN the very next round observes it in full and raises desired from 0: scale-from-zero within one interval."""
    spec = service_job("quiet")
    w = world(spec)
    while "quiet" not in w.round():
        pass
    w.queues.visible[spec.queue_url] = 1

    result = w.round()["quiet"]

    assert result.decision.reason == "scale-out"
    assert w.services.updates == [("taskrunner-quiet", 1)]


def test_idle_jobs_first_seen_by_a_container_are_spread_over_the_rounds() -> None:
    """A cold container does not describe every idle service in its first round: each idle job's first full
    observation falls in the round its name's phase picks, so the work spreads evenly over 4 rounds."""
    specs = [service_job(f"job-{i:02d}") for i in range(40)]
    w = world(*specs)

    per_round = [len(w.round()) for _ in range(4)]

    assert sum(per_round) == 40
    assert max(per_round) < 40
    phases = [phase_of(s.name, 4) for s in specs]
    assert sorted(per_round, reverse=True) == sorted((phases.count(p) for p in range(4)), reverse=True)


# --------------------------------------------------------------------------- state writes


def test_an_unchanged_state_is_not_written_again() -> None:
    """GIVEN an idle service whose state was saved at its last full observation
    WHEN it is observed in full again and nothing changed (only the time)
    THEN no state write is made; a change (a backlog) is written."""
    spec = service_job("quiet")
    w = world(spec)
    while "quiet" not in w.round():
        pass
    writes = w.states.writes
    assert writes == 1

    for _ in range(8):
        w.round()
    assert w.states.writes == writes

    w.queues.visible[spec.queue_url] = 3
    w.round()
    assert w.states.writes == writes + 1


def test_state_changed_ignores_last_at_alone() -> None:
    saved = ScalerState(desired=0, last_at=100.0, last_backlog=0, last_in_flight=0)

    assert not state_changed(saved.model_dump(mode="json"), saved.model_copy(update={"last_at": 160.0}))
    assert state_changed(saved.model_dump(mode="json"), saved.model_copy(update={"desired": 1}))
    assert state_changed(None, saved)
    assert state_changed({"desired": "not a number"}, saved)


# --------------------------------------------------------------------------- throttled observation


def test_a_throttled_describe_never_lowers_a_service() -> None:
    """GIVEN a service at desired 5 with an empty queue, long past its idle time
    WHEN DescribeServices is throttled for many rounds
    THEN no UpdateService is made (the counts are unknown), and the service keeps its 5."""
    spec = service_job("steady", idle_before_zero_s=0, scale_in_window_s=0)
    w = world(spec)
    w.services.counts["taskrunner-steady"] = ServiceCounts(5, 0, 5)
    w.queues.visible[spec.queue_url] = 40
    w.round()  # seen once: desired 5, busy
    w.services.updates.clear()
    w.queues.visible[spec.queue_url] = 0
    w.services.throttled = True

    results = [w.round() for _ in range(12)]

    assert w.services.updates == []
    assert all(r["steady"].decision.desired >= 5 for r in results)
    assert all("steady" in r for r in results), "a job whose counts are unknown is looked at every round"


def test_an_unreadable_queue_or_state_holds_capacity() -> None:
    spec = service_job("steady", idle_before_zero_s=0, scale_in_window_s=0)
    w = world(spec)
    w.services.counts["taskrunner-steady"] = ServiceCounts(5, 0, 5)
    w.queues.failing = True

    for _ in range(6):
        w.round()

    assert w.services.updates == []


def test_update_service_calls_are_paced_and_scale_out_goes_first() -> None:
    """GIVEN more services to change in one round than the Scaler's UpdateService burst allows
    WHEN the round applies them
    THEN at most the burst is applied, every scale-out before any scale-in, and the rest is applied on later
    rounds (deferred, never dropped)."""
    growing = [service_job(f"grow-{i:02d}") for i in range(SERVICE_MODIFY_BURST)]
    shrinking = [service_job(f"shrink-{i:02d}", idle_before_zero_s=0, scale_in_window_s=0) for i in range(10)]
    w = world(*shrinking, *growing)
    for spec in growing:
        w.queues.visible[spec.queue_url] = 200
    for spec in shrinking:  # 3 workers for 1 message: down to 1
        w.services.counts[spec.service] = ServiceCounts(3, 0, 3)
        w.queues.visible[spec.queue_url] = 1

    first = w.round()

    assert len(w.services.updates) == SERVICE_MODIFY_BURST
    assert {s for s, _ in w.services.updates} == {spec.service for spec in growing}
    assert sum(1 for r in first.values() if r.error and "deferred" in r.error) >= 10
    for _ in range(8):
        w.round()
    assert all(w.services.counts[spec.service].desired < 3 for spec in shrinking)


def test_token_bucket_grants_the_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(4.0, 10, lambda: now[0])

    assert sum(bucket.try_take() for _ in range(20)) == 10
    now[0] += 1.0
    assert sum(bucket.try_take() for _ in range(20)) == 4
    assert bucket.reserve() == 0.25  # one token is a quarter second away
    assert bucket.wait_s(4) == 1.25


# --------------------------------------------------------------------------- worker counts from events


def stopped_event(arn: str, job: str, *, status: str = "STOPPED", stack: str = "taskrunner") -> TaskState:
    return TaskState.model_validate(
        {
            "taskArn": arn,
            "clusterArn": CLUSTER_ARN,
            "lastStatus": status,
            "startedBy": f"taskrunner-scaler-{job}",
            "group": f"taskrunner:{job}",
            "taskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{stack}-{job}:3",
        }
    )


def test_per_message_workers_are_counted_from_events_and_listed_only_to_reconcile() -> None:
    """GIVEN a per-message job with 8 messages
    WHEN the first round counts its workers (ListTasks, once), launches 8, and 5 of them stop (Tracker events)
    THEN later rounds count 3 workers without a ListTasks, launch for the backlog left, and ListTasks runs again
    only once the reconcile period has passed."""
    spec = per_message_job("transcode")
    w = world(spec, reconcile_s=300)
    w.queues.visible[spec.queue_url] = 8

    first = w.round()["transcode"]
    assert first.launched == 8
    assert [c for c in w.cluster.calls if c[0] == "active_tasks"] == [("active_tasks", "taskrunner-transcode")]

    # Each worker takes a message and exits; the Tracker sees 5 of them stop.
    arns = sorted(w.states.live["transcode"])
    for arn in arns[:5]:
        job = per_message_worker(stopped_event(arn, "transcode"), "taskrunner")
        assert job == "transcode"
        w.states.stopped(job, arn)
        w.cluster.finish(arn)
    w.queues.visible[spec.queue_url] = 3 + 4  # 3 still held by live workers' slots … and 4 new messages
    w.now[0] += 60  # past the launch grace: only the count says what runs

    second = w.round()["transcode"]

    assert second.observation.running == 3
    assert second.launched == 4
    assert len([c for c in w.cluster.calls if c[0] == "active_tasks"]) == 1, "no ListTasks within the period"

    w.now[0] += 300
    w.round()
    assert len([c for c in w.cluster.calls if c[0] == "active_tasks"]) == 2, "reconciled after the period"


def test_a_reconciliation_never_resurrects_a_worker_seen_stopping() -> None:
    """GIVEN a worker whose STOPPED event arrived while ECS still lists it
    WHEN ListTasks reconciles the count
    THEN it is not counted live; and a late "started" event cannot make it live either."""
    spec = per_message_job("transcode")
    w = world(spec, reconcile_s=0)
    w.queues.visible[spec.queue_url] = 1
    w.round()
    [arn] = w.states.live["transcode"]
    w.states.stopped("transcode", arn)  # ECS still lists it RUNNING (its desired status has not caught up)

    w.now[0] += 60
    w.queues.visible[spec.queue_url] = 0
    result = w.round()["transcode"]
    w.states.started("transcode", arn)

    assert result.observation.running == 0
    assert arn not in w.states.live["transcode"]


def test_only_the_stacks_own_per_message_workers_count() -> None:
    assert per_message_worker(stopped_event("arn:t/1", "transcode"), "taskrunner") == "transcode"
    assert per_message_worker(stopped_event("arn:t/1", "transcode", stack="other"), "taskrunner") is None
    run_task = stopped_event("arn:t/1", "transcode").model_copy(update={"started_by": "0123abcd-1"})
    assert per_message_worker(run_task, "taskrunner") is None
    foreign_group = stopped_event("arn:t/1", "transcode").model_copy(update={"group": "service:transcode"})
    assert per_message_worker(foreign_group, "taskrunner") is None


# --------------------------------------------------------------------------- launches outside the round


def test_background_launches_leave_the_round_and_jobs_at_zero_launch_first() -> None:
    """GIVEN a background launcher (not started) and two per-message jobs, one with workers and one at zero
    WHEN a round decides launches for both
    THEN the round returns without launching (queued), a job with launches queued is not decided again, and the
    launcher starts the job at zero first."""
    busy, cold = per_message_job("busy"), per_message_job("cold")
    states = States()
    w = world(busy, cold, states=states)
    w.scaler.launcher = Launcher(w.cluster, states, clock=lambda: w.now[0], sleep=lambda _: None, background=True)
    for _ in range(2):
        w.cluster.add_task(family="taskrunner-busy")
    w.queues.visible[busy.queue_url] = 30
    w.queues.visible[cold.queue_url] = 5

    results = w.round()
    assert results["busy"].queued > 0
    assert results["cold"].queued == 5
    assert not [c for c in w.cluster.calls if c[0] == "run_task"]
    assert w.round() == {}, "jobs with launches queued are not decided again meanwhile"

    done = w.scaler.launcher.run()

    first = w.cluster.requests[0]
    assert first["taskDefinition"] == "taskrunner-cold"
    assert {d.job: d.launched for d in done} == {"busy": 28, "cold": 5}
    assert w.round().keys() == {"busy", "cold"}


def test_launches_not_made_by_the_end_of_the_invocation_are_asked_for_again() -> None:
    spec = per_message_job("transcode")
    states = States()
    w = world(spec, states=states)
    w.scaler.launcher = Launcher(w.cluster, states, clock=lambda: w.now[0], sleep=lambda _: None, background=True)
    w.queues.visible[spec.queue_url] = 30
    w.round()

    done = w.scaler.launcher.finish(0)  # never started: nothing launched by the deadline

    assert [(d.launched, d.requested) for d in done] == [(0, 30)]
    w.now[0] += 60
    assert w.round()["transcode"].queued == 30


def test_a_woken_job_is_applied_during_the_depth_read_before_the_busy_jobs_are_described() -> None:
    """GIVEN an idle service already observed, and many busy ones
    WHEN a message reaches the idle one
    THEN its UpdateService comes before the round describes the busy services: its first request does not wait
    for the rest of the round (scale-from-zero within the interval, however many jobs there are)."""
    quiet = service_job("a-quiet")
    busy = [service_job(f"busy-{i:02d}") for i in range(30)]
    w = world(quiet, *busy, threads=1)
    for spec in busy:
        w.services.counts[spec.service] = ServiceCounts(2, 0, 2)
    while "a-quiet" not in w.round():
        pass
    w.queues.visible[quiet.queue_url] = 1
    calls_before = len(w.services.described)

    events: list[str] = []
    original_describe, original_set = w.services.describe, w.services.set_desired

    def describe(cluster: str, services: list[str]) -> dict[str, ServiceCounts]:
        events.append("describe:" + ",".join(services))
        return original_describe(cluster, services)

    def set_desired(cluster: str, service: str, desired: int) -> None:
        events.append(f"update:{service}")
        original_set(cluster, service, desired)

    w.services.describe = describe  # type: ignore[method-assign]
    w.services.set_desired = set_desired  # type: ignore[method-assign]

    result = w.round()["a-quiet"]

    assert result.decision.reason == "scale-out"
    assert w.scaler.stats.woken == 1
    assert events.index("update:taskrunner-a-quiet") < min(
        i for i, e in enumerate(events) if e.startswith("describe:") and "busy" in e
    )
    assert len(w.services.described) > calls_before


def test_the_tracker_records_per_message_workers_starts_and_stops_for_the_scaler() -> None:
    """GIVEN the Tracker's handler with the Scaler's state table as its worker ledger
    WHEN state changes of a per-message worker arrive (RUNNING, then STOPPED), and one of a service task
    THEN the worker is recorded live, then stopped; the service task is left alone; no run is looked for."""
    import dataclasses

    from taskrunner.handlers import tracker
    from tests.unit.fakes import FakeRegistry as Registry
    from tests.unit.fakes import tracker_handler_service

    world_ = tracker_handler_service(Registry())
    ledger = States()
    svc = dataclasses.replace(world_.service, workers=ledger)

    def event(status: str, **detail: str) -> dict[str, Any]:
        task = stopped_event("arn:aws:ecs:us-east-1:123456789012:task/taskrunner/abc", "transcode", status=status)
        body = task.model_dump(by_alias=True, mode="json") | detail
        return {"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": body}

    tracker.track(svc, event("RUNNING"))
    assert ledger.live["transcode"] == {"arn:aws:ecs:us-east-1:123456789012:task/taskrunner/abc"}
    tracker.track(svc, event("STOPPED"))
    assert ledger.live["transcode"] == set()
    assert ledger.gone["transcode"] == {"arn:aws:ecs:us-east-1:123456789012:task/taskrunner/abc"}
    tracker.track(svc, event("RUNNING", startedBy="ecs-svc/123", group="service:taskrunner-image-worker"))
    assert set(ledger.live) == {"transcode"}
