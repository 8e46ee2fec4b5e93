"""The developer tools, attacked: a web page in the developer's browser, and a deployed function's configuration.

* The embedded AWS listens on loopback; without a guard any page the developer opens could read and write the
  local stack (moto answers every origin).
* ``taskrunner invoke`` runs a deployed function's handler *in the developer's process*, with the function's
  environment read back from AWS: a tampered function must not make it import foreign code, nor point the
  developer's credentials at another endpoint.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from taskrunner.local.invoke import DeployedFunction, UnsafeInvoke, invoke, resolve
from taskrunner.local.server import embedded_aws

ARN = "arn:aws:lambda:us-east-1:123456789012:function:taskrunner-DispatchFunction-X"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with embedded_aws() as url:
        yield url


def request(endpoint: str, method: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    where = urlparse(endpoint)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=5)
    body = "Action=ListQueues&Version=2012-11-05" if method == "POST" else None
    connection.request(method, "/", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"} | headers)
    response = connection.getresponse()
    response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


def test_a_web_page_cannot_call_the_embedded_aws(endpoint: str) -> None:
    status, headers = request(endpoint, "POST", {"Origin": "https://evil.example"})
    assert status == 403
    assert "access-control-allow-origin" not in headers


def test_a_browser_preflight_is_refused(endpoint: str) -> None:
    status, headers = request(
        endpoint, "OPTIONS", {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert status == 403
    assert "access-control-allow-origin" not in headers


def test_sdks_without_an_origin_still_work(endpoint: str) -> None:
    status, _ = request(endpoint, "POST", {})
    assert status == 200


@pytest.mark.parametrize("handler", ["os.system", "subprocess.run", "evil_module.handler", "taskrunner.cli.main.main"])
def test_invoke_imports_only_taskrunners_handlers(handler: str) -> None:
    with pytest.raises(UnsafeInvoke, match=r"only taskrunner\.handlers"):
        resolve(handler)


def function(**environment: str) -> DeployedFunction:
    base = {"RUNS_TABLE": "runs", "POWERTOOLS_SERVICE_NAME": "taskrunner"}
    return DeployedFunction("f", "taskrunner.handlers.dispatcher.handler", base | environment, 30, 512, ARN)


def test_a_tampered_functions_foreign_variables_never_reach_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a deployed function configured with AWS_ENDPOINT_URL (the developer's credentials would sign requests
    to it) and LD_PRELOAD  WHEN it is invoked  THEN the handler sees neither, and sees what its settings read."""
    seen: dict[str, str | None] = {}

    def spy(event: object, context: object) -> dict[str, str]:
        import os

        seen.update({k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "LD_PRELOAD", "RUNS_TABLE")})
        return {}

    monkeypatch.setattr("taskrunner.handlers.dispatcher.handler", spy)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    invoke(function(AWS_ENDPOINT_URL="https://evil.example", LD_PRELOAD="/tmp/x.so"), {})

    assert seen == {"AWS_ENDPOINT_URL": None, "LD_PRELOAD": None, "RUNS_TABLE": "runs"}


def test_env_overrides_may_set_only_what_the_handler_reads() -> None:
    with pytest.raises(UnsafeInvoke, match=r"does not read \['LD_PRELOAD'\]"):
        invoke(function(), {}, {"LD_PRELOAD": "/tmp/x.so"})
