"""What the domain needs from the outside world. Adapters implement these with boto3; tests with fakes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.runs import Run, RunStatus


class Registry(Protocol):
    def get(self, job: str) -> JobSpec:
        """The job's validated spec; raises UnknownJob or InvalidJobSpec."""
        ...

    def all(self) -> list[JobSpec]: ...

    def invalid(self) -> dict[str, str]:
        """Entries that do not validate, by parameter name, with why (reported, never silently absent)."""
        ...


class Pauses(Protocol):
    """Jobs an operator paused (``taskrunner pause``): their schedules and rules start no new run until resumed."""

    def paused(self) -> frozenset[str]: ...

    def reasons(self) -> dict[str, str]:
        """Paused job → why (what ``taskrunner pause --reason`` recorded)."""
        ...

    def set_paused(self, job: str, paused: bool, reason: str = "") -> None: ...


class ClaimKind(StrEnum):
    NEW = "new"
    RECLAIMED = "reclaimed"  # an earlier claim's lease expired: its Lambda died mid-launch
    DUPLICATE = "duplicate"  # the run already exists past the claim: nothing to do
    BUSY = "busy"  # another invocation holds a live lease


@dataclass(frozen=True)
class Claim:
    kind: ClaimKind
    existing: Run | None = None


class RunStore(Protocol):
    def claim(self, run: Run, now: float) -> Claim:
        """Conditionally create the run (or take over an expired lease)."""
        ...

    def update(self, run_id: str, status: RunStatus, attempt: int, **fields: Any) -> bool:
        """Move a run forward; never backward (False, and no write, if it is already at or past ``status``)."""
        ...

    def release(self, run_id: str) -> None:
        """Give up a claim so a redelivery can take it at once."""
        ...

    def get(self, run_id: str) -> Run | None: ...

    def redriven(self, run: Run, now: float) -> bool:
        """Count one re-drive of a lost retry or an abandoned claim (only if the run is still as ``run`` shows it)."""
        ...

    def abandon(self, run: Run, reason: str) -> bool:
        """Record a run that can no longer be launched LAUNCH_FAILED (only if it is still as ``run`` shows it)."""
        ...

    def active(self) -> list[Run]:
        """Every run reconciliation owns (``ACTIVE_STATUSES``), all pages of them."""
        ...

    def history(self, job: str, limit: int = 50, status: RunStatus | None = None) -> list[Run]:
        """The job's newest runs (only those in ``status``, if given), newest first."""
        ...

    def recent(self, status: RunStatus, since: datetime | None = None, limit: int = 1000) -> list[Run]:
        """Runs in ``status`` created at or after ``since`` (every one without it), newest first."""
        ...

    def newest(self, jobs: Iterable[str], limit: int = 50, status: RunStatus | None = None) -> list[Run]:
        """The newest ``limit`` runs across ``jobs`` (only those in ``status``, if given)."""
        ...


@dataclass(frozen=True)
class LaunchResult:
    task_arns: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


class QueueDepth(NamedTuple):
    visible: int
    in_flight: int
    delayed: int


class ServiceCounts(NamedTuple):
    running: int
    pending: int
    desired: int


class Cluster(Protocol):
    def run_task(self, request: dict[str, Any]) -> LaunchResult:
        """RunTask; raises TryLater on throttling or 5xx after botocore's retries, PermanentError on 4xx."""
        ...

    def active_tasks(self, cluster: str, family: str) -> list[str]:
        """ARNs of the family's tasks whose desired status is RUNNING (provisioning, pending or running)."""
        ...

    def tasks_started_by(self, cluster: str, started_by: str) -> list[str]: ...

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None: ...

    def describe_tasks(self, cluster: str, task_arns: list[str]) -> dict[str, dict[str, Any]]:
        """DescribeTasks (≤100): task ARN → the task as ECS describes it; tasks ECS no longer knows are absent."""
        ...


@dataclass(frozen=True)
class Retry:
    run_id: str
    attempt: int
    delay_s: int
    body: dict[str, Any]


class RetryScheduler(Protocol):
    def schedule(self, retry: Retry) -> None:
        """Re-dispatch ``retry.body`` after ``retry.delay_s`` (SQS delay up to 15 min, a one-time schedule beyond)."""
        ...


class Services(Protocol):
    def describe(self, cluster: str, services: list[str]) -> dict[str, ServiceCounts]:
        """Counts for the services found; a missing or failed one is absent (scaling holds it)."""
        ...

    def set_desired(self, cluster: str, service: str, desired: int) -> None: ...


class Depths(Protocol):
    def depth(self, queue_url: str) -> QueueDepth | None: ...


@dataclass(frozen=True)
class StoredState:
    """A queue job's item in the Scaler's state table: its scaler state and, per-message, its live workers."""

    state: dict[str, Any] | None = None
    #: Per-message workers launched (or seen starting) and not seen stopping: the ECS task state-change events the
    #: Tracker receives keep it, a ListTasks reconciles it now and then. None: never counted.
    workers: frozenset[str] | None = None
    #: When a ListTasks last reconciled ``workers`` (epoch seconds).
    counted_at: float | None = None
    #: Workers seen stopping (tombstones: a late "started" event cannot make them live again).
    stopped: frozenset[str] = frozenset()
    #: Bumped by every event-driven change of ``workers``: a reconciliation writes only if it is unchanged.
    version: int = 0


class StateStore(Protocol):
    def load_many(self, jobs: Sequence[str]) -> dict[str, StoredState]:
        """Each job's item (``StoredState()`` if it has none); a job whose read failed is absent."""
        ...

    def save(self, job: str, state: dict[str, Any]) -> None: ...

    def add_workers(self, job: str, task_arns: Sequence[str]) -> None:
        """Record tasks just launched for a per-message job."""
        ...

    def set_workers(self, job: str, task_arns: Sequence[str], at: float, seen: StoredState) -> bool:
        """Replace the workers with what ListTasks listed (minus those seen stopping), if the item is still as
        ``seen`` (read before the listing) shows it; False, and no write, if an event changed it meanwhile."""
        ...


class WorkerLedger(Protocol):
    """What the Tracker tells the Scaler's state about per-message workers, from ECS task state changes."""

    def started(self, job: str, task_arn: str) -> None: ...

    def stopped(self, job: str, task_arn: str) -> None: ...


class Drains(Protocol):
    """Where the Scaler publishes a service job's drain signal (see domain.scaling.drain_target)."""

    def publish_drain(self, job: str, surplus: int) -> None:
        """Set the job's surplus to ``surplus`` with no claims yet."""
        ...


class Messages(Protocol):
    """What handlers do to SQS beyond the event-source mapping: dead-letter with a reason, back off."""

    def dead_letter(self, queue_url: str, body: str, reason: str, source: dict[str, str]) -> None: ...

    def retry_after(self, queue_url: str, receipt_handle: str, delay_s: int) -> None: ...
