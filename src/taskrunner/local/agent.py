"""A stand-in for the ECS agent's task scale-in protection endpoint, one URI per local task.

ECS injects ``ECS_AGENT_URI`` into every container; the worker library PUTs
``$ECS_AGENT_URI/task-protection/v1/state`` to protect itself while it holds messages. Local mode
serves that endpoint on loopback, one path per task (``/api/<task id>``), records each task's
protection with its expiry, and answers as the agent does: ``{"protection": {...}}`` for a service
task, ``{"failure": {"Reason": "TASK_NOT_VALID"}}`` for a standalone (RunTask) task, which ECS
never scales in. The worker services use :meth:`FakeEcsAgent.protected` to stop unprotected
workers first, as ECS does on scale-in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATE_PATH = "/task-protection/v1/state"
_MAX_MINUTES = 2880


@dataclass
class _Task:
    arn: str
    in_service: bool
    enabled: bool = False
    expires_at: float | None = None  # monotonic
    calls: int = 0


class FakeEcsAgent:
    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="ecs-agent", daemon=True)

    def start(self) -> FakeEcsAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def register(self, task_id: str, arn: str, *, in_service: bool) -> str:
        """The ``ECS_AGENT_URI`` for a new task."""
        with self._lock:
            self._tasks[task_id] = _Task(arn, in_service)
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/{task_id}"

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)

    def protected(self, task_id: str) -> bool:
        with self._lock:
            task = self._tasks.get(task_id)
            return task is not None and self._active(task)

    def _active(self, task: _Task) -> bool:
        return task.enabled and (task.expires_at is None or self._now() < task.expires_at)

    def _put(self, task_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return HTTPStatus.NOT_FOUND, {"error": {"Code": "TaskNotFound", "Message": task_id}}
            task.calls += 1
            if not task.in_service:
                return HTTPStatus.OK, {"failure": {"Arn": task.arn, "Reason": "TASK_NOT_VALID", "Detail": None}}
            enabled = body["ProtectionEnabled"]
            minutes = int(body.get("ExpiresInMinutes") or 120)
            if enabled and not 1 <= minutes <= _MAX_MINUTES:
                message = f"ExpiresInMinutes must be within 1..{_MAX_MINUTES}"
                return HTTPStatus.BAD_REQUEST, {"error": {"Code": "InvalidParameterException", "Message": message}}
            task.enabled = bool(enabled)
            task.expires_at = self._now() + 60 * minutes if enabled else None
            return HTTPStatus.OK, {"protection": self._state(task, minutes)}

    def _get(self, task_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return HTTPStatus.NOT_FOUND, {"error": {"Code": "TaskNotFound", "Message": task_id}}
            left = (task.expires_at - self._now()) / 60 if task.expires_at is not None else 0
            return HTTPStatus.OK, {"protection": self._state(task, left)}

    def _state(self, task: _Task, minutes: float) -> dict[str, Any]:
        active = self._active(task)
        expiration = (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"ExpirationDate": expiration if active else None, "ProtectionEnabled": active, "TaskArn": task.arn}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def _task_id(self) -> str | None:
                prefix, _, rest = self.path.partition("/api/")
                task_id, _, path = rest.partition("/")
                return task_id if not prefix and "/" + path == STATE_PATH else None

            def do_GET(self) -> None:
                task_id = self._task_id()
                if task_id is None:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": {"Code": "NotFound", "Message": self.path}})
                    return
                self._reply(*agent._get(task_id))

            def do_PUT(self) -> None:
                task_id = self._task_id()
                if task_id is None:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": {"Code": "NotFound", "Message": self.path}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = None
                if not isinstance(body, dict) or not isinstance(body.get("ProtectionEnabled"), bool):
                    error = {
                        "Code": "InvalidParameterException",
                        "Message": "ProtectionEnabled (a boolean) is required",
                    }
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": error})
                    return
                self._reply(*agent._put(task_id, body))

            def _reply(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the view shows protection from the recorded state."""

        return Handler
