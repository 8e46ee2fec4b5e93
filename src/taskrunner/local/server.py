"""The embedded AWS: a moto server on loopback, and the environment that points boto3 at it."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.moto_server import werkzeug_app
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from taskrunner.local import moto_patches

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refuse_browsers(app: Any) -> Any:
    """WSGI middleware: no web page may talk to the embedded AWS.

    moto answers every origin (its global CORS), so any page open in the developer's browser could read and write
    the local stack. SDKs and the CLI never send ``Origin``; a browser sends it on every cross-origin request and
    preflight, so any request carrying one — and every ``OPTIONS`` preflight — is refused.
    """

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_ORIGIN") or environ.get("REQUEST_METHOD") == "OPTIONS":
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"the embedded AWS refuses browser (cross-origin) requests\n"]
        return app(environ, start_response)

    return guarded


class LoopbackAws(ThreadedMotoServer):
    """moto's threaded server without its global CORS, behind :func:`refuse_browsers`."""

    def _server_entry(self) -> None:
        werkzeug_app.DISABLE_GLOBAL_CORS = True  # type: ignore[attr-defined]  # read when each backend app is built
        app = refuse_browsers(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


@contextmanager
def embedded_aws(port: int | None = None) -> Iterator[str]:
    """Start a moto server on 127.0.0.1, point this process's boto3 at it, and yield its URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_patches.apply()
    port = port or free_port()
    server = LoopbackAws(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in [*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL"]}
    os.environ.update(FAKE_CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint})
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
