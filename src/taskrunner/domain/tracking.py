"""Run tracking: ECS task state changes → run states, with Batch-style retries and Job-style back-off.

Events arrive late, twice and out of order, so every transition is a forward-only conditional write
(ordered by attempt, then by state). A stopped task is classified into a failure kind; the job's
retry policy says whether that kind retries (AWS Batch ``evaluateOnExit``: start failures separately
from application exit codes) and the attempt number gives the back-off (Kubernetes Job: exponential,
capped). A retry is the original request again, as attempt n+1 of the same run, re-dispatched with a
delay; it is claimed and launched with the same exactly-once discipline as the first attempt.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskrunner.domain.errors import PermanentError
from taskrunner.domain.failures import FailureKind, classify, retries
from taskrunner.domain.jobs import JobSpec, RetryPolicy
from taskrunner.domain.ports import Cluster, Registry, Retry, RetryScheduler, RunStore
from taskrunner.domain.runs import Run, RunStatus, parse_started_by

#: The reason StopTask carries when the reconciler stops a run past its job's timeout.
TIMEOUT_REASON = "taskrunner: timed out"


class TaskState(BaseModel):
    """The fields of an "ECS Task State Change" event detail (or a DescribeTasks task) that tracking reads."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    task_arn: str = Field(alias="taskArn", min_length=1)
    cluster_arn: str = Field(alias="clusterArn", min_length=1)
    last_status: str = Field(alias="lastStatus", min_length=1)
    started_by: str = Field(default="", alias="startedBy")
    stop_code: str | None = Field(default=None, alias="stopCode")
    stopped_reason: str | None = Field(default=None, alias="stoppedReason")
    containers: list[dict[str, Any]] = Field(default_factory=list)
    started_at: datetime | None = Field(default=None, alias="startedAt")
    stopped_at: datetime | None = Field(default=None, alias="stoppedAt")
    version: int = 0

    @property
    def exit_code(self) -> int | None:
        codes = [c.get("exitCode") for c in self.containers if isinstance(c, dict)]
        known = [int(c) for c in codes if isinstance(c, int | float) and not isinstance(c, bool)]
        return max(known, key=abs) if known else None

    @property
    def container_reason(self) -> str:
        return "; ".join(str(c["reason"]) for c in self.containers if isinstance(c, dict) and c.get("reason"))


@dataclass(frozen=True)
class Verdict:
    status: RunStatus
    failure: FailureKind | None
    reason: str


def verdict(task: TaskState) -> Verdict:
    """The run state a task state implies; a stopped task is classified by the table in domain/failures.py."""
    if task.last_status != "STOPPED":
        status = RunStatus.RUNNING if task.last_status == "RUNNING" else RunStatus.PENDING
        return Verdict(status, None, "")
    found = classify(task.stop_code, task.stopped_reason, task.containers)
    if found.kind is None:
        return Verdict(RunStatus.SUCCEEDED, None, "")
    if found.kind is FailureKind.TIMEOUT:
        return Verdict(RunStatus.TIMED_OUT, found.kind, found.reason)
    if found.kind is FailureKind.STOPPED:
        return Verdict(RunStatus.STOPPED, found.kind, found.reason)
    return Verdict(RunStatus.FAILED, found.kind, found.reason)


def should_retry(policy: RetryPolicy, attempt: int, failure: FailureKind | None, exit_code: int | None) -> bool:
    """AWS Batch ``evaluateOnExit``: the platform's failures retry, the application's only for listed codes."""
    if failure is None or attempt >= policy.max_attempts:
        return False
    return retries(
        failure,
        exit_code,
        retry_start_failures=policy.retry_start_failures,
        retry_exit_codes=policy.retry_exit_codes,
    )


def backoff_s(policy: RetryPolicy, attempt: int, rng: Callable[[], float]) -> int:
    """Exponential back-off, capped, with equal jitter: base·2^(n-1)·U(0.5, 1) after the n-th failed attempt.

    The jitter spreads a burst of failures (a bad image, a Spot reclaim) so their retries do not arrive together.
    """
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * (1 << max(0, attempt - 1)))
    return max(1, round(ceiling * (0.5 + rng() / 2)))


@dataclass(frozen=True)
class Tracked:
    run_id: str | None
    status: RunStatus | None
    applied: bool
    retry: Retry | None = None
    ignored: str = ""


class Tracker:
    def __init__(
        self,
        registry: Registry,
        store: RunStore,
        retries: RetryScheduler,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.registry = registry
        self.store = store
        self.retries = retries
        self.rng = rng

    def track(self, task: TaskState) -> Tracked:
        parsed = parse_started_by(task.started_by)
        if parsed is None:
            # Not a run of ours (a service worker, or another tool's task on the cluster): nothing to track.
            return Tracked(None, None, applied=False, ignored=f"startedBy {task.started_by!r} is not a run")
        run_id, attempt = parsed
        run = self.store.get(run_id)
        if run is None:
            raise PermanentError(f"state change for unknown run {run_id} (task {task.task_arn})")
        if run.attempt > attempt:
            return Tracked(run_id, run.status, applied=False, ignored=f"attempt {attempt} superseded by {run.attempt}")
        return self.apply(run, attempt, task, verdict(task))

    def apply(self, run: Run, attempt: int, task: TaskState, outcome: Verdict) -> Tracked:
        fields: dict[str, Any] = {
            "task_arn": task.task_arn,
            "reason": outcome.reason or None,
            "exit_code": task.exit_code,
            "stop_code": task.stop_code,
            "started_at": task.started_at,
            "stopped_at": task.stopped_at,
            "failure": outcome.failure.value if outcome.failure else None,
        }
        applied = self.store.update(run.run_id, outcome.status, attempt, **fields)
        retry = None
        if applied and outcome.status.terminal:
            retry = self._maybe_retry(run, attempt, outcome, task.exit_code)
        return Tracked(run.run_id, outcome.status, applied, retry)

    def _maybe_retry(self, run: Run, attempt: int, outcome: Verdict, exit_code: int | None) -> Retry | None:
        try:
            policy = self.registry.get(run.job).retry
        except PermanentError:
            return None  # the job was removed: nothing to retry it with
        if not should_retry(policy, attempt, outcome.failure, exit_code) or run.request is None:
            return None
        delay = backoff_s(policy, attempt, self.rng)
        nxt = attempt + 1
        reason = f"attempt {attempt} failed ({outcome.failure}): {outcome.reason}; retry in {delay}s"
        # RETRYING of attempt n+1 orders after every state of attempt n: a late event of n cannot undo it.
        if not self.store.update(run.run_id, RunStatus.RETRYING, nxt, reason=reason[:1000]):
            return None
        retry = Retry(run.run_id, nxt, delay, json.loads(run.request) | {"run_id": run.run_id, "attempt": nxt})
        self.retries.schedule(retry)
        return retry


def timed_out(run: Run, spec: JobSpec, now: datetime) -> bool:
    if spec.timeout_s is None or run.status is not RunStatus.RUNNING:
        return False
    began = run.started_at or run.created_at
    return (now - began).total_seconds() > spec.timeout_s


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Reconciliation:
    checked: int = 0
    recovered: int = 0  # lost state changes applied from DescribeTasks
    timed_out: int = 0
    vanished: int = 0


class Reconciler:
    """Compares the runs the table believes active with ECS, so a lost state-change event cannot leave a run
    (or a Forbid overlap policy) stuck forever, and stops runs past their job's timeout."""

    def __init__(
        self, registry: Registry, store: RunStore, cluster: Cluster, tracker: Tracker, *, clock: Callable[[], float]
    ):
        self.registry = registry
        self.store = store
        self.cluster = cluster
        self.tracker = tracker
        self.clock = clock

    def reconcile(self, runs: list[Run]) -> Reconciliation:
        report = Reconciliation()
        by_cluster: dict[str, list[tuple[Run, JobSpec]]] = {}
        for run in runs:
            if run.status not in {RunStatus.PENDING, RunStatus.RUNNING} or not run.task_arn:
                continue  # CLAIMED and RETRYING runs belong to their (durable) dispatch-queue message
            try:
                spec = self.registry.get(run.job)
            except PermanentError:
                continue
            by_cluster.setdefault(spec.cluster, []).append((run, spec))
        now = utc(self.clock())
        for cluster, members in by_cluster.items():
            for start in range(0, len(members), 100):  # DescribeTasks takes 100 tasks a call
                chunk = members[start : start + 100]
                found = self.cluster.describe_tasks(cluster, [run.task_arn or "" for run, _ in chunk])
                for run, spec in chunk:
                    report.checked += 1
                    self._reconcile_one(run, spec, found.get(run.task_arn or ""), now, report)
        return report

    def _reconcile_one(
        self, run: Run, spec: JobSpec, described: dict[str, Any] | None, now: datetime, report: Reconciliation
    ) -> None:
        if described is None:
            task = TaskState(task_arn=run.task_arn or "?", cluster_arn=spec.cluster, last_status="STOPPED")
            lost = Verdict(RunStatus.FAILED, FailureKind.LOST, "task not found by DescribeTasks (state change lost)")
            if self.tracker.apply(run, run.attempt, task, lost).applied:
                report.vanished += 1
            return
        task = TaskState.model_validate(described)
        outcome = verdict(task)
        if outcome.status.rank > run.status.rank:
            if self.tracker.apply(run, run.attempt, task, outcome).applied:
                report.recovered += 1
            return
        if timed_out(run.model_copy(update={"started_at": run.started_at or task.started_at}), spec, now):
            reason = f"{TIMEOUT_REASON} after {spec.timeout_s}s"
            self.cluster.stop_task(cluster_of(task, spec), task.task_arn, reason)
            stopped = task.model_copy(update={"last_status": "STOPPED", "stopped_reason": reason})
            if self.tracker.apply(run, run.attempt, stopped, verdict(stopped)).applied:
                report.timed_out += 1


def cluster_of(task: TaskState, spec: JobSpec) -> str:
    return task.cluster_arn or spec.cluster
