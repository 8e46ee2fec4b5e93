"""Powertools Logger, Tracer and Metrics, wired once for every handler, and the catalog of every metric we emit.

Service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` / ``POWERTOOLS_METRICS_NAMESPACE``
(set in template.yaml's Globals), so the same module serves each function.

A CloudWatch metric is its name *and* its dimension set: an alarm on ``RunsFailed{service}`` never sees a
``RunsFailed{service, job}`` datapoint. So every metric is declared in :data:`METRICS` with the dimension sets it
is emitted with, :func:`count` refuses any other, and the template tests check that the dashboard and the alarms
query exactly a declared (name, dimensions) pair.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric

logger = Logger()
tracer = Tracer()
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
