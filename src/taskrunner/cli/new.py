"""``taskrunner new job NAME``: a job block for template.yaml that validates, printed or appended in place.

One flavour per trigger: ``--schedule CRON``, ``--s3 PREFIX``, ``--pattern JSON``, ``--queue [MODE]`` (none of
them: a job that runs only when started by hand). The block holds the job's own settings and the one platform
line; ``--append`` inserts it at the end of ``Resources:`` (never after ``Outputs:``). The block is checked with
``taskrunner validate``'s rules (against the template's other jobs too) before it is printed or written.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from taskrunner.cli.validate import DEFAULT_TEMPLATE, TemplateUnreadable, find_problems
from taskrunner.domain.jobcheck import JobBlock, check_blocks, declarations
from taskrunner.local.cfn_yaml import CfnLoader, load

DEFAULT_IMAGE = "public.ecr.aws/docker/library/python:3.13-slim"
#: The first uid a generated job gets when the template has none above it (the samples use 10001-10005).
FIRST_UID = 10001
STANDIN = "python -m taskrunner.local.standin"
#: The container command of a generated job: prints that it ran (no comma: Command is a CommaDelimitedList).
HELLO = "python,-c,import os; print(os.environ['TASKRUNNER_JOB'] + ' ran by ' + os.environ['TASKRUNNER_TRIGGER'])"
COMMENT_COLUMN = 44
_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9]*):")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    new = sub.add_parser("new", parents=[common], help="write a new job block for template.yaml")
    kinds = new.add_subparsers(dest="kind", required=True, metavar="KIND")
    job = kinds.add_parser(
        "job",
        parents=[common],
        help="a job block (schedule, s3, pattern or queue flavour)",
        description="Print a job block for template.yaml (or --append it at the end of Resources). "
        "The block is checked with `taskrunner validate`'s rules first.",
    )
    job.add_argument("name", metavar="NAME", help="the JobName: 1-40 lowercase letters, digits or '-'")
    trigger = job.add_mutually_exclusive_group()
    trigger.add_argument("--schedule", metavar="CRON", help="cron(...), rate(...) or at(...); bare cron fields too")
    trigger.add_argument("--s3", metavar="PREFIX", help="run on every upload under PREFIX of the data bucket")
    trigger.add_argument("--pattern", metavar="JSON", help="run on events matching this EventBridge pattern")
    trigger.add_argument(
        "--queue",
        nargs="?",
        const="service",
        choices=["service", "per-message"],
        help="a work queue with workers: a scaled service (default) or a task per message",
    )
    job.add_argument("--timezone", default="UTC", metavar="ZONE", help="the schedule's IANA time zone (default UTC)")
    job.add_argument("--suffix", default="", metavar="SUFFIX", help="with --s3: only keys ending in SUFFIX")
    job.add_argument("--image", metavar="URI", help=f"container image (default {DEFAULT_IMAGE}; queue: your ECR)")
    job.add_argument(
        "--append",
        action="store_true",
        help="insert the block at the end of the template's Resources instead of printing it",
    )
    job.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, metavar="PATH", help="default template.yaml")
    job.set_defaults(handler=handle, needs_target=False)


def logical_id(name: str) -> str:
    """``nightly-report`` → ``NightlyReportJob``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("-") if part) + "Job"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _schedule(value: str) -> str:
    value = " ".join(value.split())
    return value if re.match(r"^(cron|rate|at)\(", value) else f"cron({value})"


def block_parameters(args: argparse.Namespace, uid: int) -> dict[str, str]:
    """The block's parameters, in the order they are written (values as YAML text)."""
    params: dict[str, str] = {"JobName": args.name}
    if args.queue:
        image = args.image or "!Sub ${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/" + f"{args.name}:latest"
        params |= {"Image": image, "LocalCommand": "python examples/worker/app.py"}
    else:
        params |= {"Image": args.image or DEFAULT_IMAGE, "Command": HELLO, "LocalCommand": STANDIN}
    params |= {"Cpu": "256", "Memory": "512", "PosixUid": str(uid)}
    if args.schedule:
        params |= {"ScheduleExpression": _schedule(args.schedule), "ScheduleTimezone": args.timezone}
        params |= {"OverlapPolicy": "Forbid", "StartingDeadlineSeconds": "600"}
    elif args.s3 is not None:
        params["S3Prefix"] = args.s3
        if args.suffix:
            params["S3Suffix"] = args.suffix
        params["MaxAttempts"] = "3"
    elif args.pattern is not None:
        try:
            pattern = json.loads(args.pattern)
        except ValueError as exc:
            raise CliError(f"--pattern is not JSON: {exc}", EXIT_USAGE) from None
        params |= {"EventPattern": _quoted(json.dumps(pattern)), "MaxConcurrency": "10"}
    elif args.queue:
        params |= {"QueueMode": args.queue, "MaxTasks": "10"}
        params |= {"AcceptableLatencySeconds": "300", "MessageProcessingSeconds": "30"}
    params["Platform"] = "!Ref PlatformParameter"
    return params


_COMMENTS = {
    "Image": "# the job's container image",
    "LocalCommand": "# what `taskrunner local` runs in place of the image",
    "PosixUid": "# its own uid (the next one the template has not used)",
    "ScheduleExpression": "# EventBridge Scheduler: cron (six fields), rate or at",
    "OverlapPolicy": "# Allow | Forbid | Replace (Kubernetes concurrencyPolicy)",
    "StartingDeadlineSeconds": "# a tick that cannot start within 10 min is recorded MISSED",
    "S3Prefix": "# run on every upload under this prefix of the data bucket",
    "MaxAttempts": "# start failures retry; RetryExitCodes: 75 makes exit code 75 retry too",
    "EventPattern": "# the event reaches the task as TASKRUNNER_EVENT",
    "MaxConcurrency": "# further events wait in the queue, never dropped",
    "QueueMode": "# service: workers scaled on queue depth; per-message: a task per batch",
    "AcceptableLatencySeconds": "# how long a message may wait before it starts",
    "Platform": "# everything the platform gives a job, in one line",
}


def render(name: str, params: dict[str, str]) -> str:
    # Comments line up after the short lines; a long value (an image URI, a pattern) goes without one.
    width = max(len(f"{k}: {v}") for k, v in params.items() if len(f"{k}: {v}") <= COMMENT_COLUMN) + 2
    lines = [
        f"  {logical_id(name)}:",
        "    Type: AWS::Serverless::Application",
        "    Properties:",
        "      Location: jobs/job.yaml",
        "      Parameters:",
    ]
    for key, value in params.items():
        text = f"{key}: {value}"
        comment = _COMMENTS.get(key)
        lines.append(f"        {text.ljust(width)}{comment}" if comment and len(text) < width else f"        {text}")
    return "\n".join(lines) + "\n"


def insert_into_resources(template_text: str, block: str) -> str:
    """The template with ``block`` as the last entry of its top-level ``Resources:`` section."""
    lines = template_text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "Resources:"), None)
    if start is None:
        raise CliError("the template has no top-level `Resources:` section", EXIT_USAGE)
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL_KEY.match(lines[i])), len(lines))
    # Back over blank lines and comments that belong to the next section (e.g. "# --- outputs").
    insert_at = end
    while insert_at > start + 1 and (not lines[insert_at - 1].strip() or lines[insert_at - 1].startswith("#")):
        insert_at -= 1
    if insert_at > 0 and not lines[insert_at - 1].endswith("\n"):
        lines[insert_at - 1] += "\n"
    rest = lines[insert_at:]
    gap = ["\n"] if rest and rest[0].strip() else []
    return "".join([*lines[:insert_at], "\n", block, *gap, *rest])


def _existing(template: Path) -> list[JobBlock]:
    if not template.is_file():
        return []
    try:
        blocks, _ = find_problems(template)
    except TemplateUnreadable as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    return blocks


def next_uid(blocks: list[JobBlock]) -> int:
    uids = [int(v) for b in blocks if str(v := b.parameters.get("PosixUid", "")).isdigit()]
    return max([FIRST_UID - 1, *uids]) + 1


def handle(args: argparse.Namespace, _target: object) -> int:
    template: Path = args.template
    existing = _existing(template)
    params = block_parameters(args, next_uid(existing))
    block = render(args.name, params)
    if any(b.logical_id == logical_id(args.name) for b in existing):
        raise CliError(f"{template} already has a resource {logical_id(args.name)}", EXIT_USAGE)
    # The block as CloudFormation will read it, checked with the template's jobs (names must be unique).
    parsed = load_block(block)
    job_yaml = (template.parent if template.is_file() else Path.cwd()) / "jobs" / "job.yaml"
    decls = declarations(load(job_yaml))
    problems = check_blocks([*((b, decls) for b in existing), (parsed, decls)])
    mine = [p for p in problems if p.logical_id == parsed.logical_id]
    if mine:
        raise CliError([f"new job {args.name}: {p.line()}" for p in mine], EXIT_USAGE)
    if not args.append:
        if args.json:
            output.json_line({"logical_id": parsed.logical_id, "block": block})
        else:
            print(block, end="")
        return EXIT_OK
    template.write_text(insert_into_resources(template.read_text(), block))
    if args.json:
        output.json_line({"logical_id": parsed.logical_id, "template": str(template), "appended": True})
    else:
        print(f"{template}: {parsed.logical_id} ({args.name}) added at the end of Resources; `make validate` checks it")
    return EXIT_OK


def load_block(block: str) -> JobBlock:
    resources = yaml.load("Resources:\n" + block, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader
    ((logical, resource),) = resources["Resources"].items()
    return JobBlock(logical, resource["Properties"]["Location"], resource["Properties"]["Parameters"])
