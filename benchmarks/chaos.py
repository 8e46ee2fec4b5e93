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
and the claim lease are a few seconds, retry back-off 1-2 s, and botocore's own back-off between the attempts
of a throttled or failed call is scaled by the same 0.05 as the Dispatcher's (the attempts, their count and
the errors they see are unchanged; only the sleeps shrink). Everything else is the product's code, its AWS
calls made with boto3 over HTTP to the embedded AWS.

Where the harness *is* ECS (finding the tasks RunTask launched, stopping them when their fate is decided, and
counting every task ECS ever held for the duplicate check) it reads and writes moto's ECS backend directly, as a
container agent would, instead of paying an HTTP call per task; and two of moto's lookups that scan every task
of the account per requested task (DescribeTasks, StopTask) are indexed by ARN, and SQS's retention check per
received message reads the one attribute instead of computing every queue attribute: same answers. The run record
checks read the real table with a consistent Scan instead of one GetItem per run. That is what makes 10,000
events fit in minutes (``--profile`` prints where the time goes).

Prints ``{"events", "runs_expected", "runs_launched", "lost", "duplicates", "stuck", "retried", "dead_lettered",
"faults_injected": {...}}`` and more: ``stuck`` counts runs neither final nor owned by reconciliation (an
active status with a lease or due time it will act on) at the end. Exit code 0 only when lost, duplicates and
stuck are all 0.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.retries import standard
from moto.core.utils import unix_time
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends
from moto.sqs.models import SQSBackend

from taskrunner.adapters.retries import DispatchRetries
from taskrunner.adapters.store import DynamoRunStore, _run
from taskrunner.domain import tracking
from taskrunner.domain.ports import Retry
from taskrunner.domain.runs import Run, RunStatus, idempotency_key, parse_started_by, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.ecs_events import put_entry, task_state_change
from taskrunner.local.faults import EcsFaults, inject
from taskrunner.local.invoke import invoke
from taskrunner.local.moto_ecs import record_container
from taskrunner.local.platform import QUIET, Platform, local_platform

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("chaos-1", "chaos-2")
#: The job whose run-record writes fail transiently (--store-errors): the other's runs must not notice.
FLAKY_STORE_JOB = "chaos-2"
BACKOFF_SCALE = 0.05
#: Triggers sent per round, and the Dispatcher's polls per round (10 messages each, as Lambda's batches).
FEED = 500
COMPRESSED = {"DISPATCH_LEASE_S": "3", "DISPATCH_BACKOFF_SCALE": str(BACKOFF_SCALE)}


def compress_botocore_backoff(scale: float = BACKOFF_SCALE) -> None:
    """botocore's standard-mode back-off (``random() * 2**attempt`` s, at most 20 s) shrunk like the product's.

    The Lambda container sleeps between attempts on AWS too, but here one process plays every container in turn,
    so those sleeps would be the benchmark's wall clock. The attempt count and the retry decisions stay botocore's.
    """
    delay = standard.ExponentialBackoff.delay_amount

    def scaled(self: standard.ExponentialBackoff, context: standard.RetryContext) -> float:
        return float(delay(self, context)) * scale

    standard.ExponentialBackoff.delay_amount = scaled  # type: ignore[method-assign]


class ApiCalls:
    """Every AWS call made in this process (the product's and the harness's), counted and timed by operation:
    where a run's wall clock goes, printed with the result."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        original = BaseClient._make_api_call
        calls, seconds = self.calls, self.seconds

        def timed(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            key = f"{client.meta.service_model.service_name}:{operation}"
            start = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                calls[key] += 1
                seconds[key] += time.perf_counter() - start

        BaseClient._make_api_call = timed  # type: ignore[method-assign]
        try:
            yield
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]

    def summary(self, top: int = 12) -> dict[str, dict[str, float]]:
        return {
            key: {"calls": self.calls[key], "seconds": round(seconds, 1)}
            for key, seconds in self.seconds.most_common(top)
        }


def compress_reconciliation_waits(scale: float = BACKOFF_SCALE) -> None:
    """Reconciliation re-drives a retry overdue by 300 s and a claim untouched for 960 s (longer than the 900 s the
    Dispatcher may ask SQS to wait); with back-off scaled by ``scale``, these waits are scaled the same way, or a
    run whose retry scheduling failed would sit out five real minutes."""
    tracking.RETRY_GRACE_S = round(tracking.RETRY_GRACE_S * scale)
    tracking.CLAIM_STALE_S = round(tracking.CLAIM_STALE_S * scale)


def read_retention_directly() -> None:
    """moto checks each message it receives against the queue's retention by computing *all* the queue's attributes
    (three of them count every message) three times over: 0.37 ms of CPU per queued message per ReceiveMessage, more
    than a second per batch on the Tracker's queue after 1,000 held tasks stop. Read the one attribute instead."""

    def retained(self: SQSBackend, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]


def index_moto_task_lookups() -> None:
    """moto's DescribeTasks compares every task of the account with every task asked for, and StopTask scans the
    cluster for the ARN: O(tasks) per task, minutes at 10,000 runs. When every task asked for is named by its full
    ARN (what ECS returns and the product sends), look it up in the cluster's dict; anything else goes to moto."""
    describe, stop = EC2ContainerServiceBackend.describe_tasks, EC2ContainerServiceBackend.stop_task

    def describe_tasks(self: EC2ContainerServiceBackend, cluster_str: str, tasks: list[str]) -> list[Any]:
        cluster = self._get_cluster(cluster_str)
        known = self.tasks.get(cluster.name, {})
        if not tasks or not all(arn in known for arn in tasks):
            return describe(self, cluster_str, tasks)
        found = [known[arn] for arn in dict.fromkeys(tasks)]
        for task in found:
            task.advance()
        return found

    def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> Any:
        task = self.tasks.get(self._get_cluster(cluster_str).name, {}).get(task_str)
        if task is None or task.container_instance_arn:
            return stop(self, cluster_str, task_str, reason)
        task.last_status = task.desired_status = "STOPPED"
        task.stopped_reason = reason
        return task

    EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]
    EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign]


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
        _, _, _, region, account, _ = platform.outputs["DispatchQueueArn"].split(":", 5)
        self.ecs_backend: EC2ContainerServiceBackend = ecs_backends[account][region]
        self.seen = 0  # tasks of the cluster already looked at (moto's dict only grows: stopped tasks stay)

    @functools.cache  # noqa: B019 - one harness per process; its clients live as long as it does
    def client(self, service: str) -> Any:
        return self.p.client(service)

    def cluster_tasks(self) -> dict[str, Any]:
        """moto's own tasks of the cluster (ARN → task), in launch order."""
        tasks: dict[str, Any] = self.ecs_backend.tasks.get(self.cluster, {})
        return tasks

    def family(self, task: Any) -> str:
        return str(task.task_definition_arn).rsplit("/", 1)[-1].rsplit(":", 1)[0]

    def register_jobs(self) -> None:
        """The chaos jobs: copies of order-audit (their own task-definition families, as job stacks register them)
        that retry exit code 1 and start failures, with fast back-off."""
        ssm, ecs, prefix = self.client("ssm"), self.client("ecs"), self.p.outputs["RegistryPrefix"]
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
        sqs = self.client("sqs")
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
        self.unsent = everything
        return bodies

    def feed(self, count: int) -> int:
        """Send the next ``count`` triggers (shuffled, duplicates among them) to the dispatch queue.

        Triggers arrive a drain's worth at a time rather than all at once: moto's SQS scans the whole queue on every
        ReceiveMessage and twice per deleted message, so 12,000 queued messages would cost more than the product.
        """
        chunk, self.unsent = self.unsent[:count], self.unsent[count:]
        sqs, url = self.client("sqs"), self.p.outputs["DispatchQueueUrl"]
        for start in range(0, len(chunk), 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(chunk[start : start + 10])],
            )
        return len(chunk)

    def play_ecs(self, force: bool = False) -> int:
        """Decide the fate of every newly launched task and emit its state changes (with delivery faults).

        New tasks are first held RUNNING (their RUNNING event sent) until ``--hold`` are held at once, or nothing
        else moves (``force``): then every held task meets its fate together.
        """
        tasks = self.cluster_tasks()
        fresh = list(itertools.islice(tasks.values(), self.seen, None))
        self.seen = len(tasks)
        new = [task.task_arn for task in fresh if self.family(task) in self.families]
        events: list[dict[str, Any]] = []
        ecs = self.client("ecs")
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
                self.ecs_backend.stop_task(self.cluster, task["taskArn"], stopped["detail"]["stoppedReason"])
            self.held = []
        self.rng.shuffle(events) if self.rng.random() < self.args.reorder else None
        self.publish(events)
        return len(new)

    def publish(self, events: list[dict[str, Any]]) -> None:
        """PutEvents on the default bus, 10 a call: the stack's rule routes task state changes to the Tracker."""
        client = self.client("events")
        entries = [put_entry(e) for e in events]
        for start in range(0, len(entries), 10):
            response = client.put_events(Entries=entries[start : start + 10])
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"PutEvents failed: {response['Entries']}")

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
        compress_botocore_backoff()
        compress_reconciliation_waits()
        index_moto_task_lookups()
        read_retention_directly()
        expected = {run_id_for(idempotency_key(DispatchRequest.model_validate(b))) for b in bodies}
        mode = {"AWS_RETRY_MODE": self.args.retry_mode}
        dispatch = self.p.dispatch_queue(quiet=True, **COMPRESSED, **mode)
        tracker = self.p.tracker_queue(quiet=True)
        reconcile = self.p.function("TrackerFunctionName")
        faults = EcsFaults(
            seed=self.args.seed,
            throttle_rate=self.args.throttle,
            server_error_rate=self.args.server_errors,
            capacity_failure_rate={"*": self.args.capacity},
        )
        started, cpu = time.perf_counter(), time.process_time()
        deadline = time.monotonic() + self.args.timeout
        final: dict[str, RunStatus] = {}
        shown = 0.0
        api = ApiCalls()
        with inject(faults), api.counting():
            while time.monotonic() < deadline:
                moved = self.feed(FEED)
                moved += dispatch.drain(max_polls=FEED // 10)
                moved += self.play_ecs()
                moved += tracker.drain(max_polls=50)
                if moved == 0 and self.held:
                    moved = self.play_ecs(force=True)
                if moved == 0:
                    try:
                        invoke(reconcile, {"action": "reconcile"}, QUIET)
                    except Exception as exc:
                        # As on AWS: a reconciliation tick that fails (here: moto's Query past the Tracker's
                        # 20 s read timeout on a loaded machine) is one failed invocation, not the end of the run.
                        self.injected["reconcile_invocations_failed"] += 1
                        print(f"chaos: reconciliation failed: {exc!r}", file=sys.stderr, flush=True)
                    final = self.finished(expected, final)
                    if len(final) == len(expected):
                        break
                    time.sleep(0.2)
                if time.perf_counter() - shown > 30:
                    shown = time.perf_counter()
                    print(
                        f"chaos: {shown - started:.0f}s: {len(self.handled)} tasks launched, {len(self.held)} held "
                        f"running, {len(final)}/{len(expected)} runs final at the last idle round",
                        file=sys.stderr,
                        flush=True,
                    )
        elapsed = time.perf_counter() - started
        result = self.report(expected, final, faults, elapsed)
        # CPU of this process (the product, the harness and the embedded AWS's server thread): on a shared machine
        # the wall clock also counts other processes' turns.
        result["cpu_seconds"] = round(time.process_time() - cpu, 1)
        result["events_per_s"] = round(self.args.events / elapsed, 2)
        result["api_calls_per_event"] = round(sum(api.calls.values()) / self.args.events, 1)
        result["api_calls"] = api.summary()
        return result

    def table(self) -> list[dict[str, Any]]:
        """Every item of the runs table, read with a consistent Scan (pages of 1 MB)."""
        kwargs: dict[str, Any] = {"TableName": self.p.outputs["RunsTableName"], "ConsistentRead": True}
        pages = self.client("dynamodb").get_paginator("scan").paginate(**kwargs)
        return [item for page in pages for item in page.get("Items", [])]

    def finished(self, expected: set[str], final: dict[str, RunStatus]) -> dict[str, RunStatus]:
        """``final`` and the expected runs the table now holds in a final status (consistent BatchGetItem of the
        others only: the table's writes are conditional on moving forward, so a final run stays final)."""
        done = dict(final)
        table, db = self.p.outputs["RunsTableName"], self.client("dynamodb")
        pending = sorted(expected - done.keys())
        for start in range(0, len(pending), 100):
            request = {
                table: {
                    "Keys": [{"run_id": {"S": run_id}} for run_id in pending[start : start + 100]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "run_id, #s",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            while request:
                response = db.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(table, []):
                    status = RunStatus(item["status"]["S"])
                    if status.terminal:
                        done[item["run_id"]["S"]] = status
                request = response.get("UnprocessedKeys") or {}
        return done

    def report(
        self, expected: set[str], final: dict[str, RunStatus], faults: EcsFaults, elapsed: float
    ) -> dict[str, Any]:
        # Every task ECS (moto) ever held for the chaos jobs, stopped or not: one run attempt may own one only.
        started_by = Counter(
            task.started_by for task in self.cluster_tasks().values() if self.family(task) in self.families
        )
        attempts = {parsed for key in started_by if (parsed := parse_started_by(key))}
        table: dict[str, Run] = {run.run_id: run for run in map(_run, self.table())}
        runs = [table.get(run_id) for run_id in expected]
        dlq = int(
            self.client("sqs").get_queue_attributes(
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
            + [{"run_id": run_id, "status": "NO RECORD"} for run_id in expected if run_id not in table][:5],
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
    # Powertools prints a metric blob every 100 values even with metrics disabled: stdout keeps only the result.
    with local_platform(ROOT) as platform, contextlib.redirect_stdout(sys.stderr):
        result = Chaos(platform, args).run()
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 and result["stuck"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
