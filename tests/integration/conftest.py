"""The integration tier: the real template.yaml deployed into an embedded AWS (moto server).

One deployment per session (about three seconds); tests keep apart by using their own event ids and
by stopping the cluster's tasks before each test.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.local.esm import EventSourceMapping
from taskrunner.local.invoke import DeployedFunction, deployed_function, invoke
from taskrunner.local.server import embedded_aws
from taskrunner.local.stack import Deployment, deploy, network
from tests.conftest import ROOT

STACK = "taskrunner"
EXAMPLE_BUCKET = "taskrunner-example-data"  # the bucket the files in events/ name


@dataclass
class Stack:
    endpoint: str
    deployment: Deployment

    @property
    def outputs(self) -> dict[str, str]:
        return self.deployment.outputs

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.endpoint)

    def function(self, output: str) -> DeployedFunction:
        return deployed_function(self.outputs[output], self.client("lambda"))

    def invoke(self, output: str, event: Any) -> Any:
        return invoke(self.function(output), event)

    def tasks(self, family: str | None = None, status: str = "RUNNING") -> list[dict[str, Any]]:
        ecs = self.client("ecs")
        kwargs: dict[str, Any] = {"cluster": self.outputs["ClusterName"], "desiredStatus": status}
        if family:
            kwargs["family"] = family
        arns = ecs.list_tasks(**kwargs)["taskArns"]
        if not arns:
            return []
        return list(ecs.describe_tasks(cluster=self.outputs["ClusterName"], tasks=arns, include=["TAGS"])["tasks"])

    def task(self, arn: str) -> dict[str, Any]:
        ecs = self.client("ecs")
        [task] = ecs.describe_tasks(cluster=self.outputs["ClusterName"], tasks=[arn], include=["TAGS"])["tasks"]
        return dict(task)

    def dispatch_queue(self) -> EventSourceMapping:
        """The Dispatcher's SQS event source, delivering as Lambda's poller would."""
        return EventSourceMapping(
            self.client("sqs"),
            self.outputs["DispatchQueueUrl"],
            self.outputs["DispatchQueueArn"],
            self.function("DispatchFunctionName"),
        )

    def submit(self, *bodies: dict[str, Any], delay_s: int = 0) -> None:
        sqs = self.client("sqs")
        for body in bodies:
            sqs.send_message(
                QueueUrl=self.outputs["DispatchQueueUrl"], MessageBody=json.dumps(body), DelaySeconds=delay_s
            )

    def run(self, run_id: str) -> dict[str, Any] | None:
        found = DynamoRunStore(self.outputs["RunsTableName"], self.client("dynamodb")).get(run_id)
        return found.model_dump(mode="json") if found else None


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    warnings.filterwarnings("ignore", message="Tried to parse AWS::")
    with embedded_aws() as endpoint:
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        s3.create_bucket(Bucket=EXAMPLE_BUCKET)
        s3.put_bucket_notification_configuration(
            Bucket=EXAMPLE_BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        parameters = network(endpoint) | {"DataBucketName": EXAMPLE_BUCKET}
        yield Stack(endpoint, deploy(endpoint, ROOT / "template.yaml", STACK, parameters))


@pytest.fixture(autouse=True)
def _no_tasks_running(request: pytest.FixtureRequest) -> None:
    """Each test starts with an idle cluster, so overlap policies see only that test's runs."""
    if "stack" not in request.fixturenames:
        return
    stack: Stack = request.getfixturevalue("stack")
    ecs = stack.client("ecs")
    for task in stack.tasks():
        ecs.stop_task(cluster=stack.outputs["ClusterName"], task=task["taskArn"], reason="test isolation")
