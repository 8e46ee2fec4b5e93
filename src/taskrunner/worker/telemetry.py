"""The worker's logger and its CloudWatch metrics, shared by every part of the worker."""

from __future__ import annotations

import os
import threading
from typing import Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

SERVICE_NAME: Final = "taskrunner-worker"

#: The worker's structured logger. Handlers may log through it (or through ``Logger(child=True)``):
#: while a message is handled, every line of the handling thread carries ``message_id``.
logger = Logger(service=SERVICE_NAME)


class Metrics:
    """CloudWatch EMF metrics on stdout, isolated from any ``Metrics`` the handler uses.

    Thread-safe: the heartbeat thread counts failures while the main thread counts messages.
    """

    def __init__(self) -> None:
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "taskrunner"
        self._emf = EphemeralMetrics(namespace=namespace, service=SERVICE_NAME)
        self._lock = threading.Lock()
        self._pending = False

    def count(self, name: str, value: int = 1) -> None:
        if value:
            self._add(name, MetricUnit.Count, value)

    def seconds(self, name: str, value: float) -> None:
        self._add(name, MetricUnit.Seconds, value)

    def _add(self, name: str, unit: MetricUnit, value: float) -> None:
        with self._lock:
            self._emf.add_metric(name=name, unit=unit, value=value)
            self._pending = True

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._pending = False
                self._emf.flush_metrics()
