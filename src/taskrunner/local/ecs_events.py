""" "ECS Task State Change" events, as ECS emits them, for tasks the embedded AWS cannot run.

moto's ECS accepts RunTask but runs nothing and emits no events; local mode, tests and the chaos
benchmark build these events from the task as DescribeTasks returns it, and publish them with
PutEvents so they travel the real rule to the Tracker's queue.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

STATE_CHANGE = "ECS Task State Change"


def task_state_change(
    task: dict[str, Any],
    last_status: str,
    *,
    exit_code: int | None = None,
    stop_code: str | None = None,
    stopped_reason: str | None = None,
    version: int = 1,
    at: datetime | None = None,
) -> dict[str, Any]:
    """An EventBridge event for ``task`` (a DescribeTasks entry) reaching ``last_status``."""
    now = (at or datetime.now(UTC)).isoformat()
    containers = [
        {
            "name": c.get("name", "job"),
            "lastStatus": last_status,
            **({"exitCode": exit_code} if exit_code is not None else {}),
        }
        for c in task.get("containers", [{"name": "job"}])
    ]
    detail: dict[str, Any] = {
        "taskArn": task["taskArn"],
        "clusterArn": task["clusterArn"],
        "taskDefinitionArn": task.get("taskDefinitionArn", ""),
        "lastStatus": last_status,
        "desiredStatus": "STOPPED" if last_status == "STOPPED" else "RUNNING",
        "startedBy": task.get("startedBy", ""),
        "group": task.get("group", ""),
        "capacityProviderName": task.get("capacityProviderName", "FARGATE"),
        "launchType": "FARGATE",
        "containers": containers,
        "overrides": task.get("overrides", {}),
        "createdAt": now,
        "version": version,
    }
    if last_status in {"RUNNING", "STOPPED"}:
        detail["startedAt"] = now
    if last_status == "STOPPED":
        detail |= {"stoppedAt": now, "stopCode": stop_code or "EssentialContainerExited"}
        detail["stoppedReason"] = stopped_reason or "Essential container in task exited"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATE_CHANGE,
        "source": "aws.ecs",
        "account": task["clusterArn"].split(":")[4],
        "time": now,
        "region": task["clusterArn"].split(":")[3],
        "resources": [task["taskArn"]],
        "detail": detail,
    }


def put_entry(event: dict[str, Any]) -> dict[str, Any]:
    """A PutEvents entry for ``event`` (the default bus routes it through the stack's rule)."""
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
    }
