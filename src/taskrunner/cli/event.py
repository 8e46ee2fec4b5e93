"""``taskrunner event KIND ...``: a sample event filled with the target stack's values, like
``sam local generate-event``, ready for ``taskrunner invoke`` (or ``sam local invoke``).

* ``s3 KEY``: an S3 "Object Created" event for KEY in the stack's data bucket (bare: the Dispatcher routes it
  by bucket, prefix and suffix).
* ``schedule JOB``: the tick EventBridge Scheduler sends, at the current minute (so a starting deadline admits it).
* ``pattern JOB``: an event built from JOB's event pattern, checked against it with the Dispatcher's matcher.
* ``manual JOB``: ``taskrunner run``'s request.
* ``ecs-stopped RUN_ID``: the "ECS Task State Change" STOPPED event of the run's task (for the TrackerFunction).

``--sqs`` wraps the event as its queue delivers it (the dispatch queue; the tracker queue for ``ecs-stopped``).
The files in events/ are the same shapes with example values; this command regenerates them for a stack.
"""

from __future__ import annotations

import argparse
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from taskrunner.cli.inputs import parse_env
from taskrunner.cli.lookups import find_run, job_spec
from taskrunner.cli.target import Target
from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.patterns import matches
from taskrunner.domain.runs import started_by
from taskrunner.local.ecs_events import task_state_change

KINDS = ("s3", "schedule", "pattern", "manual", "ecs-stopped")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "event",
        parents=[common],
        help="print a sample event filled with the stack's values (for taskrunner invoke)",
        description="Print an event for KIND, filled with the target stack's bucket, cluster, account, region and "
        "the current time, like `sam local generate-event`: s3 KEY, schedule JOB, pattern JOB, manual JOB, "
        "ecs-stopped RUN_ID. Pipe it to `taskrunner invoke DispatchFunction -e -` (TrackerFunction for "
        "ecs-stopped).",
    )
    parser.add_argument("kind", choices=KINDS, metavar="KIND", help=f"one of {', '.join(KINDS)}")
    parser.add_argument("subject", metavar="KEY|JOB|RUN_ID", help="the object key, the job or the run")
    parser.add_argument("--sqs", action="store_true", help="wrap it in an SQS batch, as its queue delivers it")
    parser.add_argument("--exit-code", type=int, default=0, metavar="N", help="ecs-stopped: the container's exit code")
    parser.add_argument("--env", action="append", metavar="NAME=VALUE", help="manual: an override (repeatable)")
    parser.add_argument("--size", type=int, default=1024, metavar="BYTES", help="s3: the object's size")
    parser.set_defaults(handler=handle)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _where(target: Target) -> tuple[str, str]:
    """(account, region) of the stack, from its cluster's ARN (no extra call, and right for local mode too)."""
    parts = target.output("ClusterArn").split(":")
    return parts[4], parts[3]


def envelope(
    source: str, detail_type: str, detail: dict[str, Any], account: str, region: str, resources: list[str]
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": _iso(_now()),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def s3_event(bucket: str, key: str, size: int, account: str, region: str) -> dict[str, Any]:
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {"key": key, "size": size, "etag": secrets.token_hex(16), "sequencer": secrets.token_hex(9).upper()},
        "request-id": secrets.token_hex(8).upper(),
        "requester": account,
        "source-ip-address": "203.0.113.15",
        "reason": "PutObject",
    }
    return envelope("aws.s3", "Object Created", detail, account, region, [f"arn:aws:s3:::{bucket}"])


# ------------------------------------------------------------------------------------ an event from a pattern


class CannotSynthesize(ValueError):
    """A pattern this builder cannot satisfy (the user writes the event instead)."""


def _value_for(condition: Any) -> Any:
    """A value one element of a pattern's list accepts."""
    if not isinstance(condition, dict):
        return condition  # an exact string, number, boolean or null
    if len(condition) != 1:
        raise CannotSynthesize(f"no example for {json.dumps(condition)}")
    ((operator, operand),) = condition.items()
    if operator == "prefix":
        text = operand if isinstance(operand, str) else operand.get("equals-ignore-case", "")
        return f"{text}example"
    if operator == "suffix":
        text = operand if isinstance(operand, str) else operand.get("equals-ignore-case", "")
        return f"example{text}"
    if operator == "equals-ignore-case":
        return operand
    if operator == "wildcard":
        return str(operand).replace("*", "x")
    if operator == "numeric":
        return _number_in(operand)
    if operator == "cidr":
        return str(operand).split("/")[0]
    if operator == "anything-but":
        banned = operand if isinstance(operand, list) else [operand]
        if all(isinstance(b, (int, float)) for b in banned):
            return max([0, *banned]) + 1
        return "example-" + secrets.token_hex(3)
    raise CannotSynthesize(f"no example for {json.dumps(condition)}")


def _number_in(rule: list[Any]) -> int | float:
    low, high = float("-inf"), float("inf")
    for op, bound in zip(rule[::2], rule[1::2], strict=False):
        if op == "=":
            return float(bound)
        if op in (">", ">="):
            low = max(low, float(bound) + (1 if op == ">" else 0))
        if op in ("<", "<="):
            high = min(high, float(bound) - (1 if op == "<" else 0))
    if low == float("-inf"):
        found = high if high != float("inf") else 0.0
    else:
        found = low if low <= high else (low + high) / 2
    return int(found) if float(found).is_integer() else found


def _fill(pattern: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pattern.items():
        if key.startswith("$"):
            raise CannotSynthesize(f"no example for {key}")
        if isinstance(value, dict):
            out[key] = _fill(value)
            continue
        conditions = [c for c in value if not (isinstance(c, dict) and c.get("exists") is False)]
        if not conditions:
            continue  # only "exists: false": leave it out
        first = conditions[0]
        if isinstance(first, dict) and first.get("exists") is True:
            out[key] = "example"
        else:
            out[key] = _value_for(first)
    return out


def pattern_event(pattern: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """An event that ``pattern`` matches (checked with the Dispatcher's matcher), or CannotSynthesize."""
    filled = _fill(pattern)
    event = envelope(
        filled.pop("source", "com.example"),
        filled.pop("detail-type", "Example"),
        filled.pop("detail", {}),
        filled.pop("account", account),
        filled.pop("region", region),
        filled.pop("resources", []),
    )
    event |= filled
    if isinstance(event["resources"], str):
        event["resources"] = [event["resources"]]
    if not matches(pattern, event):
        raise CannotSynthesize("the example built from it does not match")
    return event


# ---------------------------------------------------------------------------------------------- the command


def _sqs(body: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    now_ms = str(int(datetime.now(UTC).timestamp() * 1000))
    region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": f"AQEB{secrets.token_hex(12)}==",
        "body": json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now_ms,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    return {"Records": [record]}


def _s3_job(target: Target, bucket: str, key: str) -> JobSpec | None:
    for spec in sorted(target.registry().all(), key=lambda s: s.name):
        if spec.s3_bucket != bucket or not spec.s3_prefix:
            continue
        if key.startswith(spec.s3_prefix) and key.endswith(spec.s3_suffix):
            return spec
    return None


def _exists(target: Target, bucket: str, key: str) -> bool:
    try:
        target.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def build(args: argparse.Namespace, target: Target) -> tuple[dict[str, Any], str]:
    """The event (or SQS batch), and what it is for (a line for stderr)."""
    account, region = _where(target)
    dispatch_queue = target.outputs().get("DispatchQueueArn", "")
    if args.kind == "s3":
        bucket = target.output("DataBucketName")
        event = s3_event(bucket, args.subject, args.size, account, region)
        spec = _s3_job(target, bucket, args.subject)
        if spec is None:
            raise CliError(f"no job's S3 trigger matches s3://{bucket}/{args.subject}", EXIT_USAGE)
        body: dict[str, Any] = {"job": spec.name, "trigger": "s3", "event": event}
        what = f"an upload for job {spec.name}"
        if not _exists(target, bucket, args.subject):
            what += f" (s3://{bucket}/{args.subject} does not exist yet: the job will not find it)"
        return (_sqs(body, dispatch_queue) if args.sqs else event), what
    if args.kind == "ecs-stopped":
        run = find_run(target, args.subject)
        if not run.task_arn:
            raise CliError(f"run {run.run_id} has no task (status {run.status})", EXIT_USAGE)
        cluster = target.output("ClusterArn")
        task = target.cluster().describe_tasks(cluster, [run.task_arn]).get(run.task_arn) or {
            "taskArn": run.task_arn,
            "clusterArn": cluster,
            "group": f"taskrunner:{run.job}",
            "startedBy": started_by(run.run_id, run.attempt),
        }
        event = task_state_change(task, "STOPPED", exit_code=args.exit_code)
        tracker_queue = target.outputs().get("TrackerQueueArn", "")
        return (_sqs(event, tracker_queue) if args.sqs else event), f"run {run.run_id} stopping, exit {args.exit_code}"
    spec = job_spec(target, args.subject)
    if args.kind == "schedule":
        tick = _now().replace(second=0)
        request: dict[str, Any] = {"job": spec.name, "trigger": "schedule", "scheduled_at": _iso(tick)}
        return (_sqs(request, dispatch_queue) if args.sqs else request), f"job {spec.name}'s tick at {_iso(tick)}"
    if args.kind == "manual":
        request = {"job": spec.name, "trigger": "manual", "request_id": str(uuid.uuid4())}
        if args.env:
            request["env"] = parse_env(args.env)
        return (_sqs(request, dispatch_queue) if args.sqs else request), f"a manual run of job {spec.name}"
    if spec.event_pattern is None:
        raise CliError(f"job {spec.name} has no EventPattern", EXIT_USAGE)
    try:
        event = pattern_event(spec.event_pattern, account, region)
    except CannotSynthesize as exc:
        raise CliError(
            f"cannot build an event for job {spec.name}'s pattern ({exc}); write one that matches "
            f"{json.dumps(spec.event_pattern)}",
            EXIT_USAGE,
        ) from None
    body = {"job": spec.name, "trigger": "event", "event": event}
    return (_sqs(body, dispatch_queue) if args.sqs else event), f"an event matching job {spec.name}'s pattern"


def handle(args: argparse.Namespace, target: Target) -> int:
    event, what = build(args, target)
    if args.json:
        output.json_line(event)
    else:
        print(json.dumps(event, indent=2))
        output.err(f"taskrunner event: {what} in stack {target.stack}")
    return EXIT_OK
