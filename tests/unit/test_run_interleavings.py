"""No run is ever stuck, launched twice or doubled, whatever the interleaving (issue 9, "no run left stuck").

A hypothesis state machine drives the real domain services (Dispatcher, Tracker, Reconciler and the retries they
schedule) on the unit fakes, each behind a fault-injecting wrapper (:class:`tests.unit.fakes.Faulty`), through random
interleavings of:

* trigger deliveries, and the same trigger delivered again (SQS and EventBridge deliver at least once);
* RunTask launching, throttled (before or after the launch: the response lost), answered with a capacity failure or
  a permanent one;
* ECS task state changes delivered once, twice, out of order or never; ECS forgetting stopped tasks;
* the runs table failing any call, before or after its write; the retry scheduler failing before or after sending;
* the Lambda dying at any call (between RunTask and the record write among them), its message coming back after the
  visibility timeout, and a message that keeps failing going to its dead-letter queue after ``maxReceiveCount``;
* reconciliation ticks with the clock advancing.

Invariants, after every step: never two live tasks for one run attempt (nor any second task for one), and each
trigger at most one run. At the end, once the faults stop, every message is delivered, every task finishes and the
reconciler has ticked for long enough: every run is final. (Before that, every active run is in a state the
Reconciler owns, ``ACTIVE_STATUSES``, and a PENDING or RUNNING one names its task, so a tick can find it.)
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from taskrunner.domain.dispatch import Dispatcher
from taskrunner.domain.errors import PermanentError, TryLater
from taskrunner.domain.ports import LaunchResult, Retry
from taskrunner.domain.runs import ACTIVE_STATUSES, RunStatus, idempotency_key, parse_started_by, run_id_for
from taskrunner.domain.tracking import CLAIM_STALE_S, MAX_REDRIVES, Reconciler, TaskState, Tracker
from taskrunner.domain.triggers import requests_from
from tests.unit.fakes import (
    CLUSTER_ARN,
    STACK,
    FakeClock,
    FakeCluster,
    FakeRegistry,
    FakeRunStore,
    Faults,
    Faulty,
    SimulatedCrash,
    job_spec,
    manual_request,
)

#: SQS: a message a consumer did not delete comes back after the queue's visibility timeout (template.yaml: 180 s);
#: after maxReceiveCount receives it moves to the queue's DLQ (small here, so that happens within a run).
VISIBILITY_S = 180
MAX_RECEIVES = 4
LEASE_S = 120

JOBS = FakeRegistry(
    job_spec(
        name="nightly-report",
        timeout_s=900,
        retry={"max_attempts": 3, "retry_exit_codes": [2], "backoff_base_s": 10, "backoff_max_s": 1200},
    ),
    job_spec(name="spot-batch", capacity="FARGATE_SPOT_WITH_FALLBACK", retry={"max_attempts": 2}),
)
TRIGGERS = [
    manual_request(job, request_id=f"c0ffee00-0000-4000-8000-{n:012d}")
    for n, job in enumerate(["nightly-report", "spot-batch", "nightly-report", "spot-batch"])
]


class Unavailable(Exception):
    """An AWS call that failed (throttled, 5xx, timed out) after botocore's own retries."""


CAPACITY = LaunchResult(failures=[{"arn": CLUSTER_ARN, "reason": "Capacity is unavailable at this time."}])
REJECTED = LaunchResult(failures=[{"arn": CLUSTER_ARN, "reason": "MISSING", "detail": "no such subnet"}])

#: How long ECS keeps a stopped task describable (and listed by ListTasks): "at least an hour".
ECS_KEEPS_STOPPED_S = 3600


class Answer:
    """RunTask answered with ``failures[]``, as ECS answers a request it has not seen: a clientToken that already
    launched a task gets that task again (ECS honours the token), not a new answer."""

    #: The fake cluster whose tokens are consulted (set by the state machine).
    cluster: FakeCluster | None = None

    def __init__(self, result: LaunchResult) -> None:
        self.result = result

    def __call__(self, request: dict[str, Any]) -> LaunchResult:
        assert self.cluster is not None
        if (request["cluster"], request["clientToken"]) in self.cluster._by_token:
            return self.cluster.run_task(request)
        return self.result


STORE_CALLS = ["claim", "update", "release", "get", "redriven", "abandon", "active"]
CLUSTER_CALLS = ["run_task", "active_tasks", "tasks_started_by", "stop_task", "describe_tasks"]


@st.composite
def fault_plans(draw: st.DrawFn) -> list[tuple[str, str, str, Any]]:
    """Up to three faults for one invocation: (port, method, when, outcome)."""
    plans = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["store", "cluster", "run_task", "retries", "crash"]))
        when = draw(st.sampled_from(["before", "after"]))
        if kind == "store":
            plans.append(("store", draw(st.sampled_from(STORE_CALLS)), when, Unavailable("DynamoDB throttled")))
        elif kind == "cluster":
            plans.append(("cluster", draw(st.sampled_from(CLUSTER_CALLS)), when, TryLater("ECS throttled")))
        elif kind == "run_task":
            outcome = draw(st.sampled_from([CAPACITY, CAPACITY, REJECTED]))
            plans.append(("cluster", "run_task", "instead", Answer(outcome)))
        elif kind == "retries":
            plans.append(("retries", "schedule", when, Unavailable("SendMessage failed")))
        else:  # the Lambda dies at this call (before it, or after it took effect)
            port = draw(st.sampled_from(["store", "cluster", "retries"]))
            method = {"store": STORE_CALLS, "cluster": CLUSTER_CALLS, "retries": ["schedule"]}[port]
            plans.append((port, draw(st.sampled_from(method)), when, SimulatedCrash()))
    return plans


@dataclass
class Message:
    body: Any
    visible_at: float
    receives: int = 0


@dataclass
class Queue:
    """An SQS queue as its consumers see it: at-least-once, unordered, with a visibility timeout and a DLQ."""

    messages: list[Message] = field(default_factory=list)
    dead: list[Any] = field(default_factory=list)

    def send(self, body: Any, at: float) -> None:
        self.messages.append(Message(body, at))

    def visible(self, now: float) -> list[Message]:
        return [m for m in self.messages if m.visible_at <= now]

    def returned(self, message: Message, now: float, delay: float) -> None:
        """Not deleted: back after ``delay``, or to the DLQ once received ``MAX_RECEIVES`` times."""
        if message.receives >= MAX_RECEIVES:
            self.messages.remove(message)
            self.dead.append(message.body)
        else:
            message.visible_at = now + delay


class QueueRetries:
    """The retry scheduler: the retry's body back on the dispatch queue after its delay."""

    def __init__(self, queue: Queue, clock: FakeClock) -> None:
        self.queue, self.clock = queue, clock
        self.sent: list[Retry] = []

    def schedule(self, retry: Retry) -> None:
        self.sent.append(retry)
        self.queue.send(json.dumps(retry.body), self.clock() + retry.delay_s)


class RunLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.faults = Faults()
        self.fake_store = FakeRunStore(clock=self.clock)
        self.fake_cluster = FakeCluster()
        Answer.cluster = self.fake_cluster
        self.dispatch_queue, self.tracker_queue = Queue(), Queue()
        self.fake_retries = QueueRetries(self.dispatch_queue, self.clock)
        store, cluster = Faulty(self.fake_store, self.faults), Faulty(self.fake_cluster, self.faults)
        retries = Faulty(self.fake_retries, self.faults)
        self.dispatcher = Dispatcher(JOBS, store, cluster, stack=STACK, clock=self.clock, lease_s=LEASE_S)
        rng = random.Random(9).random
        self.tracker = Tracker(JOBS, store, retries, stack_name=STACK.name, clock=self.clock, rng=rng)
        self.reconciler = Reconciler(JOBS, store, cluster, self.tracker, retries, clock=self.clock)
        self.store = store
        #: The last state of each task an ECS event was published for.
        self.published: dict[str, str] = {}
        #: Every task ever launched, by startedBy (a task ECS forgot is still counted).
        self.launched: dict[str, set[str]] = {}
        #: When each task was first seen stopped; and the startedBy of tasks ECS forgot.
        self.stopped_at: dict[str, float] = {}
        self.forgotten: set[str] = set()
        self.delivered: set[int] = set()
        self.steps: Counter[str] = Counter()

    # ------------------------------------------------------------------ helpers

    def _arm(self, plans: list[tuple[str, str, str, Any]]) -> None:
        prefix = {"store": "", "cluster": "", "retries": ""}
        for _port, method, when, outcome in plans:
            self.faults.arm(prefix[_port] + method, outcome, when)

    def _invoke(self, step: Any, plans: list[tuple[str, str, str, Any]]) -> BaseException | None:
        """One Lambda invocation with ``plans`` armed; what it raised (its crash included), or None."""
        self._arm(plans)
        try:
            step()
        except (Exception, SimulatedCrash) as exc:
            return exc
        finally:
            self.faults.clear()
            self._observe_launches()
        return None

    def _observe_launches(self) -> None:
        for task in self.fake_cluster.tasks:
            if task.started_by:
                self.launched.setdefault(task.started_by, set()).add(task.arn)
            if task.last_status == "STOPPED":
                self.stopped_at.setdefault(task.arn, self.clock())

    def _publish(self, data: st.DataObject | None) -> None:
        """ECS emits a state change for every task whose status changed; EventBridge delivers it once, twice or
        (rarely, but it is allowed to) never."""
        for task in self.fake_cluster.tasks:
            if self.published.get(task.arn) == task.last_status:
                continue
            self.published[task.arn] = task.last_status
            fate = "deliver" if data is None else data.draw(st.sampled_from(["deliver", "deliver", "twice", "lose"]))
            copies = {"deliver": 1, "twice": 2, "lose": 0}[fate]
            for _ in range(copies):
                self.tracker_queue.send(task.describe(), self.clock())

    def _deliver_dispatch(self, message: Message, plans: list[tuple[str, str, str, Any]]) -> None:
        message.receives += 1
        now = self.clock()

        def handle() -> None:
            for request in requests_from(message.body, JOBS.all):
                self.dispatcher.dispatch(request)

        failed = self._invoke(handle, plans)
        if failed is None or isinstance(failed, PermanentError):
            self.dispatch_queue.messages.remove(message)  # done, or dead-lettered with its reason: acknowledged
            if failed is not None:
                self.dispatch_queue.dead.append(message.body)
        elif isinstance(failed, TryLater):
            self.dispatch_queue.returned(message, now, failed.delay_s)
        else:
            self.dispatch_queue.returned(message, now, VISIBILITY_S)

    def _deliver_state_change(self, message: Message, plans: list[tuple[str, str, str, Any]]) -> None:
        message.receives += 1
        failed = self._invoke(lambda: self.tracker.track(TaskState.model_validate(message.body)), plans)
        if failed is None or isinstance(failed, PermanentError):
            self.tracker_queue.messages.remove(message)
            if failed is not None:
                self.tracker_queue.dead.append(message.body)
        else:
            self.tracker_queue.returned(message, self.clock(), VISIBILITY_S)

    def _tick(self, plans: list[tuple[str, str, str, Any]]) -> None:
        self._invoke(lambda: self.reconciler.reconcile(self.store.active()), plans)

    # ------------------------------------------------------------------ rules

    @initialize(trigger=st.sampled_from(range(len(TRIGGERS))))
    def first_trigger(self, trigger: int) -> None:
        self.trigger(trigger)

    @rule(trigger=st.sampled_from(range(len(TRIGGERS))))
    def trigger(self, trigger: int) -> None:
        """A schedule, rule or `taskrunner run` puts a request on the dispatch queue (again, for a duplicate)."""
        self.steps["trigger"] += 1
        self.delivered.add(trigger)
        self.dispatch_queue.send(TRIGGERS[trigger].model_dump_json(by_alias=True, exclude_defaults=True), self.clock())

    @precondition(lambda self: self.dispatch_queue.visible(self.clock()))
    @rule(data=st.data(), plans=fault_plans())
    def deliver_dispatch(self, data: st.DataObject, plans: list[tuple[str, str, str, Any]]) -> None:
        visible = self.dispatch_queue.visible(self.clock())
        self.steps["dispatch"] += 1
        self._deliver_dispatch(data.draw(st.sampled_from(visible)), plans)
        self._publish(data)

    @precondition(lambda self: self.tracker_queue.visible(self.clock()))
    @rule(data=st.data(), plans=fault_plans())
    def deliver_state_change(self, data: st.DataObject, plans: list[tuple[str, str, str, Any]]) -> None:
        visible = self.tracker_queue.visible(self.clock())
        self.steps["state-change"] += 1
        self._deliver_state_change(data.draw(st.sampled_from(visible)), plans)  # any order
        self._publish(data)

    @precondition(lambda self: any(t.last_status != "STOPPED" for t in self.fake_cluster.tasks))
    @rule(data=st.data(), outcome=st.sampled_from(["run", "exit-0", "exit-2", "exit-1", "start-failure", "spot"]))
    def task_moves(self, data: st.DataObject, outcome: str) -> None:
        """A live task starts running, or stops: it succeeds, fails (retryable or not), fails to start, loses Spot."""
        live = [t for t in self.fake_cluster.tasks if t.last_status != "STOPPED"]
        self.steps["task"] += 1
        task = data.draw(st.sampled_from(live))
        if outcome == "run":
            task.last_status = "RUNNING"
        elif outcome.startswith("exit-"):
            self.fake_cluster.finish(task.arn, exit_code=int(outcome[5:]))
        elif outcome == "start-failure":
            self.fake_cluster.finish(task.arn, exit_code=None, stop_code="TaskFailedToStart")
            task.stopped_reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
        else:
            self.fake_cluster.finish(task.arn, exit_code=None, stop_code="SpotInterruption")
            task.stopped_reason = "Your Spot Task was interrupted."
        self._publish(data)

    def _forgettable(self) -> list[Any]:
        self._observe_launches()
        now = self.clock()
        return [t for t in self.fake_cluster.tasks if now - self.stopped_at.get(t.arn, now) >= ECS_KEEPS_STOPPED_S]

    @precondition(lambda self: self._forgettable())
    @rule(data=st.data())
    def ecs_forgets_a_stopped_task(self, data: st.DataObject) -> None:
        """ECS keeps a stopped task describable for about an hour; then DescribeTasks no longer finds it."""
        self.steps["forget"] += 1
        task = data.draw(st.sampled_from(self._forgettable()))
        self.fake_cluster.tasks.remove(task)
        if task.started_by:
            self.forgotten.add(task.started_by)

    @rule(data=st.data(), seconds=st.sampled_from([5, 30, 60, 130, 400, 1000]), plans=fault_plans())
    def reconcile_tick(self, data: st.DataObject, seconds: int, plans: list[tuple[str, str, str, Any]]) -> None:
        self.steps["tick"] += 1
        self.clock.advance(seconds)
        self._tick(plans)
        self._publish(data)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def never_two_tasks_for_one_run_attempt(self) -> None:
        live = Counter(t.started_by for t in self.fake_cluster.tasks if t.desired_status == "RUNNING")
        assert all(n == 1 for n in live.values()), f"two live tasks for one run attempt: {live}"
        # Ever, not only at once. Unless ECS forgot the attempt's task: a claim whose record writes failed for more
        # than an hour finds nothing to adopt, and launches its attempt again (the first task long stopped).
        doubled = {by: arns for by, arns in self.launched.items() if len(arns) > 1 and by not in self.forgotten}
        assert not doubled, f"a run attempt launched more than one task: {doubled}"
        # Nor two attempts of one run at once: attempt n+1 is scheduled only once attempt n's task stopped.
        runs = Counter(parse_started_by(by) is not None and by.rsplit("-", 1)[0] for by in live)
        assert all(n == 1 for key, n in runs.items() if key), f"two live attempts of one run: {live}"

    @invariant()
    def each_trigger_at_most_one_run(self) -> None:
        runs = {run_id_for(idempotency_key(TRIGGERS[n])) for n in range(len(TRIGGERS))}
        assert set(self.fake_store.items) <= runs, "a run exists that no trigger made"
        for started_by in self.launched:
            parsed = parse_started_by(started_by)
            assert parsed is not None
            assert parsed[0] in runs, f"task {started_by} belongs to no trigger's run"

    @invariant()
    def every_active_run_is_one_reconciliation_can_find(self) -> None:
        for run in self.fake_store.active():
            assert run.status in ACTIVE_STATUSES
            if run.status in {RunStatus.PENDING, RunStatus.RUNNING}:
                assert run.task_arn, f"run {run.run_id} is {run.status} without a task: no tick can find it"

    def teardown(self) -> None:
        """The faults stop; every message is delivered, every task finishes, the clock runs: every run is final."""
        for _ in range(80):
            for message in list(self.dispatch_queue.visible(self.clock())):
                self._deliver_dispatch(message, [])
            self._publish(None)
            for message in list(self.tracker_queue.visible(self.clock())):
                self._deliver_state_change(message, [])
            for task in self.fake_cluster.tasks:
                if task.last_status != "STOPPED":
                    self.fake_cluster.finish(task.arn, exit_code=0)
            self._publish(None)
            for message in list(self.tracker_queue.visible(self.clock())):
                self._deliver_state_change(message, [])
            self.clock.advance(400)
            self._tick([])
            if not self.fake_store.active() and not self.dispatch_queue.messages and not self.tracker_queue.messages:
                break
        self.never_two_tasks_for_one_run_attempt()
        self.each_trigger_at_most_one_run()
        stuck = {run.run_id: (run.status, run.attempt, run.reason) for run in self.fake_store.active()}
        assert not stuck, f"runs left active after the faults stopped and reconciliation ran: {stuck}"
        triggered = {run_id_for(idempotency_key(TRIGGERS[n])) for n in self.delivered}
        # A trigger whose every delivery was dead-lettered before its claim never made a run; any other did, once.
        assert set(self.fake_store.items) <= triggered
        STATS.update(self.steps)
        STATS["examples"] += 1


STATS: Counter[str] = Counter()

RunLifecycle.TestCase.settings = settings(
    # 150 interleavings of up to 50 steps in the unit tier; a deeper hunt: INTERLEAVINGS=3000 pytest this file.
    max_examples=int(os.environ.get("INTERLEAVINGS", "150")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRunLifecycle = RunLifecycle.TestCase


# --------------------------------------------------------------------------- regressions


def test_a_lost_retry_is_redriven_even_when_the_first_attempts_claim_used_every_redrive() -> None:
    """GIVEN attempt 1 whose claim reconciliation had to re-drive MAX_REDRIVES times before it launched
    WHEN it fails with a retryable exit code and the retry's message is lost (scheduling failed, never redelivered)
    THEN reconciliation re-drives attempt 2's retry (its own count), rather than abandoning it at once as
    "re-driven 3 times" when it never was."""
    world = RunLifecycle()
    request = TRIGGERS[0]
    run_id = run_id_for(idempotency_key(request))
    world.dispatcher.dispatch(request)
    world.fake_store.items[run_id]["redrives"] = MAX_REDRIVES  # what attempt 1's re-drives left
    (task,) = world.fake_cluster.launched
    world.fake_cluster.finish(task.arn, exit_code=2)
    world.faults.arm("schedule", Unavailable("SendMessage failed"))

    with pytest.raises(Unavailable):  # the retry is never sent; the state change is not delivered again
        world.tracker.track(TaskState.model_validate(task.describe()))
    world.clock.advance(3600)
    report = world.reconciler.reconcile(world.fake_store.active())

    assert (report.redriven, report.abandoned) == (1, 0)
    run = world.fake_store.get(run_id)
    assert run is not None
    assert (run.status, run.attempt, run.redrives) == (RunStatus.RETRYING, 2, 1)
    assert [r.attempt for r in world.fake_retries.sent] == [2]


def test_a_first_attempts_claim_is_abandoned_after_max_redrives_even_though_each_redrive_reclaims_it() -> None:
    """GIVEN a first attempt whose every dispatch message is lost after it claims (launches keep being deferred)
    WHEN reconciliation re-drives it and each re-drive reclaims it
    THEN after MAX_REDRIVES re-drives it is recorded LAUNCH_FAILED, not re-driven for ever."""
    world = RunLifecycle()
    request = TRIGGERS[0]
    run_id = run_id_for(idempotency_key(request))
    body = request.model_dump_json(by_alias=True, exclude_defaults=True)
    for _ in range(MAX_REDRIVES + 1):
        world.faults.arm("run_task", TryLater("ECS throttled"))
        world.dispatch_queue.messages.clear()  # every message lost: dead-lettered after its receives
        (redelivered,) = requests_from(body, JOBS.all)
        world._invoke(lambda: world.dispatcher.dispatch(redelivered), [])  # noqa: B023 (called at once)
        world.clock.advance(CLAIM_STALE_S + 10)
        world.reconciler.reconcile(world.fake_store.active())
        sent = world.dispatch_queue.messages[-1:] if world.dispatch_queue.messages else []
        body = sent[0].body if sent else body

    run = world.fake_store.get(run_id)
    assert run is not None
    assert run.status is RunStatus.LAUNCH_FAILED
    assert f"re-driven {MAX_REDRIVES} times" in (run.reason or "")
