"""Run a Lambda handler in-process the way Lambda would: its handler string, its own environment, a context.

This is what ``taskrunner invoke`` and local mode use instead of ``sam local invoke`` (which needs
Docker). The function's environment is read back from the deployed function, so it is exactly what
the template gave it, resource names resolved.
"""

from __future__ import annotations

import importlib
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from taskrunner.adapters import clients
from taskrunner.settings import DispatcherSettings, HandlerSettings, ScalerSettings, TrackerSettings


@dataclass
class LambdaContext:
    """The attributes of a Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    timeout_s: int = 30

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_s * 1000


@dataclass(frozen=True)
class DeployedFunction:
    name: str
    handler: str
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int
    arn: str


def deployed_function(function_name: str, lambda_client: Any | None = None) -> DeployedFunction:
    config = (lambda_client or boto3.client("lambda")).get_function_configuration(FunctionName=function_name)
    return DeployedFunction(
        name=config["FunctionName"],
        handler=config["Handler"],
        environment={k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()},
        timeout_s=int(config.get("Timeout", 30)),
        memory_mb=int(config.get("MemorySize", 512)),
        arn=config["FunctionArn"],
    )


#: Only this project's handlers are ever imported by name: a deployed function (or a tampered one) naming
#: ``os.system`` or an attacker's module must not make `taskrunner invoke` run it on the developer's machine.
HANDLER_PACKAGE = "taskrunner.handlers."
#: What the Lambda runtime itself puts in every environment (credentials and the endpoint come from the target).
RUNTIME_VARIABLES = frozenset(
    {
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
    }
)


class UnsafeInvoke(ValueError):
    """A handler string outside taskrunner's handlers, or an environment name its settings do not read."""


#: Each handler's settings model: what it reads from its environment (looked up without importing the handler,
#: whose module-level Powertools objects must be built inside the function's own environment).
HANDLER_SETTINGS: dict[str, type[HandlerSettings]] = {
    "taskrunner.handlers.dispatcher": DispatcherSettings,
    "taskrunner.handlers.scaler": ScalerSettings,
    "taskrunner.handlers.tracker": TrackerSettings,
}


def check_handler(handler: str) -> None:
    """Refuse, before anything is imported, a handler string outside taskrunner's handlers."""
    module_name, _, attr = handler.rpartition(".")
    if not module_name.startswith(HANDLER_PACKAGE) or module_name not in HANDLER_SETTINGS or not attr.isidentifier():
        raise UnsafeInvoke(f"refusing to import {handler!r}: only {HANDLER_PACKAGE}* handlers are invoked")


def resolve(handler: str) -> Callable[[Any, Any], Any]:
    """``taskrunner.handlers.dispatcher.handler`` → the function object; nothing outside taskrunner's handlers."""
    check_handler(handler)
    module_name, _, attr = handler.rpartition(".")
    module = importlib.import_module(module_name)
    fn: Callable[[Any, Any], Any] = getattr(module, attr)
    return fn


def settings_variables(handler: str) -> frozenset[str]:
    """The environment variables the handler's settings model reads."""
    check_handler(handler)
    model = HANDLER_SETTINGS[handler.rpartition(".")[0]]
    return frozenset(str(field.alias) for field in model.model_fields.values() if field.alias)


def _readable(name: str, allowed: frozenset[str]) -> bool:
    return name in allowed or name.startswith("POWERTOOLS_")


def _reset_containers() -> None:
    """A new environment is a new container: drop per-container caches (clients, settings, services)."""
    clients.client.cache_clear()
    for name, module in list(sys.modules.items()):
        if name.startswith("taskrunner.handlers.") and hasattr(getattr(module, "service", None), "cache_clear"):
            module.service.cache_clear()


_warm_env: dict[str, str] | None = None


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Apply a function's environment; reuse the warm container when the environment is the last one."""
    global _warm_env  # noqa: PLW0603 - one warm container per process, like one Lambda execution environment
    saved = dict(os.environ)
    os.environ.update(env)
    if _warm_env != dict(env):
        _reset_containers()
        _warm_env = dict(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def invoke(
    function: DeployedFunction,
    event: Any,
    extra_env: Mapping[str, str] | None = None,
    *,
    runtime_env: Mapping[str, str] | None = None,
) -> Any:
    """Run the function's handler on ``event`` with the environment Lambda would give it.

    The deployed function's variables pass through only where its handler's settings read them (a function
    configured with ``AWS_ENDPOINT_URL`` or ``LD_PRELOAD`` reaches nothing here); ``extra_env`` (``--env``) may
    set only those names; ``runtime_env`` is what the caller's own target provides (region, credentials,
    endpoint), as Lambda's runtime would.
    """
    readable = settings_variables(function.handler)  # refuses a foreign handler before anything is imported
    if refused := sorted(name for name in (extra_env or {}) if not _readable(name, readable)):
        raise UnsafeInvoke(
            f"{function.name} does not read {refused}; its settings read {sorted(readable)} and POWERTOOLS_*"
        )
    if foreign := sorted(set(runtime_env or {}) - RUNTIME_VARIABLES):
        raise UnsafeInvoke(f"not runtime variables: {foreign}")
    region = function.arn.split(":")[3]
    env = {
        # What the Lambda runtime sets in every execution environment.
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "POWERTOOLS_TRACE_DISABLED": "true",
        **{k: v for k, v in function.environment.items() if _readable(k, readable)},
        **(runtime_env or {}),
        **(extra_env or {}),
    }
    context = LambdaContext(
        function_name=function.name,
        memory_limit_in_mb=function.memory_mb,
        invoked_function_arn=function.arn,
        timeout_s=function.timeout_s,
    )
    with environment(env):
        return resolve(function.handler)(event, context)
