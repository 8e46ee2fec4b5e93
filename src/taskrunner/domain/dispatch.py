"""Dispatch: turn one request into at most one launched task, exactly once.

1. Claim the run in the runs table with a conditional write keyed by the event's identity. A
   redelivered event finds the run and launches nothing; a claim whose Lambda died mid-launch is
   taken over after its lease expires, and first *adopts* a task that launch may already have started.
2. Admit it (starting deadline, overlap policy, max concurrency) against ECS's view of the job's tasks.
3. RunTask with the run's clientToken, reading ``failures[]``: capacity failures try on-demand where
   the job allows and otherwise return the message; anything permanent is recorded and dead-lettered.

Before any of it, the request is re-checked against its job and the job's registry entry against the stack
(:mod:`taskrunner.domain.trust`): a request refused there claims and launches nothing and is dead-lettered with
its reason. A retry (attempt > 1) is the run's *stored* request again: the message only names which run and
attempt, so a forged retry cannot change what runs, nor take over another job's run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from taskrunner.domain.errors import LaunchRejected, PermanentError, Refused, RegistryMismatch, TryLater
from taskrunner.domain.jobs import Capacity, JobSpec
from taskrunner.domain.launch import run_task_request, summarize_failures
from taskrunner.domain.ports import ClaimKind, Cluster, Pauses, Registry, RunStore
from taskrunner.domain.runs import Run, RunStatus, idempotency_key, run_detail, run_id_for, started_by
from taskrunner.domain.schedule import Action, admit, needs_active_tasks
from taskrunner.domain.triggers import DispatchRequest, Trigger
from taskrunner.domain.trust import MAX_TICK_SKEW_S, StackBounds, registry_problems, request_problems

#: ECS ``failures[].reason`` values that mean "no capacity right now", not "this request is wrong".
CAPACITY_FAILURE = re.compile(r"capacity|RESOURCE:|insufficient|unavailable", re.IGNORECASE)


#: A new attempt's first record clears what the last attempt left at the run's top level (its own stays in attempts).
CLEARED: dict[str, None] = dict.fromkeys(("reason", "exit_code", "stop_code", "failure", "started_at", "stopped_at"))


class Result(StrEnum):
    LAUNCHED = "launched"
    ADOPTED = "adopted"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    MISSED = "missed"


@dataclass(frozen=True)
class Outcome:
    result: Result
    run_id: str
    reason: str = ""
    task_arn: str | None = None
    fallback: bool = False


def classify_claim(existing: Run | None, run: Run, now: float) -> ClaimKind:
    """What a claim of ``run`` (its attempt, for its job) meets in the runs table: the one rule both stores apply.

    * NEW: nothing there for a first attempt, or a retry taking over the RETRYING run the Tracker left for it;
    * RECLAIMED: a CLAIMED record of this attempt whose lease ended (its Lambda died mid-launch);
    * BUSY: a CLAIMED record of this attempt with a live lease (another invocation is launching it);
    * DUPLICATE: anything else (the run is past this attempt's claim, at another attempt, or another job's).

    The store makes the write atomic with a condition that admits exactly NEW and RECLAIMED, and classifies what it
    saw (the old record on success, the current one on refusal) with this function. Leases are compared in whole
    seconds, as the DynamoDB table stores them.
    """
    if existing is None:
        return ClaimKind.NEW if run.attempt == 1 else ClaimKind.DUPLICATE
    if existing.job != run.job or existing.attempt != run.attempt:
        return ClaimKind.DUPLICATE
    if existing.status is RunStatus.RETRYING and run.attempt > 1:
        return ClaimKind.NEW
    if existing.status is RunStatus.CLAIMED:
        return ClaimKind.RECLAIMED if int(existing.lease_until or 0) < int(now) else ClaimKind.BUSY
    return ClaimKind.DUPLICATE


#: The kinds a claim takes the run with (the store wrote it); the others leave the record as it was.
TAKEN = frozenset({ClaimKind.NEW, ClaimKind.RECLAIMED})


def family_of(task_definition: str) -> str:
    """``arn:...:task-definition/fam:3`` or ``fam:3`` or ``fam`` → ``fam``."""
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0]


#: Triggers a pause holds back (a CronJob's ``suspend``); a manual run is an operator's explicit ask and goes ahead.
PAUSABLE = frozenset({Trigger.SCHEDULE, Trigger.S3, Trigger.EVENT})


class NoPauses:
    """For callers without an operator pause store (tests of other behaviour, the simulator)."""

    def paused(self) -> frozenset[str]:
        return frozenset()

    def reasons(self) -> dict[str, str]:
        return {}

    def set_paused(self, job: str, paused: bool, reason: str = "") -> None:
        raise NotImplementedError("this dispatcher has no pause store")


def checked_spec(registry: Registry, job: str, stack: StackBounds) -> JobSpec:
    """The job's registry entry, trusted only for what this stack could have written there."""
    spec = registry.get(job)
    if problems := registry_problems(spec, stack):
        raise RegistryMismatch(f"registry entry for '{job}' does not match this stack: {'; '.join(problems)}")
    return spec


def stored_request(run: Run, retry: DispatchRequest) -> DispatchRequest:
    """A retry's request: what the run stored when it began, with only the override values the retry carries.

    The values are not stored (a run record keeps names, not values); the Tracker reads them back from the failed
    task's own overrides, and they must be the names the run began with.
    """
    if run.request is None:
        raise Refused(f"run {run.run_id} has no stored request to retry")
    if extra := sorted(set(retry.env) - set(run.env_names)):
        raise Refused(f"retry of run {run.run_id} carries overrides the run did not begin with: {extra}")
    original = DispatchRequest.model_validate_json(run.request)
    return original.model_copy(update={"run_id": run.run_id, "attempt": retry.attempt, "env": dict(retry.env)})


class Dispatcher:
    def __init__(
        self,
        registry: Registry,
        store: RunStore,
        cluster: Cluster,
        *,
        stack: StackBounds,
        clock: Callable[[], float],
        lease_s: float = 120.0,
        pauses: Pauses | None = None,
        tick_skew_s: float = MAX_TICK_SKEW_S,
    ) -> None:
        self.tick_skew_s = tick_skew_s
        self.registry = registry
        self.store = store
        self.cluster = cluster
        self.stack = stack
        self.clock = clock
        self.lease_s = lease_s
        self.pauses: Pauses = pauses or NoPauses()

    def _retry_request(self, request: DispatchRequest) -> DispatchRequest | None:
        """The stored request of the run a retry names, or None when there is nothing (left) to retry."""
        assert request.run_id is not None
        run = self.store.get(request.run_id)
        if run is None:
            return None
        if run.job != request.job:
            raise Refused(f"retry names run {run.run_id} of job '{run.job}', not of '{request.job}'")
        return stored_request(run, request)

    def dispatch(self, request: DispatchRequest) -> Outcome:
        if request.attempt > 1:
            retried = self._retry_request(request)
            if retried is None:
                return Outcome(Result.DUPLICATE, request.run_id or "", reason="no such run")
            request = retried
        spec = checked_spec(self.registry, request.job, self.stack)
        now = self.clock()
        stamp = datetime.fromtimestamp(now, UTC)
        if problems := request_problems(spec, request, self.stack, stamp, tick_skew_s=self.tick_skew_s):
            raise Refused(f"request refused for job '{spec.name}': {'; '.join(problems)}")
        key = idempotency_key(request)
        run_id = request.run_id if request.run_id else run_id_for(key)
        run = Run(
            run_id=run_id,
            job=spec.name,
            trigger=request.trigger,
            idempotency_key=key,
            status=RunStatus.CLAIMED,
            attempt=request.attempt,
            created_at=stamp,
            updated_at=stamp,
            detail=run_detail(request),
            lease_until=now + self.lease_s,
            # Override values stay in the task's overrides (ECS holds them); the record keeps their names.
            request=request.model_dump_json(by_alias=True, exclude={"run_id", "attempt", "env"}, exclude_defaults=True),
            env_names=tuple(sorted(request.env)),
        )
        claim = self.store.claim(run, now)
        if claim.kind is ClaimKind.DUPLICATE:
            existing = claim.existing
            return Outcome(Result.DUPLICATE, run_id, reason=str(existing.status) if existing else "")
        if claim.kind is ClaimKind.BUSY:
            raise TryLater(f"run {run_id} is being launched by another invocation", delay_s=int(self.lease_s))
        attempt = request.attempt
        if claim.kind is ClaimKind.RECLAIMED and (
            adopted := self.cluster.tasks_started_by(spec.cluster, started_by(run_id, attempt))
        ):
            self.store.update(
                run_id, RunStatus.PENDING, attempt, task_arn=adopted[0], reason="adopted after lost record"
            )
            return Outcome(Result.ADOPTED, run_id, task_arn=adopted[0])

        active = (
            self.cluster.active_tasks(spec.cluster, family_of(spec.task_definition))
            if needs_active_tasks(spec, request)
            else []
        )
        paused = request.trigger in PAUSABLE and attempt == 1 and spec.name in self.pauses.paused()
        admission = admit(spec, request, stamp, active, paused=paused)
        if admission.action is Action.SKIP:
            missed = admission.reason.startswith("missed")
            status = RunStatus.MISSED if missed else RunStatus.SKIPPED
            self.store.update(run_id, status, attempt, reason=admission.reason)
            return Outcome(Result.MISSED if missed else Result.SKIPPED, run_id, reason=admission.reason)
        if admission.action is Action.DEFER:
            self.store.release(run_id)
            raise TryLater(admission.reason, delay_s=30)
        for task_arn in admission.stop:
            self.cluster.stop_task(spec.cluster, task_arn, f"taskrunner: replaced by run {run_id} (overlap Replace)")
        return self._launch(spec, run, request)

    def _launch(self, spec: JobSpec, run: Run, request: DispatchRequest) -> Outcome:
        fallback = False
        while True:
            try:
                result = self.cluster.run_task(run_task_request(spec, run, request, fallback=fallback))
            except TryLater:
                self.store.release(run.run_id)
                raise
            except PermanentError as exc:
                self.store.update(run.run_id, RunStatus.LAUNCH_FAILED, run.attempt, reason=str(exc))
                raise
            if result.task_arns:
                task_arn = result.task_arns[0]
                self.store.update(
                    run.run_id, RunStatus.PENDING, run.attempt, task_arn=task_arn, fallback=fallback, **CLEARED
                )
                return Outcome(Result.LAUNCHED, run.run_id, task_arn=task_arn, fallback=fallback)
            if not result.failures:
                self.store.release(run.run_id)
                raise TryLater("RunTask returned neither a task nor a failure")
            reasons = summarize_failures(result.failures)
            why = " ".join(f"{f.get('reason', '')} {f.get('detail', '')}" for f in result.failures)
            if not CAPACITY_FAILURE.search(why):
                self.store.update(run.run_id, RunStatus.LAUNCH_FAILED, run.attempt, reason=reasons)
                raise LaunchRejected(f"RunTask failed: {reasons}")
            if spec.capacity is Capacity.SPOT_WITH_FALLBACK and not fallback:
                fallback = True
                continue
            self.store.release(run.run_id)
            raise TryLater(f"no Fargate capacity: {reasons}", delay_s=60)
