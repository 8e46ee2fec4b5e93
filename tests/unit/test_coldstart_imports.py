"""What a handler's import loads: the heavy modules made lazy stay out of every cold start.

Each check runs in a fresh interpreter (``sys.modules`` of the test process is full of everything),
so a module-level import added anywhere under a handler fails here, not silently in
``benchmarks/coldstart.py``'s numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

HANDLERS = ("taskrunner.handlers.dispatcher", "taskrunner.handlers.scaler", "taskrunner.handlers.tracker")
#: Modules no handler may import at module level, and why each is out.
LAZY = {
    "aws_xray_sdk": "the X-Ray SDK is imported by the first traced invocation (observability.LazyTracer)",
    "aws_lambda_powertools.utilities.batch": "SQS batches go through handlers.common.process_sqs_batch",
    "aws_lambda_powertools.utilities.data_classes": "records are handlers.common.SqsRecord",
    "aws_lambda_powertools.utilities.parser": "domain.triggers declares its EventBridgeModel",
    "asyncio": "only Powertools' async batch processor pulled it in",
    "moto": "dev-only: the embedded AWS is never part of a function",
}


def _run(code: str, **env: str) -> Any:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_TRACE", "LAMBDA_TASK_ROOT"))}
    environ.update(AWS_DEFAULT_REGION="us-east-1", **env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", HANDLERS)
@pytest.mark.parametrize("tracing", ["disabled", "lambda"])
def test_importing_a_handler_loads_none_of_the_lazy_modules(module: str, tracing: str) -> None:
    """GIVEN a handler module, in Lambda with tracing on (LAMBDA_TASK_ROOT set) or with it disabled
    WHEN it is imported, as Lambda's init does
    THEN none of the heavy modules made lazy is loaded."""
    env = {"LAMBDA_TASK_ROOT": "/var/task"} if tracing == "lambda" else {"POWERTOOLS_TRACE_DISABLED": "true"}
    loaded = _run(
        f"import json, sys; import {module}; "
        f"print(json.dumps(sorted(m for m in {sorted(LAZY)!r} if m in sys.modules)))",
        **env,
    )
    assert loaded == [], {name: LAZY[name] for name in loaded}


_TRACED_CALL = """
import json, sys
from taskrunner.observability import tracer

@tracer.capture_lambda_handler
def handler(event, context):
    return {"echo": event, "sdk_loaded_inside": "aws_xray_sdk" in sys.modules}

before = "aws_xray_sdk" in sys.modules
result = handler({"n": 1}, None)
print(json.dumps({"before": before, "result": result, "after": "aws_xray_sdk" in sys.modules,
                  "loaded": tracer.loaded}))
"""


def test_tracing_disabled_never_imports_the_sdk_and_calls_through() -> None:
    """GIVEN POWERTOOLS_TRACE_DISABLED=true
    WHEN a traced handler is invoked
    THEN it returns its own result and the X-Ray SDK is never imported."""
    seen = _run(_TRACED_CALL, POWERTOOLS_TRACE_DISABLED="true", LAMBDA_TASK_ROOT="/var/task")
    assert seen == {
        "before": False,
        "result": {"echo": {"n": 1}, "sdk_loaded_inside": False},
        "after": False,
        "loaded": False,
    }


def test_tracing_enabled_builds_the_powertools_tracer_at_the_first_invocation() -> None:
    """GIVEN a Lambda runtime with tracing on (LAMBDA_TASK_ROOT, no POWERTOOLS_TRACE_DISABLED)
    WHEN a traced handler is invoked
    THEN the SDK was not loaded before the call, the real Tracer is built and wraps the handler
    (the SDK is loaded while the handler runs), and the handler's result comes back unchanged."""
    seen = _run(_TRACED_CALL, LAMBDA_TASK_ROOT="/var/task", AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR")
    assert seen == {
        "before": False,
        "result": {"echo": {"n": 1}, "sdk_loaded_inside": True},
        "after": True,
        "loaded": True,
    }


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_on_exactly_when_powertools_would_turn_it_on(
    env: dict[str, str], enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.tracing import Tracer

    from taskrunner.observability import LazyTracer

    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert LazyTracer.enabled() is enabled
    assert (not Tracer._is_tracer_disabled()) is enabled  # the rule it mirrors
