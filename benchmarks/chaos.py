"""Chaos benchmark: N triggers through the Dispatcher and the Tracker while faults are injected.

The real template is deployed into the embedded AWS. The benchmark plays ECS: every task RunTask
launches (in moto) gets an outcome, and its state-change events are published through the stack's
rule to the Tracker's queue. Faults, all drawn from one seed:

* ECS: RunTask throttled (``--throttle``), 5xx (``--server-errors``), ``failures[]`` for capacity;
* delivery: duplicate trigger messages; duplicate, out-of-order and lost state-change events;
* Lambda: the Dispatcher's container dies between RunTask and its record write;
* application: tasks that exit non-zero (exit 1 is retryable for the chaos jobs), killed for memory (OOM: the
  application's failure, exit 137, final because 137 is not listed);
* the platform's own calls: the retry's scheduling fails after the RETRYING write (the state change is
  redelivered and reschedules it), run-record writes of one job fail transiently;
* load: tasks are held RUNNING until ``--hold`` runs are active at once, so reconciliation pages through more
  than one DynamoDB page of active runs;
* names: the jobs are named with digit suffixes (``chaos-1``, ``chaos-2``), which once collided with the
  Scaler's ``startedBy``.

Time is compressed where the product waits for time to pass: the dispatch queue's visibility timeout
and the claim lease are a few seconds, retry back-off 1-2 s. Everything else is the product's code.

Prints ``{"events", "runs_expected", "runs_launched", "lost", "duplicates", "stuck", "retried", "dead_lettered",
"faults_injected": {...}}`` and more: ``stuck`` counts runs neither final nor owned by reconciliation (an
active status with a lease or due time it will act on) at the end. Exit code 0 only when lost, duplicates and
stuck are all 0.
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

from botocore.exceptions import ClientError

from taskrunner.adapters.retries import DispatchRetries
from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.ports import Retry
from taskrunner.domain.runs import RunStatus, idempotency_key, parse_started_by, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.ecs_events import task_state_change
from taskrunner.local.faults import EcsFaults, inject
from taskrunner.local.moto_ecs import record_container
from taskrunner.local.platform import Platform, local_platform

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("chaos-1", "chaos-2")
#: The job whose run-record writes fail transiently (--store-errors): the other's runs must not notice.
FLAKY_STORE_JOB = "chaos-2"
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
        self.held: list[dict[str, Any]] = []  # tasks kept RUNNING until enough runs are active at once
        self.cluster = platform.outputs["ClusterName"]
        self.families = [f"{platform.stack_name}-{job}" for job in JOBS]

    def register_jobs(self) -> None:
        """The chaos jobs: copies of order-audit (their own task-definition families, as job stacks register them)
        that retry exit code 1 and start failures, with fast back-off."""
        ssm, ecs, prefix = self.p.client("ssm"), self.p.client("ecs"), self.p.outputs["RegistryPrefix"]
        spec = json.loads(ssm.get_parameter(Name=f"{prefix}/order-audit")["Parameter"]["Value"])
        definition = ecs.describe_task_definition(taskDefinition=spec["task_definition"])["taskDefinition"]
        keep = ("containerDefinitions", "networkMode", "requiresCompatibilities", "cpu", "memory", "taskRoleArn")
        for job, family in zip(JOBS, self.families, strict=True):
            ecs.register_task_definition(family=family, **{k: definition[k] for k in keep if k in definition})
            entry = spec | {
                "name": job,
                "task_definition": family,
                "max_concurrency": 0,
                "event_pattern": None,
                "retry": {"max_attempts": 8, "retry_exit_codes": "1", "backoff_base_s": 1, "backoff_max_s": 2},
            }
            ssm.put_parameter(Name=f"{prefix}/{job}", Value=json.dumps(entry), Type="String", Overwrite=True)
        sqs = self.p.client("sqs")
        sqs.set_queue_attributes(QueueUrl=self.p.outputs["DispatchQueueUrl"], Attributes={"VisibilityTimeout": "3"})
        sqs.set_queue_attributes(QueueUrl=self.p.outputs["TrackerQueueUrl"], Attributes={"VisibilityTimeout": "3"})

    def fail_some_platform_calls(self) -> None:
        """Retries whose scheduling fails after the RETRYING write; one job's run-record writes failing."""
        rng, injected, args = self.rng, self.injected, self.args
        schedule = DispatchRetries.schedule

        def flaky_schedule(retries: DispatchRetries, retry: Retry) -> None:
            if rng.random() < args.schedule_failures:
                injected["retry_scheduling_failed"] += 1
                raise ClientError({"Error": {"Code": "InternalFailure", "Message": "chaos"}}, "SendMessage")
            schedule(retries, retry)

        DispatchRetries.schedule = flaky_schedule  # type: ignore[method-assign]
        update = DynamoRunStore.update
        flaky_runs = self.flaky_runs

        def flaky_update(store: DynamoRunStore, run_id: str, status: RunStatus, attempt: int, **fields: Any) -> bool:
            if run_id in flaky_runs and rng.random() < args.store_errors:
                injected["run_store_errors"] += 1
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
            return update(store, run_id, status, attempt, **fields)

        DynamoRunStore.update = flaky_update  # type: ignore[method-assign]

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
        bodies = [
            {"job": JOBS[i % len(JOBS)], "trigger": "manual", "request_id": str(uuid.uuid4())}
            for i in range(self.args.events)
        ]
        self.flaky_runs = {
            run_id_for(idempotency_key(DispatchRequest.model_validate(b)))
            for b in bodies
            if b["job"] == FLAKY_STORE_JOB
        }
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

    def play_ecs(self, force: bool = False) -> int:
        """Decide the fate of every newly launched task and emit its state changes (with delivery faults).

        New tasks are first held RUNNING (their RUNNING event sent) until ``--hold`` are held at once, or nothing
        else moves (``force``): then every held task meets its fate together.
        """
        new = [arn for family in self.families for arn in self.p.task_arns(family=family) if arn not in self.handled]
        events: list[dict[str, Any]] = []
        ecs = self.p.client("ecs")
        for start in range(0, len(new), 100):
            for task in ecs.describe_tasks(cluster=self.cluster, tasks=new[start : start + 100])["tasks"]:
                self.handled.add(task["taskArn"])
                self.held.append(task)
                events.append(task_state_change(task, "RUNNING", version=2))
        if self.held and (force or len(self.held) >= self.args.hold):
            self.injected["max_held_running"] = max(self.injected["max_held_running"], len(self.held))
            for task in self.held:
                sequence, stopped = self.fate(task)
                events += sequence
                # ECS's own view agrees with the event (reconciliation may read it first, or only it if the
                # event is lost): the container's exit code and the stop's reason.
                exit_code = stopped["detail"]["containers"][0].get("exitCode")
                record_container(task["taskArn"], task["clusterArn"], "STOPPED", exit_code)
                ecs.stop_task(cluster=self.cluster, task=task["taskArn"], reason=stopped["detail"]["stoppedReason"])
            self.held = []
        self.rng.shuffle(events) if self.rng.random() < self.args.reorder else None
        if events:
            self.p.publish(*events)
        return len(new)

    def fate(self, task: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The state changes the task's fate emits (faults applied), and its STOPPED event as ECS sees it."""
        roll = self.rng.random()
        if roll < self.args.start_failures:
            self.injected["start_failures"] += 1
            stopped = task_state_change(
                task,
                "STOPPED",
                stop_code="TaskFailedToStart",
                stopped_reason="CannotPullContainerError: i/o timeout",
                version=3,
            )
        elif roll < self.args.start_failures + self.args.exit_failures:
            self.injected["non_zero_exits"] += 1
            stopped = task_state_change(task, "STOPPED", exit_code=1, version=3)
        elif roll < self.args.start_failures + self.args.exit_failures + self.args.oom:
            self.injected["oom_kills"] += 1
            stopped = task_state_change(task, "STOPPED", exit_code=137, version=3)
            for container in stopped["detail"]["containers"]:
                container["reason"] = "OutOfMemoryError: Container killed due to memory usage"
        else:
            stopped = task_state_change(task, "STOPPED", exit_code=0, version=3)
        if self.rng.random() < self.args.lost_events:
            self.injected["lost_stop_events"] += 1
            return [], stopped  # reconciliation must find the stop through DescribeTasks
        sequence = [stopped]
        if self.rng.random() < self.args.reorder:
            self.injected["out_of_order_events"] += 1
            sequence.insert(0, task_state_change(task, "PENDING", version=1))  # a stale event after the stop
            sequence.reverse()
        if self.rng.random() < self.args.duplicates:
            self.injected["duplicate_events"] += 1
            sequence.append(stopped)
        return sequence, stopped

    def run(self) -> dict[str, Any]:
        self.register_jobs()
        bodies = self.triggers()
        self.kill_some_dispatchers()
        self.fail_some_platform_calls()
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
                if moved == 0 and self.held:
                    moved = self.play_ecs(force=True)
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
        tasks = [
            arn
            for family in self.families
            for arn in self.p.task_arns(family=family, status="STOPPED") + self.p.task_arns(family=family)
        ]
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
            "lost": sum(1 for run in runs if run is None),
            "duplicates": sum(n - 1 for n in started_by.values()),
            # Not final, and nothing will move it: no live lease, no retry due, no task to reconcile.
            "stuck": sum(1 for run in runs if run is not None and not run.status.terminal),
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
    parser.add_argument("--oom", type=float, default=0.03)
    parser.add_argument("--schedule-failures", type=float, default=0.2, help="share of retries whose scheduling fails")
    parser.add_argument(
        "--store-errors", type=float, default=0.1, help=f"share of {FLAKY_STORE_JOB}'s record writes failing"
    )
    parser.add_argument("--hold", type=int, default=1100, help="tasks held RUNNING at once before they finish")
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
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 and result["stuck"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
