"""``taskrunner``: invoke handlers without Docker, submit work, start runs, read run history, simulate, run locally.

Every command that talks to AWS finds its resources through the stack's outputs (CloudFormation
DescribeStacks), so it needs only a stack name and credentials. ``docs/cli.md`` is the reference.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.store import DynamoRunStore
from taskrunner.cli_support import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Target,
    aws_errors,
    newest_first,
    output_to_stderr,
    parse_env,
    query_runs,
    read_event,
    read_messages,
    resolve_target,
    send_messages,
    without_env,
)
from taskrunner.domain.errors import UnknownJob
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec
from taskrunner.domain.runs import Run, RunStatus, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest, describe
from taskrunner.local.invoke import deployed_function, invoke

PROG = "taskrunner"
#: Commands that hand every argument after their name to another tool's own parser.
DELEGATES = {
    "simulate": ("taskrunner.sim.cli", "replay a traffic scenario through the scaling policies (see `simulate -h`)"),
    "local": ("taskrunner.local.runner", "run the whole system on this machine against an embedded AWS"),
}
TARGET_OPTIONS = ("stack", "profile", "region", "local")
STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.TIMED_OUT: "red",
    RunStatus.LAUNCH_FAILED: "red",
    RunStatus.RUNNING: "cyan",
    RunStatus.PENDING: "yellow",
    RunStatus.CLAIMED: "yellow",
}


def _version() -> str:
    try:
        return version("taskrunner")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------------------- helpers


def registry(target: Target) -> SsmRegistry:
    return SsmRegistry(target.output("RegistryPrefix"), target.client("ssm"))


def job_spec(target: Target, job: str) -> JobSpec:
    try:
        return registry(target).get(job)
    except UnknownJob as exc:
        raise CliError(f"unknown job '{job}' in stack '{target.stack}'", EXIT_USAGE) from exc
    except InvalidJobSpec as exc:
        raise CliError(f"job '{job}' has an invalid registry entry: {exc}", EXIT_FAILED) from exc
    except GetParameterError as exc:
        raise CliError(f"cannot read the job registry: {exc}", EXIT_FAILED) from exc


def output_functions(target: Target) -> dict[str, str]:
    """Logical id → function name, from the stack's ``<LogicalId>Name`` outputs (DispatchFunctionName ...)."""
    return {key.removesuffix("Name"): value for key, value in target.outputs().items() if key.endswith("FunctionName")}


def resource_functions(target: Target) -> dict[str, str]:
    """Logical id → function name of every Lambda function in the stack, outputs or not."""
    functions: dict[str, str] = {}
    try:
        pages = target.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=target.stack)
        for page in pages:
            for resource in page.get("StackResourceSummaries", []):
                if resource["ResourceType"] == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
                    functions[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    except ClientError:
        pass  # without ListStackResources, the outputs alone name the functions
    return functions


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
    ours = ("taskrunner/cli.py", "taskrunner/local/invoke.py")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.replace("\\", "/").endswith(ours)]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_list(frames),
    }


def runs_table(runs: Sequence[Run]) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("run id", no_wrap=True, min_width=26)
    table.add_column("job", no_wrap=True)
    table.add_column("trigger", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempt", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for run in runs:
        style = STATUS_STYLE.get(run.status, "dim")
        table.add_row(
            run.run_id,
            run.job,
            str(run.trigger),
            f"[{style}]{run.status}[/]",
            str(run.attempt),
            run.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            (run.task_arn or "").rsplit("/", 1)[-1],
            escape(run.reason or ""),
        )
    return table


# -------------------------------------------------------------------------------------------------------- commands


def cmd_invoke(args: argparse.Namespace, target: Target) -> int:
    event = read_event(args.event) if args.event else {}
    extra_env = parse_env(args.env)
    logical_id, name = resolve_function(target, args.function)
    function = deployed_function(name, target.client("lambda"))
    env = target.handler_env() | extra_env
    failure: Exception | None = None
    response: Any = None
    with without_env(target.stale_env()), output_to_stderr():
        try:
            response = invoke(function, event, env)
        except Exception as exc:  # the handler's own failure, reported as Lambda reports it
            failure = exc
    if failure is not None:
        print(json.dumps(lambda_error(failure), indent=2))
        raise CliError(f"{logical_id} raised {type(failure).__name__}: {failure}", EXIT_FAILED)
    print(json.dumps(response, indent=2, default=str))
    return EXIT_OK


def cmd_submit(args: argparse.Namespace, target: Target) -> int:
    messages = read_messages(args.file)
    destination: str = args.queue
    if destination.startswith(("https://", "http://")):
        queue_url = destination
    else:
        spec = job_spec(target, destination)
        if not spec.queue_url:
            raise CliError(
                f"job '{destination}' has no work queue (queue mode '{spec.queue_mode}'): "
                "submit to a queue job or a queue URL; `taskrunner run` starts other jobs",
                EXIT_USAGE,
            )
        queue_url = spec.queue_url
    console = Console()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stdout.isatty(),
    ) as progress:
        task = progress.add_task(f"sending to {queue_url.rsplit('/', 1)[-1]}", total=len(messages))
        result = send_messages(target.client("sqs"), queue_url, messages, advance=lambda n: progress.advance(task, n))
    for line, reason in result.failed[:10]:
        print(f"line {line}: {reason}", file=sys.stderr)
    if len(result.failed) > 10:
        print(f"... and {len(result.failed) - 10} more", file=sys.stderr)
    print(f"sent {result.sent}, failed {len(result.failed)}")
    return EXIT_FAILED if result.failed else EXIT_OK


def cmd_run(args: argparse.Namespace, target: Target) -> int:
    body = {
        "job": args.job,
        "trigger": "manual",
        "request_id": args.request_id or str(uuid.uuid4()),
        "env": parse_env(args.env),
    }
    try:
        request = DispatchRequest.model_validate(body)
    except ValidationError as exc:
        raise CliError(f"invalid run request: {describe(exc)}", EXIT_USAGE) from exc
    job_spec(target, request.job)
    target.client("sqs").send_message(QueueUrl=target.output("DispatchQueueUrl"), MessageBody=json.dumps(body))
    run_id = run_id_for(idempotency_key(request))
    print(run_id)
    if sys.stderr.isatty():
        print(f"queued a manual run of {request.job}; follow it with `taskrunner runs {request.job}`", file=sys.stderr)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace, target: Target) -> int:
    table_name = target.output("RunsTableName")
    db = target.client("dynamodb")
    status = RunStatus(args.status) if args.status else None
    if args.job and status is None:
        runs = DynamoRunStore(table_name, db).history(args.job, args.limit)
    elif args.job:
        runs = query_runs(db, table_name, args.job, args.limit, status)
    else:
        # Newest N across jobs: each registered job's newest N through its index, merged. A Scan would
        # have to read the whole table to know which runs are the newest.
        try:
            jobs = sorted(spec.name for spec in registry(target).all())
        except GetParameterError as exc:
            raise CliError(f"cannot read the job registry: {exc}", EXIT_FAILED) from exc
        runs = newest_first(
            [run for job in jobs for run in query_runs(db, table_name, job, args.limit, status)], args.limit
        )
    if not runs and args.job:
        job_spec(target, args.job)  # an unknown job says so, rather than "no runs"
    if args.json:
        for run in runs:
            print(run.model_dump_json(exclude_none=True))
        return EXIT_OK
    if not runs:
        print("no runs" + (f" of {args.job}" if args.job else "") + (f" with status {status}" if status else ""))
        return EXIT_OK
    table = runs_table(runs)
    console = Console()
    if not console.is_terminal:
        # Piped or redirected: no terminal width to fit, so print every row whole rather than squeezed into 80.
        console = Console(width=Console(width=10_000).measure(table).maximum)
    console.print(table)
    return EXIT_OK


def delegate(command: str, argv: list[str]) -> int:
    module_name, _ = DELEGATES[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise CliError(f"`taskrunner {command}` is not part of this installation ({exc})", EXIT_FAILED) from exc
        if exc.name and not exc.name.startswith("taskrunner"):
            raise CliError(f"`taskrunner {command}` needs {exc.name}: install taskrunner[cli]", EXIT_FAILED) from exc
        raise
    entry: Callable[[list[str]], int] = module.main
    return int(entry(argv) or 0)


# ---------------------------------------------------------------------------------------------------------- parser


def _target_options(parser: argparse.ArgumentParser) -> None:
    """On the main parser and on every AWS command (SUPPRESS: an absent option never clobbers a given one)."""
    group = parser.add_argument_group("target")
    group.add_argument(
        "--stack",
        default=argparse.SUPPRESS,
        help="stack name (default: the local stack with --local, else $TASKRUNNER_STACK, else 'taskrunner')",
    )
    group.add_argument("--profile", default=argparse.SUPPRESS, help="AWS profile (default: boto3's credential chain)")
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: the profile's or $AWS_REGION)")
    group.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="target the embedded AWS of a running `taskrunner local` (reads .taskrunner/local.json)",
    )


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Event-driven task runner on ECS Fargate: invoke handlers, submit work, start and inspect runs.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad input, 3 target unreachable. Reference: docs/cli.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    _target_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    invoke = sub.add_parser(
        "invoke",
        help="run a deployed function's handler in this process (sam local invoke, without Docker)",
        description="Read FUNCTION's handler and environment from the deployed stack and run it in-process "
        "with EVENT. The handler's JSON response goes to stdout, its logs to stderr.",
    )
    invoke.add_argument("function", metavar="FUNCTION", help="logical id (DispatchFunction) or function name")
    invoke.add_argument("-e", "--event", metavar="FILE", help="event JSON file, '-' for stdin (default: {})")
    invoke.add_argument(
        "--env", action="append", metavar="NAME=VALUE", help="override the function's environment (repeatable)"
    )
    invoke.set_defaults(handler=cmd_invoke, parser=invoke)

    submit = sub.add_parser(
        "submit",
        help="send JSON lines to a job's work queue",
        description="Send each non-empty line of FILE (JSON lines) as one message, 10 per SendMessageBatch. "
        "Every line is checked before anything is sent.",
    )
    submit.add_argument("queue", metavar="QUEUE_OR_JOB", help="a queue URL, or a job with a work queue")
    submit.add_argument("-f", "--file", required=True, metavar="FILE", help="messages, one JSON per line; '-' = stdin")
    submit.set_defaults(handler=cmd_submit, parser=submit)

    run = sub.add_parser(
        "run",
        help="start a run of JOB now, through the dispatch queue",
        description="Queue a manual run request for JOB and print its run id.",
    )
    run.add_argument("job", metavar="JOB")
    run.add_argument("--env", action="append", metavar="NAME=VALUE", help="environment for this run (repeatable)")
    run.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key, 8-64 characters (default: a new UUID); the same id never launches twice",
    )
    run.set_defaults(handler=cmd_run, parser=run)

    runs = sub.add_parser(
        "runs",
        help="run history, newest first",
        description="Show JOB's runs (or every registered job's) newest first.",
    )
    runs.add_argument("job", nargs="?", metavar="JOB")
    runs.add_argument(
        "--status", type=str.upper, choices=[s.value for s in RunStatus], metavar="STATUS", help="only runs in STATUS"
    )
    runs.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)")
    runs.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    runs.set_defaults(handler=cmd_runs, parser=runs)

    for command in (invoke, submit, run, runs):
        _target_options(command)

    for name, (_, help_text) in DELEGATES.items():
        # No options of their own: every argument after the name goes to the tool's parser, -h included.
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


# ------------------------------------------------------------------------------------------------------------ main


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if args.command not in DELEGATES and extras:
            args.parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:
        return _exit_code(exc)
    try:
        if args.command in DELEGATES:
            before = [f"--{name}" for name in TARGET_OPTIONS if name in vars(args)]
            if before:
                raise CliError(f"put {', '.join(before)} after `{args.command}`: its arguments go to it", EXIT_USAGE)
            return delegate(args.command, extras)
        target = resolve_target(
            getattr(args, "stack", None),
            getattr(args, "profile", None),
            getattr(args, "region", None),
            getattr(args, "local", False),
        )
        with aws_errors(target):
            code: int = args.handler(args, target)
        return code
    except CliError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # a delegate's parser
        return _exit_code(exc)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
