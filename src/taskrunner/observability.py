"""Powertools Logger, Tracer and Metrics, wired once for every handler, and the catalog of every metric we emit.

The tracer is lazy (:class:`LazyTracer`): Powertools' ``Tracer()`` imports the X-Ray SDK even when
tracing is disabled, which alone cost more than half of ``import boto3`` in every handler's cold
start. Here the SDK is imported, and boto3 patched, at the first traced invocation, and only when
tracing is enabled; importing a handler never loads it.

Service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` / ``POWERTOOLS_METRICS_NAMESPACE``
(set in template.yaml's Globals), so the same module serves each function.

A CloudWatch metric is its name *and* its dimension set: an alarm on ``RunsFailed{service}`` never sees a
``RunsFailed{service, job}`` datapoint. So every metric is declared in :data:`METRICS` with the dimension sets it
is emitted with, :func:`count` refuses any other, and the template tests check that the dashboard and the alarms
query exactly a declared (name, dimensions) pair.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

# Only the class: importing it does not load the X-Ray SDK (Powertools imports that lazily).
from aws_lambda_powertools.tracing import Tracer

type LambdaHandler = Callable[..., Any]


class LazyTracer:
    """Powertools' Tracer, built at the first traced invocation instead of at import.

    Tracing is on exactly when Powertools would turn it on: in a Lambda runtime, not under SAM local
    or Chalice, and without ``POWERTOOLS_TRACE_DISABLED``. Then the first invocation builds the real
    :class:`~aws_lambda_powertools.tracing.Tracer` (which imports the X-Ray SDK and patches boto3, so
    every AWS call of that invocation and the next ones is a subsegment) and wraps the handler with its
    ``capture_lambda_handler``: the same ``## handler`` subsegment, ``ColdStart``/``Service``
    annotations and response/error metadata as before. When tracing is off, the SDK is never imported;
    Lambda's active tracing (``Tracing: Active``) still records the function's own segment, since the
    runtime emits it without any SDK in the function.
    """

    def __init__(self) -> None:
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @staticmethod
    def enabled() -> bool:
        """Powertools' rule (``Tracer._is_tracer_disabled``), read without building a Tracer."""
        if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
            return False
        in_lambda = bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))
        emulated = bool(os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV))
        return in_lambda and not emulated

    @property
    def loaded(self) -> bool:
        return self._tracer is not None

    def load(self) -> Tracer | None:
        """The real tracer, built once (importing the X-Ray SDK); None when tracing is disabled."""
        if not self.enabled():
            return None
        with self._lock:
            if self._tracer is None:
                self._tracer = Tracer()
            return self._tracer

    def capture_lambda_handler[F: LambdaHandler](self, handler: F) -> F:
        """``Tracer.capture_lambda_handler``, decided at the first call (tracing on or off)."""
        traced: LambdaHandler | None = None

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any, **kwargs: Any) -> Any:
            nonlocal traced
            if traced is None:
                real = self.load()
                traced = real.capture_lambda_handler(handler) if real is not None else handler
            return traced(event, context, **kwargs)

        return wrapper  # type: ignore[return-value]  # same signature as handler, by functools.wraps


logger = Logger()
tracer = LazyTracer()
metrics = Metrics()

#: Every metric carries this dimension (Powertools adds it from POWERTOOLS_SERVICE_NAME).
SERVICE = "service"


@dataclass(frozen=True)
class MetricSpec:
    #: Emitted with the service dimension alone: what alarms and the dashboard read.
    aggregate: bool = True
    #: Further dimension sets (each with the service dimension too), for a breakdown by job or reason.
    breakdowns: frozenset[frozenset[str]] = frozenset()


def _by(*keys: str) -> frozenset[frozenset[str]]:
    return frozenset({frozenset(keys)})


_JOB = _by("job")
METRICS: dict[str, MetricSpec] = {
    # Dispatcher: one per dispatched request, by outcome (domain.dispatch.Result).
    **{f"Runs{result}": MetricSpec(breakdowns=_JOB) for result in ("Launched", "Adopted", "Duplicate")},
    "DispatchRecords": MetricSpec(),
    "LaunchFailed": MetricSpec(),
    "LaunchDeferred": MetricSpec(),
    "DeadLettered": MetricSpec(breakdowns=_by("reason")),
    # Tracker: runs reaching a final state (or a retry), and reconciliation.
    **{
        f"Runs{state}": MetricSpec(breakdowns=_JOB)
        for state in ("Succeeded", "Failed", "TimedOut", "Stopped", "Skipped", "Missed", "LaunchFailed", "Retried")
    },
    "TrackerRecords": MetricSpec(),
    "TrackerDeadLettered": MetricSpec(breakdowns=_by("reason")),
    **{
        name: MetricSpec()
        for name in (
            "RunsReconciled",
            "RunsVanished",
            "RunsStoppedForTimeout",
            "RunsRedriven",
            "RunsAbandoned",
            "ReconcileErrors",
        )
    },
    # Scaler: rounds, decisions and per-job gauges.
    "ScalerRounds": MetricSpec(),
    "ScalerInvalidEvents": MetricSpec(),
    "InvalidJobSpecs": MetricSpec(),
    "ScalingErrors": MetricSpec(breakdowns=_JOB),
    "ScalingDecisions": MetricSpec(aggregate=False, breakdowns=_by("job", "reason")),
    **{name: MetricSpec(aggregate=False, breakdowns=_JOB) for name in ("Backlog", "InFlight", "Running", "Desired")},
    "Launched": MetricSpec(aggregate=False, breakdowns=_JOB),
}


def dimension_sets(name: str) -> frozenset[frozenset[str]]:
    """Every dimension set ``name`` is emitted with, the service dimension included."""
    spec = METRICS[name]
    sets = {frozenset({SERVICE}) | dims for dims in spec.breakdowns}
    if spec.aggregate:
        sets.add(frozenset({SERVICE}))
    return frozenset(sets)


def _declared(name: str, dimensions: dict[str, str]) -> MetricSpec:
    spec = METRICS.get(name)
    if spec is None:
        raise ValueError(f"metric {name!r} is not declared in taskrunner.observability.METRICS")
    if dimensions and frozenset(dimensions) not in spec.breakdowns:
        raise ValueError(f"metric {name!r} is not declared with dimensions {sorted(dimensions)}")
    return spec


def _disabled() -> bool:
    # Metrics honours POWERTOOLS_METRICS_DISABLED itself; single_metric and EphemeralMetrics are checked here.
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in {"1", "true"}


def count(name: str, value: float = 1, /, **dimensions: str) -> None:
    """A count: the aggregate (service only, for alarms and the dashboard) and, given dimensions, its breakdown."""
    spec = _declared(name, dimensions)
    if spec.aggregate:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if not dimensions or _disabled():
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim[:250] or "none")


def emit(values: dict[str, float | None], **dimensions: str) -> None:
    """Several metrics sharing one set of dimensions (a job's backlog, in flight, desired ...) as one EMF blob."""
    for name in values:
        _declared(name, dimensions)
    if _disabled():
        return
    batch = EphemeralMetrics(namespace=metrics.namespace)
    for key, dim in dimensions.items():
        batch.add_dimension(name=key, value=dim[:250] or "none")
    for name, value in values.items():
        if value is not None:
            batch.add_metric(name=name, unit=MetricUnit.Count, value=value)
    batch.flush_metrics()
