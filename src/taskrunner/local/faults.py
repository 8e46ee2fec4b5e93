"""Fault injection and call accounting for ECS in the embedded AWS.

Benchmarks and tests use it to make the in-process moto server behave like a busy real account:
RunTask throttling (botocore's adaptive retries then see a real ``ThrottlingException``), 5xx errors,
and ``failures[]`` for capacity, each at a seeded rate. It patches moto's ECS response class, so it
works for every client talking to this process's moto server.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.ecs.responses import EC2ContainerServiceResponse

CAPACITY_FAILURE = {"reason": "Capacity is unavailable at this time. Please try again later."}


class _ServerError(JsonRESTError):
    code = 500


@dataclass
class EcsFaults:
    seed: int = 0
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    #: RunTask ``failures[]`` for capacity, by capacity provider (``FARGATE_SPOT``) or ``*``.
    capacity_failure_rate: dict[str, float] = field(default_factory=dict)
    actions: tuple[str, ...] = ("run_task",)
    #: RunTask requests as the server received them, for tests that check what was asked for.
    run_task_requests: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def before(self, action: str) -> None:
        self.calls[action] += 1
        if action not in self.actions:
            return
        if self._draw() < self.throttle_rate:
            self.injected["throttle"] += 1
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        if self._draw() < self.server_error_rate:
            self.injected["server_error"] += 1
            raise _ServerError("ServerException", "Service unavailable")

    def capacity_failure(self, strategy: list[dict[str, Any]] | None) -> bool:
        provider = (strategy or [{}])[0].get("capacityProvider", "FARGATE")
        rate = self.capacity_failure_rate.get(provider, self.capacity_failure_rate.get("*", 0.0))
        if rate and self._draw() < rate:
            self.injected[f"capacity:{provider}"] += 1
            return True
        return False


_active: EcsFaults | None = None
_originals: dict[str, Callable[..., Any]] = {}


def _wrap(name: str) -> Callable[..., Any]:
    original = _originals[name]

    def wrapped(self: EC2ContainerServiceResponse) -> Any:
        faults = _active
        if faults is not None:
            if name == "run_task":
                faults.run_task_requests.append(json.loads(self.body))
            faults.before(name)
            if name == "run_task" and faults.capacity_failure(self._get_param("capacityProviderStrategy")):
                return ActionResult({"tasks": [], "failures": [CAPACITY_FAILURE]})
        return original(self)

    return wrapped


@contextmanager
def inject(faults: EcsFaults) -> Iterator[EcsFaults]:
    """Apply ``faults`` to every ECS call served by this process's moto server, until the block ends."""
    global _active  # noqa: PLW0603 - the patched server is process-wide too
    for name in ("run_task", "list_tasks", "describe_tasks", "stop_task", "update_service", "describe_services"):
        if name not in _originals:
            _originals[name] = getattr(EC2ContainerServiceResponse, name)
            setattr(EC2ContainerServiceResponse, name, _wrap(name))
    _active = faults
    try:
        yield faults
    finally:
        _active = None
