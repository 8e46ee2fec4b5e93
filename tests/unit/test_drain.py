"""Scale-in by drain: the rule (domain.scaling.drain_target), the Scaler publishing it, and the simulator following it.

The worker side (a surplus worker finishing its message, releasing protection and exiting) is in
tests/integration/test_worker.py; the task role's reach in tests/security/test_roles.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskrunner.domain.autoscale import Autoscaler, scaling_spec
from taskrunner.domain.ports import QueueDepth, ServiceCounts
from taskrunner.domain.scaling import Observation, ScalingSpec, drain_target
from taskrunner.sim.engine import simulate
from taskrunner.sim.scenario import load_scenario
from tests.unit.fakes import STACK, FakeCluster, FakeRegistry, job_spec
from tests.unit.test_autoscale import States

SCENARIOS = Path(__file__).resolve().parents[2] / "benchmarks" / "scenarios"


def obs(visible: int | None, in_flight: int | None, running: int | None) -> Observation:
    return Observation(at=0, visible=visible, in_flight=in_flight, delayed=0, running=running, pending=0, desired=None)


def spec(messages_per_task: int) -> ScalingSpec:
    return ScalingSpec(mode="service", messages_per_task=messages_per_task)


@pytest.mark.parametrize(
    ("observation", "desired", "m", "expected"),
    [
        (obs(visible=40, in_flight=10, running=10), 6, 1, 2),  # backlog: every running worker is busy; half of 4
        (obs(visible=40, in_flight=10, running=10), 9, 1, 1),  # at least one
        (obs(visible=40, in_flight=10, running=10), 12, 1, 0),  # no surplus
        (obs(visible=0, in_flight=10, running=10), 6, 1, 0),  # no backlog: they go idle, ECS stops them
        (obs(visible=0, in_flight=12, running=10), 3, 5, 4),  # slots: a trickle keeps every task partly busy
        (obs(visible=0, in_flight=4, running=10), 2, 5, 1),  # at most one protected task per in-flight message
        (obs(visible=None, in_flight=10, running=10), 0, 1, 0),  # a failed observation never drains
        (obs(visible=5, in_flight=10, running=None), 0, 1, 0),
    ],
)
def test_drain_target_counts_the_protected_surplus_ecs_cannot_stop(
    observation: Observation, desired: int, m: int, expected: int
) -> None:
    assert drain_target(observation, desired, spec(m)) == expected


# -- the Scaler publishes it -----------------------------------------------------------------------


@dataclass
class Depth:
    depth_now: QueueDepth

    def depth(self, queue_url: str) -> QueueDepth:
        return self.depth_now


@dataclass
class Service:
    counts: ServiceCounts
    set_to: list[int] = field(default_factory=list)

    def describe(self, cluster: str, services: list[str]) -> dict[str, ServiceCounts]:
        return dict.fromkeys(services, self.counts)

    def set_desired(self, cluster: str, service: str, desired: int) -> None:
        self.set_to.append(desired)
        self.counts = self.counts._replace(desired=desired)


@dataclass
class StatesAndDrains(States):
    """The Scaler's state table, with the drain items next to the states."""

    drains: list[tuple[str, int]] = field(default_factory=list)
    fail_drain: bool = False

    def publish_drain(self, job: str, surplus: int) -> None:
        if self.fail_drain:
            raise RuntimeError("ThrottlingException")
        self.drains.append((job, surplus))


def service_scaler(stores: StatesAndDrains, service: Service, depth: QueueDepth) -> tuple[Autoscaler, Any]:
    job = job_spec(
        name="thumbs",
        queue_mode="service",
        service=STACK.family("thumbs"),
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/taskrunner-thumbs-WorkQueue-1",
        scaling={"max_tasks": 20, "acceptable_latency_s": 3600, "msg_processing_s": 1, "messages_per_task": 5},
    )
    now = [1000.0]
    scaler = Autoscaler(
        FakeRegistry(job),
        Depth(depth),
        service,
        FakeCluster(),
        stores,
        stack=STACK,
        clock=lambda: now[0],
        sleep=lambda _: None,
        drains=stores,
    )
    return scaler, job


def test_the_scaler_publishes_the_surplus_after_lowering_the_desired_count_and_only_when_it_changes() -> None:
    """GIVEN 10 workers of 5 slots each holding one message apiece and a small backlog (far more than needed)
    WHEN the Scaler's round lowers the desired count
    THEN it publishes the job's drain surplus (the protected tasks beyond the new count), and a second round
    with the same numbers writes nothing."""
    stores, service = StatesAndDrains(), Service(ServiceCounts(running=10, pending=0, desired=10))
    scaler, job = service_scaler(stores, service, QueueDepth(visible=1, in_flight=10, delayed=0))

    (first,) = scaler.round()
    assert service.set_to
    assert service.set_to[-1] < 10
    expected = drain_target(first.observation, first.decision.desired, scaling_spec(job))
    assert expected > 0
    assert stores.drains == [("thumbs", expected)]
    assert stores.saved["thumbs"]["drain_published"] == expected

    scaler.round()
    assert stores.drains == [("thumbs", expected)], "unchanged: the workers' claims are not reset"


def test_a_failed_drain_publish_is_reported_and_retried_next_round() -> None:
    stores = StatesAndDrains(fail_drain=True)
    service = Service(ServiceCounts(running=10, pending=0, desired=10))
    scaler, _ = service_scaler(stores, service, QueueDepth(visible=1, in_flight=10, delayed=0))

    (first,) = scaler.round()
    assert first.error is not None
    assert "drain signal" in first.error
    assert stores.saved["thumbs"]["drain_published"] == 0
    stores.fail_drain = False
    scaler.round()
    assert len(stores.drains) == 1


# -- the simulator follows it ----------------------------------------------------------------------


def test_in_the_simulator_taskrunner_scales_in_by_draining_and_kills_no_one() -> None:
    """GIVEN batch5 (5 messages per task, arrivals that keep every task partly busy)
    THEN taskrunner's workers drain (some tasks exit on the signal) and no message is ever interrupted,
    while KEDA, on the same draws, kills busy workers."""
    scenario = load_scenario(SCENARIOS / "batch5.json")
    ours = simulate(scenario, "taskrunner")
    keda = simulate(scenario, "keda")
    assert ours.drained > 0
    assert ours.summary["mid_job_kills"] == 0
    assert ours.unprocessed == 0
    assert keda.summary["mid_job_kills"] > 0
