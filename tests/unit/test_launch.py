"""launch.run_task_request: the RunTask call for one attempt of one run, as a pure function."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskrunner.domain.jobs import Capacity, JobSpec
from taskrunner.domain.launch import MAX_EVENT_ENV_BYTES, capacity_strategy, run_task_request, summarize_failures
from taskrunner.domain.runs import Run, client_token, parse_started_by, started_by
from taskrunner.domain.triggers import DispatchRequest
from tests.unit.fakes import (
    CLUSTER_ARN,
    check_run_task_request,
    event_request,
    job_spec,
    make_run,
    manual_request,
    s3_request,
    schedule_request,
)

RUN_ID = "0123456789abcdef0123456789"


def build(
    spec: JobSpec | None = None,
    request: DispatchRequest | None = None,
    *,
    attempt: int = 1,
    fallback: bool = False,
) -> tuple[dict[str, Any], Run]:
    request = request or schedule_request()
    run = make_run(request, RUN_ID, attempt=attempt)
    result = run_task_request(spec or job_spec(), run, request, fallback=fallback)
    check_run_task_request(result)
    return result, run


def env_of(call: dict[str, Any]) -> dict[str, str]:
    (override,) = call["overrides"]["containerOverrides"]
    pairs = override["environment"]
    names = [p["name"] for p in pairs]
    assert len(names) == len(set(names)), f"duplicate environment names: {names}"
    return {p["name"]: p["value"] for p in pairs}


# --------------------------------------------------------------------------- capacity


@pytest.mark.parametrize(
    ("capacity", "fallback", "provider"),
    [
        (Capacity.FARGATE, False, "FARGATE"),
        (Capacity.FARGATE, True, "FARGATE"),
        (Capacity.FARGATE_SPOT, False, "FARGATE_SPOT"),
        (Capacity.FARGATE_SPOT, True, "FARGATE_SPOT"),  # no fallback promised: stays on Spot
        (Capacity.SPOT_WITH_FALLBACK, False, "FARGATE_SPOT"),
        (Capacity.SPOT_WITH_FALLBACK, True, "FARGATE"),
    ],
)
def test_capacity_strategy(capacity, fallback, provider):
    assert capacity_strategy(capacity, fallback=fallback) == [{"capacityProvider": provider, "weight": 1, "base": 0}]


@pytest.mark.parametrize("capacity", list(Capacity))
def test_request_uses_a_capacity_provider_strategy_not_a_launch_type(capacity):
    call, _ = build(job_spec(capacity=capacity))
    assert "launchType" not in call
    assert call["capacityProviderStrategy"] == capacity_strategy(capacity)


def test_fallback_request_runs_on_demand_with_its_own_client_token():
    spot, _ = build(job_spec(capacity="FARGATE_SPOT_WITH_FALLBACK"))
    on_demand, _ = build(job_spec(capacity="FARGATE_SPOT_WITH_FALLBACK"), fallback=True)
    assert spot["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE_SPOT"
    assert on_demand["capacityProviderStrategy"][0]["capacityProvider"] == "FARGATE"
    assert spot["clientToken"] != on_demand["clientToken"]
    assert on_demand["clientToken"] == f"{spot['clientToken']}-od"


# --------------------------------------------------------------------------- identity, placement, network


def test_identity_fields():
    call, run = build(job_spec(task_definition="taskrunner-nightly-report:7", platform_version="1.4.0"), attempt=3)
    assert call["cluster"] == CLUSTER_ARN
    assert call["taskDefinition"] == "taskrunner-nightly-report:7"
    assert call["count"] == 1
    assert call["startedBy"] == started_by(run.run_id, 3) == f"{RUN_ID}-3"
    assert call["group"] == "taskrunner:nightly-report"
    assert call["clientToken"] == client_token(RUN_ID, 3) == f"tr-{RUN_ID}-3"
    assert call["platformVersion"] == "1.4.0"


def test_client_token_and_started_by_differ_per_attempt():
    """Each attempt is its own ECS request and its own task, found again by its own startedBy."""
    first, _ = build(attempt=1)
    second, _ = build(attempt=2)
    assert first["clientToken"] != second["clientToken"]
    assert first["startedBy"] != second["startedBy"]
    assert parse_started_by(second["startedBy"]) == (RUN_ID, 2)


@pytest.mark.parametrize(("public", "expected"), [(False, "DISABLED"), (True, "ENABLED")])
def test_network_configuration(public, expected):
    call, _ = build(job_spec(subnets="subnet-a, subnet-b", security_groups="sg-1,sg-2", assign_public_ip=public))
    assert call["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"],
            "securityGroups": ["sg-1", "sg-2"],
            "assignPublicIp": expected,
        }
    }


def test_tags_name_the_job_run_and_trigger():
    call, _ = build(request=s3_request(job="nightly-report"))
    assert call["tags"] == [
        {"key": "taskrunner:job", "value": "nightly-report"},
        {"key": "taskrunner:run-id", "value": RUN_ID},
        {"key": "taskrunner:trigger", "value": "s3"},
    ]
    assert call["enableECSManagedTags"] is True
    assert call["propagateTags"] == "TASK_DEFINITION"


def test_overrides_target_the_jobs_container():
    call, _ = build(job_spec(container="worker"))
    assert [o["name"] for o in call["overrides"]["containerOverrides"]] == ["worker"]


# --------------------------------------------------------------------------- environment


def test_environment_of_a_schedule_tick():
    call, _ = build(request=schedule_request(), attempt=2)
    assert env_of(call) == {
        "TASKRUNNER_JOB": "nightly-report",
        "TASKRUNNER_RUN_ID": RUN_ID,
        "TASKRUNNER_ATTEMPT": "2",
        "TASKRUNNER_TRIGGER": "schedule",
        "TASKRUNNER_SCHEDULED_AT": "2026-11-26T05:00:00+00:00",
    }


def test_environment_of_an_upload_names_the_object_and_carries_the_event():
    request = s3_request("uploads/images/cat.jpg", job="nightly-report")
    env = env_of(build(request=request)[0])
    assert env["TASKRUNNER_TRIGGER"] == "s3"
    assert env["TASKRUNNER_S3_BUCKET"] == "taskrunner-example-data"
    assert env["TASKRUNNER_S3_KEY"] == "uploads/images/cat.jpg"
    event = json.loads(env["TASKRUNNER_EVENT"])
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["object"]["key"] == "uploads/images/cat.jpg"
    assert "TASKRUNNER_SCHEDULED_AT" not in env


def test_environment_of_a_custom_event():
    env = env_of(build(request=event_request(job="nightly-report", event_id="e-1"))[0])
    assert env["TASKRUNNER_TRIGGER"] == "event"
    assert json.loads(env["TASKRUNNER_EVENT"])["id"] == "e-1"
    assert "TASKRUNNER_S3_BUCKET" not in env


def test_the_jobs_environment_is_the_task_definitions_and_only_the_runs_own_values_are_overrides():
    """The job's Environment lives in its task definition (one mechanism for one-off, service and per-message
    tasks); RunTask adds what belongs to this run: taskrunner's variables and a manual run's overrides."""
    spec = job_spec(environment={"LOG_LEVEL": "info", "REGION_NAME": "eu"}, allowed_env_overrides="REPORT_DATE")
    env = env_of(build(spec, manual_request(REPORT_DATE="2026-11-25"))[0])
    assert "LOG_LEVEL" not in env
    assert "REGION_NAME" not in env
    assert env["REPORT_DATE"] == "2026-11-25"
    assert env["TASKRUNNER_TRIGGER"] == "manual"


def test_reserved_names_in_the_job_environment_cannot_spoof_the_run():
    spec = job_spec(environment={"TASKRUNNER_RUN_ID": "spoofed", "TASKRUNNER_JOB": "other"})
    env = env_of(build(spec)[0])
    assert env["TASKRUNNER_RUN_ID"] == RUN_ID
    assert env["TASKRUNNER_JOB"] == "nightly-report"


def test_event_too_big_for_the_environment_is_left_out_and_the_rest_kept():
    big = {"blob": "x" * MAX_EVENT_ENV_BYTES}
    env = env_of(build(request=event_request(job="nightly-report", detail=big))[0])
    assert "TASKRUNNER_EVENT" not in env
    assert env["TASKRUNNER_TRIGGER"] == "event"
    assert env["TASKRUNNER_RUN_ID"] == RUN_ID


def test_event_size_is_measured_in_bytes_not_characters():
    """2,100 two-byte characters are fewer than 4,096 characters but more than 4,096 bytes."""
    env = env_of(build(request=event_request(job="nightly-report", detail={"t": "é" * 2100}))[0])
    assert "TASKRUNNER_EVENT" not in env


def test_event_just_under_the_limit_is_kept():
    request = event_request(job="nightly-report", detail={"blob": ""})
    assert request.event is not None
    overhead = len(request.event.model_dump_json(by_alias=True).encode())
    fitting = event_request(job="nightly-report", detail={"blob": "x" * (MAX_EVENT_ENV_BYTES - overhead)})
    env = env_of(build(request=fitting)[0])
    assert len(env["TASKRUNNER_EVENT"].encode()) == MAX_EVENT_ENV_BYTES


def test_overrides_stay_within_ecs_limit_when_the_job_environment_is_large():
    """GIVEN a job whose own environment is 4.5 KB (a JSON config in one variable)
    AND an event just under the 4 KiB event cap
    WHEN the RunTask request is built
    THEN the overrides still fit ECS's 8,192-character limit (the event is left out if it must be),
    so the launch is not rejected for something the Dispatcher chose to add."""
    spec = job_spec(environment={"APP_CONFIG": json.dumps({"k": "v" * 4500})})
    request = event_request(job="nightly-report", detail={"blob": "x" * 3500})
    call = run_task_request(spec, make_run(request, RUN_ID), request)
    size = len(json.dumps(call["overrides"], separators=(",", ":")))
    assert size <= 8192, f"overrides are {size} characters"


def test_request_is_plain_json():
    call, _ = build(request=s3_request(job="nightly-report"))
    assert json.loads(json.dumps(call)) == call


# --------------------------------------------------------------------------- failures


def test_summarize_failures_keeps_arn_reason_and_detail():
    failures = [
        {"arn": "arn:aws:ecs:us-east-1:1:cluster/c", "reason": "Capacity is unavailable at this time", "detail": ""},
        {"reason": "MISSING"},
    ]
    assert json.loads(summarize_failures(failures)) == [
        {"arn": "arn:aws:ecs:us-east-1:1:cluster/c", "reason": "Capacity is unavailable at this time"},
        {"reason": "MISSING"},
    ]


def test_summarize_no_failures():
    assert summarize_failures([]) == "[]"
