"""Tracker Lambda: ECS task state changes (through a buffer queue) → run states and retries; every minute,
reconciliation against DescribeTasks and run timeouts."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.queues import Queues
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.retries import DispatchRetries
from taskrunner.adapters.state import DynamoStateStore
from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.errors import PermanentError
from taskrunner.domain.ports import Messages, RunStore, WorkerLedger
from taskrunner.domain.tracking import Reconciler, TaskState, Tracked, Tracker, per_message_worker
from taskrunner.domain.triggers import S3_NOTIFICATION_ADVICE, describe, is_s3_notification, what_arrived
from taskrunner.handlers.common import (
    Shape,
    SqsRecord,
    classify,
    dead_letter,
    process_sqs_batch,
    record_source,
    refusal,
)
from taskrunner.observability import count, logger, metrics, tracer
from taskrunner.settings import TrackerSettings

STATE_CHANGE = "ECS Task State Change"


@dataclass(frozen=True)
class Service:
    settings: TrackerSettings
    store: RunStore
    tracker: Tracker
    reconciler: Reconciler
    queues: Messages
    #: Per-message workers' starts and stops, for the Scaler's count (None: not counted here).
    workers: WorkerLedger | None = None


@functools.cache
def service() -> Service:
    settings = TrackerSettings.from_env()
    registry = SsmRegistry(settings.registry_prefix)
    store = DynamoRunStore(settings.runs_table, history_days=settings.run_history_days)
    retries = DispatchRetries(
        settings.dispatch_queue_url,
        settings.dispatch_queue_arn,
        settings.retry_scheduler_role_arn,
        schedule_group=settings.schedule_group,
    )
    tracker = Tracker(registry, store, retries, stack_name=settings.stack_name, clock=time.time)
    reconciler = Reconciler(registry, store, EcsCluster(), tracker, retries, clock=time.time)
    workers = DynamoStateStore(settings.scaler_state_table) if settings.scaler_state_table else None
    return Service(settings, store, tracker, reconciler, Queues(), workers)


class Envelope(BaseModel):
    """The EventBridge fields tracking reads; the rest of the envelope is not needed (nor always present)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


def task_state(body: str | dict[str, Any], cluster_arn: str) -> TaskState:
    """The task state in one state-change event; PermanentError for anything else, with the reason."""
    try:
        payload = json.loads(body) if isinstance(body, str) else body
    except json.JSONDecodeError as exc:
        raise PermanentError(f"body is not JSON: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:
        raise PermanentError(f"body is not usable JSON: {type(exc).__name__}") from exc
    # What it is first: the reason names what arrived, whatever it is.
    if (
        not isinstance(payload, dict)
        or payload.get("source") != "aws.ecs"
        or payload.get("detail-type") != STATE_CHANGE
    ):
        advice = f": {S3_NOTIFICATION_ADVICE}" if isinstance(payload, dict) and is_s3_notification(payload) else ""
        raise PermanentError(f"not an ECS task state change: {what_arrived(payload)}{advice}")
    try:
        event = Envelope.model_validate(payload)
    except ValidationError as exc:
        raise PermanentError(f"invalid task state change event: {describe(exc)}") from exc
    try:
        task = TaskState.model_validate(event.detail)
    except ValidationError as exc:
        raise PermanentError(f"invalid task state change: {describe(exc)}") from exc
    if task.cluster_arn != cluster_arn:
        raise PermanentError(f"state change for another cluster: {task.cluster_arn}")
    return task


def count_worker(svc: Service, task: TaskState) -> None:
    """A per-message worker started or stopped: the Scaler counts its workers from these, not from ListTasks."""
    if svc.workers is None or (job := per_message_worker(task, svc.settings.stack_name)) is None:
        return
    if task.last_status == "STOPPED":
        svc.workers.stopped(job, task.task_arn)
    else:
        svc.workers.started(job, task.task_arn)


def track(svc: Service, body: str | dict[str, Any]) -> Tracked:
    task = task_state(body, svc.settings.cluster_arn)
    count_worker(svc, task)
    tracked = svc.tracker.track(task)
    if tracked.run_id:
        logger.set_correlation_id(tracked.run_id)
    if tracked.applied and tracked.status is not None:
        logger.info(
            "run state", status=str(tracked.status), retry_in_s=tracked.retry.delay_s if tracked.retry else None
        )
        by_job = {"job": tracked.job} if tracked.job else {}
        if tracked.retry:
            count("RunsRetried", **by_job)
        elif tracked.status.terminal:
            count(f"Runs{str(tracked.status).title().replace('_', '')}", **by_job)
    return tracked


def _dead_letter(svc: Service, body: str, exc: PermanentError | str, source: dict[str, str]) -> None:
    kind = exc.kind if isinstance(exc, PermanentError) else "unsupported-payload"
    dead_letter(
        svc.queues,
        svc.settings.dead_letter_queue_url,
        body,
        str(exc),
        source,
        metric="TrackerDeadLettered",
        kind=kind,
    )


def handle_record(svc: Service, record: SqsRecord) -> None:
    """One state change: applied (or ignored as stale), or dead-lettered with its reason; TryLater returns it."""
    try:
        track(svc, record.body)
    except PermanentError as exc:
        _dead_letter(svc, record.body, exc, record_source(record))


def reconcile(svc: Service) -> dict[str, int]:
    report = svc.reconciler.reconcile(svc.store.active())
    for name, value in (
        ("RunsReconciled", report.recovered),
        ("RunsStoppedForTimeout", report.timed_out),
        ("RunsVanished", report.vanished),
        ("RunsRedriven", report.redriven),
        ("RunsAbandoned", report.abandoned),
        ("ReconcileErrors", report.errors),
    ):
        count(name, value)
    logger.info("reconciled", **vars(report))
    return dict(vars(report))


#: The one direct payload the Tracker always accepts: its minute schedule's input.
RECONCILE = {"action": "reconcile"}


def handle_event(svc: Service, event: Any, context: LambdaContext) -> dict[str, Any]:
    payload = classify(event)
    if payload.shape is Shape.SQS_BATCH:
        count("TrackerRecords", len(event["Records"]))
        return process_sqs_batch(event, functools.partial(handle_record, svc))
    if payload.shape is Shape.EMPTY_BATCH:
        # Nothing to process, nothing to retry (SQS never sends one: this is a direct invoke).
        return {"batchItemFailures": [], "error": "the Tracker received an empty Records list: nothing to process"}
    if event == RECONCILE:
        return reconcile(svc)
    body = json.dumps(event, default=str)
    if payload.shape is not Shape.DIRECT:
        reason = refusal(payload, "the Tracker")
        _dead_letter(svc, body, reason, {"source": "direct-invoke"})
        return {"dead_lettered": reason}
    if not svc.settings.accept_direct_events:
        # On AWS only the tracker queue (filled by the stack's own rule) carries state changes: a direct invoke
        # could otherwise forge one. Local mode and `taskrunner invoke` opt in.
        reason = "the Tracker accepts state changes only from its queue (direct invokes: reconcile only)"
        _dead_letter(svc, body, reason, {"source": "direct-invoke"})
        return {"dead_lettered": reason}
    # A bare state-change event: `taskrunner invoke TrackerFunction -e events/ecs-task-stopped.json`.
    try:
        tracked = track(svc, event)
    except PermanentError as exc:
        _dead_letter(svc, body, exc, {"source": "direct-invoke"})
        return {"dead_lettered": str(exc)}
    return {"run_id": tracked.run_id, "status": tracked.status, "applied": tracked.applied, "ignored": tracked.ignored}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return handle_event(service(), event, context)
