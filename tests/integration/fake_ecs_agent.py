"""A stand-in for the ECS agent's task scale-in protection endpoint, on loopback.

Point a worker at ``agent.url`` (the value ECS would inject as ``ECS_AGENT_URI``); every
``PUT /task-protection/v1/state`` is recorded with its arrival time and answered the way the agent
answers: ``{"protection": {...}}`` on success, ``{"failure": {...}}`` or ``{"error": {...}}`` otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/taskrunner/0123456789abcdef0123456789abcdef"
AGENT_PREFIX = "/api/0123456789abcdef0123456789abcdef-1234567890"
STATE_PATH = "/task-protection/v1/state"

Behaviour = Literal["ok", "failure", "error", "task-not-valid"]


@dataclass(frozen=True)
class ProtectionCall:
    at: float  # time.monotonic() when the request arrived
    body: dict[str, Any]

    @property
    def enabled(self) -> bool:
        return bool(self.body.get("ProtectionEnabled"))


class FakeEcsAgent:
    def __init__(self, behaviour: Behaviour = "ok") -> None:
        self.behaviour: Behaviour = behaviour
        self._calls: list[ProtectionCall] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-ecs-agent", daemon=True
        )

    def __enter__(self) -> FakeEcsAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        """What ECS injects as ECS_AGENT_URI."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{AGENT_PREFIX}"

    @property
    def calls(self) -> list[ProtectionCall]:
        with self._lock:
            return list(self._calls)

    @property
    def states(self) -> list[bool]:
        return [call.enabled for call in self.calls]

    @property
    def last_state(self) -> bool | None:
        calls = self.calls
        return calls[-1].enabled if calls else None

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.states):
                return True
            time.sleep(0.02)
        return False

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(ProtectionCall(at=time.monotonic(), body=body))

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.behaviour == "error":
            return HTTPStatus.INTERNAL_SERVER_ERROR, {
                "error": {"Arn": TASK_ARN, "Code": "ServerException", "Message": "injected by the test"}
            }
        if self.behaviour in ("failure", "task-not-valid"):
            reason = "TASK_NOT_VALID" if self.behaviour == "task-not-valid" else "UNKNOWN"
            return HTTPStatus.OK, {"failure": {"Arn": TASK_ARN, "Reason": reason, "Detail": None}}
        enabled = bool(body.get("ProtectionEnabled"))
        expires = body.get("ExpiresInMinutes", 120)
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60 * expires)) if enabled else None
        return HTTPStatus.OK, {
            "protection": {"ExpirationDate": expiration, "ProtectionEnabled": enabled, "TaskArn": TASK_ARN}
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                if self.path != AGENT_PREFIX + STATE_PATH:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": {"Code": "NotFound", "Message": self.path}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": {"Code": "InvalidRequest", "Message": "json"}})
                    return
                if not isinstance(body, dict) or not isinstance(body.get("ProtectionEnabled"), bool):
                    self._reply(
                        HTTPStatus.BAD_REQUEST,
                        {"error": {"Code": "InvalidRequest", "Message": "ProtectionEnabled is required"}},
                    )
                    return
                agent._record(body)
                status, answer = agent._answer(body)
                self._reply(status, answer)

            def _reply(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads the recorded calls instead."""

        return Handler
