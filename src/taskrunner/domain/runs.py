"""Runs: one execution of a job for one event, and the keys that make launching it exactly-once.

A run's id is derived from its idempotency key, so a redelivered event, even days later, maps to
the same run record and the conditional write in the runs table refuses to launch it again. The
same key (with the attempt number) becomes the RunTask ``clientToken``, which ECS honours for 24 h.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from taskrunner.domain.triggers import DispatchRequest, Trigger


class RunStatus(StrEnum):
    CLAIMED = "CLAIMED"  # a Dispatcher holds the lease and is launching
    PENDING = "PENDING"  # RunTask accepted; the task is provisioning
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"
    SKIPPED = "SKIPPED"  # overlap policy said no
    MISSED = "MISSED"  # a schedule tick past its starting deadline
    LAUNCH_FAILED = "LAUNCH_FAILED"  # a permanent launch error, recorded with its reason
    RETRYING = "RETRYING"  # an attempt failed with a retryable failure; the next is scheduled

    @property
    def rank(self) -> int:
        """Within one attempt, runs only move forward: a late or duplicate event never moves one back."""
        return _RANK[self]

    def order(self, attempt: int) -> int:
        """Across attempts: every state of attempt n+1 (RETRYING first) is after every state of attempt n."""
        return attempt * 10 + self.rank

    @property
    def terminal(self) -> bool:
        return self.rank >= _RANK[RunStatus.SUCCEEDED]


_RANK = {
    RunStatus.RETRYING: -1,
    RunStatus.CLAIMED: 0,
    RunStatus.PENDING: 1,
    RunStatus.RUNNING: 2,
    **dict.fromkeys(
        (
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.TIMED_OUT,
            RunStatus.STOPPED,
            RunStatus.SKIPPED,
            RunStatus.MISSED,
            RunStatus.LAUNCH_FAILED,
        ),
        3,
    ),
}


class Attempt(BaseModel):
    """One attempt of a run: its own task, times, exit and reason (a run keeps every attempt, not only the last)."""

    model_config = ConfigDict(frozen=True)

    number: int = Field(ge=1)
    status: RunStatus | None = None
    task_arn: str | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    exit_code: int | None = None
    stop_code: str | None = None
    reason: str | None = None
    failure: str | None = None
    log_stream: str | None = None


def _attempts(value: Any) -> Any:
    # DynamoDB holds attempts as a map keyed by the attempt number, so one attempt's update never rewrites another's.
    if isinstance(value, dict):
        return [{"number": int(k)} | dict(v) for k, v in sorted(value.items(), key=lambda kv: int(kv[0]))]
    return value


class Run(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    job: str
    trigger: Trigger
    idempotency_key: str
    status: RunStatus
    attempt: int = 1
    created_at: datetime
    updated_at: datetime
    task_arn: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    stop_code: str | None = None
    #: The failure kind of the last failed attempt (start, spot, exit, timeout, stopped, lost).
    failure: str | None = None
    detail: dict[str, str] = Field(default_factory=dict)
    lease_until: float | None = None
    #: The request that started the run (JSON, without override values), so a retry re-dispatches the same thing.
    request: str | None = None
    #: Names of the manual run's environment overrides; their values live only in the task's own overrides.
    env_names: tuple[str, ...] = ()
    #: When the scheduled retry (status RETRYING) is due: reconciliation re-drives it if it never arrives.
    retry_due: float | None = None
    #: How many times reconciliation re-drove an abandoned claim or a lost retry.
    redrives: int = 0
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    #: Every attempt so far, oldest first.
    attempts: Annotated[tuple[Attempt, ...], BeforeValidator(_attempts)] = ()

    def attempt_record(self, number: int) -> Attempt | None:
        return next((a for a in self.attempts if a.number == number), None)


def log_stream(job: str, task_arn: str, container: str = "job") -> str:
    """A task's awslogs stream: ``<prefix>/<container>/<task id>``; jobs/job.yaml sets the prefix to the job."""
    return f"{job}/{container}/{task_arn.rsplit('/', 1)[-1]}"


def idempotency_key(request: DispatchRequest) -> str:
    """The identity of the event behind a request, stable across redeliveries and retries of delivery."""
    match request.trigger:
        case Trigger.SCHEDULE:
            assert request.scheduled_at is not None
            return f"{request.job}|schedule|{request.scheduled_at.isoformat()}"
        case Trigger.S3:
            obj = request.s3_object()
            assert obj is not None
            # S3 delivers at least once and unordered; the sequencer orders writes to one key, so
            # (key, sequencer) identifies one upload even when the same key is overwritten.
            return f"{request.job}|s3|{obj.bucket}/{obj.key}|{obj.sequencer}"
        case Trigger.EVENT:
            assert request.event is not None
            return f"{request.job}|event|{request.event.id}"
        case Trigger.MANUAL:
            return f"{request.job}|manual|{request.request_id}"


RUN_ID_LENGTH = 26


def run_id_for(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:RUN_ID_LENGTH]


def client_token(run_id: str, attempt: int) -> str:
    """RunTask ``clientToken``: at most 64 ASCII characters, unique per (run, attempt)."""
    return f"tr-{started_by(run_id, attempt)}"


def started_by(run_id: str, attempt: int) -> str:
    """The task's ``startedBy``: finds the task of one attempt (adoption) and maps state changes to runs."""
    return f"{run_id}-{attempt}"


#: ``<26 hex>-<attempt>``: a job name (``[a-z][a-z0-9-]*``, as in ``taskrunner-scaler-<job>``) can never match it,
#: because the part before the last ``-`` must be exactly a run id, which is hex.
_STARTED_BY = re.compile(rf"^([0-9a-f]{{{RUN_ID_LENGTH}}})-([1-9][0-9]?)$")


def parse_started_by(value: str) -> tuple[str, int] | None:
    """The (run id, attempt) a task's ``startedBy`` names, or None for any task that is not a run's."""
    found = _STARTED_BY.match(value)
    return (found.group(1), int(found.group(2))) if found else None


def run_detail(request: DispatchRequest) -> dict[str, str]:
    """What a run records about its trigger, for history and for the task's environment."""
    detail: dict[str, str] = {}
    if request.scheduled_at is not None:
        detail["scheduled_at"] = request.scheduled_at.isoformat()
    if (obj := request.s3_object()) is not None:
        detail |= {"bucket": obj.bucket, "key": obj.key}
    if request.event is not None:
        detail |= {"event_id": request.event.id, "detail_type": request.event.detail_type}
    return detail


#: Statuses reconciliation owns: a task may exist (PENDING, RUNNING), a launch is in flight (CLAIMED), or the
#: next attempt is scheduled (RETRYING). Every other status is final.
ACTIVE_STATUSES = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.CLAIMED, RunStatus.RETRYING)
#: What each attempt records of its own (the run's top level mirrors the latest attempt).
ATTEMPT_FIELDS = frozenset(
    {"status", "task_arn", "started_at", "stopped_at", "exit_code", "stop_code", "reason", "failure", "log_stream"}
)


def as_item(run: Run) -> dict[str, Any]:
    item = run.model_dump(mode="json", exclude_none=True)
    item["attempts"] = {
        str(a.number): a.model_dump(mode="json", exclude_none=True, exclude={"number"}) for a in run.attempts
    }
    return item
