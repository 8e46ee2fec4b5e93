"""The deployed platform in the embedded AWS: one object that tests, benchmarks and local mode share."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.runs import Run
from taskrunner.domain.trust import StackBounds
from taskrunner.local.ecs_events import put_entry
from taskrunner.local.esm import EventSourceMapping
from taskrunner.local.invoke import DeployedFunction, deployed_function, invoke
from taskrunner.local.moto_ecs import pin_task_states
from taskrunner.local.server import embedded_aws
from taskrunner.local.stack import REGION, Deployment, deploy, network
from taskrunner.settings import DispatcherSettings

DEFAULT_STACK = "taskrunner"
#: For benchmarks: no per-record INFO logs or EMF lines on stdout.
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


@dataclass
class Platform:
    endpoint: str
    deployment: Deployment

    @property
    def outputs(self) -> dict[str, str]:
        return self.deployment.outputs

    @property
    def stack_name(self) -> str:
        return self.deployment.stack_name

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def function(self, output: str) -> DeployedFunction:
        return deployed_function(self.outputs[output], self.client("lambda"))

    def bounds(self) -> StackBounds:
        """The stack's bounds as its Dispatcher sees them (its environment, with the region Lambda adds)."""
        function = self.function("DispatchFunctionName")
        return DispatcherSettings.from_env(function.environment | {"AWS_REGION": REGION}).bounds()

    def invoke(self, output: str, event: Any) -> Any:
        return invoke(self.function(output), event)

    def dispatch_queue(self, quiet: bool = False, **extra_env: str) -> EventSourceMapping:
        """The Dispatcher's SQS event source, delivering as Lambda's poller would."""
        return EventSourceMapping(
            self.client("sqs"),
            self.outputs["DispatchQueueUrl"],
            self.outputs["DispatchQueueArn"],
            self.function("DispatchFunctionName"),
            extra_env=(QUIET if quiet else {}) | extra_env,
        )

    def tracker_queue(self, quiet: bool = False) -> EventSourceMapping:
        """The Tracker's SQS event source (ECS task state changes, through the stack's rule)."""
        return EventSourceMapping(
            self.client("sqs"),
            self.outputs["TrackerQueueUrl"],
            self.outputs["TrackerQueueArn"],
            self.function("TrackerFunctionName"),
            extra_env=QUIET if quiet else None,
        )

    def publish(self, *events: dict[str, Any]) -> None:
        """PutEvents on the default bus: the stack's rules route them (task state changes → Tracker queue)."""
        client = self.client("events")
        entries = [put_entry(e) for e in events]
        for start in range(0, len(entries), 10):
            response = client.put_events(Entries=entries[start : start + 10])
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"PutEvents failed: {response['Entries']}")

    def submit(self, *bodies: dict[str, Any], delay_s: int = 0) -> None:
        sqs, url = self.client("sqs"), self.outputs["DispatchQueueUrl"]
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), DelaySeconds=delay_s)

    def task_arns(self, family: str | None = None, status: str = "RUNNING") -> list[str]:
        kwargs: dict[str, Any] = {"cluster": self.outputs["ClusterName"], "desiredStatus": status}
        if family:
            kwargs["family"] = family
        pages = self.client("ecs").get_paginator("list_tasks").paginate(**kwargs)
        return [arn for page in pages for arn in page["taskArns"]]

    def tasks(self, family: str | None = None, status: str = "RUNNING") -> list[dict[str, Any]]:
        arns = self.task_arns(family, status)
        ecs, cluster = self.client("ecs"), self.outputs["ClusterName"]
        found: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            found += ecs.describe_tasks(cluster=cluster, tasks=arns[start : start + 100], include=["TAGS"])["tasks"]
        return found

    def task(self, arn: str) -> dict[str, Any]:
        [task] = self.client("ecs").describe_tasks(cluster=self.outputs["ClusterName"], tasks=[arn], include=["TAGS"])[
            "tasks"
        ]
        return dict(task)

    def runs(self) -> DynamoRunStore:
        return DynamoRunStore(self.outputs["RunsTableName"], self.client("dynamodb"))

    def run(self, run_id: str) -> Run | None:
        return self.runs().get(run_id)


@contextmanager
def local_platform(
    root: Path, stack_name: str = DEFAULT_STACK, data_bucket: str | None = None, port: int | None = None
) -> Iterator[Platform]:
    """Start the embedded AWS and deploy the real template into it (about three seconds)."""
    warnings.filterwarnings("ignore", message="Tried to parse AWS::")
    # moto would advance a task's lastStatus on every DescribeTasks; tasks stay RUNNING until StopTask.
    pin_task_states()
    with embedded_aws(port) as endpoint:
        parameters = network(endpoint)
        if data_bucket:
            s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
            s3.create_bucket(Bucket=data_bucket)
            s3.put_bucket_notification_configuration(
                Bucket=data_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
            parameters["DataBucketName"] = data_bucket
        deployment = deploy(endpoint, root / "template.yaml", stack_name, parameters)
        bucket = deployment.outputs["DataBucketName"]
        # moto drops the bucket's EventBridgeConfiguration from the template; the S3 API call works.
        boto3.client("s3", region_name=REGION, endpoint_url=endpoint).put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        # moto's own event-source mappings would try to run each function in Docker on every SendMessage,
        # bumping receive counts until messages dead-letter; the in-process EventSourceMapping plays them.
        lam = boto3.client("lambda", region_name=REGION, endpoint_url=endpoint)
        for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
            lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        yield Platform(endpoint, deployment)
