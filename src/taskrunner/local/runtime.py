"""Local mode's runtime: the parts of AWS that the embedded AWS (moto) does not play.

Three threads, each owning its own work:

* **lambda**: the Lambda service. Fires job schedules (to the dispatch queue, with the Input the real
  schedule sends), the Scaler every 15 s (``{"rounds": 1}``), the Tracker's reconciliation every
  60 s, and polls the dispatch and tracker queues as their event-source mappings do, invoking the
  handlers in-process. Handlers run one at a time: in-process invocation swaps this process's
  environment for the function's, so they must not overlap.
* **ecs**: ECS itself. Tasks launched by RunTask become local processes, services keep their desired
  count of worker processes (:mod:`taskrunner.local.tasks`).
* **status**: reads what the view shows (queue depths, service counts, recent runs) once a second
  and reports run status changes to the activity feed.

S3 uploads and EventBridge routing are moto's own: a PutObject on the data bucket reaches the
dispatch queue through the job's rule, a task state change reaches the Tracker's queue through the
stack's rule.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.jobs import QueueMode
from taskrunner.domain.runs import Run
from taskrunner.domain.trust import MAX_TICK_SKEW_S
from taskrunner.local.activity import Activity
from taskrunner.local.agent import FakeEcsAgent
from taskrunner.local.clock import Every, SimClock, Tick, Ticker
from taskrunner.local.ecs_events import put_entry
from taskrunner.local.invoke import invoke
from taskrunner.local.jobs import JobCatalog
from taskrunner.local.platform import QUIET, Platform
from taskrunner.local.server import FAKE_CREDENTIALS
from taskrunner.local.stack import REGION
from taskrunner.local.tasks import RunTasks, TaskEnvironment, WorkerServices, base_environment, wait_all

SCALER_INTERVAL_S = 15.0
RECONCILE_INTERVAL_S = 60.0
POLL_IDLE_S = 0.2
ECS_INTERVAL_S = 0.5
STATUS_INTERVAL_S = 1.0
CREDENTIALS = {k: v for k, v in FAKE_CREDENTIALS.items() if k.startswith("AWS_") and "REGION" not in k}


@dataclass(frozen=True)
class Decision:
    at: float
    job: str
    desired: int
    launched: int
    reason: str
    error: str | None


@dataclass(frozen=True)
class QueueStatus:
    job: str
    mode: str
    visible: int | None
    in_flight: int | None
    delayed: int | None
    desired: int | None
    running: int
    draining: int
    protected: int


@dataclass
class Status:
    """What the view shows, refreshed by the status thread."""

    at: float = 0.0
    queues: list[QueueStatus] = field(default_factory=list)
    dispatch: tuple[int | None, int | None] = (None, None)  # visible, in flight
    dead_letters: dict[str, int | None] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)


class LocalRuntime:
    def __init__(
        self,
        platform: Platform,
        root: Path,
        *,
        speed: float = 1.0,
        commands: dict[str, str] | None = None,
    ) -> None:
        self.platform = platform
        self.root = root
        self.outputs = platform.outputs
        self.activity = Activity()
        # Handlers log warnings only (into .taskrunner/local.log); the activity feed says what happened.
        self._handler_env = dict(QUIET)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

        # Clients are made here, once, with explicit credentials: in-process handlers swap os.environ
        # while they run, so nothing created later on another thread may depend on it.
        self.clients = {name: self._client(name) for name in ("sqs", "ecs", "ssm", "events", "dynamodb", "s3")}
        self.catalog = JobCatalog(
            root,
            platform.deployment.transformed,
            self._client("ssm"),
            self.outputs["RegistryPrefix"],
            commands,
            on_invalid=lambda job, line: self.activity.add("error", line, job),
        )
        self.clock = SimClock(speed)
        self.ticker = Ticker(self.clock)
        for job in self.catalog.template.values():
            if job.schedule:
                entry = self.ticker.add(job.name, job.schedule, job.timezone)
                if entry.error:
                    self.activity.add("error", f"schedule not fired: {entry.error}", job.name)

        self.agent = FakeEcsAgent()
        self.environment = environment = TaskEnvironment(
            root, platform.endpoint, REGION, CREDENTIALS, base_environment()
        )
        cluster, cluster_arn = self.outputs["ClusterName"], self.outputs["ClusterArn"]
        ecs = self._client("ecs")
        self.run_tasks = RunTasks(
            ecs, cluster, cluster_arn, self.catalog, environment, self.agent, self._publisher(), self.activity
        )
        self.services = WorkerServices(ecs, cluster, cluster_arn, self.catalog, environment, self.agent, self.activity)

        # Schedules on a sped-up clock tick ahead of real time: the Dispatcher must not take them for forgeries.
        skew = str(10 * 365 * 86_400) if speed > 1 else str(MAX_TICK_SKEW_S)
        self.dispatch = platform.dispatch_queue()
        self.dispatch.extra_env = dict(self._handler_env) | {"DISPATCH_TICK_SKEW_S": skew}
        self.dispatch.sqs = self._client("sqs")
        self.tracker = platform.tracker_queue()
        self.tracker.sqs = self._client("sqs")
        self.tracker.extra_env = dict(self._handler_env)
        self.scaler_function = platform.function("ScalerFunctionName")
        self.tracker_function = platform.function("TrackerFunctionName")
        self.scaler_timer = Every(SCALER_INTERVAL_S, first_after_s=1.0)
        self.reconcile_timer = Every(RECONCILE_INTERVAL_S, first_after_s=RECONCILE_INTERVAL_S)
        self._decisions: deque[Decision] = deque(maxlen=200)
        self._decisions_lock = threading.Lock()
        self.reconciliations = 0
        self.max_desired: dict[str, int] = {}
        self.status = Status()
        self._run_states: dict[str, str] = {}
        self._runs = DynamoRunStore(self.outputs["RunsTableName"], self._client("dynamodb"))
        self._status_sqs = self._client("sqs")

    def _client(self, service: str) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=CREDENTIALS.get("AWS_SESSION_TOKEN"),
            region_name=REGION,
        )
        return session.client(service, endpoint_url=self.platform.endpoint)  # type: ignore[call-overload]

    def _publisher(self) -> Callable[[dict[str, Any]], None]:
        events = self._client("events")

        def publish(event: dict[str, Any]) -> None:
            response = events.put_events(Entries=[put_entry(event)])
            if response.get("FailedEntryCount"):
                self.activity.add("error", f"PutEvents failed: {response['Entries']}")

        return publish

    # ---------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.agent.start()
        for name, target in (("lambda", self._lambda_loop), ("ecs", self._ecs_loop), ("status", self._status_loop)):
            thread = threading.Thread(target=self._guarded(name, target), name=f"local-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.activity.add("platform", f"embedded AWS at {self.platform.endpoint}, stack {self.platform.stack_name}")

    def stop(self, grace_s: float = 25.0) -> None:
        """Stop the loops, then the workers and tasks: SIGTERM, and within ``grace_s`` a second one, then SIGKILL.

        A worker finishes the message in hand after the first SIGTERM, but also completes a long poll in
        progress (up to 20 s). An idle one (no scale-in protection: it holds no message) gets the second
        SIGTERM after a second, which ends the poll; one that is working keeps the grace period to finish.
        """
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        workers = self.services.stop_all()
        procs = [w.popen for w in workers] + self.run_tasks.stop_all()
        deadline, hurried = time.monotonic() + grace_s, set()
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            for worker in workers:
                signalled = worker.draining_since if worker.draining_since is not None else time.monotonic()
                idle = not self.agent.protected(worker.worker_id) and time.monotonic() - signalled >= 1.0
                if idle and worker.alive and worker.worker_id not in hurried:
                    hurried.add(worker.worker_id)
                    worker.popen.terminate()
            time.sleep(0.1)

        def again() -> None:
            for popen in procs:
                with contextlib.suppress(ProcessLookupError):
                    if popen.poll() is None:
                        popen.terminate()

        wait_all(procs, 0, on_slow=again)
        self.agent.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _guarded(self, name: str, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            while not self._stopping.is_set():
                try:
                    loop()
                except Exception as exc:  # a loop survives any one failure; the log file has the trace
                    trace = traceback.format_exc()
                    self.activity.add("error", f"{name} loop: {type(exc).__name__}: {exc}", trace=trace)
                    self._stopping.wait(1.0)

        return run

    # ------------------------------------------------------------------------------------------- lambda loop

    def _lambda_loop(self) -> None:
        while not self._stopping.is_set():
            for tick in self.ticker.due():
                self.send_tick(tick)
            if self.scaler_timer.due():
                self.scale()
            if self.reconcile_timer.due():
                self.reconcile()
            received = self._deliver(self.dispatch, "dispatch") + self._deliver(self.tracker, "tracker")
            if not received:
                self._stopping.wait(POLL_IDLE_S)

    def _deliver(self, mapping: Any, kind: str) -> int:
        delivery = mapping.poll_once()
        if delivery.failed:
            self.activity.add("error", f"{kind}: {delivery.failed} of {delivery.received} message(s) failed")
        return int(delivery.received)

    def send_tick(self, tick: Tick) -> None:
        self._status_sqs.send_message(QueueUrl=self.outputs["DispatchQueueUrl"], MessageBody=tick.body)
        self.activity.add("schedule", f"tick scheduled at {tick.scheduled_at:%Y-%m-%d %H:%M} UTC", tick.job)

    def fire_schedule(self, job: str) -> Tick:
        """One invocation of ``job``'s schedule, now (what the demo does instead of waiting for 06:00)."""
        tick = self.ticker.fire_now(job)
        self.send_tick(tick)
        return tick

    def scale(self) -> None:
        response = invoke(self.scaler_function, {"rounds": 1}, self._handler_env)
        now = time.time()
        for job, result in (response or {}).get("jobs", {}).items():
            decision = Decision(
                now,
                job,
                int(result.get("desired", 0)),
                int(result.get("launched", 0)),
                str(result.get("reason", "")),
                result.get("error"),
            )
            previous = self.last_decision(job)
            with self._decisions_lock:
                self._decisions.append(decision)
            self.max_desired[job] = max(self.max_desired.get(job, 0), decision.desired)
            changed = previous is None or previous.desired != decision.desired or previous.reason != decision.reason
            if decision.error:
                self.activity.add("error", f"scaler: {decision.error}", job)
            elif decision.launched or (changed and (decision.desired or previous is not None)):
                launched = f", launched {decision.launched}" if decision.launched else ""
                self.activity.add("scaler", f"desired {decision.desired} ({decision.reason}){launched}", job)

    def decisions(self) -> list[Decision]:
        with self._decisions_lock:
            return list(self._decisions)

    def last_decision(self, job: str) -> Decision | None:
        return next((d for d in reversed(self.decisions()) if d.job == job), None)

    def reconcile(self) -> None:
        # Pending state changes first: reconciliation must not race the events that are already queued.
        self.tracker.drain()
        response = invoke(self.tracker_function, {"action": "reconcile"}, self._handler_env)
        self.reconciliations += 1
        if isinstance(response, dict) and any(response.get(k) for k in ("recovered", "timed_out", "vanished")):
            self.activity.add("tracker", f"reconciled: {response}")

    # ---------------------------------------------------------------------------------------------- ecs loop

    def _ecs_loop(self) -> None:
        while not self._stopping.is_set():
            self.run_tasks.sync()
            self.services.sync()
            for pool in self.services.snapshot():
                self.max_desired[pool.job] = max(self.max_desired.get(pool.job, 0), pool.max_desired)
            self._stopping.wait(ECS_INTERVAL_S)

    # ------------------------------------------------------------------------------------------- status loop

    def _status_loop(self) -> None:
        while not self._stopping.is_set():
            self.status = self._read_status()
            self._stopping.wait(STATUS_INTERVAL_S)

    def depth(self, queue_url: str) -> tuple[int | None, int | None, int | None]:
        try:
            attributes = self._status_sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except Exception:
            return None, None, None
        return (
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def _read_status(self) -> Status:
        pools = {pool.job: pool for pool in self.services.snapshot()}
        queues = []
        for spec in self.catalog.queue_jobs():
            visible, in_flight, delayed = self.depth(spec.queue_url or "")
            pool = pools.get(spec.name)
            if spec.queue_mode is QueueMode.SERVICE and pool is not None:
                running = len(pool.running())
                desired: int | None = pool.desired
                draining = len(pool.draining())
                protected = sum(1 for w in pool.workers if self.services.protected(w))
            else:  # per-message: the tasks RunTask started, and the Scaler's last count
                running = sum(1 for t in self.run_tasks.active() if t.job == spec.name)
                last = self.last_decision(spec.name)
                desired, draining, protected = (last.desired if last else None), 0, 0
            queues.append(
                QueueStatus(
                    spec.name, str(spec.queue_mode), visible, in_flight, delayed, desired, running, draining, protected
                )
            )
        dispatch = self.depth(self.outputs["DispatchQueueUrl"])[:2]
        runs = self.recent_runs(12)
        self._report_run_changes(runs)
        return Status(time.time(), queues, dispatch, self.dead_letters(), runs)

    def dead_letters(self) -> dict[str, int | None]:
        """Messages in the platform's dead-letter queues (dispatch, tracker)."""
        return {
            "dispatch": self.depth(self.outputs["DispatchDeadLetterQueueUrl"])[0],
            "tracker": self.depth(self.outputs["TrackerDeadLetterQueueUrl"])[0],
        }

    def recent_runs(self, limit: int) -> list[Run]:
        runs: list[Run] = []
        for job in self.catalog.names():
            with contextlib.suppress(Exception):
                runs += self._runs.history(job, limit=limit)
        return sorted(runs, key=lambda r: r.created_at, reverse=True)[:limit]

    def all_runs(self) -> list[Run]:
        return self.recent_runs(1000)

    def _report_run_changes(self, runs: list[Run]) -> None:
        for run in reversed(runs):
            state = f"{run.status}:{run.attempt}"
            if self._run_states.get(run.run_id) == state:
                continue
            self._run_states[run.run_id] = state
            extra = f" exit {run.exit_code}" if run.exit_code is not None else ""
            reason = f" ({run.reason})" if run.reason and run.status.terminal and run.status != "SUCCEEDED" else ""
            attempt = f" attempt {run.attempt}" if run.attempt > 1 else ""
            self.activity.add("run", f"{run.run_id[:8]} {run.trigger} {run.status}{attempt}{extra}{reason}", run.job)

    @property
    def runs_store(self) -> DynamoRunStore:
        return self._runs

    def efs_dir(self, job: str) -> Path:
        """Where ``job``'s tasks see their EFS access point (``.taskrunner/efs/<job><EfsPath>``)."""
        return self.environment.efs_dir(job, self.catalog.efs_path(job))
