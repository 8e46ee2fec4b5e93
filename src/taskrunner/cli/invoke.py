"""``taskrunner invoke FUNCTION``: a deployed function's handler run in this process (``sam local invoke``,
without Docker), with the handler string and environment read back from the deployed function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import Any

from botocore.exceptions import ClientError

from taskrunner.adapters.stacks import StackNotFound
from taskrunner.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from taskrunner.cli.inputs import parse_env, read_event
from taskrunner.cli.target import Target
from taskrunner.local.invoke import UnsafeInvoke, check_handler, deployed_function, invoke

LAMBDA_FUNCTION = "AWS::Lambda::Function"


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "invoke",
        parents=[common],
        help="run a deployed function's handler in this process (sam local invoke, without Docker)",
        description="Read FUNCTION's handler and environment from the deployed stack and run it in-process "
        "with EVENT. The handler's JSON response goes to stdout, its logs to stderr.",
    )
    parser.add_argument("function", metavar="FUNCTION", help="logical id (DispatchFunction) or function name")
    parser.add_argument("-e", "--event", metavar="FILE", help="event JSON file, '-' for stdin (default: {})")
    parser.add_argument(
        "--env", action="append", metavar="NAME=VALUE", help="override the function's environment (repeatable)"
    )
    parser.set_defaults(handler=handle)


def output_functions(target: Target) -> dict[str, str]:
    """Logical id → function name, from the stack's ``<LogicalId>Name`` outputs (DispatchFunctionName ...)."""
    return {key.removesuffix("Name"): value for key, value in target.outputs().items() if key.endswith("FunctionName")}


def resource_functions(target: Target) -> dict[str, str]:
    """Logical id → function name of every Lambda function in the stack, outputs or not."""
    try:
        return target.stacks().resources(target.stack, LAMBDA_FUNCTION)
    except (ClientError, StackNotFound):
        return {}  # without ListStackResources, the outputs alone name the functions


def resolve_function(target: Target, name: str) -> tuple[str, str]:
    """A logical id or a function name → (logical id, function name); the outputs first, then the resources."""
    known: dict[str, str] = {}
    for lookup in (output_functions, resource_functions):
        functions = lookup(target)
        if name in functions:
            return name, functions[name]
        for logical_id, physical in functions.items():
            if physical == name:
                return logical_id, physical
        known |= functions
    listed = ", ".join(sorted(known)) or "none"
    raise CliError(f"unknown function '{name}' in stack '{target.stack}': known functions are {listed}", EXIT_USAGE)


def lambda_error(exc: BaseException) -> dict[str, Any]:
    """The response Lambda returns for an unhandled exception; the trace starts where the handler does."""
    ours = ("taskrunner/cli/invoke.py", "taskrunner/local/invoke.py")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.replace("\\", "/").endswith(ours)]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_list(frames),
    }


def handle(args: argparse.Namespace, target: Target) -> int:
    event = read_event(args.event) if args.event else {}
    extra_env = parse_env(args.env)
    logical_id, name = resolve_function(target, args.function)
    function = deployed_function(name, target.client("lambda"))
    if target.local and function.handler.endswith("tracker.handler"):
        # Local mode plays the state changes itself; on AWS only the tracker queue carries them.
        extra_env = {"TRACKER_ACCEPT_DIRECT_EVENTS": "true"} | extra_env
    failure: Exception | None = None
    response: Any = None
    try:
        check_handler(function.handler)
    except UnsafeInvoke as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    with without_env(target.stale_env()), output_to_stderr():
        try:
            response = invoke(function, event, extra_env, runtime_env=target.handler_env())
        except UnsafeInvoke as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        except Exception as exc:  # the handler's own failure, reported as Lambda reports it
            failure = exc
    if failure is not None:
        print(json.dumps(lambda_error(failure), indent=2))
        raise CliError(f"{logical_id} raised {type(failure).__name__}: {failure}", EXIT_FAILED)
    print(json.dumps(response, indent=None if args.json else 2, default=str))
    return EXIT_OK


def _stdout_handlers() -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger()]
    loggers += [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__)
    ]


@contextmanager
def output_to_stderr() -> Iterator[None]:
    """A handler's logs and EMF metrics on stderr, as ``sam local invoke`` does, so stdout is just the response."""
    moved = [(handler, handler.stream) for handler in _stdout_handlers()]
    for handler, _ in moved:
        handler.setStream(sys.stderr)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


@contextmanager
def without_env(names: Sequence[str]) -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
