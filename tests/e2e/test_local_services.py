"""Worker services as local processes: the fake ECS agent, and scale-in that spares protected workers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskrunner.local.activity import Activity
from taskrunner.local.agent import FakeEcsAgent
from taskrunner.local.jobs import LocalCommand, command_argv
from taskrunner.local.tasks import TaskEnvironment, WorkerServices, base_environment, wait_all
from taskrunner.worker import TaskProtection

CLUSTER_ARN = "arn:aws:ecs:us-east-1:123456789012:cluster/local"
TASK_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/taskrunner-image-worker:1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def agent() -> Iterator[FakeEcsAgent]:
    fake = FakeEcsAgent().start()
    yield fake
    fake.stop()


def test_the_worker_librarys_protection_client_talks_to_the_fake_agent(agent: FakeEcsAgent) -> None:
    uri = agent.register("w1", "arn:aws:ecs:us-east-1:123456789012:task/local/w1", in_service=True)
    protection = TaskProtection(uri)

    assert protection.enable(5)
    assert agent.protected("w1")
    assert protection.disable()
    assert not agent.protected("w1")


def test_a_standalone_task_cannot_be_protected(agent: FakeEcsAgent) -> None:
    uri = agent.register("t1", "arn:aws:ecs:us-east-1:123456789012:task/local/t1", in_service=False)
    protection = TaskProtection(uri)

    assert not protection.enable(5)
    assert not protection.usable  # the worker stops asking, as it does on ECS
    assert not agent.protected("t1")


def test_protection_expires() -> None:
    clock = Clock()
    agent = FakeEcsAgent(now=clock).start()
    try:
        uri = agent.register("w1", "arn:aws:ecs:us-east-1:123456789012:task/local/w1", in_service=True)
        assert TaskProtection(uri).enable(1)
        clock.now += 59
        assert agent.protected("w1")
        clock.now += 2
        assert not agent.protected("w1")
    finally:
        agent.stop()


class FakeEcs:
    """DescribeServices/ListServices/DescribeTaskDefinition of one service whose desired count the test sets."""

    def __init__(self) -> None:
        self.desired = 0

    def get_paginator(self, name: str) -> Any:
        assert name == "list_services"

        class Paginator:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"serviceArns": [f"{CLUSTER_ARN.replace(':cluster/', ':service/')}/taskrunner-image-worker"]}]

        return Paginator()

    def describe_services(self, **_: Any) -> dict[str, Any]:
        service = {"serviceName": "taskrunner-image-worker", "desiredCount": self.desired}
        return {"services": [service | {"taskDefinition": TASK_DEFINITION}]}

    def describe_task_definition(self, **_: Any) -> dict[str, Any]:
        environment = [{"name": "TASKRUNNER_JOB", "value": "image-worker"}, {"name": "TASKRUNNER_EFS_DIR", "value": ""}]
        return {"taskDefinition": {"containerDefinitions": [{"name": "job", "environment": environment}]}}


class Catalog:
    def command(self, job: str) -> LocalCommand:
        return LocalCommand(command_argv("python -c 'import time; time.sleep(60)'"), "--command")

    def efs_path(self, job: str) -> str:
        return ""


def test_scale_in_stops_only_unprotected_workers_and_protected_ones_once_they_drop_it(
    agent: FakeEcsAgent, tmp_path: Path
) -> None:
    """GIVEN a service of three workers, two of them protected (holding messages)
    WHEN its desired count drops to one
    THEN only the unprotected worker gets SIGTERM; a protected one is stopped once it drops protection."""
    ecs = FakeEcs()
    environment = TaskEnvironment(tmp_path, "http://127.0.0.1:1", "us-east-1", {}, base_environment())
    services = WorkerServices(ecs, "local", CLUSTER_ARN, Catalog(), environment, agent, Activity())  # type: ignore[arg-type]
    ecs.desired = 3
    services.sync()
    [pool] = services.snapshot()
    try:
        assert len(pool.running()) == 3
        first, second, third = pool.workers
        for worker in (second, third):
            assert agent._put(worker.worker_id, {"ProtectionEnabled": True, "ExpiresInMinutes": 10})[0] == 200

        ecs.desired = 1
        services.sync()
        assert [w.worker_id for w in pool.draining()] == [first.worker_id]
        assert len(pool.running()) == 2  # above desired: protected tasks wait, as on ECS

        agent._put(second.worker_id, {"ProtectionEnabled": False})
        services.sync()
        assert {w.worker_id for w in pool.draining()} >= {second.worker_id}
        assert [w.worker_id for w in pool.running()] == [third.worker_id]
        assert first.popen.args[0] == sys.executable  # "python" in a LocalCommand is this interpreter
    finally:
        wait_all([worker.popen for worker in services.stop_all()], 5)
    assert all(w.popen.poll() is not None for w in (first, second, third))
