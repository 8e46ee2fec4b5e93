"""``taskrunner pause JOB`` / ``taskrunner resume JOB``: Kubernetes CronJob ``suspend`` for a job.

A pause is an SSM parameter ``/taskrunner/<stack>/paused/<job>`` (the ``Pauses`` port), kept apart from the
registry so a deploy never undoes it. While it exists, the Dispatcher records the job's schedule ticks and rule
events SKIPPED ("paused") instead of starting runs. Runs already going go on; ``taskrunner run`` still starts
one (as a Job created by hand from a suspended CronJob runs); queue workers keep scaling.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_OK
from taskrunner.cli.lookups import job_spec
from taskrunner.cli.target import Target


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    pause = sub.add_parser(
        "pause",
        parents=[common],
        help="pause a job: its schedules and events start no runs until resumed",
        description="Pause JOB (Kubernetes CronJob suspend): its schedule ticks and rule events are recorded "
        "SKIPPED until `taskrunner resume JOB`. Running runs go on; a manual `taskrunner run` still starts one.",
    )
    pause.add_argument("job", metavar="JOB")
    pause.add_argument("--reason", default="", metavar="TEXT", help="why (shown by `jobs` and `status`)")
    pause.set_defaults(handler=handle_pause)
    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="resume a paused job",
        description="Resume JOB: its next schedule tick and matching events start runs again. Ticks that "
        "passed while it was paused are not made up.",
    )
    resume.add_argument("job", metavar="JOB")
    resume.set_defaults(handler=handle_resume)


def pause_value(who: str, reason: str, now: datetime | None = None) -> str:
    """What the pause parameter holds: the reason, who paused and when (SSM keeps no author of its own)."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    why = " ".join(reason.split()) or "paused"
    return f"{why} (by {who} at {when})"


def handle_pause(args: argparse.Namespace, target: Target) -> int:
    spec = job_spec(target, args.job)
    pauses = target.pauses()
    before = pauses.reasons().get(spec.name)
    value = pause_value(target.who(), args.reason)
    pauses.set_paused(spec.name, True, value)
    if args.json:
        output.json_line({"job": spec.name, "paused": True, "reason": value, "was_paused": before is not None})
    else:
        print(f"{spec.name} paused: {value}" + (" (it was already paused)" if before is not None else ""))
    return EXIT_OK


def handle_resume(args: argparse.Namespace, target: Target) -> int:
    spec = job_spec(target, args.job)
    pauses = target.pauses()
    before = pauses.reasons().get(spec.name)
    pauses.set_paused(spec.name, False)
    if args.json:
        output.json_line({"job": spec.name, "paused": False, "was_paused": before is not None})
    elif before is None:
        print(f"{spec.name} was not paused")
    else:
        print(f"{spec.name} resumed (was paused: {before})")
    return EXIT_OK
