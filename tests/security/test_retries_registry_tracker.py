"""Three more ways in, attacked: a forged retry, a tampered registry entry, a forged task state change.

* A retry names a run and an attempt; what it runs is the run's stored request, of the run's own job.
* A registry entry is an SSM parameter anyone with ``ssm:PutParameter`` on its path could rewrite: it is trusted
  only for what the stack could have written there.
* A state change moves a run only if it is about the run's own task, of its own job, from the stack's cluster —
  and on AWS only through the tracker queue (a direct invoke other than the reconcile tick is refused).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskrunner.domain.autoscale import Autoscaler
from taskrunner.domain.runs import RunStatus, idempotency_key, run_id_for, started_by
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.handlers import dispatcher, tracker
from taskrunner.local.ecs_events import task_state_change
from taskrunner.local.invoke import LambdaContext
from tests.unit.fakes import (
    ACCOUNT,
    CLUSTER_ARN,
    STACK,
    T0,
    DispatcherWorld,
    FakeClock,
    FakeRegistry,
    dispatcher_handler_service,
    job_spec,
    s3_event,
    spec_dict,
    sqs_record,
    tracker_handler_service,
)

CONTEXT = LambdaContext(function_name="security")


def deliver(handler: Any, service: Any, *bodies: dict[str, Any]) -> dict[str, Any]:
    event = {"Records": [sqs_record(json.dumps(body), i) for i, body in enumerate(bodies)]}
    response: dict[str, Any] = handler.handle_event(service, event, CONTEXT)
    return response


def registry() -> FakeRegistry:
    return FakeRegistry(
        job_spec(name="nightly-report", allowed_env_overrides="REPORT_DATE"),
        job_spec(name="thumbnails", retry={"max_attempts": 3, "retry_exit_codes": "3"}),
    )


# --------------------------------------------------------------------------- forged retries


@pytest.fixture
def retrying() -> tuple[DispatcherWorld, str, dict[str, Any]]:
    """An upload's run whose first attempt failed: RETRYING, attempt 2 due (what the Tracker leaves)."""
    world = dispatcher_handler_service(registry(), FakeClock(T0 + 60))
    upload = {"job": "thumbnails", "trigger": "s3", "event": s3_event("uploads/images/cat.jpg")}
    deliver(dispatcher, world.service, upload)
    run_id = run_id_for(idempotency_key(DispatchRequest.model_validate(upload)))
    world.store.update(run_id, RunStatus.FAILED, 1, failure="exit", exit_code=3)
    world.store.update(run_id, RunStatus.RETRYING, 2, reason="retry")
    world.messages.dead.clear()
    return world, run_id, upload


def test_a_retry_naming_another_jobs_run_takes_nothing_over(retrying: tuple[DispatcherWorld, str, Any]) -> None:
    world, run_id, _ = retrying
    forged = {"job": "nightly-report", "trigger": "manual", "request_id": "f" * 16, "run_id": run_id, "attempt": 2}

    deliver(dispatcher, world.service, forged)

    assert len(world.cluster.requests) == 1, "only the original launch"
    [(_, reason)] = world.messages.dead
    assert "of job 'thumbnails', not of 'nightly-report'" in reason
    assert world.store.status(run_id) is RunStatus.RETRYING, "the real retry can still take it"


def test_a_retry_runs_the_runs_stored_request_not_the_messages(retrying: tuple[DispatcherWorld, str, Any]) -> None:
    """GIVEN a forged retry for the right run, carrying another upload's key
    THEN attempt 2 runs the original upload: the message only chose which run and when."""
    world, run_id, _ = retrying
    other = s3_event("uploads/images/someone-elses.jpg", sequencer="FF")
    forged = {"job": "thumbnails", "trigger": "s3", "event": other, "run_id": run_id, "attempt": 2}

    deliver(dispatcher, world.service, forged)

    launched = world.cluster.requests[-1]
    env = {e["name"]: e["value"] for e in launched["overrides"]["containerOverrides"][0]["environment"]}
    assert (env["TASKRUNNER_S3_KEY"], env["TASKRUNNER_ATTEMPT"]) == ("uploads/images/cat.jpg", "2")
    assert launched["startedBy"] == started_by(run_id, 2)


def test_a_retry_cannot_add_overrides_its_run_did_not_begin_with(retrying: tuple[DispatcherWorld, str, Any]) -> None:
    world, run_id, _ = retrying
    forged = {"job": "thumbnails", "trigger": "s3", "event": s3_event(), "run_id": run_id, "attempt": 2}
    forged["env"] = {"LD_PRELOAD": "/tmp/x.so"}

    deliver(dispatcher, world.service, forged)

    assert len(world.cluster.requests) == 1
    [(_, reason)] = world.messages.dead
    assert "did not begin with: ['LD_PRELOAD']" in reason


# --------------------------------------------------------------------------- tampered registry entries

TAMPERED = {
    "another cluster": {"cluster": f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/production"},
    "another job's task definition": {"task_definition": "taskrunner-billing"},
    "another account's task definition": {
        "task_definition": "arn:aws:ecs:us-east-1:210987654321:task-definition/taskrunner-nightly-report:1"
    },
    "a foreign subnet": {"subnets": "subnet-aaa,subnet-attacker"},
    "a foreign security group": {"security_groups": "sg-111,sg-open-to-the-world"},
    "a public IP": {"assign_public_ip": True},
    "another bucket": {"s3_bucket": "attacker-bucket"},
    "another container": {"container": "sidecar"},
}


@pytest.mark.parametrize("change", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_registry_entry_launches_nothing(change: dict[str, Any]) -> None:
    world = dispatcher_handler_service(FakeRegistry(raw={"nightly-report": spec_dict(**change)}), FakeClock(T0 + 60))

    deliver(dispatcher, world.service, {"job": "nightly-report", "trigger": "manual", "request_id": "a" * 16})

    assert world.cluster.requests == []
    assert world.store.items == {}
    [(_, reason)] = world.messages.dead
    assert "does not match this stack" in reason


QUEUE_TAMPERED = {
    "another account's queue": (
        {"queue_url": "https://sqs.us-east-1.amazonaws.com/210987654321/taskrunner-q"},
        "not a queue of this stack",
    ),
    "another stack's queue": (
        {"queue_url": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/billing-q"},
        "not a queue of this stack",
    ),
    "another service": ({"service": "taskrunner-billing"}, "not this stack's service"),
}


@pytest.mark.parametrize(("change", "why"), QUEUE_TAMPERED.values(), ids=QUEUE_TAMPERED.keys())
def test_the_scaler_scales_nothing_a_tampered_entry_names_and_reports_it(change: dict[str, Any], why: str) -> None:
    entry = spec_dict(
        name="image-worker",
        queue_mode="service",
        queue_url=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/taskrunner-ImageWorkerJob-1-WorkQueue-2",
        service="taskrunner-image-worker",
    )
    touched: list[str] = []

    class Recording:
        def depth(self, queue_url: str) -> None:
            touched.append(queue_url)

        def describe(self, cluster: str, services: list[str]) -> dict[str, Any]:
            touched.extend(services)
            return {}

    scaler = Autoscaler(
        FakeRegistry(raw={"image-worker": entry | change}),
        Recording(),  # type: ignore[arg-type]
        Recording(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        stack=STACK,
        clock=lambda: T0,
        sleep=lambda _: None,
    )

    assert scaler.round() == []
    assert touched == [], "neither its queue nor its service was looked at"
    assert why in scaler.invalid["image-worker"]


# --------------------------------------------------------------------------- forged state changes


@pytest.fixture
def running() -> tuple[Any, str, dict[str, Any]]:
    """A manual run of nightly-report launched (PENDING, its task recorded), and the Tracker over the same table."""
    world = dispatcher_handler_service(registry(), FakeClock(T0 + 60))
    request = {"job": "nightly-report", "trigger": "manual", "request_id": "b" * 16}
    deliver(dispatcher, world.service, request)
    run_id = run_id_for(idempotency_key(DispatchRequest.model_validate(request)))
    [task] = world.cluster.launched
    tracked = tracker_handler_service(registry(), store=world.store, cluster=world.cluster)
    return tracked, run_id, task.describe()


def forged_success(task: dict[str, Any], **detail: Any) -> dict[str, Any]:
    event = task_state_change(task, "STOPPED", exit_code=0)
    event["detail"] |= detail
    return event


@pytest.mark.parametrize(
    ("detail", "why"),
    [
        ({"group": "taskrunner:thumbnails"}, "is not job nightly-report's"),
        ({"taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/taskrunner-thumbnails:1"}, "is not"),
        ({"taskArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/taskrunner/{'e' * 32}"}, "runs task"),
        ({"clusterArn": CLUSTER_ARN.replace("taskrunner", "other")}, "another cluster"),
    ],
    ids=["another job's group", "another job's family", "another task", "another cluster"],
)
def test_a_forged_state_change_moves_no_run(running: tuple[Any, str, dict[str, Any]], detail: dict, why: str) -> None:  # type: ignore[type-arg]
    world, run_id, task = running

    deliver(tracker, world.service, forged_success(task, **detail))

    assert world.store.status(run_id) is RunStatus.PENDING
    [(_, reason)] = world.messages.dead
    assert why in reason


def test_the_runs_own_state_change_moves_it(running: tuple[Any, str, dict[str, Any]]) -> None:
    world, run_id, task = running
    deliver(tracker, world.service, forged_success(task))
    assert world.store.status(run_id) is RunStatus.SUCCEEDED


def test_a_direct_invoke_cannot_mark_a_run_succeeded(running: tuple[Any, str, dict[str, Any]]) -> None:
    world, run_id, task = running

    response = tracker.handle_event(world.service, forged_success(task), CONTEXT)

    assert "only from its queue" in response["dead_lettered"]
    assert world.store.status(run_id) is RunStatus.PENDING


def test_the_reconcile_tick_is_the_one_direct_invoke_accepted(running: tuple[Any, str, dict[str, Any]]) -> None:
    world, _, _ = running
    response = tracker.handle_event(world.service, {"action": "reconcile"}, CONTEXT)
    assert response["checked"] == 1
