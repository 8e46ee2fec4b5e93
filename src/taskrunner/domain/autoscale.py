"""One observation round of the Scaler: observe the queue jobs that are due, decide, apply.

Observations are live (GetQueueAttributes and DescribeServices, not CloudWatch). ``decide()`` is the
pure function the simulator also runs. A failed observation becomes missing data, which never
lowers capacity; a failed or deferred apply is reported and asked for again on the next round.

What a round costs, so that 5,000 queue jobs fit ECS's account-wide quotas (docs/scaler-capacity.md):

* Every queue's depth is read every round (GetQueueAttributes, concurrently): a first message on an idle
  queue is seen within one interval, so scale-from-zero asks for its first task within 15 s.
* A job is *busy* when its queue holds messages or it has (or should have) workers; busy jobs are observed
  in full every round. *Idle* jobs (empty queue, no workers) are observed in full every ``idle_every``-th
  round only, staggered by a hash of their name, because their full observation (DescribeServices, the state
  read) can only confirm that nothing changed.
* Services are described 10 a call; states are read 100 a call (BatchGetItem) and written only when they
  changed (``last_at`` alone is no change: the rate estimate is the same over the longer interval).
* Per-message workers are counted from the ECS task state-change events the Tracker records (the Scaler adds
  the tasks it launches), not with a ListTasks per job per round; ListTasks reconciles each job's count every
  ``reconcile_s``.
* Each ECS call class is paced by a token bucket at a share of its quota, leaving the rest to the Dispatcher,
  the Tracker and deploys. Scale-out is applied before scale-in when UpdateService tokens are short.
* Launches go to a :class:`Launcher`, paced at the Scaler's share of Fargate's launch rate. In the Lambda it
  drains in a thread while the next round observes, so a burst never delays observation.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from taskrunner.domain.dispatch import family_of
from taskrunner.domain.errors import PermanentError, TryLater
from taskrunner.domain.floors import floor_at
from taskrunner.domain.jobs import JobSpec, QueueMode
from taskrunner.domain.launch import MAX_TASKS_PER_CALL, worker_task_request
from taskrunner.domain.pacing import TokenBucket
from taskrunner.domain.ports import (
    Cluster,
    Depths,
    Drains,
    QueueDepth,
    Registry,
    ServiceCounts,
    Services,
    StateStore,
    StoredState,
)
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

#: The Scaler's share of Fargate's task-launch bucket (20 tasks/s sustained, 100 burst, shared with the
#: Dispatcher): half, so one-off runs still launch at 10/s while a per-message burst drains.
LAUNCHES_PER_S = 10.0
LAUNCH_BURST = 20
#: At most this many launches per job and round (one interval of the launch share); the rest is asked for
#: again on the next round.
MAX_LAUNCHES_PER_ROUND = 150
#: ECS "service read" (DescribeServices): 20/s sustained, 100 burst. The Scaler's share.
SERVICE_READS_PER_S, SERVICE_READ_BURST = 15.0, 30
#: ECS "service modify" (UpdateService): 5/s sustained, 50 burst. The Scaler's share (deploys need the rest).
SERVICE_MODIFIES_PER_S, SERVICE_MODIFY_BURST = 4.0, 40
#: ECS "cluster resource read" (ListTasks, DescribeTasks): 20/s sustained, 100 burst, shared with the
#: Dispatcher's overlap checks and the Tracker's reconciliation. The Scaler reconciles worker counts only.
CLUSTER_READS_PER_S, CLUSTER_READ_BURST = 5.0, 20

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class JobRound:
    job: str
    observation: Observation
    decision: Decision
    applied: bool
    launched: int = 0
    error: str | None = None
    #: Tasks handed to the background launcher this round (launched after the round returns).
    queued: int = 0


@dataclass
class RoundStats:
    """What one round looked at: the jobs observed in full, those whose queue alone was read, and why."""

    jobs: int = 0
    observed: int = 0
    queue_only: int = 0
    launching: int = 0
    deferred_updates: int = 0
    reconciled: int = 0
    states_written: int = 0
    #: Idle jobs whose first message was acted on at once, within the depth read.
    woken: int = 0


def scaling_spec(spec: JobSpec, interval_s: float = 15.0) -> ScalingSpec:
    mode = "service" if spec.queue_mode is QueueMode.SERVICE else "per-message"
    return ScalingSpec(mode=mode, evaluation_interval_s=interval_s, **spec.scaling.model_dump())


def phase_of(job: str, slots: int) -> int:
    """A stable slot in 0..slots-1 for a job, so idle jobs' full observations spread evenly over the rounds."""
    return int(hashlib.sha256(job.encode()).hexdigest()[:8], 16) % max(1, slots)


def state_changed(saved: dict[str, Any] | None, new: ScalerState) -> bool:
    """Whether the new state must be written: anything but ``last_at`` differs (or nothing was saved)."""
    if saved is None:
        return True
    try:
        old = ScalerState.model_validate(saved)
    except ValueError:
        return True
    return old.model_copy(update={"last_at": new.last_at}) != new


@dataclass
class _Known:
    busy: bool
    observed_at: float


@dataclass(order=True)
class _Call:
    """One RunTask call of a launch order (≤ 10 tasks); scale-from-zero jobs first, then in order."""

    priority: tuple[int, int]
    order: _Order = field(compare=False)
    index: int = field(compare=False)
    count: int = field(compare=False)


@dataclass
class _Order:
    spec: JobSpec
    decision: Decision
    requested: int
    at: float
    launched: int = 0
    calls_left: int = 0
    error: str | None = None
    cancelled: bool = False
    arns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Launched:
    job: str
    requested: int
    launched: int
    error: str | None


class Launcher:
    """Per-message launches, paced at :data:`LAUNCHES_PER_S`, in ≤ 10-task RunTask calls.

    ``run()`` drains what was submitted (the round calls it itself unless ``background``); ``start()`` drains
    it in a thread instead, while rounds go on. When an order launches fewer tasks than asked (a RunTask
    failure, or time running out), its state is corrected with :func:`after_launch`, so the next round asks
    for the rest; the tasks it launched are recorded as the job's workers at once.
    """

    def __init__(
        self,
        cluster: Cluster,
        states: StateStore,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rate_per_s: float = LAUNCHES_PER_S,
        burst: int = LAUNCH_BURST,
        background: bool = False,
    ) -> None:
        self.cluster = cluster
        self.states = states
        self.sleep = sleep
        self.bucket = TokenBucket(rate_per_s, burst, clock)
        self.background = background
        self._calls: list[_Call] = []
        self._pending: dict[str, _Order] = {}
        self._done: list[Launched] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def pending(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._pending)

    def submit(self, spec: JobSpec, decision: Decision, count: int, at: float, *, from_zero: bool) -> None:
        order = _Order(spec, decision, count, at)
        counts = [min(MAX_TASKS_PER_CALL, count - s) for s in range(0, count, MAX_TASKS_PER_CALL)]
        order.calls_left = len(counts)
        with self._lock:
            self._pending[spec.name] = order
            for index, n in enumerate(counts):
                heapq.heappush(self._calls, _Call((0 if from_zero else 1, next(self._seq)), order, index, n))
            self._wake.notify()

    def _next(self, block: bool) -> _Call | None:
        with self._lock:
            while True:
                while self._calls and self._calls[0].order.cancelled:
                    self._finish_call(heapq.heappop(self._calls))
                if self._calls:
                    return heapq.heappop(self._calls)
                if not block or self._stopping:
                    return None
                self._wake.wait()

    def _finish_call(self, call: _Call) -> None:
        """Under the lock: one call of an order is done (launched, failed or cancelled)."""
        order = call.order
        order.calls_left -= 1
        if order.calls_left == 0:
            self._pending.pop(order.spec.name, None)
            self._done.append(Launched(order.spec.name, order.requested, order.launched, order.error))
            if order.launched < order.requested:
                # What did not start is not remembered as launched: the next round asks for it again.
                with contextlib.suppress(Exception):
                    self.states.save(
                        order.spec.name, after_launch(order.decision, order.launched).model_dump(mode="json")
                    )

    def _launch(self, call: _Call) -> None:
        order = call.order
        self.sleep(self.bucket.reserve(call.count))
        # Same round, same call → same token: a retried invocation does not launch the batch twice.
        token = hashlib.sha256(f"{order.spec.name}|{order.at:.0f}|{call.index}".encode()).hexdigest()[:40]
        try:
            result = self.cluster.run_task(worker_task_request(order.spec, call.count, f"scale-{token}"))
        except (TryLater, PermanentError) as exc:
            order.error, order.cancelled = str(exc), True
        except Exception as exc:  # one job's failure must not stop the others' launches
            order.error, order.cancelled = f"{type(exc).__name__}: {exc}", True
        else:
            if result.task_arns:
                order.launched += len(result.task_arns)
                order.arns += result.task_arns
                with contextlib.suppress(Exception):  # the Tracker's events and the next reconcile count them too
                    self.states.add_workers(order.spec.name, result.task_arns)
            if result.failures:
                order.error, order.cancelled = f"RunTask failures: {result.failures[:3]}", True
        with self._lock:
            self._finish_call(call)

    def run(self, budget_s: float | None = None) -> list[Launched]:
        """Launch what was submitted, paced; what finished since the last call.

        ``budget_s``: stop before a call would wait past this many seconds of pacing (what the thread gets done
        in one interval: the benchmark drives the launcher this way on its own clock); the rest stays queued.
        """
        while True:
            if budget_s is not None:
                with self._lock:
                    head = self._calls[0].count if self._calls else 0
                if not head or self.bucket.wait_s(head) > budget_s:
                    break
            if (call := self._next(block=False)) is None:
                break
            self._launch(call)
        return self.collect()

    def collect(self) -> list[Launched]:
        with self._lock:
            done, self._done = self._done, []
        return done

    def start(self) -> None:
        """Drain in a thread from now on (the Lambda handler: launches go on while the next round observes)."""
        with self._lock:
            self._stopping = False
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="scaler-launcher", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while (call := self._next(block=True)) is not None:
            self._launch(call)

    def finish(self, timeout_s: float) -> list[Launched]:
        """Stop the thread once it has drained, or after ``timeout_s``; calls not made by then are cancelled
        (their orders' states corrected), so nothing runs after the invocation returns."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        with self._lock:
            for call in self._calls:
                call.order.cancelled = True
                call.order.error = call.order.error or "launch time ran out: asked for again next round"
            while self._calls:
                self._finish_call(heapq.heappop(self._calls))
        return self.collect()


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
        interval_s: float = 15.0,
        idle_every: int = 4,
        reconcile_s: float = 300.0,
        threads: int = 16,
        launcher: Launcher | None = None,
        registry_refresh_s: float = 0.0,
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
        self.interval_s = interval_s
        self.idle_every = idle_every
        self.reconcile_s = reconcile_s
        self.threads = threads
        self.launcher = launcher or Launcher(cluster, states, clock=clock, sleep=sleep)
        self.service_reads = TokenBucket(SERVICE_READS_PER_S, SERVICE_READ_BURST, clock)
        self.service_modifies = TokenBucket(SERVICE_MODIFIES_PER_S, SERVICE_MODIFY_BURST, clock)
        self.cluster_reads = TokenBucket(CLUSTER_READS_PER_S, CLUSTER_READ_BURST, clock)
        self.stats = RoundStats()
        self._known: dict[str, _Known] = {}
        self._stats_lock = threading.Lock()
        self.registry_refresh_s = registry_refresh_s
        self._registry_read: tuple[list[JobSpec], dict[str, str]] | None = None
        self._registry_at = 0.0
        self._refresh: Future[tuple[list[JobSpec], dict[str, str]]] | None = None
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scaler-registry")
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scaler-describe")

    # ------------------------------------------------------------------ the round

    def _read_registry(self) -> tuple[list[JobSpec], dict[str, str]]:
        # One listing for both when the registry offers it (SsmRegistry.scan): thousands of entries are paged once.
        scan: Callable[[], tuple[list[JobSpec], dict[str, str]]] | None = getattr(self.registry, "scan", None)
        if scan is not None:
            return scan()
        return self.registry.all(), dict(self.registry.invalid())

    def _specs(self, now: float) -> tuple[list[JobSpec], dict[str, str]]:
        """The registry: read every round, or (``registry_refresh_s``) re-read in the background while rounds go
        on with the last read, so paging through thousands of entries at SSM's pace never delays observation."""
        if self.registry_refresh_s <= 0:
            return self._read_registry()
        if self._registry_read is None:
            self._registry_read, self._registry_at = self._read_registry(), now
        elif self._refresh is not None and self._refresh.done():
            with contextlib.suppress(Exception):  # a failed re-read keeps the last one; tried again below
                self._registry_read, self._registry_at = self._refresh.result(), now
            self._refresh = None
        if self._refresh is None and now - self._registry_at >= self.registry_refresh_s:
            self._refresh = self._refresher.submit(self._read_registry)
        return self._registry_read

    def round(self) -> list[JobRound]:
        now = self.clock()
        specs, invalid = self._specs(now)
        self.invalid = dict(invalid)
        jobs = []
        for spec in specs:
            if problems := registry_problems(spec, self.stack):
                # Trusted only for what the stack could have written: a tampered entry scales nothing.
                self.invalid[spec.name] = "; ".join(problems)
            elif spec.queue_mode is not QueueMode.NONE:
                jobs.append(spec)
        self.stats = RoundStats(jobs=len(jobs))
        launching = self.launcher.pending()
        watched = [spec for spec in jobs if spec.name not in launching]
        self.stats.launching = len(jobs) - len(watched)
        # Jobs busy last round are due whatever their depth: their services are described while the depths are
        # read, so the paced describes and the depth reads overlap instead of adding up.
        busy = [spec for spec in watched if (k := self._known.get(spec.name)) is not None and k.busy]
        prefetch = self._prefetcher.submit(self._describe_services, busy)

        def look(spec: JobSpec) -> tuple[QueueDepth | None, JobRound | None]:
            depth = self._depth(spec)
            if self._waking(spec, depth):
                # A first message on an idle job: observed, decided and applied at once, not after every other
                # job's observation, so its first UpdateService or launch follows the depth read within the round.
                return depth, self._pipeline([spec], {spec.name: depth}, now)[0]
            return depth, None

        looked = dict(zip((s.name for s in watched), self._map(look, watched), strict=True))
        depths = {name: depth for name, (depth, _) in looked.items()}
        woken = {name: result for name, (_, result) in looked.items() if result is not None}
        due = [spec for spec in watched if spec.name not in woken and self._due(spec, depths[spec.name], now)]
        self.stats.woken = len(woken)
        self.stats.observed, self.stats.queue_only = len(due) + len(woken), len(watched) - len(due) - len(woken)
        try:
            described = prefetch.result()
        except Exception:  # described again below, in the round's own batches
            described, busy = {}, []
        prefetched = {spec.name for spec in busy}
        by_job = {r.job: r for r in self._pipeline(due, depths, now, described, prefetched)} | woken
        launched = {done.job: done for done in ([] if self.launcher.background else self.launcher.run())}
        return [
            r if r.job not in launched else _with_launch(r, launched[r.job])
            for r in (by_job[spec.name] for spec in watched if spec.name in by_job)  # in registry order
        ]

    def _waking(self, spec: JobSpec, depth: QueueDepth | None) -> bool:
        """Messages on a job last seen idle (never one this container has not seen yet: a cold start's backlog
        goes through the batched path)."""
        known = self._known.get(spec.name)
        return bool(depth is not None and (depth.visible or depth.delayed) and known is not None and not known.busy)

    def _pipeline(
        self,
        due: list[JobSpec],
        depths: dict[str, QueueDepth | None],
        now: float,
        described: dict[tuple[str, str], ServiceCounts] | None = None,
        prefetched: frozenset[str] | set[str] = frozenset(),
    ) -> list[JobRound]:
        """Observe ``due`` in full (services 10 a call, states 100 a call), decide, apply. ``described``: counts
        already read this round for the jobs in ``prefetched`` (a service missing there failed: held, not re-read)."""
        if not due:
            return []
        counts = dict(described or {})
        counts |= self._describe_services([spec for spec in due if spec.name not in prefetched])
        try:
            stored = self.states.load_many([spec.name for spec in due])
        except Exception as exc:  # the state table unreadable: nothing is decided, nothing changes
            stored, load_error = {}, f"{type(exc).__name__}: {exc}"
        else:
            load_error = "state not read (throttled): held this round"
        prepared = self._map(
            lambda spec: self._prepare(spec, counts, depths[spec.name], stored.get(spec.name), now, load_error), due
        )
        return self._apply(prepared)

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self.threads <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.threads, len(items))) as pool:
            return list(pool.map(fn, items))

    def _depth(self, spec: JobSpec) -> QueueDepth | None:
        try:
            return self.depths.depth(spec.queue_url or "")
        except Exception:  # unknown depth: observed in full, and decide() holds what it cannot see
            return None

    def _floor(self, spec: JobSpec, now: float) -> int:
        if spec.queue_mode is not QueueMode.SERVICE:
            return 0
        return floor_at(spec.scaling.scheduled_floors, now)

    def _due(self, spec: JobSpec, depth: QueueDepth | None, now: float) -> bool:
        """Busy jobs every round; idle ones every ``idle_every``-th, staggered (a job first seen by this container
        counts as observed a stagger's worth of rounds ago, so a cold start does not observe everything at once)."""
        if depth is None or depth.visible or depth.in_flight or depth.delayed:
            return True
        if spec.scaling.min_tasks > 0 or self._floor(spec, now) > 0:
            return True
        known = self._known.get(spec.name)
        if known is None:
            staggered = now - (phase_of(spec.name, self.idle_every) + 1) * self.interval_s
            known = self._known[spec.name] = _Known(busy=False, observed_at=staggered)
        if known.busy:
            return True
        return now - known.observed_at >= (self.idle_every - 0.5) * self.interval_s

    def _describe_services(self, jobs: list[JobSpec]) -> dict[tuple[str, str], ServiceCounts]:
        by_cluster: dict[str, list[str]] = defaultdict(list)
        for spec in jobs:
            if spec.queue_mode is QueueMode.SERVICE and spec.service:
                by_cluster[spec.cluster].append(spec.service)
        batches = [(c, names[i : i + 10]) for c, names in by_cluster.items() for i in range(0, len(names), 10)]

        def describe(batch: tuple[str, list[str]]) -> dict[tuple[str, str], ServiceCounts]:
            cluster, names = batch
            self.sleep(self.service_reads.reserve())
            return {(cluster, name): c for name, c in self.services.describe(cluster, names).items()}

        found: dict[tuple[str, str], ServiceCounts] = {}
        for part in self._map(describe, batches):
            found |= part
        return found

    def _workers(self, spec: JobSpec, stored: StoredState, now: float) -> int | None:
        """A per-message job's workers: the event-kept count, reconciled by ListTasks every ``reconcile_s``
        (unknown, not zero, when it cannot be: decide() then holds)."""
        fresh = stored.counted_at is not None and now - stored.counted_at < self.reconcile_s
        if stored.workers is not None and fresh:
            return len(stored.workers)
        fallback = len(stored.workers) if stored.workers is not None else None
        if not self.cluster_reads.try_take():
            return fallback  # over the Scaler's share of cluster reads: reconcile on a later round
        try:
            listed = self.cluster.active_tasks(spec.cluster, family_of(spec.task_definition))
        except TryLater:
            return fallback
        with self._stats_lock:
            self.stats.reconciled += 1
        with contextlib.suppress(Exception):  # not written: reconciled again next round
            self.states.set_workers(spec.name, listed, now, stored)
        return len(set(listed) - stored.stopped)

    def _prepare(
        self,
        spec: JobSpec,
        counts: dict[tuple[str, str], ServiceCounts],
        depth: QueueDepth | None,
        stored: StoredState | None,
        now: float,
        load_error: str,
    ) -> _Prepared:
        service_counts = counts.get((spec.cluster, spec.service or ""))
        try:
            if stored is None:
                raise TryLater(load_error)
            observation = self._observe(spec, service_counts, depth, stored, now)
            state = ScalerState.model_validate(stored.state) if stored.state else ScalerState.initial()
            decision = decide(observation, state, scaling_spec(spec, self.interval_s), floor=self._floor(spec, now))
        except Exception as exc:  # one job's failure must not stop the others' scaling
            nothing = Observation(at=now, visible=None, in_flight=None, delayed=None, running=None, pending=None)
            held = Decision(
                desired=service_counts.desired if service_counts else 0,
                launch=0,
                reason="error",
                state=ScalerState.initial(),
            )
            return _Prepared(spec, nothing, held, None, error=f"{type(exc).__name__}: {exc}")
        return _Prepared(spec, observation, decision, stored)

    def _observe(
        self, spec: JobSpec, counts: ServiceCounts | None, depth: QueueDepth | None, stored: StoredState, now: float
    ) -> Observation:
        running = pending = desired = None
        if spec.queue_mode is QueueMode.SERVICE:
            if counts is not None:
                running, pending, desired = counts
        elif (workers := self._workers(spec, stored, now)) is not None:
            running, pending = workers, 0
        return Observation(
            at=now,
            visible=depth.visible if depth else None,
            in_flight=depth.in_flight if depth else None,
            delayed=depth.delayed if depth else None,
            running=running,
            pending=pending,
            desired=desired,
        )

    def _apply(self, prepared: list[_Prepared]) -> list[JobRound]:
        """Apply in order of urgency: scale-out first, so a short UpdateService share is spent where it helps."""

        def urgency(p: _Prepared) -> tuple[int, int]:
            current = p.observation.desired if p.observation.desired is not None else p.decision.desired
            return (0 if p.decision.desired > current else 1, -(p.decision.desired - current))

        outcome: dict[str, JobRound] = {}
        to_save: list[tuple[str, dict[str, Any]]] = []
        for p in sorted(prepared, key=urgency):
            if p.error is not None:
                outcome[p.spec.name] = JobRound(p.spec.name, p.observation, p.decision, False, error=p.error)
                continue
            applied, queued, error = False, 0, None
            state = p.decision.state
            try:
                if p.spec.queue_mode is QueueMode.SERVICE:
                    if p.observation.desired is not None and p.decision.desired != p.observation.desired:
                        if self.service_modifies.try_take():
                            self.services.set_desired(p.spec.cluster, p.spec.service or "", p.decision.desired)
                            applied = True
                        else:
                            # Deferred, not lost: ECS still shows the old count, so the next round decides again.
                            with self._stats_lock:
                                self.stats.deferred_updates += 1
                            error = "UpdateService deferred: over the Scaler's share of service modify calls"
                elif p.decision.launch > 0:
                    queued = min(p.decision.launch, MAX_LAUNCHES_PER_ROUND)
                    state = after_launch(p.decision, queued)  # the capped rest is asked for again next round
                    from_zero = (p.observation.running or 0) + (p.observation.pending or 0) == 0
                    capped = p.decision.model_copy(update={"state": state, "launch": queued})
                    self.launcher.submit(p.spec, capped, queued, p.observation.at, from_zero=from_zero)
            except (TryLater, PermanentError) as exc:
                error = str(exc)
            except Exception as exc:  # one job's failure must not stop the others' scaling
                error = f"{type(exc).__name__}: {exc}"
            if error is None and p.spec.queue_mode is QueueMode.SERVICE:
                state, error = self._publish_drain(p, state)
            if state_changed(p.stored.state if p.stored else None, state):
                to_save.append((p.spec.name, state.model_dump(mode="json")))
            self._known[p.spec.name] = _Known(busy=self._busy(p), observed_at=p.observation.at)
            outcome[p.spec.name] = JobRound(p.spec.name, p.observation, p.decision, applied, 0, error, queued)

        def save(item: tuple[str, dict[str, Any]]) -> str | None:
            try:
                self.states.save(*item)
            except Exception as exc:  # the next round decides again from the older state
                return f"{type(exc).__name__}: {exc}"
            return None

        for (job, _), failed in zip(to_save, self._map(save, to_save), strict=True):
            if failed and outcome[job].error is None:
                outcome[job] = _replace(outcome[job], error=f"state not saved: {failed}")
        with self._stats_lock:
            self.stats.states_written += len(to_save)
        return [outcome[p.spec.name] for p in prepared]

    def _publish_drain(self, p: _Prepared, state: ScalerState) -> tuple[ScalerState, str | None]:
        """After the desired count is applied: how many busy workers drain, written only when it changed."""
        if self.drains is None:
            return state, None
        surplus = drain_target(p.observation, p.decision.desired, scaling_spec(p.spec, self.interval_s))
        if surplus == state.drain_published:
            return state, None
        try:
            self.drains.publish_drain(p.spec.name, surplus)
        except Exception as exc:  # the next round publishes it again; no drain meanwhile is safe
            return state, f"drain signal: {type(exc).__name__}: {exc}"
        return state.model_copy(update={"drain_published": surplus}), None

    @staticmethod
    def _busy(p: _Prepared) -> bool:
        obs = p.observation
        if (
            obs.visible is None
            or obs.running is None
            or (p.spec.queue_mode is QueueMode.SERVICE and obs.desired is None)
        ):
            return True  # what was not seen cannot be called idle: observed again next round
        return bool(
            p.decision.desired
            or obs.desired
            or obs.running
            or obs.pending
            or obs.visible
            or obs.in_flight
            or obs.delayed
            or p.decision.launch
        )


@dataclass(frozen=True)
class _Prepared:
    spec: JobSpec
    observation: Observation
    decision: Decision
    stored: StoredState | None
    error: str | None = None


def _replace(result: JobRound, **changes: Any) -> JobRound:
    return JobRound(**(vars(result) | changes))


def _with_launch(result: JobRound, done: Launched) -> JobRound:
    return _replace(
        result,
        launched=done.launched,
        applied=done.launched > 0,
        error=result.error or done.error,
        queued=0,
    )


def launched_by_job(done: Iterable[Launched]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for launch in done:
        totals[launch.job] += launch.launched
    return dict(totals)
