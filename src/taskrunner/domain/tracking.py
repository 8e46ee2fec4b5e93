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

from taskrunner.domain.backoff import backoff_s as backoff
from taskrunner.domain.errors import PermanentError, Refused
from taskrunner.domain.failures import FailureKind, classify, retries
from taskrunner.domain.jobs import JobSpec, RetryPolicy
from taskrunner.domain.ports import Cluster, Registry, Retry, RetryScheduler, RunStore
from taskrunner.domain.runs import Run, RunStatus, log_stream, parse_started_by

#: The reason StopTask carries when the reconciler stops a run past its job's timeout.
TIMEOUT_REASON = "taskrunner: timed out"


class TaskState(BaseModel):
    """The fields of an "ECS Task State Change" event detail (or a DescribeTasks task) that tracking reads."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    task_arn: str = Field(alias="taskArn", min_length=1)
    cluster_arn: str = Field(alias="clusterArn", min_length=1)
    last_status: str = Field(alias="lastStatus", min_length=1)
    started_by: str = Field(default="", alias="startedBy")
    group: str = ""
    task_definition_arn: str = Field(default="", alias="taskDefinitionArn")
    overrides: dict[str, Any] = Field(default_factory=dict)
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


def per_message_worker(task: TaskState, stack_name: str) -> str | None:
    """The job whose per-message worker this task is (the Scaler launched it: ``startedBy`` and ``group`` name the
    job, its task definition is the job's family), or None. Its starts and stops keep the Scaler's worker count."""
    job = task.group.removeprefix("taskrunner:")
    if not job or job == task.group or task.started_by != f"taskrunner-scaler-{job}"[:128]:
        return None
    family = task.task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0]
    return job if family == f"{stack_name}-{job}" else None


@dataclass(frozen=True)
class Verdict:
    status: RunStatus
    failure: FailureKind | None
    reason: str
    #: The essential container's exit code (a sidecar's is no verdict), what the run records and retries on.
    exit_code: int | None = None


def verdict(task: TaskState) -> Verdict:
    """The run state a task state implies; a stopped task is classified by the table in domain/failures.py."""
    if task.last_status != "STOPPED":
        status = RunStatus.RUNNING if task.last_status == "RUNNING" else RunStatus.PENDING
        return Verdict(status, None, "")
    found = classify(task.stop_code, task.stopped_reason, task.containers)
    if found.kind is None:
        return Verdict(RunStatus.SUCCEEDED, None, "", found.exit_code)
    if found.kind is FailureKind.TIMEOUT:
        return Verdict(RunStatus.TIMED_OUT, found.kind, found.reason, found.exit_code)
    if found.kind is FailureKind.STOPPED:
        return Verdict(RunStatus.STOPPED, found.kind, found.reason, found.exit_code)
    return Verdict(RunStatus.FAILED, found.kind, found.reason, found.exit_code)


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
    """The delay before the next attempt after the n-th failed one (the one back-off rule, with equal jitter)."""
    delay = backoff(attempt, policy.backoff_base_s, policy.backoff_max_s, jitter=rng)
    return max(1, round(delay))


@dataclass(frozen=True)
class Tracked:
    run_id: str | None
    status: RunStatus | None
    applied: bool
    retry: Retry | None = None
    ignored: str = ""
    job: str | None = None


def override_env(task: TaskState) -> dict[str, str]:
    """The environment overrides the task was launched with (where a retry finds a manual run's values again)."""
    found: dict[str, str] = {}
    for container in task.overrides.get("containerOverrides", []) or []:
        if isinstance(container, dict):
            for pair in container.get("environment", []) or []:
                if isinstance(pair, dict) and isinstance(pair.get("name"), str):
                    found[pair["name"]] = str(pair.get("value", ""))
    return found


def retry_body(run: Run, attempt: int, task: TaskState | None) -> dict[str, Any] | None:
    """The dispatch request of attempt ``attempt``: the stored request, the run, and the override values the run
    began with (read back from a task of the run). None when those values cannot be recovered."""
    if run.request is None:
        return None
    body: dict[str, Any] = json.loads(run.request) | {"run_id": run.run_id, "attempt": attempt}
    if run.env_names:
        launched_with = override_env(task) if task is not None else {}
        if not set(run.env_names) <= set(launched_with):
            return None
        body["env"] = {name: launched_with[name] for name in run.env_names}
    return body


class Tracker:
    """Applies task state changes to runs, and schedules retries.

    Only tasks this stack launched for the run's own job move a run: the task's ``group`` is
    ``taskrunner:<job>``, its task definition is the family ``<stack>-<job>``, and it is the task the run recorded
    for that attempt. A state change that names a run but fails these checks is refused (dead-lettered).
    """

    def __init__(
        self,
        registry: Registry,
        store: RunStore,
        retries: RetryScheduler,
        *,
        stack_name: str,
        clock: Callable[[], float],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.registry = registry
        self.store = store
        self.retries = retries
        self.stack_name = stack_name
        self.clock = clock
        self.rng = rng

    def foreign(self, run: Run, attempt: int, task: TaskState) -> str | None:
        """Why this task is not the run's own, or None."""
        if task.group != f"taskrunner:{run.job}":
            return f"task group {task.group!r} is not job {run.job}'s"
        family = task.task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0]
        if family != f"{self.stack_name}-{run.job}":
            return f"task definition {task.task_definition_arn!r} is not job {run.job}'s"
        recorded = run.attempt_record(attempt)
        if recorded is not None and recorded.task_arn and recorded.task_arn != task.task_arn:
            return f"attempt {attempt} of run {run.run_id} runs task {recorded.task_arn}, not {task.task_arn}"
        return None

    def track(self, task: TaskState) -> Tracked:
        parsed = parse_started_by(task.started_by)
        if parsed is None:
            # Not a run of ours (a service worker, or another tool's task on the cluster): nothing to track.
            return Tracked(None, None, applied=False, ignored=f"startedBy {task.started_by!r} is not a run")
        run_id, attempt = parsed
        run = self.store.get(run_id)
        if run is None:
            raise PermanentError(f"state change for unknown run {run_id} (task {task.task_arn})")
        if why := self.foreign(run, attempt, task):
            raise Refused(f"state change refused for run {run_id}: {why}")
        outcome = verdict(task)
        if run.attempt > attempt:
            if run.status is RunStatus.RETRYING and run.attempt == attempt + 1 and outcome.status.terminal:
                # A redelivery of the failure that made this retry: the retry may never have been scheduled
                # (the scheduling call failed after the RETRYING write), so schedule it again; the claim dedups.
                return Tracked(run_id, run.status, applied=False, retry=self._reschedule(run, task), job=run.job)
            superseded = f"attempt {attempt} superseded by {run.attempt}"
            return Tracked(run_id, run.status, applied=False, ignored=superseded, job=run.job)
        return self.apply(run, attempt, task, outcome)

    def apply(self, run: Run, attempt: int, task: TaskState, outcome: Verdict) -> Tracked:
        fields: dict[str, Any] = {
            "task_arn": task.task_arn,
            "log_stream": log_stream(run.job, task.task_arn),
            "reason": outcome.reason or None,
            "exit_code": outcome.exit_code,
            "stop_code": task.stop_code,
            "failure": outcome.failure.value if outcome.failure else None,
        }
        # A state without times (a vanished task, recorded from what reconciliation knows) keeps the recorded ones;
        # the Dispatcher clears them when the next attempt begins.
        fields |= {k: v for k, v in (("started_at", task.started_at), ("stopped_at", task.stopped_at)) if v}
        applied = self.store.update(run.run_id, outcome.status, attempt, **fields)
        retry = None
        if outcome.status.terminal:
            # Also when not applied: a redelivery after a crash between the final write and the retry's write
            # must still retry. What retries is decided from the record, not from this (possibly late) event.
            recorded = self.store.get(run.run_id) if not applied else None
            if applied:
                retry = self._maybe_retry(run, attempt, outcome.failure, outcome.exit_code, outcome.reason, task)
            elif recorded is not None and recorded.attempt == attempt and recorded.status.terminal:
                failure = FailureKind(recorded.failure) if recorded.failure else None
                retry = self._maybe_retry(recorded, attempt, failure, recorded.exit_code, recorded.reason or "", task)
        return Tracked(run.run_id, outcome.status, applied, retry, job=run.job)

    def _maybe_retry(
        self,
        run: Run,
        attempt: int,
        failure: FailureKind | None,
        exit_code: int | None,
        why: str,
        task: TaskState | None,
    ) -> Retry | None:
        try:
            policy = self.registry.get(run.job).retry
        except PermanentError:
            return None  # the job was removed: nothing to retry it with
        if not should_retry(policy, attempt, failure, exit_code):
            return None
        nxt = attempt + 1
        body = retry_body(run, nxt, task)
        if body is None:
            return None  # nothing stored, or the manual run's override values are gone with its task
        delay = backoff_s(policy, attempt, self.rng)
        reason = f"attempt {attempt} failed ({failure}): {why}; retry in {delay}s"
        # RETRYING of attempt n+1 orders after every state of attempt n: a late event of n cannot undo it.
        # It is written first, with when the retry is due, so a retry whose scheduling fails is re-driven (by the
        # redelivered state change, or by reconciliation once it is overdue), never lost.
        due = round(self.clock() + delay)
        # redrives counts re-drives of one attempt: the next one starts with all of MAX_REDRIVES.
        if not self.store.update(run.run_id, RunStatus.RETRYING, nxt, reason=reason[:1000], retry_due=due, redrives=0):
            return None
        retry = Retry(run.run_id, nxt, delay, body)
        self.retries.schedule(retry)
        return retry

    def _reschedule(self, run: Run, task: TaskState | None) -> Retry | None:
        body = retry_body(run, run.attempt, task)
        if body is None:
            return None
        delay = max(0, round((run.retry_due or 0) - self.clock()))
        retry = Retry(run.run_id, run.attempt, delay, body)
        self.retries.schedule(retry)
        return retry


def timed_out(run: Run, spec: JobSpec, now: datetime) -> bool:
    if spec.timeout_s is None or run.status is not RunStatus.RUNNING:
        return False
    began = run.started_at or run.created_at
    return (now - began).total_seconds() > spec.timeout_s


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _epoch(stamp: datetime) -> float:
    return stamp.timestamp()


#: A retry overdue by this much never arrived (its message or schedule was lost): reconciliation sends it again.
RETRY_GRACE_S = 300
#: A claim nobody touched for this long lost its message (dead-lettered or dropped): longer than the longest
#: back-off the Dispatcher asks of SQS (900 s), so a claim whose message is merely waiting is never re-driven.
CLAIM_STALE_S = 960
#: Re-drives of one attempt (its lost retry, then its abandoned claim) before the run is recorded LAUNCH_FAILED.
MAX_REDRIVES = 3


@dataclass
class Reconciliation:
    checked: int = 0
    recovered: int = 0  # lost state changes applied from DescribeTasks
    timed_out: int = 0  # runs past their timeout, stopped (their STOPPED event records TIMED_OUT)
    vanished: int = 0
    redriven: int = 0  # lost retries and abandoned claims sent to the dispatch queue again
    abandoned: int = 0  # claims and retries that could not be re-driven: recorded LAUNCH_FAILED
    errors: int = 0  # runs whose reconciliation failed this tick (the next tick tries again)


class Reconciler:
    """Owns every active run, so no run is ever stuck: a lost state change is recovered from DescribeTasks (a run,
    or a Forbid overlap policy, cannot hang on it), a run past its timeout is stopped, a retry that never arrived and
    a claim whose message was lost are re-driven through the dispatch queue (the claim keeps it exactly-once)."""

    def __init__(
        self,
        registry: Registry,
        store: RunStore,
        cluster: Cluster,
        tracker: Tracker,
        retries: RetryScheduler,
        *,
        clock: Callable[[], float],
    ):
        self.registry = registry
        self.store = store
        self.cluster = cluster
        self.tracker = tracker
        self.retries = retries
        self.clock = clock

    def reconcile(self, runs: list[Run]) -> Reconciliation:
        report = Reconciliation()
        by_cluster: dict[str, list[tuple[Run, JobSpec]]] = {}
        now = self.clock()
        for run in runs:
            try:
                spec = self.registry.get(run.job)
            except PermanentError:
                continue
            if run.status in {RunStatus.PENDING, RunStatus.RUNNING} and run.task_arn:
                by_cluster.setdefault(spec.cluster, []).append((run, spec))
            elif self._lost(run, now):
                self._isolated(report, self._redrive, run, spec, report)
        for cluster, members in by_cluster.items():
            for start in range(0, len(members), 100):  # DescribeTasks takes 100 tasks a call
                chunk = members[start : start + 100]
                found = self.cluster.describe_tasks(cluster, [run.task_arn or "" for run, _ in chunk])
                for run, spec in chunk:
                    report.checked += 1
                    described = found.get(run.task_arn or "")
                    self._isolated(report, self._reconcile_one, run, spec, described, utc(now), report)
        return report

    @staticmethod
    def _isolated(report: Reconciliation, step: Callable[..., None], *args: Any) -> None:
        """One run's reconciliation; its failure (a throttled write, a bad record) leaves the others untouched."""
        try:
            step(*args)
        except Exception:  # the next tick tries this run again
            report.errors += 1

    @staticmethod
    def _lost(run: Run, now: float) -> bool:
        """A retry overdue past its grace, or a claim whose lease ended and that nobody touched since."""
        if run.status is RunStatus.RETRYING:
            return (run.retry_due or 0) + RETRY_GRACE_S < now
        if run.status is RunStatus.CLAIMED:
            return (run.lease_until or 0) < now and _epoch(run.updated_at) + CLAIM_STALE_S < now
        return False

    def _redrive(self, run: Run, spec: JobSpec, report: Reconciliation) -> None:
        report.checked += 1
        previous = run.attempt_record(run.attempt - 1) if run.attempt > 1 else None
        task = None
        if run.env_names and previous is not None and previous.task_arn:
            found = self.cluster.describe_tasks(spec.cluster, [previous.task_arn])
            if previous.task_arn in found:
                task = TaskState.model_validate(found[previous.task_arn])
        body = retry_body(run, run.attempt, task)
        if body is not None and run.attempt == 1:
            body.pop("run_id")  # a first attempt is found again by its idempotency key
            body.pop("attempt")
        if body is None or run.redrives >= MAX_REDRIVES:
            why = "its overrides cannot be recovered" if body is None else f"re-driven {run.redrives} times"
            reason = f"{run.status} abandoned: the dispatch message was lost and {why}; start it again by hand"
            if self.store.abandon(run, reason):
                report.abandoned += 1
            return
        if self.store.redriven(run, self.clock()):
            self.retries.schedule(Retry(run.run_id, run.attempt, 0, body))
            report.redriven += 1

    def _reconcile_one(
        self, run: Run, spec: JobSpec, described: dict[str, Any] | None, now: datetime, report: Reconciliation
    ) -> None:
        if described is None:
            task = TaskState(
                task_arn=run.task_arn or "?",
                cluster_arn=spec.cluster,
                last_status="STOPPED",
                group=f"taskrunner:{run.job}",
            )
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
            # Stop only: the task's own STOPPED event (or the next reconciliation) records TIMED_OUT with the
            # exit code the task really had (143 after SIGTERM), not one we made up.
            self.cluster.stop_task(cluster_of(task, spec), task.task_arn, f"{TIMEOUT_REASON} after {spec.timeout_s}s")
            report.timed_out += 1


def cluster_of(task: TaskState, spec: JobSpec) -> str:
    return task.cluster_arn or spec.cluster
