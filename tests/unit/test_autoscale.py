"""One Scaler round with fakes: per-message launches are capped per round, and what did not start is asked for again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from taskrunner.domain.autoscale import MAX_LAUNCHES_PER_ROUND, Autoscaler
from taskrunner.domain.ports import LaunchResult, QueueDepth, ServiceCounts, StoredState
from tests.unit.fakes import STACK, FakeCluster, FakeRegistry, job_spec


@dataclass
class Depths:
    visible: int

    def depth(self, queue_url: str) -> QueueDepth:
        return QueueDepth(self.visible, 0, 0)


@dataclass
class NoServices:
    def describe(self, cluster: str, services: list[str]) -> dict[str, ServiceCounts]:
        return {}

    def set_desired(self, cluster: str, service: str, desired: int) -> None:
        raise AssertionError("per-message jobs have no service")


@dataclass
class States:
    """The Scaler's state table: states, and per-message workers kept as the adapter keeps them."""

    saved: dict[str, dict[str, Any]] = field(default_factory=dict)
    live: dict[str, set[str]] = field(default_factory=dict)
    gone: dict[str, set[str]] = field(default_factory=dict)
    counted_at: dict[str, float] = field(default_factory=dict)
    version: dict[str, int] = field(default_factory=dict)
    writes: int = 0

    def load(self, job: str) -> dict[str, Any] | None:
        return self.saved.get(job)

    def load_many(self, jobs: Sequence[str]) -> dict[str, StoredState]:
        found = {}
        for job in jobs:
            counted = self.counted_at.get(job)
            live, gone = self.live.get(job, set()), self.gone.get(job, set())
            found[job] = StoredState(
                state=self.load(job),
                workers=frozenset(live - gone) if counted is not None else None,
                counted_at=counted,
                stopped=frozenset(gone),
                version=self.version.get(job, 0),
            )
        return found

    def save(self, job: str, state: dict[str, Any]) -> None:
        self.writes += 1
        self.saved[job] = state

    def add_workers(self, job: str, task_arns: Sequence[str]) -> None:
        self.live.setdefault(job, set()).update(task_arns)

    def set_workers(self, job: str, task_arns: Sequence[str], at: float, seen: StoredState) -> bool:
        if self.version.get(job, 0) != seen.version:
            return False
        self.gone[job] = set(seen.stopped) & set(task_arns)
        self.live[job] = set(task_arns) - self.gone[job]
        self.counted_at[job] = at
        return True

    def started(self, job: str, task_arn: str) -> None:
        if task_arn not in self.gone.get(job, set()):  # seen stopping: the adapter's condition refuses it
            self.live.setdefault(job, set()).add(task_arn)
            self.version[job] = self.version.get(job, 0) + 1

    def stopped(self, job: str, task_arn: str) -> None:
        self.live.setdefault(job, set()).discard(task_arn)
        self.gone.setdefault(job, set()).add(task_arn)
        self.version[job] = self.version.get(job, 0) + 1


def per_message_scaler(visible: int, cluster: FakeCluster, now: list[float]) -> Autoscaler:
    spec = job_spec(
        name="transcode",
        task_definition="taskrunner-transcode",
        queue_mode="per-message",
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/taskrunner-TranscodeJob-1A2B-WorkQueue-3C4D",
        scaling={"max_tasks": 1000, "acceptable_latency_s": 600, "msg_processing_s": 60},
    )
    return Autoscaler(
        FakeRegistry(spec),
        Depths(visible),
        NoServices(),
        cluster,
        States(),
        stack=STACK,
        clock=lambda: now[0],
        sleep=lambda _: None,
    )


def test_a_burst_launches_at_most_the_round_cap_and_the_rest_next_round() -> None:
    """GIVEN 400 messages and no workers
    WHEN rounds run every 15 s (earlier rounds' tasks listed by ECS)
    THEN each round launches at most the cap until the backlog is covered, once, in batches of at most 10."""
    cluster, now = FakeCluster(), [1000.0]
    scaler = per_message_scaler(400, cluster, now)

    launched = []
    for _ in range(4):
        launched.append(scaler.round()[0].launched)
        now[0] += 15

    assert launched == [MAX_LAUNCHES_PER_ROUND, MAX_LAUNCHES_PER_ROUND, 400 - 2 * MAX_LAUNCHES_PER_ROUND, 0]
    assert all(request["count"] <= 10 for request in cluster.requests)


def test_tasks_that_failed_to_start_are_asked_for_again_not_remembered_as_launched() -> None:
    cluster, now = FakeCluster(), [1000.0]
    cluster.script(LaunchResult(task_arns=[], failures=[{"reason": "Capacity is unavailable"}]))
    scaler = per_message_scaler(5, cluster, now)

    first = scaler.round()[0]
    now[0] += 15
    second = scaler.round()[0]

    assert first.launched == 0
    assert first.error is not None
    assert second.launched == 5


def queue_job(name: str) -> Any:
    return job_spec(
        name=name,
        queue_mode="per-message",
        queue_url=f"https://sqs.us-east-1.amazonaws.com/123456789012/taskrunner-{name}-WorkQueue-1",
        scaling={"max_tasks": 10, "acceptable_latency_s": 60, "msg_processing_s": 10},
    )


@dataclass
class BrokenFor(States):
    """The scaler's state table failing for one job only (a throttled or corrupt item)."""

    broken: str = ""

    def load(self, job: str) -> dict[str, Any] | None:
        if job == self.broken:
            raise RuntimeError("ProvisionedThroughputExceededException")
        return super().load(job)

    def load_many(self, jobs: Sequence[str]) -> dict[str, StoredState]:
        # A batch read that could not read one key leaves it out (the adapter's UnprocessedKeys after retries).
        return super().load_many([job for job in jobs if job != self.broken])


def test_one_jobs_state_store_error_never_stops_another_jobs_scaling() -> None:
    """GIVEN two queue jobs with a backlog, the state item of the first failing
    THEN the round still launches for the second, and reports the first's error instead of raising."""
    cluster = FakeCluster()
    states = BrokenFor(broken="alpha")
    scaler = Autoscaler(
        FakeRegistry(queue_job("alpha"), queue_job("beta")),
        Depths(5),
        NoServices(),
        cluster,
        states,
        stack=STACK,
        clock=lambda: 1000.0,
        sleep=lambda _: None,
    )

    results = {r.job: r for r in scaler.round()}

    assert results["alpha"].error is not None
    assert "state not read" in results["alpha"].error
    assert results["alpha"].launched == 0
    assert results["beta"].error is None
    assert results["beta"].launched > 0
    assert {r["taskDefinition"] for r in cluster.requests} == {"taskrunner-beta"}


def test_an_invalid_registry_entry_is_reported_by_every_round_not_silently_absent() -> None:
    registry = FakeRegistry(queue_job("beta"), raw={"alpha": {"name": "alpha"}})  # no cluster, no subnets …
    scaler = Autoscaler(
        registry, Depths(0), NoServices(), FakeCluster(), States(), stack=STACK, clock=lambda: 1.0, sleep=lambda _: None
    )

    assert [r.job for r in scaler.round()] == ["beta"]
    assert set(scaler.invalid) == {"alpha"}
    assert "cluster" in scaler.invalid["alpha"]
