"""Discrete-event simulation of one SQS queue, one Fargate service and one scaling policy.

Model (same for every policy; only the scaler and the protection flag differ):

* Queue: messages are visible (FIFO), in flight (held by a task slot) or orphaned in flight (their
  task was stopped: they stay invisible until the visibility timeout has run out, then reappear).
  No message is delayed. Workers extend the visibility timeout while they work (a heartbeat),
  so a slow message is never received twice; only stopping its task makes it reappear.
* Tasks: a launch request starts billing; the task is RUNNING after a start latency drawn
  uniformly from ``start_latency_s`` (the k-th launch gets the k-th draw, whatever the policy).
  A RUNNING task has ``messages_per_task`` slots and receives a visible message as soon as a slot
  is free (long polling). Billing runs to the stop, at least ``billing_minimum_s``.
* Service: ECS launches tasks up to the desired count and stops the surplus when it is lowered.
  ECS chooses victims to keep Availability Zones balanced, not by what a task is doing
  (update-service-parameters.html, "When the service scheduler stops running tasks"): with the
  AZs symmetric here that is a uniformly random choice. Tasks holding ECS task scale-in
  protection are skipped (task-scale-in-protection-endpoint.html); taskrunner's worker holds it
  while it has a message, so for taskrunner only idle or still-pending tasks are eligible and a
  protected surplus task is stopped as soon as it goes idle. Baselines have no protection: a
  victim holding messages is a mid-job kill.
* Drain (policies that publish one: taskrunner): after each tick the Scaler's
  ``domain.scaling.drain_target`` is the job's drain signal (rewritten, with its claims reset, only
  when the number changes). A worker reads it at a message boundary, at most every
  ``DRAIN_CHECK_S`` (its cached copy otherwise); when it shows unclaimed surplus the worker claims
  one atomically, takes no more messages, and exits once what it holds is done: the same steps, in
  the same order, as ``taskrunner.worker``'s drain. An exit that leaves fewer tasks than desired
  makes ECS launch a replacement (a wasted start, never a kill).
* The run lasts ``duration_s`` and then drains (no more arrivals) until nothing is queued or in
  flight, for at most ``drain_limit`` more seconds; messages still waiting then count with the
  wait they had so far (a lower bound).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from taskrunner.domain.scaling import DRAIN_CHECK_S
from taskrunner.sim.policies import POLICIES, TICK_S, ClusterView, Policy
from taskrunner.sim.scenario import Scenario, generate_arrivals, generate_processing

RESULT_KEYS = (
    "scenario",
    "policy",
    "messages",
    "p50_wait_s",
    "p95_wait_s",
    "p99_wait_s",
    "max_backlog",
    "billed_task_s",
    "work_s",
    "cost_ratio",
    "mid_job_kills",
    "scale_actions",
    "first_launch_after_s",
)

_TICK, _READY, _DONE, _REAPPEAR, _END_CHECK = range(5)
_PENDING, _RUNNING, _STOPPED = range(3)


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    backlog: int
    in_flight: int
    running: int
    pending: int
    desired: int


@dataclass(slots=True)
class SimResult:
    summary: dict[str, Any]
    series: list[Sample]
    completed: int
    started: int
    unprocessed: int
    launches: int
    end_s: float
    reasons: list[str] = field(default_factory=list)
    drained: int = 0  # tasks that drained (finished what they held and exited on the drain signal)


def drain_limit_s(scenario: Scenario) -> float:
    return max(3600.0, 4 * scenario.acceptable_latency_s + 10 * scenario.processing_s.mean)


def run(scenario: Scenario, policy_name: str) -> dict[str, Any]:
    """One policy on one scenario: the JSON object of ``simulate --json`` (docs/scenarios.md)."""
    return simulate(scenario, policy_name).summary


def simulate(
    scenario: Scenario,
    policy: str | type[Policy],
    arrivals: list[float] | None = None,
    processing: list[float] | None = None,
) -> SimResult:
    """Run one policy (a name or a Policy class); pass ``arrivals``/``processing`` to reuse the
    draws across policies."""
    if isinstance(policy, str):
        try:
            policy_cls = POLICIES[policy]
        except KeyError:
            raise ValueError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}") from None
    else:
        policy_cls = policy
    arr = arrivals if arrivals is not None else generate_arrivals(scenario)
    proc = processing if processing is not None else generate_processing(scenario, len(arr))
    return _Simulation(scenario, policy_cls(scenario), arr, proc).run()


class _Simulation:
    def __init__(self, scenario: Scenario, policy: Policy, arrivals: list[float], proc: list[float]) -> None:
        self.sc = scenario
        self.policy = policy
        self.protect = policy.protects_busy_tasks
        self.drains = policy.drains
        self.arr = arrivals
        self.proc = proc
        self.m = scenario.messages_per_task
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        self.start_rng = random.Random(f"{scenario.seed}/start-latency")
        self.victim_rng = random.Random(f"{scenario.seed}/victims/{policy.name}")
        # queue
        self.visible: deque[int] = deque()
        self.orphans = 0
        self.waits = [0.0] * len(arrivals)
        self.done = bytearray(len(arrivals))
        # tasks
        self.t_launch: list[float] = []
        self.t_stop: list[float] = []
        self.state: list[int] = []
        self.busy: list[int] = []
        self.held: list[list[int]] = []
        self.pending: set[int] = set()
        self.running: set[int] = set()
        self.free: list[int] = []  # one entry per free slot of a running task (stale ones skipped)
        self.busy_total = 0
        self.desired = 0
        # drain: the job's signal (surplus, claimed) and each worker's cached read of it
        self.drain_surplus = 0
        self.drain_claimed = 0
        self.draining: list[bool] = []
        self.drain_read_at: list[float] = []
        self.drain_cached: list[int] = []
        self.drained = 0
        # CPU model integrals
        self.last_t = 0.0
        self.busy_slot_s = 0.0
        self.capacity_slot_s = 0.0
        # metrics
        self.max_backlog = 0
        self.kills = 0
        self.scale_actions = 0
        self.completed = 0
        self.started = 0
        self.zero_since: float | None = None
        self.cold_starts: list[float] = []
        self.series: list[Sample] = []

    # -- events ---------------------------------------------------------------------------------
    def push(self, t: float, kind: int, a: int = 0, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def start(self, t: float, task: int, msg: int) -> None:
        self.waits[msg] = t - self.arr[msg]
        self.busy[task] += 1
        self.busy_total += 1
        self.held[task].append(msg)
        self.started += 1
        self.push(t + self.proc[msg], _DONE, task, msg)

    def dispatch(self, t: float) -> None:
        visible, free, state = self.visible, self.free, self.state
        draining = self.draining
        while visible and free:
            task = free.pop()
            if state[task] == _RUNNING and not draining[task]:
                self.start(t, task, visible.popleft())

    def launch(self, t: float, count: int) -> None:
        lo, hi = self.sc.start_latency_s.min, self.sc.start_latency_s.max
        for _ in range(count):
            task = len(self.t_launch)
            self.t_launch.append(t)
            self.t_stop.append(-1.0)
            self.state.append(_PENDING)
            self.busy.append(0)
            self.held.append([])
            self.draining.append(False)
            self.drain_read_at.append(-math.inf)
            self.drain_cached.append(0)
            self.pending.add(task)
            self.push(t + self.start_rng.uniform(lo, hi), _READY, task)
        if count and self.zero_since is not None:
            self.cold_starts.append(t - self.zero_since)
            self.zero_since = None

    def stop(self, t: float, task: int) -> None:
        if self.state[task] == _PENDING:
            self.pending.discard(task)
        elif self.state[task] == _RUNNING:
            self.running.discard(task)
            self.busy_total -= self.busy[task]
            held = self.held[task]
            if held:
                self.kills += 1
                reappear = t + self.sc.visibility_timeout_s
                for msg in held:
                    self.orphans += 1
                    self.push(reappear, _REAPPEAR, msg)
                self.held[task] = []
            self.busy[task] = 0
        self.state[task] = _STOPPED
        self.t_stop[task] = t

    def alive(self) -> int:
        return len(self.pending) + len(self.running)

    def reconcile(self, t: float) -> None:
        alive = self.alive()
        if alive < self.desired:
            self.launch(t, self.desired - alive)
        elif alive > self.desired:
            if self.protect:
                candidates = sorted(self.pending) + sorted(x for x in self.running if self.busy[x] == 0)
            else:
                candidates = sorted(self.pending | self.running)
            count = min(alive - self.desired, len(candidates))
            for task in self.victim_rng.sample(candidates, count):
                self.stop(t, task)

    def claims_drain(self, t: float, task: int) -> bool:
        """The worker's check at a message boundary (``taskrunner.worker`` ``_Drain.claim``)."""
        if t - self.drain_read_at[task] >= DRAIN_CHECK_S:
            self.drain_read_at[task] = t
            self.drain_cached[task] = self.drain_surplus - self.drain_claimed
        if self.drain_cached[task] <= 0:
            return False
        if self.drain_claimed < self.drain_surplus:  # the conditional update
            self.drain_claimed += 1
            return True
        self.drain_cached[task] = 0
        return False

    def drain_exit(self, t: float, task: int) -> None:
        self.drained += 1
        self.stop(t, task)
        self.reconcile(t)  # ECS replaces it if that left fewer tasks than desired

    def went_idle(self, t: float, task: int) -> None:
        # A protected surplus task is stopped once its protection is released (it went idle).
        if self.protect and self.alive() > self.desired:
            self.stop(t, task)

    def integrate(self, t: float) -> None:
        dt = t - self.last_t
        if dt > 0:
            self.busy_slot_s += self.busy_total * dt
            self.capacity_slot_s += len(self.running) * self.m * dt
            self.last_t = t

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> SimResult:
        arr, heap = self.arr, self.heap
        n = len(arr)
        duration = self.sc.duration_s
        hard_end = duration + drain_limit_s(self.sc)
        self.push(0.0, _TICK, 0)
        self.push(duration, _END_CHECK)
        self.desired = self.policy.initial_desired
        self.reconcile(0.0)
        i = 0
        end_t = hard_end
        while True:
            if i < n and (not heap or arr[i] <= heap[0][0]):
                self.on_arrival(arr[i], i)
                i += 1
                continue
            t, _, kind, a, b = heapq.heappop(heap)
            if t > hard_end:
                break
            self.integrate(t)
            if kind == _DONE:
                self.on_done(t, a, b)
            elif kind == _READY:
                self.on_ready(t, a)
            elif kind == _REAPPEAR:
                self.orphans -= 1
                self.enqueue(t, a)
            elif kind == _TICK:
                self.on_tick(t)
                self.push(t + TICK_S, _TICK, a + 1)
            if t >= duration and i >= n and not self.visible and not self.orphans and not self.busy_total:
                end_t = t
                break
        return self.finish(end_t)

    def enqueue(self, t: float, msg: int) -> None:
        self.visible.append(msg)
        self.max_backlog = max(self.max_backlog, len(self.visible))
        self.dispatch(t)

    def on_arrival(self, t: float, msg: int) -> None:
        self.integrate(t)
        if self.zero_since is None and not self.pending and not self.running:
            self.zero_since = t
        self.enqueue(t, msg)

    def on_done(self, t: float, task: int, msg: int) -> None:
        if self.state[task] != _RUNNING:
            return  # its task was stopped: the message was orphaned then
        self.held[task].remove(msg)
        self.busy[task] -= 1
        self.busy_total -= 1
        self.done[msg] = 1
        self.completed += 1
        if self.draining[task] or (self.drains and self.claims_drain(t, task)):
            self.draining[task] = True
            if self.busy[task] == 0:
                self.drain_exit(t, task)
            return
        if self.visible:
            self.start(t, task, self.visible.popleft())
            return
        self.free.append(task)
        if self.busy[task] == 0:
            self.went_idle(t, task)

    def on_ready(self, t: float, task: int) -> None:
        if self.state[task] != _PENDING:
            return  # stopped while it was starting
        self.pending.discard(task)
        self.running.add(task)
        self.state[task] = _RUNNING
        self.free.extend([task] * self.m)
        self.dispatch(t)
        if self.busy[task] == 0:
            self.went_idle(t, task)

    def on_tick(self, t: float) -> None:
        in_flight = self.busy_total + self.orphans
        self.series.append(Sample(t, len(self.visible), in_flight, len(self.running), len(self.pending), self.desired))
        view = ClusterView(
            now=t,
            visible=len(self.visible),
            in_flight=in_flight,
            delayed=0,
            running=len(self.running),
            pending=len(self.pending),
            desired=self.desired,
            busy_slot_s=self.busy_slot_s,
            capacity_slot_s=self.capacity_slot_s,
        )
        new = self.policy.tick(view)
        if new is not None:
            new = max(0, min(self.sc.max_tasks, new))
            if new != self.desired:
                self.desired = new
                self.scale_actions += 1
                self.reconcile(t)
        if self.drains:
            target = self.policy.drain_target(view, self.desired)
            if target != self.drain_surplus:
                self.drain_surplus, self.drain_claimed = target, 0

    def finish(self, end_t: float) -> SimResult:
        sc = self.sc
        billed = 0.0
        for launched, stopped in zip(self.t_launch, self.t_stop, strict=True):
            billed += max((stopped if stopped >= 0 else end_t) - launched, sc.billing_minimum_s)
        processing_now = {msg for task in self.running for msg in self.held[task]}
        waits: list[float] = []
        unprocessed = 0
        for msg, arrived in enumerate(self.arr):
            if self.done[msg] or msg in processing_now:
                waits.append(self.waits[msg])
            else:
                unprocessed += 1
                waits.append(end_t - arrived)
        waits.sort()
        work = math.fsum(self.proc) / self.m
        cold = list(self.cold_starts)
        if self.zero_since is not None:
            cold.append(end_t - self.zero_since)
        summary: dict[str, Any] = {
            "scenario": sc.name,
            "policy": self.policy.name,
            "messages": len(self.arr),
            "p50_wait_s": _r1(_percentile(waits, 0.50)),
            "p95_wait_s": _r1(_percentile(waits, 0.95)),
            "p99_wait_s": _r1(_percentile(waits, 0.99)),
            "max_backlog": self.max_backlog,
            "billed_task_s": _r1(billed),
            "work_s": _r1(work),
            "cost_ratio": round(billed / work, 3) if work > 0 else 0.0,
            "mid_job_kills": self.kills,
            "scale_actions": self.scale_actions,
            "first_launch_after_s": _r1(max(cold, default=0.0)),
        }
        reasons = getattr(self.policy, "reasons", [])
        return SimResult(
            summary=summary,
            series=self.series,
            completed=self.completed,
            started=self.started,
            unprocessed=unprocessed,
            launches=len(self.t_launch),
            end_s=end_t,
            reasons=list(reasons),
            drained=self.drained,
        )


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _r1(x: float) -> float:
    return round(x + 0.0, 1)
