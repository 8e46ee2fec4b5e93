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

from taskrunner.adapters.clients import retry_config
from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.queues import Queues
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.state import DynamoStateStore
from taskrunner.domain.autoscale import Autoscaler, JobRound
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

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls[self._name(model)] += 1
        context["scaler_tick_started"] = time.perf_counter()

    def _after_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.pop("scaler_tick_started", None)
        if started is not None:
            self.seconds[self._name(model)] += time.perf_counter() - started

    def _before_send(self, **_: Any) -> None:
        self.attempts += 1  # HTTP attempts: more than calls only if botocore retried


class PacingRecorder:
    """The Autoscaler's ``sleep``: records the RunTask pacing the Lambda would sleep, without sleeping."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, seconds: float) -> None:
        self.seconds += seconds


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


def build_autoscaler(platform: Platform, counter: CallCounter, sleep: Callable[[float], None]) -> Autoscaler:
    """As ``handlers.scaler.service()`` builds it, with clients on the embedded AWS and the counter attached."""
    function = platform.client("lambda").get_function_configuration(FunctionName=platform.outputs["ScalerFunctionName"])
    variables = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
    settings = ScalerSettings.from_env(variables | {"AWS_REGION": "us-east-1"})
    session = boto3.session.Session(region_name=REGION)

    def client(service: str) -> Any:
        return counter.attach(session.client(service, endpoint_url=platform.endpoint, config=retry_config()))  # type: ignore[call-overload]

    ecs = EcsCluster(client("ecs"))
    return Autoscaler(
        SsmRegistry(settings.registry_prefix, client("ssm"), max_age_s=int(settings.interval_s)),
        Queues(client("sqs")),
        ecs,
        ecs,
        DynamoStateStore(settings.state_table, client("dynamodb")),
        stack=settings.bounds(),
        clock=time.time,
        sleep=sleep,
    )


def registry_cache_probe(platform: Platform, prefix: str, rounds: int = 4) -> dict[str, Any]:
    """The handler's loop for the registry alone, time-scaled: rounds every 1 s, cache max_age 1 s.

    The handler sleeps ``interval - elapsed`` after each round and caches the registry for ``interval`` from
    the end of the read, so whether the next round still hits the cache is a matter of timing: this shows it.
    """
    counter = CallCounter()
    ssm = counter.attach(boto3.session.Session(region_name=REGION).client("ssm", endpoint_url=platform.endpoint))
    registry, interval_s = SsmRegistry(prefix, ssm, max_age_s=1), 1.0
    reading = 0
    for _ in range(rounds):
        started, before = time.monotonic(), counter.calls["ssm:GetParametersByPath"]
        registry.all()
        reading += counter.calls["ssm:GetParametersByPath"] > before
        time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return {"interval_s": interval_s, "max_age_s": 1, "rounds": rounds, "rounds_reading_registry": reading}


def timed_round(autoscaler: Autoscaler, counter: CallCounter, pacing: PacingRecorder) -> dict[str, Any]:
    counter.reset()
    pacing.seconds = 0.0
    started = time.perf_counter()
    results: list[JobRound] = autoscaler.round()
    seconds = time.perf_counter() - started
    total = sum(counter.calls.values())
    api_seconds = sum(counter.seconds.values())
    return {
        "seconds": round(seconds, 3),
        "calls": dict(sorted(counter.calls.items())),
        "total_calls": total,
        "http_attempts": counter.attempts,
        "mean_call_ms": {k: round(1000 * counter.seconds[k] / n, 2) for k, n in sorted(counter.calls.items())},
        "mean_call_ms_all": round(1000 * api_seconds / total, 2) if total else None,
        "api_share_of_round": round(api_seconds / seconds, 3) if seconds else None,
        "jobs_observed": len(results),
        "services_updated": sum(1 for r in results if r.applied and r.launched == 0),
        "tasks_launched": sum(r.launched for r in results),
        "errors": sum(1 for r in results if r.error),
        "runtask_pacing_not_slept_s": round(pacing.seconds, 2),
    }


#: Calls made only when a decision changes: their number follows the traffic, not the number of jobs.
ACTIONS = ("ecs:UpdateService", "ecs:RunTask")


def project(round_calls: dict[str, int], jobs: int, target_jobs: int, rounds_per_minute: float) -> dict[str, Any]:
    """The measured per-round counts scaled linearly to ``target_jobs``, per minute and per second.

    Observation calls are made every round for every job. Action calls are the cold round's (every queue
    just got its backlog, every service at 0): a burst, not a steady rate.
    """
    factor = target_jobs / jobs

    def rates(calls: dict[str, int], per_minute: float) -> dict[str, Any]:
        minute = {k: round(n * factor * per_minute) for k, n in calls.items()}
        return {"per_minute": minute, "per_second": {k: round(n / 60, 1) for k, n in minute.items()}}

    observe = {k: n for k, n in round_calls.items() if k not in ACTIONS}
    actions = {k: n for k, n in round_calls.items() if k in ACTIONS}
    return {
        "jobs": target_jobs,
        "rounds_per_minute": rounds_per_minute,
        "observation_calls": rates(observe, rounds_per_minute),
        "action_calls_per_burst_round": {k: round(n * factor) for k, n in actions.items()},
    }


def run(
    jobs: int, service_share: float, backlog_share: float, max_backlog: int, seed: int, workers: int
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

        counter, pacing = CallCounter(), PacingRecorder()
        autoscaler = build_autoscaler(platform, counter, pacing)
        cold = timed_round(autoscaler, counter, pacing)
        warm = timed_round(autoscaler, counter, pacing)
        probe = registry_cache_probe(platform, platform.outputs["RegistryPrefix"])
        interval_s = float(
            platform.client("lambda").get_function_configuration(FunctionName=platform.outputs["ScalerFunctionName"])[
                "Environment"
            ]["Variables"]["SCALER_INTERVAL_S"]
        )
    warm["registry_cached"] = "ssm:GetParametersByPath" not in warm["calls"]
    rounds_per_minute = 60 / interval_s
    return {
        "benchmark": "scaler_tick",
        "jobs": jobs,
        "service_jobs": n_service,
        "per_message_jobs": jobs - n_service,
        "template_queue_jobs_also_observed": cold["jobs_observed"] - jobs,
        "clusters": 1,
        "queues_with_backlog": sum(1 for *_, b in plan if b),
        "messages_backlogged": sum(b for *_, b in plan),
        "seed": seed,
        "setup_seconds": round(setup_s, 1),
        "scaler_interval_s": interval_s,
        "cold_round": cold,
        "warm_round": warm,
        "registry_cache_in_handler_loop": probe,
        "projection": project(cold["calls"], cold["jobs_observed"], 5000, rounds_per_minute),
        "note": (
            "moto serves on loopback in this process: its per-call latency is not AWS's, so the seconds are "
            "not transferable; the call counts per round are. The projection counts a registry read every round, "
            "the upper bound: the cache lives SCALER_INTERVAL_S, the interval between rounds, and "
            "registry_cache_in_handler_loop shows how often the handler's loop actually reads it. "
            "RunTask pacing is recorded, not slept."
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
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)
    if not 0 <= args.service_share <= 1 or not 0 <= args.backlog_share <= 1 or args.jobs < 1:
        parser.error("--jobs must be ≥ 1; --service-share and --backlog-share must be within [0, 1]")
    result = run(args.jobs, args.service_share, args.backlog_share, args.max_backlog, args.seed, args.workers)
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["cold_round"]["errors"] == 0 and result["warm_round"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
