"""Scaling policies the simulator compares: ours and the three a user would otherwise pick.

Every policy is ticked every 15 s with what its real counterpart could see at that moment and
answers with a new desired count (or ``None`` to leave it). Cadences slower than 15 s (KEDA's
30 s polling, CloudWatch's 1-minute datapoints, 5-minute alarm periods) are kept inside each
policy. Baselines model their documented defaults; sources are cited next to each number.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from taskrunner.domain.floors import floor_at
from taskrunner.domain.scaling import Observation, ScalerState, ScalingSpec, decide, drain_target
from taskrunner.sim.scenario import Scenario

TICK_S = 15.0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a scaler can observe at ``now``: live SQS attributes and ECS service counts."""

    now: float
    visible: int
    in_flight: int
    delayed: int
    running: int
    pending: int
    desired: int
    # Cumulative slot-seconds busy / available on RUNNING tasks: the CPU model (a worker burns
    # CPU while it processes a message and idles while it long-polls).
    busy_slot_s: float
    capacity_slot_s: float


class Policy(ABC):
    name: ClassVar[str]
    # Whether the workers hold ECS task scale-in protection while they process a message.
    protects_busy_tasks: ClassVar[bool] = False
    # The service's desired count when the scenario starts (its minimum capacity).
    initial_desired: ClassVar[int] = 0
    # Whether the policy publishes a drain signal its workers follow (see drain_target).
    drains: ClassVar[bool] = False

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.max_tasks = scenario.max_tasks

    @abstractmethod
    def tick(self, view: ClusterView) -> int | None:
        """Called every 15 s; returns the desired count to set, or None to leave it."""

    def drain_target(self, view: ClusterView, desired: int) -> int:
        """After a tick (``drains`` policies): how many protected workers should drain."""
        return 0

    def baseline_target_per_task(self) -> int:
        """Copilot's acceptableBacklogPerTask = ceil(latency / processing time) (svc.go).

        A task with ``messages_per_task`` slots works through messages that much faster, so a
        user tuning the baseline would give it the per-slot time: mean / messages_per_task.
        """
        per_message = self.scenario.processing_s.mean / self.scenario.messages_per_task
        return max(1, math.ceil(self.scenario.acceptable_latency_s / per_message))


def _on(now: float, period: float) -> bool:
    return abs(now / period - round(now / period)) < 1e-9


class TaskrunnerPolicy(Policy):
    """taskrunner's Scaler: the real ``decide()`` on live queue numbers every 15 s."""

    name = "taskrunner"
    protects_busy_tasks = True  # taskrunner.worker holds ECS task scale-in protection per message
    drains = True  # and drains when the Scaler's drain signal names a surplus

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.spec = ScalingSpec(
            mode="service",
            max_tasks=scenario.max_tasks,
            acceptable_latency_s=scenario.acceptable_latency_s,
            msg_processing_s=scenario.processing_s.mean,
            messages_per_task=scenario.messages_per_task,
        )
        self.state = ScalerState.initial()
        self.reasons: list[str] = []

    @staticmethod
    def _observation(view: ClusterView) -> Observation:
        return Observation(
            at=view.now,
            visible=view.visible,
            in_flight=view.in_flight,
            delayed=view.delayed,
            running=view.running,
            pending=view.pending,
            desired=view.desired,
        )

    def tick(self, view: ClusterView) -> int | None:
        floor = floor_at(self.scenario.scheduled_floors, self.scenario.clock_start_s + view.now)
        decision = decide(self._observation(view), self.state, self.spec, floor=floor)
        self.state = decision.state
        self.reasons.append(decision.reason)
        return decision.desired

    def drain_target(self, view: ClusterView, desired: int) -> int:
        """What the Scaler publishes after its round: ``domain.scaling.drain_target``."""
        return drain_target(self._observation(view), desired, self.spec)


@dataclass(slots=True)
class _Datapoint:
    available_at: float
    value: float


class _TargetTracking:
    """App Auto Scaling target tracking on one metric (service-autoscaling-targettracking.html).

    AlarmHigh: 3 of 3 one-minute datapoints > target. AlarmLow: 15 of 15 < 0.9 x target
    (containers-roadmap #2113, copilot #3376). Auto Scaling alarm actions repeat every period
    while the alarm stays in ALARM (CloudWatch "Alarm actions" page). The new capacity is
    proportional: ceil(current x metric / target); from 0 it is at least 1.
    """

    def __init__(self, target: float, out_cooldown_s: float, in_cooldown_s: float) -> None:
        self.target = target
        self.out_cooldown_s = out_cooldown_s
        self.in_cooldown_s = in_cooldown_s
        self.points: deque[_Datapoint] = deque(maxlen=64)
        self.last_out = -math.inf
        self.last_in = -math.inf

    def add(self, now: float, value: float, lag_s: float = 60.0) -> None:
        # CloudWatch: a 1-minute datapoint can be alarmed on about a minute after its period.
        self.points.append(_Datapoint(now + lag_s, value))

    def evaluate(self, now: float, current: int, lo: int, hi: int) -> int | None:
        ready = [p.value for p in self.points if p.available_at <= now]
        if len(ready) >= 3 and all(v > self.target for v in ready[-3:]):
            if now - self.last_out < self.out_cooldown_s:
                return None
            new = min(hi, max(1, math.ceil(current * ready[-1] / self.target)))
            if new > current:
                self.last_out = now
                return new
            return None
        if len(ready) >= 15 and all(v < 0.9 * self.target for v in ready[-15:]):
            if now - self.last_in < self.in_cooldown_s:
                return None
            new = max(lo, math.ceil(current * ready[-1] / self.target))
            if new < current:
                self.last_in = now
                return new
        return None


class TargetTrackingPolicy(Policy):
    """AWS Copilot Worker Service (aws/copilot-cli @4c858e7).

    BacklogPerTaskCalculatorFunction runs every minute and emits ceil(visible / max(running, 1))
    (cf-custom-resources/lib/backlog-per-task-calculator.js); a target tracking policy keeps it
    at ceil(acceptable_latency / processing time) (internal/pkg/manifest/svc.go) with
    ScaleOutCooldown 60 s and ScaleInCooldown 120 s (partials/cf/autoscaling.yml). Counts
    visible messages only; Copilot's template sets no task scale-in protection. Range 0..max.
    The strict ``>`` of AlarmHigh reproduces copilot #3376: at target 1, one message at zero
    tasks never scales out (nor do fewer than target+1 messages at any target).
    """

    name = "target-tracking"

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.tracking = _TargetTracking(self.baseline_target_per_task(), out_cooldown_s=60, in_cooldown_s=120)

    def tick(self, view: ClusterView) -> int | None:
        if not _on(view.now, 60):
            return None
        self.tracking.add(view.now, math.ceil(view.visible / max(view.running, 1)))
        return self.tracking.evaluate(view.now, view.desired, 0, self.max_tasks)


class KedaPolicy(Policy):
    """KEDA ScaledObject with the aws-sqs-queue scaler, defaults (kedacore/keda @8b4f083).

    KEDA polls every 30 s (pollingInterval, withtriggers_types.go) and owns 0<->1: active when
    visible + in flight > activationQueueLength 0 (scaleOnInFlight true,
    pkg/scalers/aws_sqs_queue_scaler.go); back to 0 after cooldownPeriod 300 s without activity
    (scale_executor.go). The HPA syncs every 15 s for 1<->N: desired = ceil(metric / queueLength)
    (AverageValue), no change within tolerance 0.1, scale-up at most max(+100 %, +4 pods) per
    15 s, scale-down to the largest recommendation of the last 300 s. queueLength is set like
    Copilot's target so both baselines get the same per-task goal. The ReplicaSet picks which pods
    to remove; nothing protects busy ones (keda #157, #3674).
    """

    name = "keda"

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.queue_length = self.baseline_target_per_task()
        self.last_active = -math.inf
        self.recommendations: deque[tuple[float, int]] = deque()

    def tick(self, view: ClusterView) -> int | None:
        metric = view.visible + view.in_flight
        current = view.desired
        if _on(view.now, 30):
            if metric > 0:
                self.last_active = view.now
                if current == 0:
                    self.recommendations.clear()
                    return 1
            elif current > 0 and view.now - self.last_active >= 300:
                self.recommendations.clear()
                return 0
        if current == 0:
            return None  # the HPA does not act on a workload scaled to zero
        ratio = metric / (self.queue_length * current)
        rec = current if abs(ratio - 1.0) <= 0.1 else math.ceil(metric / self.queue_length)
        rec = max(1, min(self.max_tasks, rec))
        self.recommendations.append((view.now, rec))
        while self.recommendations and view.now - self.recommendations[0][0] >= 300:
            self.recommendations.popleft()
        if rec > current:
            return min(rec, max(2 * current, current + 4))
        return min(current, max(r for _, r in self.recommendations))


class StepPolicy(Policy):
    """CDK ``QueueProcessingFargateService`` defaults (aws/aws-cdk, aws-ecs-patterns
    lib/base/queue-processing-service-base.ts, configureAutoscalingForService).

    * Step scaling on ``metricApproximateNumberOfMessagesVisible()``, which CDK defines as the
      Maximum over 5 minutes (aws-sqs), steps {<=0: -1, >=100: +1, >=500: +5}; the StepScalingPolicy
      alarms use evaluationPeriods 1 (aws-applicationautoscaling step-scaling-policy.ts) and no
      cooldown is passed, so App Auto Scaling's default 300 s applies (StepScalingPolicyConfiguration).
    * Target tracking at 50 % ECSServiceAverageCPUUtilization (1-minute ECS metric) with the ECS
      default cooldowns of 300 s (API_TargetTrackingScalingPolicyConfiguration). CPU is modelled
      as the busy fraction of running tasks' slots.
    * min 1 (the CDK default); max = the scenario's max_tasks, because CDK's default of 2 would
      make every comparison meaningless.
    Both policies act independently on the same desired count, as they do in AWS (aws-cdk #20706).
    No task scale-in protection: scale-in kills busy tasks (aws-cdk #9242).
    """

    name = "step"
    initial_desired = 1

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        self.cpu = _TargetTracking(50.0, out_cooldown_s=300, in_cooldown_s=300)
        self.visible_max = 0
        self.step_points: deque[_Datapoint] = deque(maxlen=4)
        self.last_step_out = -math.inf
        self.last_step_in = -math.inf
        self.prev_busy = 0.0
        self.prev_capacity = 0.0

    def tick(self, view: ClusterView) -> int | None:
        self.visible_max = max(self.visible_max, view.visible)
        if not _on(view.now, 60):
            return None
        desired = view.desired
        busy = view.busy_slot_s - self.prev_busy
        capacity = view.capacity_slot_s - self.prev_capacity
        self.prev_busy, self.prev_capacity = view.busy_slot_s, view.capacity_slot_s
        if capacity > 0:  # no running task: no CPU datapoint (insufficient data, no scaling)
            self.cpu.add(view.now, 100.0 * busy / capacity)
        new = self.cpu.evaluate(view.now, desired, 1, self.max_tasks)
        if new is not None:
            desired = new
        if _on(view.now, 300):
            self.step_points.append(_Datapoint(view.now + 60, self.visible_max))
            self.visible_max = view.visible
        ready = [p.value for p in self.step_points if p.available_at <= view.now]
        if ready:
            latest = ready[-1]
            if latest >= 100 and view.now - self.last_step_out >= 300:
                step = 5 if latest >= 500 else 1
                new_desired = min(self.max_tasks, desired + step)
                if new_desired > desired:
                    desired = new_desired
                    self.last_step_out = view.now
            elif latest <= 0 and view.now - self.last_step_in >= 300:
                new_desired = max(1, desired - 1)
                if new_desired < desired:
                    desired = new_desired
                    self.last_step_in = view.now
        return desired if desired != view.desired else None


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (TaskrunnerPolicy, TargetTrackingPolicy, KedaPolicy, StepPolicy)
}
