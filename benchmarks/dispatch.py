"""Dispatch benchmark: N S3 uploads through EventBridge and the Dispatcher, with RunTask throttled.

The real template is deployed into the embedded AWS. Uploads are real PutObject calls; moto's
EventBridge routes their "Object Created" events through the thumbnails job's rule to the dispatch
queue; an in-process event-source mapping delivers them to the Dispatcher's handler string in
batches of 10, as Lambda would. A share of messages is delivered twice (SQS and EventBridge are
at-least-once), and a share of RunTask calls is throttled by the server (botocore's adaptive retries
see real ThrottlingExceptions).

Prints one JSON object: runs launched, duplicates and lost (both must be 0), RunTask calls, throttles,
events/s, and the Dispatcher handler's own AWS calls by operation, per event and per launched run.
``--baseline`` adds the same run without throttling or duplicates; ``naive`` (unless ``--no-naive``) is a naive
Lambda→RunTask consumer of the same uploads, duplicates and throttling (one RunTask per record, nothing else),
both measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from taskrunner.domain.jobs import JobSpec
from taskrunner.handlers import dispatcher
from taskrunner.local.faults import EcsFaults, inject
from taskrunner.local.platform import Platform, local_platform
from taskrunner.local.stack import REGION

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "uploads/images/"


def upload(platform: Platform, count: int) -> None:
    s3 = platform.client("s3")
    bucket = platform.outputs["DataBucketName"]
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}{i:06d}.jpg", Body=b"x")


def duplicate_some(platform: Platform, share: float, rng: random.Random) -> int:
    """Re-send a share of the queued messages: the at-least-once duplicates a real queue produces."""
    sqs, url = platform.client("sqs"), platform.outputs["DispatchQueueUrl"]
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        if not messages or len(bodies) > 1_000_000:
            break
        bodies += [m["Body"] for m in messages]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    copies = [b for b in bodies if rng.random() < share]
    everything = bodies + copies
    rng.shuffle(everything)
    for start in range(0, len(everything), 10):
        chunk = everything[start : start + 10]
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)])
    return len(copies)


def drain(platform: Platform, timeout_s: float, retry_mode: str) -> int:
    """Deliver until the dispatch queue is empty, waiting out the back-off of messages returned to it."""
    esm = platform.dispatch_queue(quiet=True, AWS_RETRY_MODE=retry_mode)
    sqs, url = platform.client("sqs"), platform.outputs["DispatchQueueUrl"]
    deliveries, deadline = 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        delivery = esm.poll_once()
        deliveries += delivery.received
        if delivery.received:
            continue
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0:
            break
        time.sleep(0.5)
    return deliveries


class HandlerCalls:
    """Every AWS call the Dispatcher's handler makes, by ``service:Operation``, and nothing the harness makes.

    botocore's ``BaseClient._make_api_call`` is wrapped for the run, and counts only while the Dispatcher's handler
    is on the stack of the calling thread (the event-source mapping's receive and delete are Lambda's poller's,
    not the function's, and the benchmark's own queue checks are not counted).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._inside = threading.local()
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[None]:
        original_call = BaseClient._make_api_call
        original_handler = dispatcher.handler
        counter = self

        def make_api_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if getattr(counter._inside, "active", False):
                with counter._lock:
                    counter.calls[f"{client.meta.service_model.endpoint_prefix}:{operation}"] += 1
            return original_call(client, operation, params)

        def handler(event: Any, context: Any) -> Any:
            self._inside.active = True
            try:
                return original_handler(event, context)
            finally:
                self._inside.active = False

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        dispatcher.handler = handler  # resolved by name at each invoke, as Lambda does at init
        try:
            yield
        finally:
            BaseClient._make_api_call = original_call  # type: ignore[method-assign]
            dispatcher.handler = original_handler


def per_event(calls: Counter[str], events: int, runs: int) -> dict[str, Any]:
    """The Dispatcher's calls per event and per launched run; the hot path is claim, RunTask and record."""
    total = sum(calls.values())
    hot = {k: n for k, n in calls.items() if k.startswith(("dynamodb:", "ecs:RunTask"))}
    return {
        "handler_calls": dict(sorted(calls.items())),
        "calls_per_event": round(total / events, 3) if events else None,
        "calls_per_launched_run": round(total / runs, 3) if runs else None,
        "hot_path_calls_per_launched_run": round(sum(hot.values()) / runs, 3) if runs else None,
    }


def naive_run(events: int, throttle: float, duplicate_share: float, seed: int, stack: str) -> dict[str, Any]:
    """The naive Lambda→RunTask baseline: per record, one RunTask for the upload, nothing else (no claim, no
    record, no dedup); a failed call leaves its record for redelivery. Same uploads, duplicates and throttling."""
    rng = random.Random(seed)
    with local_platform(ROOT, stack_name=stack) as platform:
        upload(platform, events)
        duplicates_injected = duplicate_some(platform, duplicate_share, rng)
        spec = JobSpec.parse(registry_entry(platform, "thumbnails"))
        sqs, url = platform.client("sqs"), platform.outputs["DispatchQueueUrl"]
        ecs = boto3.client(
            "ecs", region_name=REGION, endpoint_url=platform.endpoint, config=Config(retries={"mode": "standard"})
        )
        calls: Counter[str] = Counter()
        with inject(EcsFaults(seed=seed, throttle_rate=throttle)):
            started = time.perf_counter()
            while True:
                batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
                messages = batch.get("Messages", [])
                if not messages:
                    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                    if (
                        int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
                        == 0
                    ):
                        break
                    time.sleep(0.2)
                    continue
                done = []
                for i, message in enumerate(messages):
                    key = json.loads(message["Body"])["detail"]["object"]["key"]
                    calls["ecs:RunTask"] += 1
                    try:
                        ecs.run_task(**naive_request(spec, key))
                    except ClientError:
                        sqs.change_message_visibility(
                            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                        )
                        continue
                    done.append({"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]})
                if done:
                    sqs.delete_message_batch(QueueUrl=url, Entries=done)
            elapsed = time.perf_counter() - started
        tasks = platform.tasks(family=f"{platform.stack_name}-thumbnails")
    launched = len(tasks)
    return {
        "events": events,
        "duplicate_deliveries_injected": duplicates_injected,
        "tasks_launched": launched,
        "duplicates": launched - events,
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed, 1),
        "handler_calls": dict(calls),
        "calls_per_event": round(sum(calls.values()) / events, 3),
    }


def naive_request(spec: JobSpec, key: str) -> dict[str, Any]:
    return {
        "cluster": spec.cluster,
        "taskDefinition": spec.task_definition,
        "count": 1,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": list(spec.subnets), "securityGroups": list(spec.security_groups)}
        },
        "overrides": {
            "containerOverrides": [
                {"name": spec.container, "environment": [{"name": "TASKRUNNER_S3_KEY", "value": key}]}
            ]
        },
    }


def registry_entry(platform: Platform, name: str) -> dict[str, Any]:
    raw = platform.client("ssm").get_parameter(Name=f"{platform.outputs['RegistryPrefix']}/{name}")
    entry: dict[str, Any] = json.loads(raw["Parameter"]["Value"])
    return entry


def run(
    events: int, throttle: float, duplicate_share: float, seed: int, retry_mode: str, stack: str = "taskrunner"
) -> dict[str, Any]:
    rng = random.Random(seed)
    # moto's state is process-wide: a second run in the same process deploys a stack of its own.
    with local_platform(ROOT, stack_name=stack) as platform:
        upload(platform, events)
        duplicates_injected = duplicate_some(platform, duplicate_share, rng)
        counter = HandlerCalls()
        with inject(EcsFaults(seed=seed, throttle_rate=throttle)) as faults, counter.counting():
            started = time.perf_counter()
            deliveries = drain(platform, timeout_s=1800, retry_mode=retry_mode)
            elapsed = time.perf_counter() - started
        tasks = platform.tasks(family=f"{platform.stack_name}-thumbnails")
        per_run = Counter(task["startedBy"] for task in tasks)
        keys = {
            next(
                e["value"]
                for e in t["overrides"]["containerOverrides"][0]["environment"]
                if e["name"] == "TASKRUNNER_S3_KEY"
            )
            for t in tasks
        }
        dlq = platform.client("sqs").get_queue_attributes(
            QueueUrl=platform.outputs["DispatchDeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    return {
        "benchmark": "dispatch",
        "events": events,
        "deliveries": deliveries,
        "duplicate_deliveries_injected": duplicates_injected,
        "runs_launched": len(per_run),
        "duplicates": sum(n - 1 for n in per_run.values()),
        "lost": events - len({k for k in keys if k.startswith(PREFIX)}),
        "dead_lettered": int(dlq),
        "run_task_calls": faults.calls["run_task"],
        "throttle_rate": throttle,
        "retry_mode": retry_mode,
        "throttles": faults.injected["throttle"],
        "seconds": round(elapsed, 2),
        "events_per_s": round(events / elapsed, 1),
    } | per_event(counter.calls, events, len(per_run))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--throttle", type=float, default=0.2)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of messages delivered twice")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--retry-mode",
        default="standard",
        choices=["adaptive", "standard"],
        help="botocore retry mode (adaptive's client-side limiter reads random injected throttles as a rate "
        "signal and falls to its 0.5 req/s floor)",
    )
    parser.add_argument("--baseline", action="store_true", help="also run without faults, for the ratio")
    parser.add_argument(
        "--no-naive", action="store_true", help="skip the naive Lambda→RunTask baseline (one RunTask per record)"
    )
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)
    result = run(args.events, args.throttle, args.duplicates, args.seed, args.retry_mode)
    if args.baseline:
        base = run(args.events, 0.0, 0.0, args.seed, args.retry_mode, stack="taskrunner-baseline")
        result["baseline_events_per_s"] = base["events_per_s"]
        result["baseline_calls_per_event"] = base["calls_per_event"]
        result["throughput_ratio_vs_baseline"] = round(result["events_per_s"] / base["events_per_s"], 3)
    if not args.no_naive:
        naive = naive_run(args.events, args.throttle, args.duplicates, args.seed, stack="taskrunner-naive")
        result["naive"] = naive
        result["throughput_ratio_vs_naive"] = round(result["events_per_s"] / naive["events_per_s"], 3)
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
