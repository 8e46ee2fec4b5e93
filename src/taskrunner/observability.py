"""Powertools Logger, Tracer and Metrics, wired once for every handler.

Service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` / ``POWERTOOLS_METRICS_NAMESPACE``
(set in template.yaml's Globals), so the same module serves each function.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def _disabled() -> bool:
    # Metrics honours POWERTOOLS_METRICS_DISABLED itself; single_metric and EphemeralMetrics are checked here.
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in {"1", "true"}


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """A metric with its own dimensions (job, reason), flushed at once as EMF."""
    if _disabled():
        return
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim[:250] or "none")


def emit(values: dict[str, float | None], **dimensions: str) -> None:
    """Several metrics sharing one set of dimensions (a job's backlog, in flight, desired ...) as one EMF blob."""
    if _disabled():
        return
    batch = EphemeralMetrics(namespace=metrics.namespace)
    for key, dim in dimensions.items():
        batch.add_dimension(name=key, value=dim[:250] or "none")
    for name, value in values.items():
        if value is not None:
            batch.add_metric(name=name, unit=MetricUnit.Count, value=value)
    batch.flush_metrics()
