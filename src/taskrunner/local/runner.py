"""``taskrunner local``: the whole system on this machine, against an embedded AWS.

Starts a moto server on loopback, deploys the real template.yaml into it (about three seconds, no
``sam build``: the handlers run in this process from ``src/``), and plays what moto does not: job
schedules, the Lambda event-source mappings and schedules, ECS tasks and services as local processes
(:mod:`taskrunner.local.runtime`). ``.taskrunner/local.json`` tells ``taskrunner --local ...`` in
another terminal where the embedded AWS is. ``docs/local-mode.md`` is the guide.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from types import FrameType
from typing import IO, Any

from taskrunner.cli.validate import TemplateUnreadable, find_problems, problem_lines
from taskrunner.local import demo
from taskrunner.local.activity import Entry
from taskrunner.local.moto_ecs import pin_task_states, unpin_task_states
from taskrunner.local.platform import DEFAULT_STACK, Platform, local_platform
from taskrunner.local.runtime import LocalRuntime
from taskrunner.local.stack import REGION
from taskrunner.local.view import LinePrinter, LiveView, wait_forever

PROG = "taskrunner local"
STATE_DIR = Path(".taskrunner")
STATE_FILE = STATE_DIR / "local.json"
LOG_FILE = STATE_DIR / "local.log"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run taskrunner on this machine: an embedded AWS (moto) with the real template deployed, "
        "job schedules, the Lambda handlers in-process, and ECS tasks and worker services as local processes.",
        epilog="Guide: docs/local-mode.md. "
        "From another terminal: taskrunner --local run JOB | submit JOB -f FILE | runs",
    )
    parser.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="N",
        help="run the schedule clock N times faster than real time (job schedules only; default 1)",
    )
    parser.add_argument(
        "--scenario",
        choices=["demo"],
        help="run a scripted scenario, print a JSON summary on stdout and exit (0 only if every check passed)",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output: JSON lines with --no-view, a one-line summary"
    )
    parser.add_argument("--port", type=_port, metavar="P", help="port of the embedded AWS on 127.0.0.1 (default: free)")
    parser.add_argument("--no-view", action="store_true", help="plain log lines instead of the live view")
    parser.add_argument(
        "--command",
        action="append",
        default=[],
        metavar="JOB=COMMAND",
        help="the local command standing in for JOB's image (overrides its LocalCommand; repeatable)",
    )
    parser.add_argument(
        "--stack", default=DEFAULT_STACK, help=f"stack name in the embedded AWS (default {DEFAULT_STACK})"
    )
    return parser


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value!r}")
    return number


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), not {value!r}")
    return int(value)


def _commands(items: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    commands = {}
    for item in items:
        job, sep, command = item.partition("=")
        if not sep or not job.strip() or not command.strip():
            parser.error(f"--command takes JOB=COMMAND, not {item!r}")
        commands[job.strip()] = command.strip()
    return commands


# ------------------------------------------------------------------------------------------------- the platform


@contextmanager
def start_platform(root: Path, stack: str, port: int | None) -> Iterator[Platform]:
    with local_platform(root, stack_name=stack, port=port) as platform:
        yield platform


# ------------------------------------------------------------------------------------------------ local.json


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def other_instance(path: Path) -> dict[str, Any] | None:
    """The state of another live ``taskrunner local`` in this directory, if there is one."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
        return dict(state)
    return None


def write_state(path: Path, platform: Platform) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"endpoint": platform.endpoint, "stack": platform.stack_name, "region": REGION, "pid": os.getpid()}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(path)


def remove_state(path: Path) -> None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(state, dict) and state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------- output


def _stdout_handlers() -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__)
    ]


@contextmanager
def handler_output_to(log: IO[str]) -> Iterator[None]:
    """The in-process handlers' logs and EMF metrics (stdout in Lambda) go to the log file, not the terminal.

    Powertools binds its Logger to ``sys.stdout`` when the handler module is first imported, which
    happens during the first invocation: inside this block, that is the log file.
    """
    original = sys.stdout
    moved = _stdout_handlers()
    for handler in moved:
        handler.setStream(log)
    root = logging.getLogger()
    file_handler = logging.StreamHandler(log)
    file_handler.setLevel(logging.WARNING)
    root.addHandler(file_handler)
    try:
        with redirect_stdout(log):
            yield
    finally:
        root.removeHandler(file_handler)
        # Every handler now writing to the (soon closed) log file, moved or created here, goes back to stdout.
        loggers = [root] + [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
        for logger in loggers:
            for stream_handler in logger.handlers:
                if isinstance(stream_handler, logging.StreamHandler) and stream_handler.stream is log:
                    stream_handler.setStream(original)


def _log_writer(log: IO[str]) -> Any:
    lock = threading.Lock()

    def write(entry: Entry) -> None:
        with lock:
            log.write(entry.line() + "\n")
            if trace := entry.fields.get("trace"):
                log.write(str(trace))
            log.flush()

    return write


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """``kill PID`` (SIGTERM) and a closed terminal (SIGHUP) stop local mode as Ctrl-C does: workers drain,
    tasks stop, the server stops. (Task and worker processes have sessions of their own: nothing else stops them.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def failure_line(exc: BaseException, template: Path) -> str:
    """One line for a failed start, naming the job block it concerns when the error names one."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    try:
        blocks, _ = find_problems(template)
    except TemplateUnreadable:
        blocks = []
    for block in blocks:
        if re.search(rf"\b{re.escape(block.logical_id)}\b", text) or (
            block.job_name and re.search(rf"\b{re.escape(block.job_name)}\b", text)
        ):
            return f"job {block.job_name} ({block.logical_id}): {text}"
    return text


# ------------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = _commands(args.command, parser)
    root = Path.cwd()
    if not (root / "template.yaml").is_file():
        print(f"{PROG}: no template.yaml in {root}: run it from the project's root", file=sys.stderr)
        return EXIT_USAGE
    # The check `taskrunner validate` makes: a bad job block is refused here, by name, before anything deploys.
    if problems := problem_lines(Path("template.yaml")):
        for line in problems:
            print(f"{PROG}: {line}", file=sys.stderr)
        print(f"{PROG}: not started: fix the template (taskrunner validate checks it)", file=sys.stderr)
        return EXIT_FAILED
    started = time.monotonic()
    out, err = sys.stdout, sys.stderr
    # A scenario's stdout is its summary alone; what happens meanwhile goes to stderr.
    feed = err if args.scenario else out
    other = other_instance(root / STATE_FILE)
    if other and not args.scenario:
        print(
            f"{PROG}: another taskrunner local runs here (pid {other.get('pid')}, {other.get('endpoint')}): "
            "stop it, or use it with `taskrunner --local ...`",
            file=sys.stderr,
        )
        return EXIT_BUSY
    lines = args.no_view or not feed.isatty()
    summary: dict[str, Any] | None = None
    interrupted = False
    (root / STATE_DIR).mkdir(exist_ok=True)
    with (
        (root / LOG_FILE).open("w", encoding="utf-8") as log,
        handler_output_to(log),
        signals_as_interrupt(),
    ):
        try:
            if not lines or not args.json:
                print(f"{PROG}: starting the embedded AWS and deploying template.yaml ...", file=feed, flush=True)
            with start_platform(root, args.stack, args.port) as platform:
                summary, interrupted = _run(platform, root, args, commands, feed, log, lines, other, started)
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # deploy or start-up failed: one line here, the trace in the log file
            log.write(traceback.format_exc())
            print(f"{PROG}: not started: {failure_line(exc, Path('template.yaml'))} (trace in {LOG_FILE})", file=err)
            return EXIT_FAILED
    if summary is not None:
        summary["seconds"] = round(time.monotonic() - started, 1)
        out.write(json.dumps(summary, indent=None if args.json else 2) + "\n")
        out.flush()
        return EXIT_OK if summary["passed"] else EXIT_FAILED
    return EXIT_INTERRUPTED if interrupted and args.scenario else EXIT_OK


def _run(
    platform: Platform,
    root: Path,
    args: argparse.Namespace,
    commands: dict[str, str],
    feed: IO[str],
    log: IO[str],
    lines: bool,
    other: dict[str, Any] | None,
    started: float,
) -> tuple[dict[str, Any] | None, bool]:
    pin_task_states()
    try:
        runtime = LocalRuntime(platform, root, speed=args.speed, commands=commands)
    except BaseException:
        unpin_task_states()
        raise
    runtime.activity.subscribe(_log_writer(log))
    if lines:
        runtime.activity.subscribe(LinePrinter(feed, as_json=args.json))
    if other is None:
        write_state(root / STATE_FILE, platform)
    else:
        runtime.activity.add("platform", f"{STATE_FILE} left to the running instance (pid {other.get('pid')})")
    view: LiveView | None = None
    summary: dict[str, Any] | None = None
    interrupted = False
    try:
        if args.scenario == "demo":
            demo.prepare(runtime)
        runtime.start()
        if not lines:
            from rich.console import Console

            title = "taskrunner local — demo" if args.scenario else "taskrunner local"
            view = LiveView(runtime, Console(file=feed), title).start()
        try:
            if args.scenario == "demo":
                summary = demo.run(runtime, started)
            else:
                wait_forever()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if view is not None:
                view.stop()
    finally:
        # Other terminals stop targeting this instance first; then it stops.
        remove_state(root / STATE_FILE)
        if not lines or not args.json:
            print(f"{PROG}: stopping workers, tasks and the embedded AWS ...", file=feed, flush=True)
        runtime.stop()
        unpin_task_states()
    return summary, interrupted


if __name__ == "__main__":
    sys.exit(main())
