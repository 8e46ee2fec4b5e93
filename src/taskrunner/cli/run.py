"""``taskrunner run JOB``: one run now, through the dispatch queue, as a schedule or an event starts one;
with ``--wait``, followed to its end and exited with the task's exit code."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from taskrunner.cli.inputs import duration_s, parse_env
from taskrunner.cli.lookups import SHORT_ID, job_spec
from taskrunner.cli.target import Target
from taskrunner.domain.failures import FailureKind
from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.ports import RunStore
from taskrunner.domain.runs import Run, RunStatus, idempotency_key, run_id_for
from taskrunner.domain.tracking import should_retry
from taskrunner.domain.triggers import DispatchRequest, describe

#: ``--wait`` exit codes for runs that end without an exit code of their own (a task's own code is 0-255, so
#: these can collide with one; they are chosen from the range shells and container tools use for "not the app").
EXIT_FAILED_NO_CODE = 120
EXIT_LAUNCH_FAILED = 121
EXIT_NOT_STARTED = 122  # SKIPPED (overlap policy, paused) or MISSED (starting deadline)
EXIT_STOPPED = 123
EXIT_WAIT_TIMEOUT = 124  # as timeout(1): the run goes on
EXIT_TIMED_OUT = 125  # the job's TimeoutSeconds
POLL_S = 1.0
#: A request the Dispatcher never records (refused, dead-lettered) would be waited for forever: say so after this.
NO_RECORD_HINT_S = 60.0
#: How long a failure the job's policy retries is given for its retry to show before it is taken as the end.
RETRY_SETTLE_S = 30.0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="start a run of JOB now, through the dispatch queue (--wait: follow it to its end)",
        description="Queue a manual run request for JOB and print its run id. With --wait, follow the run "
        "to its end and exit with its task's exit code.",
        epilog=f"--wait exit codes: the task's own exit code (0 on success); {EXIT_FAILED_NO_CODE} failed without "
        f"an exit code; {EXIT_LAUNCH_FAILED} LAUNCH_FAILED; {EXIT_NOT_STARTED} SKIPPED or MISSED; "
        f"{EXIT_STOPPED} STOPPED; {EXIT_WAIT_TIMEOUT} --timeout passed (the run goes on); {EXIT_TIMED_OUT} "
        f"TIMED_OUT; {EXIT_INTERRUPTED} Ctrl-C (the run goes on).",
    )
    parser.add_argument("job", metavar="JOB")
    parser.add_argument("--env", action="append", metavar="NAME=VALUE", help="environment for this run (repeatable)")
    parser.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key, 8-64 characters (default: a new UUID); the same id never launches twice",
    )
    parser.add_argument("--wait", action="store_true", help="follow the run to its end; exit with its exit code")
    parser.add_argument(
        "--timeout",
        type=_duration,
        metavar="S",
        help="with --wait: stop waiting after S (seconds, or 90s, 15m, 2h); exit 124, the run goes on",
    )
    parser.set_defaults(handler=handle)


def _duration(value: str) -> float:
    try:
        seconds = duration_s(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value!r}")
    return seconds


def exit_code_for(run: Run) -> int:
    """The exit code ``run --wait`` ends with for a finished run."""
    match run.status:
        case RunStatus.SUCCEEDED:
            return EXIT_OK
        case RunStatus.FAILED:
            code = run.exit_code
            return code if code is not None and 0 < code < 256 else EXIT_FAILED_NO_CODE
        case RunStatus.TIMED_OUT:
            return EXIT_TIMED_OUT
        case RunStatus.STOPPED:
            return EXIT_STOPPED
        case RunStatus.LAUNCH_FAILED:
            return EXIT_LAUNCH_FAILED
        case RunStatus.SKIPPED | RunStatus.MISSED:
            return EXIT_NOT_STARTED
    raise ValueError(f"run {run.run_id} is not finished ({run.status})")


def will_retry(spec: JobSpec, run: Run) -> bool:
    """Whether the Tracker retries this finished attempt: the same rule it applies (``should_retry``)."""
    if run.status is not RunStatus.FAILED or run.failure is None:
        return False
    try:
        failure = FailureKind(run.failure)
    except ValueError:
        return False
    return should_retry(spec.retry, run.attempt, failure, run.exit_code)


def progress_line(run: Run) -> str:
    """One line per state a followed run reaches, on stderr."""
    parts = [f"run {run.run_id[:SHORT_ID]} {run.status}", f"attempt {run.attempt}"]
    if run.task_arn and run.status in {RunStatus.PENDING, RunStatus.RUNNING}:
        parts.append(f"task {run.task_arn.rsplit('/', 1)[-1][:SHORT_ID]}")
    if run.status.terminal:
        if run.exit_code is not None:
            parts.append(f"exit code {run.exit_code}")
        began = run.started_at or run.created_at
        if run.stopped_at or run.updated_at:
            parts.append(f"after {output.span(((run.stopped_at or run.updated_at) - began).total_seconds())}")
    line = ", ".join(parts)
    if run.reason and run.status is not RunStatus.SUCCEEDED:
        line += f": {run.reason}"
    return line


def wait_for(
    store: RunStore,
    run_id: str,
    timeout_s: float | None,
    *,
    report: Callable[[str], None] = output.err,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = POLL_S,
    retries: Callable[[Run], bool] = lambda run: False,
) -> Run | None:
    """Poll the run's record until it is finished (the run), or until ``timeout_s`` has passed (None).

    A failed attempt that ``retries`` says will be retried is not the end: the Tracker writes the failure and then
    the next attempt's RETRYING, and a poll may fall between the two. If no retry shows within ``RETRY_SETTLE_S``
    (the Tracker could not schedule it), the failure stands.
    """
    started = clock()
    last: tuple[RunStatus, int] | None = None
    ended_at: float | None = None
    hinted = False
    while True:
        run = store.get(run_id)
        if run is not None and (run.status, run.attempt) != last:
            last, ended_at = (run.status, run.attempt), None
            report(progress_line(run))
        if run is not None and run.status.terminal:
            if not retries(run):
                return run
            ended_at = clock() if ended_at is None else ended_at
            if clock() - ended_at >= RETRY_SETTLE_S:
                return run
        elapsed = clock() - started
        if run is None and not hinted and elapsed >= NO_RECORD_HINT_S:
            hinted = True
            report(
                f"run {run_id[:SHORT_ID]}: no record after {elapsed:.0f}s; is the Dispatcher running? "
                "(a request it refuses goes to the dispatch dead-letter queue: `taskrunner status`)"
            )
        if timeout_s is not None and elapsed >= timeout_s:
            return None
        sleep(poll_s if timeout_s is None else max(0.0, min(poll_s, timeout_s - elapsed)))


def handle(args: argparse.Namespace, target: Target) -> int:
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout needs --wait", EXIT_USAGE)
    spec = job_spec(target, args.job)
    env = parse_env(args.env)
    # What the Dispatcher would refuse is refused here, before anything is sent: one line per problem.
    problems = spec.override_problems(env, manual=True)
    if problems:
        raise CliError(problems, EXIT_USAGE)
    body = {"job": spec.name, "trigger": "manual", "request_id": args.request_id or str(uuid.uuid4()), "env": env}
    try:
        request = DispatchRequest.model_validate(body)
    except ValidationError as exc:
        raise CliError(f"invalid run request: {describe(exc)}", EXIT_USAGE) from exc
    try:
        paused = target.pauses().reasons().get(spec.name)
    except (GetParameterError, ClientError, BotoCoreError):
        paused = None  # a note, not a reason to refuse the run: a principal may run jobs without reading pauses
    if paused is not None:
        output.err(f"note: {spec.name} is paused ({paused}): its schedules and events start no runs; this one will")
    target.queues().send(target.output("DispatchQueueUrl"), json.dumps(body))
    run_id = run_id_for(idempotency_key(request))
    if not args.wait:
        if args.json:
            output.json_line({"run_id": run_id, "job": spec.name, "request_id": request.request_id})
        else:
            print(run_id, flush=True)
            output.err(f"queued a manual run of {spec.name}; follow it with `taskrunner runs {run_id[:SHORT_ID]}`")
        return EXIT_OK
    if not args.json:
        print(run_id, flush=True)
    try:
        run = wait_for(target.store(), run_id, args.timeout, retries=lambda run: will_retry(spec, run))
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting; run {run_id} goes on (follow it with `taskrunner runs {run_id[:SHORT_ID]}`, "
            f"stop it with `taskrunner stop {run_id[:SHORT_ID]}`)",
            EXIT_INTERRUPTED,
        ) from None
    if run is None:
        latest = target.store().get(run_id)
        state = latest.status if latest else "not recorded yet"
        raise CliError(
            f"run {run_id} still {state} after {output.span(args.timeout or 0)}; it goes on "
            f"(`taskrunner runs {run_id[:SHORT_ID]}`)",
            EXIT_WAIT_TIMEOUT,
        )
    if args.json:
        output.json_line(run.model_dump(mode="json", exclude_none=True))
    return exit_code_for(run)
