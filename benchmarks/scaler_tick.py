"""Scaler tick benchmark: the AWS API calls (by operation) and the time of one Scaler round over N queue jobs.

The real template is deployed into the embedded AWS. N queue jobs are then registered the way job stacks
register themselves: per job a work queue, for service-mode jobs an ECS service on the stack's cluster
(image-worker's task definition, desired count 0), for per-message jobs a task definition of their own (a
job stack owns one, and the Scaler counts a per-message job's workers by its family), and a registry entry
``{RegistryPrefix}/{name}`` copied from image-worker's. A seeded share of the queues gets a backlog.

The ``Autoscaler`` is built as ``taskrunner.handlers.scaler.service()`` builds it (same adapters, settings
read from the deployed Scaler function's environment, the registry cached for ``SCALER_INTERVAL_S``,
adaptive retries), with its clients pointed at the embedded AWS and every API call counted by a botocore
``before-call``/``after-call`` hook. One exception: RunTask pacing (``LAUNCHES_PER_S``) is recorded, not
slept, so the timing is the API work alone; the JSON reports how long the Lambda would have slept.

One cold round (registry not cached) and one warm round (registry cached) are timed. moto answers on
loopback, in this process: its latency is not AWS's, and the call counts are the figure that transfers.
Prints one JSON object; ``--out`` writes it to a file too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from taskrunner.adapters.clients import retry_config
from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.queues import Queues
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.state import DynamoStateStore
from taskrunner.domain.autoscale import Autoscaler, JobRound, Launcher
from taskrunner.local.platform import Platform, local_platform
from taskrunner.local.stack import REGION
from taskrunner.settings import ScalerSettings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_JOB = "image-worker"
#: What ``register_task_definition`` accepts of what ``describe_task_definition`` returns.
TASK_DEFINITION_FIELDS = (
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "runtimePlatform",
    "ephemeralStorage",
)


class CallCounter:
    """Counts every API call by ``service:Operation`` and times it, through botocore's event hooks."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.attempts = 0
        self.seconds: defaultdict[str, float] = defaultdict(float)
        #: (service, when) of each UpdateService: how soon a first message's scale-out is asked for.
        self.updates: list[tuple[str, float]] = []

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._before_call)
        client.meta.events.register("after-call", self._after_call)
        client.meta.events.register("before-send", self._before_send)
        return client

    def reset(self) -> None:
        self.calls.clear()
        self.seconds.clear()
        self.attempts = 0

    @staticmethod
    def _name(model: Any) -> str:
        return f"{model.service_model.endpoint_prefix}:{model.name}"

    def _before_call(self, model: Any, context: dict[str, Any], params: dict[str, Any], **_: Any) -> None:
        self.calls[self._name(model)] += 1
        context["scaler_tick_started"] = time.perf_counter()
        if model.name == "UpdateService":  # params is the serialized request: ECS's JSON body
            body = json.loads(params.get("body") or b"{}")
            self.updates.append((str(body.get("service", "")), time.perf_counter()))

    def _after_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.pop("scaler_tick_started", None)
        if started is not None:
            self.seconds[self._name(model)] += time.perf_counter() - started

    def _before_send(self, **_: Any) -> None:
        self.attempts += 1  # HTTP attempts: more than calls only if botocore retried


class VirtualClock:
    """The Scaler's clock in the benchmark: it advances one interval per round, so the cadence (busy every round,
    idle every 4th) and the token buckets run exactly as on AWS, whatever moto's speed. ``sleep`` records the
    longest pacing wait the Lambda would sleep instead of sleeping."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.paced = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        # Each wait a bucket hands out is counted from now (the clock stands still within a round), so the
        # longest one is how long the round, or the launcher's drain, is held up; concurrent waits overlap.
        self.paced = max(self.paced, seconds)


def registry_entry(platform: Platform, name: str) -> dict[str, Any]:
    raw = platform.client("ssm").get_parameter(Name=f"{platform.outputs['RegistryPrefix']}/{name}")
    entry: dict[str, Any] = json.loads(raw["Parameter"]["Value"])
    return entry


def copy_task_definition(ecs: Any, source: str, family: str) -> None:
    definition = ecs.describe_task_definition(taskDefinition=source)["taskDefinition"]
    ecs.register_task_definition(family=family, **{k: definition[k] for k in TASK_DEFINITION_FIELDS if k in definition})


def register_job(
    platform: Platform,
    clients: dict[str, Any],
    template: dict[str, Any],
    name: str,
    service_mode: bool,
    backlog: int,
) -> dict[str, Any]:
    """One job stack's worth of resources, and its registry entry."""
    stack, outputs = platform.stack_name, platform.outputs
    sqs, ecs = clients["sqs"], clients["ecs"]
    queue_url = sqs.create_queue(QueueName=f"{stack}-{name}-work")["QueueUrl"]
    # Its own family, as a job stack registers it: the Scaler scales nothing a registry entry names otherwise.
    family = f"{stack}-{name}"
    copy_task_definition(ecs, template["task_definition"], family)
    entry = template | {"name": name, "queue_url": queue_url, "task_definition": family}
    if service_mode:
        service = f"{stack}-{name}"
        ecs.create_service(cluster=outputs["ClusterName"], serviceName=service, taskDefinition=family, desiredCount=0)
        entry |= {"queue_mode": "service", "service": service}
    else:
        entry |= {"queue_mode": "per-message", "service": ""}
    for start in range(0, backlog, 10):
        batch = [{"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(min(10, backlog - start))]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=batch)
    clients["ssm"].put_parameter(
        Name=f"{outputs['RegistryPrefix']}/{name}", Value=json.dumps(entry), Type="String", Overwrite=True
    )
    return entry


def build_autoscaler(platform: Platform, counter: CallCounter, clock: VirtualClock) -> tuple[Autoscaler, float]:
    """As ``handlers.scaler.service()`` builds it, with clients on the embedded AWS and the counter attached.

    Differences, each so that the benchmark runs on its own clock: the launcher is driven by the benchmark (one
    interval's worth after each round, which is what its thread drains on AWS); the registry's Powertools cache
    is 1 s (the Autoscaler's own refresh, every ``REGISTRY_REFRESH_S`` of its clock, decides when SSM is read).
    """
    function = platform.client("lambda").get_function_configuration(FunctionName=platform.outputs["ScalerFunctionName"])
    variables = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
    settings = ScalerSettings.from_env(variables | {"AWS_REGION": "us-east-1"})
    session = boto3.session.Session(region_name=REGION)
    config = retry_config().merge(Config(max_pool_connections=THREADS + 4))

    def client(service: str) -> Any:
        return counter.attach(session.client(service, endpoint_url=platform.endpoint, config=config))  # type: ignore[call-overload]

    ecs = EcsCluster(client("ecs"))
    states = DynamoStateStore(settings.state_table, client("dynamodb"))
    autoscaler = Autoscaler(
        SsmRegistry(settings.registry_prefix, client("ssm"), max_age_s=1),
        Queues(client("sqs")),
        ecs,
        ecs,
        states,
        stack=settings.bounds(),
        clock=clock,
        sleep=clock.sleep,
        interval_s=settings.interval_s,
        threads=THREADS,
        registry_refresh_s=REGISTRY_REFRESH_S,
        launcher=Launcher(ecs, states, clock=clock, sleep=clock.sleep, background=True),
    )
    return autoscaler, settings.interval_s


#: As the handler: the registry re-read every minute in the background; 16 observation threads.
REGISTRY_REFRESH_S = 60.0
THREADS = 16

#: Each API the Scaler calls → (its documented quota per second, the bucket it draws on). DynamoDB's are table
#: request units per second (on-demand), not calls: BatchGetItem reads up to 100 items, 1 read unit each.
QUOTAS: dict[str, tuple[float | None, str]] = {
    "ecs:ListTasks": (20, "ECS cluster resource read: 20/s sustained, 100 burst (shared with DescribeTasks)"),
    "ecs:DescribeServices": (20, "ECS service read: 20/s sustained, 100 burst"),
    "ecs:UpdateService": (5, "ECS service modify: 5/s sustained, 50 burst"),
    "ecs:RunTask": (20, "Fargate RunTask: 20 calls/s (and ECS cluster resource modify 40/s)"),
    "fargate:TasksLaunched": (20, "Fargate task launches: 20/s sustained, 100 burst (tasks, not calls)"),
    "ssm:GetParametersByPath": (40, "Parameter Store default throughput: 40/s (GetParameter* shared)"),
    "sqs:GetQueueAttributes": (None, "no published per-API rate for standard queues"),
    "dynamodb:BatchGetItem": (40_000, "on-demand table: 40,000 read request units/s (items/s here)"),
    "dynamodb:UpdateItem": (40_000, "on-demand table: 40,000 write request units/s"),
    "dynamodb:GetItem": (40_000, "on-demand table: 40,000 read request units/s"),
}


def steady_rounds(
    autoscaler: Autoscaler,
    counter: CallCounter,
    clock: VirtualClock,
    interval_s: float,
    rounds: int,
    wake: Callable[[], list[str]],
) -> dict[str, Any]:
    """``rounds`` rounds on the Scaler's clock: calls by API, each job's full observations, pacing, moto time.

    Before the middle round, ``wake`` puts a first message on some idle services' queues: how long after that
    round starts their UpdateService goes out is the scale-from-zero figure (plus up to one interval of waiting
    for the round, on AWS).
    """
    counter.reset()
    woken: list[str] = []
    wake_offsets: list[float | None] = []
    round_wall = 0.0
    observed: defaultdict[str, list[tuple[float, bool]]] = defaultdict(list)
    walls, paced, launch_paced, items_read = [], [], [], 0
    tasks_launched = 0
    stats: list[dict[str, int]] = []
    for index in range(rounds):
        if index == rounds // 2:
            woken = wake()
        clock.paced = 0.0
        started = time.perf_counter()
        if index == rounds // 2:
            counter.updates = []
        results: list[JobRound] = autoscaler.round()
        if index == rounds // 2:
            first = {svc: t - started for svc, t in reversed(counter.updates)}
            wake_offsets = [first.get(svc) for svc in woken]
            round_wall = time.perf_counter() - started
        walls.append(time.perf_counter() - started)
        paced.append(clock.paced)
        items_read += autoscaler.stats.observed
        for r in results:
            busy = autoscaler._known[r.job].busy if r.job in autoscaler._known else True
            observed[r.job].append((clock.now, busy))
        stats.append(dict(vars(autoscaler.stats)))
        clock.paced = 0.0
        done = autoscaler.launcher.run(budget_s=interval_s)
        tasks_launched += sum(d.launched for d in done)
        launch_paced.append(clock.paced)
        clock.now += interval_s
    window_s = rounds * interval_s
    busy_gaps, idle_gaps = [], []
    for times in observed.values():
        for (t0, was_busy), (t1, _) in itertools.pairwise(times):
            (busy_gaps if was_busy else idle_gaps).append(t1 - t0)
    calls = dict(sorted(counter.calls.items()))
    return {
        "rounds": rounds,
        "window_s": window_s,
        "calls": calls,
        "tasks_launched": tasks_launched,
        "state_items_read": items_read,
        "busy_gaps": busy_gaps,
        "idle_gaps": idle_gaps,
        "jobs_seen_busy": sum(1 for t in observed.values() if t[-1][1]),
        "round_wall_s": walls,
        "round_paced_s": paced,
        "launch_paced_s": launch_paced,
        "stats": stats,
        "mean_call_ms": {k: round(1000 * counter.seconds[k] / n, 2) for k, n in calls.items()},
        "scale_from_zero": {
            "services_woken": len(woken),
            "scaled_out_in_that_round": sum(1 for o in wake_offsets if o is not None),
            "first_update_after_round_start_s": round(max((o for o in wake_offsets if o is not None), default=-1), 3),
            "that_round_s": round(round_wall, 2),
            "note": "a first message waits up to one interval for the next round, then this long",
        }
        if woken
        else None,
    }


#: Every API a Scaler round or its launcher may call, reported even when the steady window made no such call.
SCALER_APIS = (
    "dynamodb:BatchGetItem",
    "dynamodb:UpdateItem",
    "ecs:DescribeServices",
    "ecs:ListTasks",
    "ecs:RunTask",
    "ecs:UpdateService",
    "sqs:GetQueueAttributes",
)


def api_rates(window: dict[str, Any], cold_ssm_pages: int, burst: dict[str, Any]) -> dict[str, Any]:
    seconds = window["window_s"]
    apis: dict[str, Any] = {}
    for name, calls in (dict.fromkeys(SCALER_APIS, 0) | window["calls"]).items():
        quota, bucket = QUOTAS.get(name, (None, "unknown"))
        rate = calls / seconds
        entry: dict[str, Any] = {"calls": calls, "calls_per_s": round(rate, 2), "quota_per_s": quota, "bucket": bucket}
        if name == "dynamodb:BatchGetItem":
            entry["items_per_s"] = round(window["state_items_read"] / seconds, 1)
        entry["burst_calls_per_s"] = round(burst["calls"].get(name, 0) / burst["seconds"], 2)
        apis[name] = entry
    # The registry: one paged read every REGISTRY_REFRESH_S (the cold round's page count is one read).
    apis["ssm:GetParametersByPath"] = {
        "calls": cold_ssm_pages,
        "calls_per_s": round(cold_ssm_pages / REGISTRY_REFRESH_S, 2),
        "quota_per_s": QUOTAS["ssm:GetParametersByPath"][0],
        "bucket": QUOTAS["ssm:GetParametersByPath"][1],
        "note": f"one read of {cold_ssm_pages} pages every {REGISTRY_REFRESH_S:.0f} s, paced at 20 pages/s",
    }
    apis["fargate:TasksLaunched"] = {
        "calls": window["tasks_launched"],
        "calls_per_s": round(window["tasks_launched"] / seconds, 2),
        "burst_calls_per_s": round(burst["tasks_launched"] / burst["seconds"], 2),
        "quota_per_s": QUOTAS["fargate:TasksLaunched"][0],
        "bucket": QUOTAS["fargate:TasksLaunched"][1],
    }
    for entry in apis.values():
        quota = entry["quota_per_s"]
        used = entry.get("items_per_s", entry["calls_per_s"])
        entry["share_of_quota"] = round(used / quota, 3) if quota else None
    return dict(sorted(apis.items()))


def run(
    jobs: int,
    service_share: float,
    backlog_share: float,
    max_backlog: int,
    seed: int,
    workers: int,
    rounds: int,
    max_warmup: int,
) -> dict[str, Any]:
    rng = random.Random(seed)
    n_service = round(jobs * service_share)
    plan = [
        (f"bench-{i:05d}", i < n_service, rng.randint(1, max_backlog) if rng.random() < backlog_share else 0)
        for i in range(jobs)
    ]
    with local_platform(ROOT) as platform:
        template = registry_entry(platform, TEMPLATE_JOB)
        # Clients are thread-safe once built, but building them from boto3's default session is not.
        clients = {service: platform.client(service) for service in ("sqs", "ecs", "ssm")}
        setup_started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda job: register_job(platform, clients, template, *job), plan))
        setup_s = time.perf_counter() - setup_started
        print(f"setup {setup_s:.0f} s", file=sys.stderr, flush=True)

        counter, clock = CallCounter(), VirtualClock(1_800_000_000.0)
        autoscaler, interval_s = build_autoscaler(platform, counter, clock)
        # The first round: a cold container (registry read, every job new to it) meeting a fresh backlog.
        started = time.perf_counter()
        autoscaler.round()
        cold = {
            "seconds": round(time.perf_counter() - started, 2),
            "calls": dict(sorted(counter.calls.items())),
            "stats": dict(vars(autoscaler.stats)),
            "paced_s": round(clock.paced, 2),
        }
        cold_ssm_pages = counter.calls["ssm:GetParametersByPath"]
        clock.paced = 0.0
        burst_launched = sum(d.launched for d in autoscaler.launcher.run(budget_s=interval_s))
        clock.now += interval_s
        # Warm-up: until the burst's UpdateService deferrals and launch queue have drained (at most max_warmup).
        warmup_started, warmup = time.perf_counter(), 0
        while warmup < max_warmup:
            autoscaler.round()
            deferred = autoscaler.stats.deferred_updates
            burst_launched += sum(d.launched for d in autoscaler.launcher.run(budget_s=interval_s))
            clock.now += interval_s
            warmup += 1
            if warmup >= autoscaler.idle_every and deferred == 0 and not autoscaler.launcher.pending():
                break
        warmup_s = time.perf_counter() - warmup_started
        # The burst: the cold round and the warm-up, on the Scaler's clock.
        burst = {
            "rounds": warmup + 1,
            "seconds": (warmup + 1) * interval_s,
            "calls": dict(counter.calls),
            "tasks_launched": burst_launched,
        }
        idle_services = [
            name for name, service, backlog in ((n, svc, b) for n, svc, b in plan) if service and not backlog
        ]

        def wake() -> list[str]:
            """A first message on 10 idle services that the Scaler has already seen idle."""
            chosen = [n for n in idle_services if n in autoscaler._known and not autoscaler._known[n].busy][:10]
            for name in chosen:
                url = clients["sqs"].get_queue_url(QueueName=f"{platform.stack_name}-{name}-work")["QueueUrl"]
                clients["sqs"].send_message(QueueUrl=url, MessageBody="{}")
            return [f"{platform.stack_name}-{name}" for name in chosen]

        window = steady_rounds(autoscaler, counter, clock, interval_s, rounds, wake)
    busy, idle = window["busy_gaps"], window["idle_gaps"]
    walls = window["round_wall_s"]
    total_calls = sum(window["calls"].values())
    return {
        "benchmark": "scaler_tick",
        "jobs": jobs,
        "service_jobs": n_service,
        "per_message_jobs": jobs - n_service,
        "template_queue_jobs_also_observed": cold["stats"]["jobs"] - jobs,
        "clusters": 1,
        "queues_with_backlog": sum(1 for *_, b in plan if b),
        "messages_backlogged": sum(b for *_, b in plan),
        "seed": seed,
        "setup_seconds": round(setup_s, 1),
        "scaler_interval_s": interval_s,
        "threads": THREADS,
        "observation_interval_s": {
            "busy": max(busy) if busy else None,
            "idle": max(idle) if idle else None,
            "queue_depth": interval_s,
        },
        "round_s": round(max(walls), 2),
        "scale_from_zero": window["scale_from_zero"],
        "round_s_mean": round(sum(walls) / len(walls), 2),
        "round_paced_s_max": round(max(window["round_paced_s"]), 2),
        "launch_paced_s_max": round(max(window["launch_paced_s"]), 2),
        "apis": api_rates(window, cold_ssm_pages, burst),
        "burst": {k: burst[k] for k in ("rounds", "seconds", "tasks_launched")} | {"calls": burst["calls"]},
        "steady_window": {
            "rounds": window["rounds"],
            "seconds": window["window_s"],
            "jobs_busy_at_end": window["jobs_seen_busy"],
            "calls_per_round": round(total_calls / window["rounds"], 1),
            "calls_per_job_per_round": round(total_calls / window["rounds"] / cold["stats"]["jobs"], 3),
            "per_round": window["stats"],
            "mean_call_ms": window["mean_call_ms"],
            "busy_observations": len(busy),
            "idle_observations": len(idle),
        },
        "cold_round": cold,
        "warmup_rounds": warmup,
        "warmup_seconds": round(warmup_s, 1),
        "note": (
            "Rates are calls in the steady window divided by its length on the Scaler's clock (rounds x interval): "
            "the rate on AWS when each round fits its interval, an upper bound otherwise. round_s is moto's wall "
            "time for a round in this process (2 shared cores, GIL); round_paced_s_max is the longest time a round "
            "would wait on the Scaler's own token buckets (DescribeServices pacing), launch_paced_s_max the "
            "launcher's (in its thread on AWS). observation_interval_s is on the Scaler's clock."
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--service-share", type=float, default=0.8, help="share of jobs in service mode")
    parser.add_argument("--backlog-share", type=float, default=0.3, help="share of queues given a backlog")
    parser.add_argument("--max-backlog", type=int, default=50, help="a backlog is 1..this many messages")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=8, help="threads registering jobs (setup only)")
    parser.add_argument("--rounds", type=int, default=12, help="rounds in the steady window (12 = 3 minutes)")
    parser.add_argument("--max-warmup", type=int, default=8, help="rounds at most before the steady window")
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)
    if not 0 <= args.service_share <= 1 or not 0 <= args.backlog_share <= 1 or args.jobs < 1:
        parser.error("--jobs must be ≥ 1; --service-share and --backlog-share must be within [0, 1]")
    result = run(
        args.jobs,
        args.service_share,
        args.backlog_share,
        args.max_backlog,
        args.seed,
        args.workers,
        args.rounds,
        args.max_warmup,
    )
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
