"""One observation round of the Scaler: observe every queue job, decide, apply.

Observations are live (GetQueueAttributes and DescribeServices, not CloudWatch). ``decide()`` is the
pure function the simulator also runs. A failed observation becomes missing data, which never
lowers capacity; a failed apply is reported and retried on the next round.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from taskrunner.domain.dispatch import family_of
from taskrunner.domain.errors import PermanentError, TryLater
from taskrunner.domain.jobs import JobSpec, QueueMode
from taskrunner.domain.launch import MAX_TASKS_PER_CALL, worker_task_request
from taskrunner.domain.ports import Cluster, Depths, Drains, Registry, ServiceCounts, Services, StateStore
from taskrunner.domain.scaling import (
    Decision,
    Observation,
    ScalerState,
    ScalingSpec,
    after_launch,
    decide,
    drain_target,
)
from taskrunner.domain.trust import StackBounds, registry_problems

#: ECS's RunTask limit is 20 calls/s and Fargate launches refill at 20 tasks/s: pace launches under both.
LAUNCHES_PER_S = 20.0
#: At most this many launches per round (7.5 s of pacing), so one job's burst cannot stall every other
#: job's observation past the round; the rest is asked for again on the next round.
MAX_LAUNCHES_PER_ROUND = 150


@dataclass(frozen=True)
class JobRound:
    job: str
    observation: Observation
    decision: Decision
    applied: bool
    launched: int = 0
    error: str | None = None


def scaling_spec(spec: JobSpec) -> ScalingSpec:
    mode = "service" if spec.queue_mode is QueueMode.SERVICE else "per-message"
    return ScalingSpec(mode=mode, **spec.scaling.model_dump())


class Autoscaler:
    def __init__(
        self,
        registry: Registry,
        depths: Depths,
        services: Services,
        cluster: Cluster,
        states: StateStore,
        *,
        stack: StackBounds,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        drains: Drains | None = None,
    ) -> None:
        self.stack = stack
        #: Where service jobs' drain signals go (None: no drain published, e.g. workers without one).
        self.drains = drains
        #: Registry entries left out of the last round, with why (invalid, or naming what the stack did not deploy).
        self.invalid: dict[str, str] = {}
        self.registry = registry
        self.depths = depths
        self.services = services
        self.cluster = cluster
        self.states = states
        self.clock = clock
        self.sleep = sleep

    def round(self) -> list[JobRound]:
        self.invalid = dict(self.registry.invalid())
        jobs = []
        for spec in self.registry.all():
            if problems := registry_problems(spec, self.stack):
                # Trusted only for what the stack could have written: a tampered entry scales nothing.
                self.invalid[spec.name] = "; ".join(problems)
            elif spec.queue_mode is not QueueMode.NONE:
                jobs.append(spec)
        counts = self._describe_services(jobs)
        return [self._scale_isolated(spec, counts.get((spec.cluster, spec.service or ""))) for spec in jobs]

    def _scale_isolated(self, spec: JobSpec, counts: ServiceCounts | None) -> JobRound:
        """One job's round; whatever fails in it (its state, its queue) fails it alone, never the others."""
        try:
            return self._scale(spec, counts)
        except Exception as exc:  # one job's failure must not stop the others' scaling
            nothing = Observation(
                at=self.clock(), visible=None, in_flight=None, delayed=None, running=None, pending=None
            )
            held = Decision(
                desired=counts.desired if counts else 0, launch=0, reason="error", state=ScalerState.initial()
            )
            return JobRound(spec.name, nothing, held, applied=False, error=f"{type(exc).__name__}: {exc}")

    def _describe_services(self, jobs: list[JobSpec]) -> dict[tuple[str, str], ServiceCounts]:
        by_cluster: dict[str, list[str]] = defaultdict(list)
        for spec in jobs:
            if spec.queue_mode is QueueMode.SERVICE and spec.service:
                by_cluster[spec.cluster].append(spec.service)
        found: dict[tuple[str, str], ServiceCounts] = {}
        for cluster, names in by_cluster.items():
            found |= {(cluster, name): c for name, c in self.services.describe(cluster, names).items()}
        return found

    def _observe(self, spec: JobSpec, counts: ServiceCounts | None) -> Observation:
        depth = self.depths.depth(spec.queue_url or "")
        running = pending = desired = None
        if spec.queue_mode is QueueMode.SERVICE:
            if counts is not None:
                running, pending, desired = counts
        else:
            with contextlib.suppress(TryLater):  # unknown, not zero: decide() holds capacity
                running, pending = len(self.cluster.active_tasks(spec.cluster, family_of(spec.task_definition))), 0
        return Observation(
            at=self.clock(),
            visible=depth.visible if depth else None,
            in_flight=depth.in_flight if depth else None,
            delayed=depth.delayed if depth else None,
            running=running,
            pending=pending,
            desired=desired,
        )

    def _scale(self, spec: JobSpec, counts: ServiceCounts | None) -> JobRound:
        observation = self._observe(spec, counts)
        saved = self.states.load(spec.name)
        state = ScalerState.model_validate(saved) if saved else ScalerState.initial()
        sspec = scaling_spec(spec)
        decision = decide(observation, state, sspec)
        applied, launched, error = False, 0, None
        try:
            if spec.queue_mode is QueueMode.SERVICE:
                if observation.desired is not None and decision.desired != observation.desired:
                    self.services.set_desired(spec.cluster, spec.service or "", decision.desired)
                    applied = True
            elif decision.launch > 0:
                launched, error = self._launch(spec, min(decision.launch, MAX_LAUNCHES_PER_ROUND), observation.at)
                applied = launched > 0
        except (TryLater, PermanentError) as exc:
            error = str(exc)
        except Exception as exc:  # one job's failure must not stop the others' scaling
            error = f"{type(exc).__name__}: {exc}"
        if error is None and spec.queue_mode is QueueMode.SERVICE:
            decision, error = self._publish_drain(spec.name, observation, decision, sspec)
        self.states.save(spec.name, after_launch(decision, launched).model_dump(mode="json"))
        return JobRound(spec.name, observation, decision, applied, launched, error)

    def _publish_drain(
        self, job: str, observation: Observation, decision: Decision, spec: ScalingSpec
    ) -> tuple[Decision, str | None]:
        """After the desired count is applied: how many busy workers drain, written only when it changed."""
        if self.drains is None:
            return decision, None
        surplus = drain_target(observation, decision.desired, spec)
        if surplus == decision.state.drain_published:
            return decision, None
        try:
            self.drains.publish_drain(job, surplus)
        except Exception as exc:  # the next round publishes it again; no drain meanwhile is safe
            return decision, f"drain signal: {type(exc).__name__}: {exc}"
        state = decision.state.model_copy(update={"drain_published": surplus})
        return decision.model_copy(update={"state": state}), None

    def _launch(self, spec: JobSpec, count: int, at: float) -> tuple[int, str | None]:
        """Tasks started, and why it stopped short if it did (the count is kept either way)."""
        launched = 0
        for call, start in enumerate(range(0, count, MAX_TASKS_PER_CALL)):
            n = min(MAX_TASKS_PER_CALL, count - start)
            # Same round, same call → same token: a retried invocation does not launch the batch twice.
            token = hashlib.sha256(f"{spec.name}|{at:.0f}|{call}".encode()).hexdigest()[:40]
            try:
                result = self.cluster.run_task(worker_task_request(spec, n, f"scale-{token}"))
            except (TryLater, PermanentError) as exc:
                return launched, str(exc)
            launched += len(result.task_arns)
            if result.failures:
                return launched, f"RunTask failures: {result.failures[:3]}"
            self.sleep(n / LAUNCHES_PER_S)
        return launched, None
