"""``taskrunner stop RUN_ID``: StopTask on the run's current attempt's task.

The reason ECS records names who stopped it, so the run's record does too: the Tracker records the run STOPPED
(stop code ``UserInitiated``) with the task's ``stoppedReason`` as its reason. A stop is final: it never retries.
"""

from __future__ import annotations

import argparse
from typing import Any

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_FAILED, EXIT_OK, CliError
from taskrunner.cli.lookups import SHORT_ID, find_run
from taskrunner.cli.target import Target
from taskrunner.domain.errors import PermanentError
from taskrunner.domain.runs import Run, RunStatus

#: ECS keeps at most this much of a stop reason.
MAX_REASON = 255


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "stop",
        parents=[common],
        help="stop a run's task (ECS StopTask); the run ends STOPPED",
        description="Stop the task of RUN_ID's current attempt with ECS StopTask. The reason, prefixed with who "
        "stopped it, becomes the run's reason when the Tracker records it STOPPED.",
    )
    parser.add_argument("run", metavar="RUN_ID", help="a run id, or a prefix of at least 6 characters")
    parser.add_argument("--reason", default="", metavar="TEXT", help="why (recorded with the run)")
    parser.set_defaults(handler=handle)


def stop_reason(who: str, reason: str = "") -> str:
    """``stopped by alice (taskrunner stop): deploy freeze``, within ECS's 255 characters."""
    text = f"stopped by {who} (taskrunner stop)" + (f": {' '.join(reason.split())}" if reason.strip() else "")
    return text[:MAX_REASON]


def current_task(run: Run) -> str:
    """The task of the run's current attempt, or why there is none to stop."""
    if run.status.terminal:
        raise CliError(f"run {run.run_id} already {run.status}: nothing to stop", EXIT_FAILED)
    if run.status is RunStatus.RETRYING:
        raise CliError(
            f"run {run.run_id} is between attempts (attempt {run.attempt} not launched yet): "
            "nothing to stop until it is PENDING or RUNNING",
            EXIT_FAILED,
        )
    attempt = run.attempt_record(run.attempt)
    # A CLAIMED run is launching: a task on its record is an earlier attempt's, already stopped.
    task = (attempt.task_arn if attempt else None) or (run.task_arn if run.status is not RunStatus.CLAIMED else None)
    if not task:
        raise CliError(f"run {run.run_id} has no task yet ({run.status}): try again in a few seconds", EXIT_FAILED)
    return task


def handle(args: argparse.Namespace, target: Target) -> int:
    run = find_run(target, args.run)
    task = current_task(run)
    try:
        cluster = target.registry().get(run.job).cluster
    except (PermanentError, ValueError):
        cluster = target.output("ClusterArn")  # the job left the registry; its task is still on the stack's cluster
    reason = stop_reason(target.who(), args.reason)
    target.cluster().stop_task(cluster, task, reason)
    if args.json:
        output.json_line({"run_id": run.run_id, "attempt": run.attempt, "task_arn": task, "reason": reason})
    else:
        print(f"stopping run {run.run_id[:SHORT_ID]} attempt {run.attempt} (task {task.rsplit('/', 1)[-1]}): {reason}")
        output.err(f"the Tracker records it STOPPED when the task exits: `taskrunner runs {run.run_id[:SHORT_ID]}`")
    return EXIT_OK
