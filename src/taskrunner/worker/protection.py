"""ECS task scale-in protection: the agent's endpoint, and the worker's hold on it.

:class:`TaskProtection` speaks to ``$ECS_AGENT_URI/task-protection/v1/state``. :class:`ProtectionHold`
is the worker's policy on top of it: enable lazily before a batch, re-arm at half the lifetime for a
long job, release when the queue is idle or the worker stops.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final

from taskrunner.worker.telemetry import Metrics, logger


def _field(document: Mapping[str, Any], name: str) -> Any:
    """The agent answers in PascalCase; accept camelCase too."""
    if name in document:
        return document[name]
    return document.get(name[:1].lower() + name[1:])


class TaskProtection:
    """Client of the ECS agent's scale-in protection endpoint, ``$ECS_AGENT_URI/task-protection/v1/state``.

    ``enable``/``disable`` return True when the agent confirmed the requested state, and False when the
    agent answered with ``failure``/``error`` or could not be reached (logged as a warning). Without an
    agent URI (local runs) every call is a no-op that returns True and logs that once.
    """

    PATH: Final = "/task-protection/v1/state"

    def __init__(self, agent_uri: str | None, *, timeout_s: float = 5.0) -> None:
        if agent_uri and not agent_uri.startswith(("http://", "https://")):
            msg = f"ECS agent URI must be an http(s) URL, got {agent_uri!r}"
            raise ValueError(msg)
        self._url = agent_uri.rstrip("/") + self.PATH if agent_uri else None
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._noop_logged = False
        self._refusal: str | None = None
        # The agent is link-local: an HTTP(S)_PROXY meant for the internet must not capture it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TaskProtection:
        return cls(environ.get("ECS_AGENT_URI") or None)

    @property
    def configured(self) -> bool:
        """An agent endpoint is known (the worker runs in an ECS task)."""
        return self._url is not None

    @property
    def usable(self) -> bool:
        """False once the agent said this task cannot be protected (a standalone task, not in a service)."""
        return self._refusal is None

    def enable(self, expires_in_minutes: int = 120) -> bool:
        if not 1 <= expires_in_minutes <= 2880:
            msg = f"ExpiresInMinutes must be within 1..2880, got {expires_in_minutes}"
            raise ValueError(msg)
        return self._put(True, {"ProtectionEnabled": True, "ExpiresInMinutes": expires_in_minutes})

    def disable(self) -> bool:
        return self._put(False, {"ProtectionEnabled": False})

    def _put(self, wanted: bool, payload: Mapping[str, bool | int]) -> bool:
        if self._url is None:
            if not self._noop_logged:
                self._noop_logged = True
                logger.info("ECS_AGENT_URI is not set: task scale-in protection is a no-op here")
            return True
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self._url,
            data=json.dumps(payload).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with self._lock:  # keeps enable/disable from different threads in order at the agent
            try:
                with self._opener.open(request, timeout=self._timeout_s) as response:
                    status, raw = int(response.status), response.read()
            except urllib.error.HTTPError as err:
                with err:
                    status, raw = err.code, err.read()
            except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, refused, garbled
                logger.warning(
                    "task protection request failed",
                    extra={"protection_enabled": wanted, "error": repr(err)},
                )
                return False
        return self._check(wanted, status, raw)

    def _check(self, wanted: bool, status: int, raw: bytes) -> bool:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            logger.warning(
                "task protection: unreadable agent response",
                extra={"protection_enabled": wanted, "status": status, "body": raw[:500].decode(errors="replace")},
            )
            return False
        protection = body.get("protection")
        confirmed = isinstance(protection, dict) and _field(protection, "ProtectionEnabled") is wanted
        if 200 <= status < 300 and confirmed:
            logger.debug("task protection updated", extra={"protection_enabled": wanted, "protection": protection})
            return True
        failure, error = body.get("failure"), body.get("error")
        reason = _field(failure, "Reason") if isinstance(failure, dict) else None
        if reason == "TASK_NOT_VALID":
            self._refusal = str(reason)
            logger.warning(
                "the ECS agent says this task cannot be protected (not part of a service): "
                "protection is off for the rest of this task",
                extra={"failure": failure},
            )
        else:
            logger.warning(
                "task protection request refused",
                extra={"protection_enabled": wanted, "status": status, "failure": failure, "error": error},
            )
        return False


class ProtectionHold:
    """The worker's use of protection: held while it has work, so scale-in stops only idle tasks.

    Enabled lazily before a batch (a recent enable still covers it: back-to-back batches do not flap
    it), re-armed at half its lifetime by the heartbeat for long jobs, released on an empty poll or at
    exit. An agent that refuses or cannot be reached never stops the work: the failure is logged and
    counted (``ProtectionFailures``), since lease and redelivery already give at-least-once delivery.
    """

    def __init__(
        self, protection: TaskProtection, *, minutes: int, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self._protection = protection
        self._minutes = minutes
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._protected_at: float | None = None

    @property
    def held(self) -> bool:
        """An enable was confirmed and not yet released (it may lapse at the agent on its own)."""
        return self._protected_at is not None

    @property
    def _refresh_s(self) -> float:
        return self._minutes * 60 / 2

    def ensure(self) -> None:
        """Before a batch: protect the task unless a recent enable still covers it."""
        if not self._protection.usable:
            return
        with self._lock:
            now = self._clock()
            if self._protected_at is not None and now - self._protected_at < self._refresh_s:
                return
            self._enable(now)

    def refresh_if_due(self) -> None:
        """From the heartbeat: a long job re-arms protection at half its lifetime."""
        with self._lock:
            now = self._clock()
            if self._protected_at is not None and now - self._protected_at >= self._refresh_s:
                self._enable(now)

    def release(self) -> None:
        """Queue idle or worker stopping: make the task eligible for scale-in again."""
        with self._lock:
            if self._protected_at is None:
                return
            if self._protection.disable():
                self._protected_at = None
            else:
                # Still marked protected, so the next empty poll tries again; it lapses on its own anyway.
                self._metrics.count("ProtectionFailures")

    def _enable(self, now: float) -> None:
        if self._protection.enable(self._minutes):
            self._protected_at = now
        else:
            logger.warning("processing without task scale-in protection: a scale-in may interrupt this task")
            self._metrics.count("ProtectionFailures")
