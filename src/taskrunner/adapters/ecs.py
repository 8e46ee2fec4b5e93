"""ECS: RunTask, task listing for overlap and adoption, StopTask, services for the scaler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskrunner.adapters.clients import client, error_code, is_transient
from taskrunner.domain.errors import LaunchRejected, TryLater
from taskrunner.domain.ports import LaunchResult, ServiceCounts

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient


class EcsCluster:
    def __init__(self, ecs: ECSClient | None = None) -> None:
        self.ecs: ECSClient = ecs or client("ecs")

    def run_task(self, request: dict[str, Any]) -> LaunchResult:
        try:
            response = self.ecs.run_task(**request)
        except ClientError as exc:
            # botocore's adaptive retries have already spent their attempts on throttling and 5xx.
            if is_transient(exc):
                raise TryLater(f"RunTask {error_code(exc)} after retries", delay_s=30) from exc
            raise LaunchRejected(f"RunTask rejected: {error_code(exc)}: {exc}") from exc
        except BotoCoreError as exc:
            raise TryLater(f"RunTask transport error: {exc}", delay_s=30) from exc
        return LaunchResult(
            task_arns=[task["taskArn"] for task in response.get("tasks", []) if "taskArn" in task],
            failures=[dict(f) for f in response.get("failures", [])],
        )

    def _list(self, **kwargs: Any) -> Iterator[str]:
        paginator = self.ecs.get_paginator("list_tasks")
        for page in paginator.paginate(**kwargs):
            yield from page.get("taskArns", [])

    def active_tasks(self, cluster: str, family: str) -> list[str]:
        try:
            return list(self._list(cluster=cluster, family=family, desiredStatus="RUNNING"))
        except ClientError as exc:
            raise TryLater(f"ListTasks {error_code(exc)}", delay_s=30) from exc

    def tasks_started_by(self, cluster: str, started_by: str) -> list[str]:
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            arns += self._list(cluster=cluster, startedBy=started_by, desiredStatus=status)
        return arns

    def describe(self, cluster: str, services: list[str]) -> dict[str, ServiceCounts]:
        """DescribeServices in batches of 10 (its limit); a failed batch leaves its services out."""
        counts: dict[str, ServiceCounts] = {}
        for start in range(0, len(services), 10):
            try:
                response = self.ecs.describe_services(cluster=cluster, services=services[start : start + 10])
            except (ClientError, BotoCoreError):
                continue
            for svc in response.get("services", []):
                counts[svc["serviceName"]] = ServiceCounts(
                    svc.get("runningCount", 0), svc.get("pendingCount", 0), svc.get("desiredCount", 0)
                )
        return counts

    def set_desired(self, cluster: str, service: str, desired: int) -> None:
        self.ecs.update_service(cluster=cluster, service=service, desiredCount=desired)

    def describe_tasks(self, cluster: str, task_arns: list[str]) -> dict[str, dict[str, Any]]:
        if not task_arns:
            return {}
        try:
            response = self.ecs.describe_tasks(cluster=cluster, tasks=task_arns[:100])
        except ClientError as exc:
            raise TryLater(f"DescribeTasks {error_code(exc)}", delay_s=30) from exc
        return {task["taskArn"]: dict(task) for task in response.get("tasks", []) if "taskArn" in task}

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        try:
            self.ecs.stop_task(cluster=cluster, task=task_arn, reason=reason[:255])
        except ClientError as exc:
            if error_code(exc) not in {"InvalidParameterException"}:  # already stopped
                raise
