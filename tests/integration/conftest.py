"""The integration tier: the real template.yaml deployed into an embedded AWS (moto server).

One deployment per session (about three seconds); tests keep apart by using their own event ids and
by stopping the cluster's tasks before each test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from taskrunner.local.invoke import environment, resolve
from taskrunner.local.platform import Platform, local_platform
from tests.conftest import ROOT

EXAMPLE_BUCKET = "taskrunner-example-data"  # the bucket the files in events/ name


class Stack(Platform):
    def run_record(self, run_id: str) -> dict[str, Any] | None:
        found = self.run(run_id)
        return found.model_dump(mode="json") if found else None

    def register_job(self, name: str, like: str = "order-audit", **changes: Any) -> str:
        """A job of this stack like ``like`` with ``changes`` to its spec, registered as a job stack would: its
        own task-definition family ``<stack>-<name>`` (what the Dispatcher and Tracker accept) and registry entry."""
        ssm, ecs = self.client("ssm"), self.client("ecs")
        prefix = self.outputs["RegistryPrefix"]
        spec = json.loads(ssm.get_parameter(Name=f"{prefix}/{like}")["Parameter"]["Value"])
        family = f"{self.stack_name}-{name}"
        definition = ecs.describe_task_definition(taskDefinition=spec["task_definition"])["taskDefinition"]
        keep = ("containerDefinitions", "networkMode", "requiresCompatibilities", "cpu", "memory", "taskRoleArn")
        ecs.register_task_definition(family=family, **{k: definition[k] for k in keep if k in definition})
        spec |= {"name": name, "task_definition": family} | changes
        ssm.put_parameter(Name=f"{prefix}/{name}", Value=json.dumps(spec), Type="String", Overwrite=True)
        return name


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with local_platform(ROOT, data_bucket=EXAMPLE_BUCKET) as platform:
        yield Stack(platform.endpoint, platform.deployment)


@pytest.fixture(autouse=True)
def _no_tasks_running(request: pytest.FixtureRequest) -> None:
    """Each test starts with an idle cluster, so overlap policies see only that test's runs."""
    if "stack" not in request.fixturenames:
        return
    stack: Stack = request.getfixturevalue("stack")
    ecs = stack.client("ecs")
    for arn in stack.task_arns():
        ecs.stop_task(cluster=stack.outputs["ClusterName"], task=arn, reason="test isolation")


@pytest.fixture(scope="module")
def handlers_imported(stack: Stack) -> None:
    """Powertools binds its log stream (and reads its service and namespace) when a handler module is first
    imported; imported inside a capsys test, it would keep writing to that test's closed capture. Tests that
    call the CLI in-process with capsys and play handlers import them here first."""
    for output in ("DispatchFunctionName", "ScalerFunctionName", "TrackerFunctionName"):
        function = stack.function(output)
        with environment(function.environment):
            resolve(function.handler)
