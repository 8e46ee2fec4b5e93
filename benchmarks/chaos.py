"""Chaos benchmark: N triggers through the Dispatcher and the Tracker while faults are injected.

The real template is deployed into the embedded AWS. The benchmark plays ECS: every task RunTask
launches (in moto) gets an outcome, and its state-change events are published through the stack's
rule to the Tracker's queue. Faults, all drawn from one seed:

* ECS: RunTask throttled (``--throttle``), 5xx (``--server-errors``), ``failures[]`` for capacity;
* delivery: duplicate trigger messages; duplicate, out-of-order and lost state-change events;
* Lambda: the Dispatcher's container dies between RunTask and its record write;
* application: tasks that exit non-zero (exit 1 is retryable for the chaos job).

Time is compressed where the product waits for time to pass: the dispatch queue's visibility timeout
and the claim lease are a few seconds, retry back-off 1-2 s. Everything else is the product's code.

Prints ``{"events", "runs_expected", "runs_launched", "lost", "duplicates", "retried", "dead_lettered",
"faults_injected": {...}}`` and more. Exit code 0 only when lost and duplicates are both 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.runs import RunStatus, idempotency_key, parse_started_by, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.ecs_events import task_state_change
from taskrunner.local.faults import EcsFaults, inject
from taskrunner.local.platform import Platform, local_platform

ROOT = Path(__file__).resolve().parents[1]
JOB = "chaos"
COMPRESSED = {"DISPATCH_LEASE_S": "3", "DISPATCH_BACKOFF_SCALE": "0.05"}


class LambdaKilled(BaseException):
    """The Dispatcher's container dies (timeout, OOM, host failure): no except clause sees it."""


class Chaos:
    def __init__(self, platform: Platform, args: argparse.Namespace) -> None:
        self.p = platform
        self.args = args
        self.rng = random.Random(args.seed)
        self.injected: Counter[str] = Counter()
        self.handled: set[str] = set()  # task ARNs whose fate was decided
        self.cluster = platform.outputs["ClusterName"]
        self.family = f"{platform.stack_name}-order-audit"  # the chaos job runs order-audit's task definition

    def register_job(self) -> None:
        """The chaos job: a copy of order-audit that retries exit code 1 and start failures, with fast back-off."""
        ssm, prefix = self.p.client("ssm"), self.p.outputs["RegistryPrefix"]
        spec = json.loads(ssm.get_parameter(Name=f"{prefix}/order-audit")["Parameter"]["Value"])
        spec |= {
            "name": JOB,
            "max_concurrency": 0,
            "event_pattern": None,
            "retry": {"max_attempts": 8, "retry_exit_codes": "1", "backoff_base_s": 1, "backoff_max_s": 2},
        }
        ssm.put_parameter(Name=f"{prefix}/{JOB}", Value=json.dumps(spec), Type="String", Overwrite=True)
        sqs = self.p.client("sqs")
        sqs.set_queue_attributes(QueueUrl=self.p.outputs["DispatchQueueUrl"], Attributes={"VisibilityTimeout": "3"})
        sqs.set_queue_attributes(QueueUrl=self.p.outputs["TrackerQueueUrl"], Attributes={"VisibilityTimeout": "3"})

    def kill_some_dispatchers(self) -> None:
        """Wrap the runs table so a share of PENDING writes (right after RunTask) kill the container."""
        original = DynamoRunStore.update
        rate, rng, injected = self.args.lambda_deaths, self.rng, self.injected

        def update(store: DynamoRunStore, run_id: str, status: RunStatus, attempt: int, **fields: Any) -> bool:
            if status is RunStatus.PENDING and rng.random() < rate:
                injected["lambda_died_after_run_task"] += 1
                raise LambdaKilled
            return original(store, run_id, status, attempt, **fields)

        DynamoRunStore.update = update  # type: ignore[method-assign]

    def triggers(self) -> list[dict[str, Any]]:
        bodies = [{"job": JOB, "trigger": "manual", "request_id": str(uuid.uuid4())} for _ in range(self.args.events)]
        copies = [b for b in bodies if self.rng.random() < self.args.duplicates]
        self.injected["duplicate_triggers"] = len(copies)
        everything = bodies + copies
        self.rng.shuffle(everything)
        sqs, url = self.p.client("sqs"), self.p.outputs["DispatchQueueUrl"]
        for start in range(0, len(everything), 10):
            chunk = everything[start : start + 10]
            sqs.send_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(chunk)]
            )
        return bodies

    def play_ecs(self) -> int:
        """Decide the fate of every newly launched task and emit its state changes (with delivery faults)."""
        new = [arn for arn in self.p.task_arns(family=self.family) if arn not in self.handled]
        events: list[dict[str, Any]] = []
        ecs = self.p.client("ecs")
        for start in range(0, len(new), 100):
            for task in ecs.describe_tasks(cluster=self.cluster, tasks=new[start : start + 100])["tasks"]:
                self.handled.add(task["taskArn"])
                events += self.fate(task)
                ecs.stop_task(cluster=self.cluster, task=task["taskArn"], reason="chaos: task finished")
        self.rng.shuffle(events) if self.rng.random() < self.args.reorder else None
        if events:
            self.p.publish(*events)
        return len(new)

    def fate(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        roll = self.rng.random()
        if roll < self.args.start_failures:
            self.injected["start_failures"] += 1
            stopped = task_state_change(
                task,
                "STOPPED",
                stop_code="TaskFailedToStart",
                stopped_reason="CannotPullContainerError: i/o timeout",
                version=2,
            )
        elif roll < self.args.start_failures + self.args.exit_failures:
            self.injected["non_zero_exits"] += 1
            stopped = task_state_change(task, "STOPPED", exit_code=1, version=3)
        else:
            stopped = task_state_change(task, "STOPPED", exit_code=0, version=3)
        sequence = [task_state_change(task, "RUNNING", version=2), stopped]
        if self.rng.random() < self.args.lost_events:
            self.injected["lost_stop_events"] += 1
            return sequence[:1]  # reconciliation must find the stop through DescribeTasks
        if self.rng.random() < self.args.reorder:
            self.injected["out_of_order_events"] += 1
            sequence.reverse()
        if self.rng.random() < self.args.duplicates:
            self.injected["duplicate_events"] += 1
            sequence.append(stopped)
        return sequence

    def run(self) -> dict[str, Any]:
        self.register_job()
        self.kill_some_dispatchers()
        bodies = self.triggers()
        expected = {run_id_for(idempotency_key(DispatchRequest.model_validate(b))) for b in bodies}
        mode = {"AWS_RETRY_MODE": self.args.retry_mode}
        dispatch = self.p.dispatch_queue(quiet=True, **COMPRESSED, **mode)
        tracker = self.p.tracker_queue(quiet=True)
        store = self.p.runs()
        faults = EcsFaults(
            seed=self.args.seed,
            throttle_rate=self.args.throttle,
            server_error_rate=self.args.server_errors,
            capacity_failure_rate={"*": self.args.capacity},
        )
        started = time.perf_counter()
        deadline = time.monotonic() + self.args.timeout
        final: dict[str, RunStatus] = {}
        with inject(faults):
            while time.monotonic() < deadline:
                moved = dispatch.drain(max_polls=50)
                moved += self.play_ecs()
                moved += tracker.drain(max_polls=50)
                if moved == 0:
                    self.p.invoke("TrackerFunctionName", {"action": "reconcile"})
                    final = self.finished(store, expected)
                    print(f"chaos: {len(final)}/{len(expected)} runs finished", file=sys.stderr, flush=True)
                    if len(final) == len(expected):
                        break
                    time.sleep(0.5)
        elapsed = time.perf_counter() - started
        return self.report(store, expected, final, faults, elapsed)

    @staticmethod
    def finished(store: DynamoRunStore, expected: set[str]) -> dict[str, RunStatus]:
        done: dict[str, RunStatus] = {}
        for run_id in expected:
            run = store.get(run_id)
            if run is not None and run.status.terminal:
                done[run_id] = run.status
        return done

    def report(
        self, store: DynamoRunStore, expected: set[str], final: dict[str, RunStatus], faults: EcsFaults, elapsed: float
    ) -> dict[str, Any]:
        tasks = self.p.task_arns(family=self.family, status="STOPPED") + self.p.task_arns(family=self.family)
        started_by: Counter[str] = Counter()
        ecs = self.p.client("ecs")
        for start in range(0, len(tasks), 100):
            for task in ecs.describe_tasks(cluster=self.cluster, tasks=tasks[start : start + 100])["tasks"]:
                started_by[task["startedBy"]] += 1
        attempts = {parsed for key in started_by if (parsed := parse_started_by(key))}
        runs = [store.get(run_id) for run_id in expected]
        dlq = int(
            self.p.client("sqs").get_queue_attributes(
                QueueUrl=self.p.outputs["DispatchDeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
        statuses = Counter(str(status) for status in final.values())
        return {
            "benchmark": "chaos",
            "events": self.args.events,
            "seed": self.args.seed,
            "retry_mode": self.args.retry_mode,
            "runs_expected": len(expected),
            "runs_launched": len({run_id for run_id, _ in attempts}),
            "lost": len(expected) - len(final),
            "duplicates": sum(n - 1 for n in started_by.values()),
            "retried": sum(1 for run in runs if run is not None and run.attempt > 1),
            "attempts_launched": len(attempts),
            "dead_lettered": dlq,
            "final_status": dict(statuses),
            "unfinished": [
                {
                    "run_id": r.run_id,
                    "status": str(r.status),
                    "attempt": r.attempt,
                    "task_arn": r.task_arn,
                    "reason": r.reason,
                }
                for r in runs
                if r is not None and r.run_id not in final
            ][:5]
            + [{"run_id": run_id, "status": "NO RECORD"} for run_id in expected if store.get(run_id) is None][:5],
            "faults_injected": dict(self.injected | faults.injected),
            "ecs_calls": dict(faults.calls),
            "seconds": round(elapsed, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--throttle", type=float, default=0.3)
    parser.add_argument("--server-errors", type=float, default=0.1)
    parser.add_argument("--capacity", type=float, default=0.1)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--reorder", type=float, default=0.2)
    parser.add_argument("--lost-events", type=float, default=0.05)
    parser.add_argument("--lambda-deaths", type=float, default=0.02)
    parser.add_argument("--start-failures", type=float, default=0.05)
    parser.add_argument("--exit-failures", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument(
        "--retry-mode",
        default="standard",
        choices=["standard", "adaptive"],
        help="botocore retry mode of the Dispatcher (adaptive's client-side limiter reads random injected "
        "throttles as a rate signal and falls to its 0.5 req/s floor)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with local_platform(ROOT) as platform:
        result = Chaos(platform, args).run()
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
