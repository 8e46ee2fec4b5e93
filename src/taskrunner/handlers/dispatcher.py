"""Dispatcher Lambda: dispatch-queue batches (or one bare EventBridge event) → ECS RunTask, exactly once."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.pauses import SsmPauses, pauses_prefix
from taskrunner.adapters.queues import Queues, queue_url_from_arn
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.backoff import backoff_s
from taskrunner.domain.dispatch import Dispatcher, Outcome, Result
from taskrunner.domain.errors import LaunchRejected, PermanentError, TryLater
from taskrunner.domain.jobs import InvalidJobSpec
from taskrunner.domain.ports import Messages, Registry
from taskrunner.domain.triggers import DispatchRequest, requests_from
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
from taskrunner.settings import DispatcherSettings

#: Outcomes counted per job (a SKIPPED or MISSED run is counted by the Tracker's final states, not twice).
METRIC_OF = {Result.LAUNCHED: "RunsLaunched", Result.ADOPTED: "RunsAdopted", Result.DUPLICATE: "RunsDuplicate"}
#: SQS visibility the Dispatcher asks for at most when it returns a message (a deferred run waits this long).
MAX_MESSAGE_BACKOFF_S = 900


@dataclass(frozen=True)
class Service:
    settings: DispatcherSettings
    registry: Registry
    dispatcher: Dispatcher
    queues: Messages


@functools.cache
def service() -> Service:
    settings = DispatcherSettings.from_env()
    registry = SsmRegistry(settings.registry_prefix)
    store = DynamoRunStore(settings.runs_table, history_days=settings.run_history_days)
    dispatcher = Dispatcher(
        registry,
        store,
        EcsCluster(),
        stack=settings.bounds(),
        clock=time.time,
        lease_s=settings.lease_s,
        pauses=SsmPauses(pauses_prefix(settings.registry_prefix)),
        tick_skew_s=settings.tick_skew_s,
    )
    return Service(settings, registry, dispatcher, Queues())


def dispatch_all(svc: Service, body: str | dict[str, Any]) -> list[Outcome]:
    """Every request in one body; raises PermanentError / TryLater for the body as a whole."""
    return [_dispatch(svc, request) for request in requests_from(body, svc.registry.all)]


def _dispatch(svc: Service, request: DispatchRequest) -> Outcome:
    try:
        outcome = svc.dispatcher.dispatch(request)
    except InvalidJobSpec as exc:
        raise PermanentError(f"invalid job spec for '{request.job}': {exc}") from exc
    logger.set_correlation_id(outcome.run_id)
    # Names only: override values, like every environment value, stay out of logs and records.
    logger.info(
        "dispatched",
        job=request.job,
        trigger=str(request.trigger),
        attempt=request.attempt,
        result=str(outcome.result),
        reason=outcome.reason,
        task_arn=outcome.task_arn,
        fallback=outcome.fallback,
        env_names=sorted(request.env),
    )
    if outcome.result in METRIC_OF:
        count(METRIC_OF[outcome.result], job=request.job)
    return outcome


def _dead_letter(svc: Service, body: str, exc: PermanentError | str, source: dict[str, str]) -> None:
    kind = exc.kind if isinstance(exc, PermanentError) else "unsupported-payload"
    dead_letter(
        svc.queues, svc.settings.dead_letter_queue_url, body, str(exc), source, metric="DeadLettered", kind=kind
    )


def handle_record(svc: Service, record: SqsRecord) -> None:
    """One dispatch-queue message: launched, recorded, dead-lettered with its reason, or returned for later."""
    try:
        dispatch_all(svc, record.body)
    except PermanentError as exc:
        if isinstance(exc, LaunchRejected):
            count("LaunchFailed")
        # Acknowledged: the message now lives in the DLQ with its reason, on its first attempt.
        _dead_letter(svc, record.body, exc, record_source(record))
    except TryLater as exc:
        receive_count = record.receive_count
        delay = round(backoff_s(receive_count, exc.delay_s * svc.settings.backoff_scale, MAX_MESSAGE_BACKOFF_S))
        svc.queues.retry_after(queue_url_from_arn(record.event_source_arn), record.receipt_handle, delay)
        count("LaunchDeferred")
        logger.info("try later", reason=exc.reason, delay_s=delay, receive_count=receive_count)
        raise


def handle_event(svc: Service, event: Any, context: LambdaContext) -> dict[str, Any]:
    payload = classify(event)
    if payload.shape is Shape.SQS_BATCH:
        count("DispatchRecords", len(event["Records"]))
        return process_sqs_batch(event, functools.partial(handle_record, svc))
    if payload.shape is Shape.EMPTY_BATCH:
        # Nothing to process, nothing to retry (SQS never sends one: this is a direct invoke).
        return {"batchItemFailures": [], "error": "the Dispatcher received an empty Records list: nothing to process"}
    count("DispatchRecords")
    body = json.dumps(event, default=str)
    if payload.shape is not Shape.DIRECT:
        reason = refusal(payload, "the Dispatcher")
        _dead_letter(svc, body, reason, {"source": "direct-invoke"})
        return {"dead_lettered": reason}
    # A bare EventBridge event or request: `sam local invoke`, or a rule that targets the function.
    try:
        outcomes = dispatch_all(svc, event)
    except PermanentError as exc:
        _dead_letter(svc, body, exc, {"source": "direct-invoke"})
        return {"dead_lettered": str(exc)}
    return {"runs": [{"run_id": o.run_id, "result": str(o.result), "task_arn": o.task_arn} for o in outcomes]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return handle_event(service(), event, context)
