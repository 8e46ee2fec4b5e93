"""Dispatch benchmark: N S3 uploads through EventBridge and the Dispatcher, with RunTask throttled.

The real template is deployed into the embedded AWS. Uploads are real PutObject calls; moto's
EventBridge routes their "Object Created" events through the thumbnails job's rule to the dispatch
queue; an in-process event-source mapping delivers them to the Dispatcher's handler string in
batches of 10, as Lambda would. A share of messages is delivered twice (SQS and EventBridge are
at-least-once), and a share of RunTask calls is throttled by the server (botocore's adaptive retries
see real ThrottlingExceptions).

Prints one JSON object: runs launched, duplicates and lost (both must be 0), RunTask calls, throttles,
events/s. ``--baseline`` adds the same run without throttling or duplicates, measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from taskrunner.local.faults import EcsFaults, inject
from taskrunner.local.platform import Platform, local_platform

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


def run(
    events: int, throttle: float, duplicate_share: float, seed: int, retry_mode: str, stack: str = "taskrunner"
) -> dict[str, Any]:
    rng = random.Random(seed)
    # moto's state is process-wide: a second run in the same process deploys a stack of its own.
    with local_platform(ROOT, stack_name=stack) as platform:
        upload(platform, events)
        duplicates_injected = duplicate_some(platform, duplicate_share, rng)
        with inject(EcsFaults(seed=seed, throttle_rate=throttle)) as faults:
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
    }


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
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)
    result = run(args.events, args.throttle, args.duplicates, args.seed, args.retry_mode)
    if args.baseline:
        base = run(args.events, 0.0, 0.0, args.seed, args.retry_mode, stack="taskrunner-baseline")
        result["baseline_events_per_s"] = base["events_per_s"]
        result["throughput_ratio_vs_baseline"] = round(result["events_per_s"] / base["events_per_s"], 3)
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
