"""The ``taskrunner`` command: the parser (global options before or after the command), and one error path.

Every command lives in its own module with ``add_parser(subparsers, common)``; ``common`` carries the global
options (``--stack``, ``--profile``, ``--region``, ``--local``, ``--json``), on the main parser and on each
command, with suppressed defaults so an option given before the command is not reset by its absence after it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from taskrunner.cli import (
    completion,
    delegates,
    event,
    invoke,
    jobs,
    logs,
    new,
    pause,
    run,
    runs,
    status,
    stop,
    submit,
    validate,
)
from taskrunner.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CliError
from taskrunner.cli.target import aws_errors, resolve_target

PROG = "taskrunner"
GLOBAL_OPTIONS = ("stack", "profile", "region", "local", "json")
#: In the order `taskrunner -h` lists them: what an on-call engineer reaches for first.
COMMANDS = (jobs, status, run, runs, logs, stop, pause, submit, invoke, event, validate, new, completion)


def _version() -> str:
    try:
        return version("taskrunner")
    except PackageNotFoundError:
        return "unknown"


def common_options() -> argparse.ArgumentParser:
    """The global options, as a parent of the main parser and of every command."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--stack",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="stack name (default: the local stack with --local, else $TASKRUNNER_STACK, else 'taskrunner')",
    )
    group.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="AWS profile (default: $AWS_PROFILE, then the credential chain)",
    )
    group.add_argument(
        "--region",
        default=argparse.SUPPRESS,
        metavar="REGION",
        help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="target the embedded AWS of a running `taskrunner local` (reads .taskrunner/local.json)",
    )
    group.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output: one object per line"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Event-driven task runner on ECS Fargate: inspect jobs and runs, start, follow, stop and "
        "pause them, submit work, invoke handlers, simulate scaling, run it all locally.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad input, 3 target unreachable, 4 `status` needs attention, "
        "130 interrupted; `run --wait` exits with the task's code. Reference: docs/cli.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub, common)
    delegates.add_parsers(sub)
    return parser


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return EXIT_FAILED


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = action.choices[command]
    return found


def _run(args: argparse.Namespace, extras: list[str]) -> int:
    given = {name: getattr(args, name) for name in GLOBAL_OPTIONS if hasattr(args, name)}
    for name in GLOBAL_OPTIONS:
        if not hasattr(args, name):
            setattr(args, name, False if name in {"local", "json"} else None)
    if args.command in delegates.DELEGATES:
        return delegates.delegate(args, given, extras)
    if not getattr(args, "needs_target", True):
        code: int = args.handler(args, None)
        return code
    target = resolve_target(args.stack, args.profile, args.region, args.local)
    with aws_errors(target):
        return int(args.handler(args, target))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if args.command not in delegates.DELEGATES and extras:
            _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:
        return _exit_code(exc)
    command: Any = args.command
    try:
        return _run(args, extras)
    except CliError as exc:
        for line in exc.lines:
            print(f"{PROG} {command}: {line}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # a delegate's parser
        return _exit_code(exc)
    except KeyboardInterrupt:
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `taskrunner runs | head`: the reader left; nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:  # a bug or an error nobody foresaw: still one line, unless asked for the trace
        if os.environ.get("TASKRUNNER_DEBUG"):
            traceback.print_exc()
        print(
            f"{PROG} {command}: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(TASKRUNNER_DEBUG=1 prints the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
