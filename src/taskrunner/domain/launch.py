"""The RunTask request for one attempt of one run: a pure function of the job spec and the run."""

from __future__ import annotations

import json
from typing import Any

from taskrunner.domain.jobs import Capacity, JobSpec
from taskrunner.domain.runs import Run, client_token, started_by
from taskrunner.domain.triggers import DispatchRequest

#: ECS rejects container overrides above 8 KiB; keep the raw event well under it.
MAX_EVENT_ENV_BYTES = 4096


def capacity_strategy(capacity: Capacity, *, fallback: bool = False) -> list[dict[str, Any]]:
    """Spot-with-fallback launches on Spot first and, after a capacity failure, on on-demand."""
    if capacity is Capacity.FARGATE or (capacity is Capacity.SPOT_WITH_FALLBACK and fallback):
        provider = "FARGATE"
    else:
        provider = "FARGATE_SPOT"
    return [{"capacityProvider": provider, "weight": 1, "base": 0}]


def task_environment(spec: JobSpec, run: Run, request: DispatchRequest) -> list[dict[str, str]]:
    """What this run adds to the task definition's environment (the job's own ``Environment`` and ``Secrets`` are
    in the task definition, so one-off, service and per-message tasks all get them the same way)."""
    env = {
        "TASKRUNNER_JOB": spec.name,
        "TASKRUNNER_RUN_ID": run.run_id,
        "TASKRUNNER_ATTEMPT": str(run.attempt),
        "TASKRUNNER_TRIGGER": str(run.trigger),
    }
    if (obj := request.s3_object()) is not None:
        env |= {"TASKRUNNER_S3_BUCKET": obj.bucket, "TASKRUNNER_S3_KEY": obj.key}
    if request.scheduled_at is not None:
        env["TASKRUNNER_SCHEDULED_AT"] = request.scheduled_at.isoformat()
    env |= request.env
    if request.event is not None:
        raw = request.event.model_dump_json(by_alias=True)
        with_event = env | {"TASKRUNNER_EVENT": raw}
        if len(raw.encode()) <= MAX_EVENT_ENV_BYTES and _overrides_chars(spec, with_event) <= MAX_OVERRIDES_CHARS:
            env = with_event
    return [{"name": name, "value": value} for name, value in env.items()]


#: "A total of 8192 characters are allowed for overrides", JSON formatting included.
MAX_OVERRIDES_CHARS = 8192


def _overrides_chars(spec: JobSpec, env: dict[str, str]) -> int:
    pairs = [{"name": k, "value": v} for k, v in env.items()]
    return len(json.dumps({"containerOverrides": [{"name": spec.container, "environment": pairs}]}))


def _base_request(spec: JobSpec, *, fallback: bool, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "cluster": spec.cluster,
        "taskDefinition": spec.task_definition,
        "group": f"taskrunner:{spec.name}",
        "capacityProviderStrategy": capacity_strategy(spec.capacity, fallback=fallback),
        "platformVersion": spec.platform_version,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(spec.subnets),
                "securityGroups": list(spec.security_groups),
                "assignPublicIp": "ENABLED" if spec.assign_public_ip else "DISABLED",
            }
        },
        "enableECSManagedTags": True,
        "propagateTags": "TASK_DEFINITION",
        "tags": [{"key": k, "value": v} for k, v in ({"taskrunner:job": spec.name} | tags).items()],
    }


def run_task_request(spec: JobSpec, run: Run, request: DispatchRequest, *, fallback: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``ecs.run_task`` for one attempt of one run."""
    tags = {"taskrunner:run-id": run.run_id, "taskrunner:trigger": str(run.trigger)}
    return _base_request(spec, fallback=fallback, tags=tags) | {
        "count": 1,
        "startedBy": started_by(run.run_id, run.attempt),
        # ECS dedups on (cluster, token) for 24 h; the fallback attempt is a different request.
        "clientToken": client_token(run.run_id, run.attempt) + ("-od" if fallback else ""),
        "overrides": {
            "containerOverrides": [{"name": spec.container, "environment": task_environment(spec, run, request)}]
        },
    }


#: RunTask launches at most 10 tasks per call.
MAX_TASKS_PER_CALL = 10


def worker_task_request(spec: JobSpec, count: int, token: str) -> dict[str, Any]:
    """Per-message mode: ``count`` (≤10) workers that drain the job's queue and exit."""
    if not 1 <= count <= MAX_TASKS_PER_CALL:
        raise ValueError(f"RunTask launches 1-{MAX_TASKS_PER_CALL} tasks per call, not {count}")
    return _base_request(spec, fallback=False, tags={"taskrunner:trigger": "queue"}) | {
        "count": count,
        "startedBy": f"taskrunner-scaler-{spec.name}"[:128],
        "clientToken": token[:64],
    }


def summarize_failures(failures: list[dict[str, Any]]) -> str:
    return json.dumps([{k: f.get(k) for k in ("arn", "reason", "detail") if f.get(k)} for f in failures])
