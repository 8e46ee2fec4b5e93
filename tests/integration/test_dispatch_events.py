"""Every file in events/ goes through the handler string template.yaml names, against the deployed stack."""

from __future__ import annotations

import json
import uuid

import pytest

from taskrunner.domain.runs import idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest, Trigger
from tests.conftest import load_event
from tests.integration.conftest import EXAMPLE_BUCKET, Stack


def run_id(job: str, trigger: Trigger, **fields: object) -> str:
    return run_id_for(idempotency_key(DispatchRequest.model_validate({"job": job, "trigger": trigger, **fields})))


def env_of(task: dict[str, object]) -> dict[str, str]:
    overrides = task["overrides"]["containerOverrides"][0]  # type: ignore[index]
    return {item["name"]: item["value"] for item in overrides["environment"]}


@pytest.mark.parametrize("name", ["s3-object-created.json", "s3-object-created.sqs.json"])
def test_upload_launches_thumbnails_once_in_either_form(stack: Stack, name: str) -> None:
    """GIVEN an S3 upload under uploads/images/*.jpg, bare (sam local invoke) or SQS-wrapped (the rule's target)
    WHEN the Dispatcher handles it, in both forms, in any order
    THEN exactly one thumbnails task exists for that upload, carrying the bucket and key."""
    stack.invoke("DispatchFunctionName", load_event(name))
    event = load_event("s3-object-created.json")
    rid = run_id("thumbnails", Trigger.S3, event=event)

    tasks = [t for t in stack.tasks(status="RUNNING") + stack.tasks(status="STOPPED") if t["startedBy"] == f"{rid}-1"]

    assert len(tasks) == 1
    env = env_of(tasks[0])
    assert env["TASKRUNNER_S3_BUCKET"] == EXAMPLE_BUCKET
    assert env["TASKRUNNER_S3_KEY"] == "uploads/images/cat.jpg"
    assert env["TASKRUNNER_RUN_ID"] == rid
    assert stack.run_record(rid)["status"] in {"PENDING", "RUNNING"}  # type: ignore[index]


@pytest.mark.parametrize("name", ["order-placed.json", "order-placed.sqs.json"])
def test_custom_event_pattern_launches_order_audit(stack: Stack, name: str) -> None:
    stack.invoke("DispatchFunctionName", load_event(name))
    rid = run_id("order-audit", Trigger.EVENT, event=load_event("order-placed.json"))

    run = stack.run_record(rid)

    assert run is not None
    assert run["task_arn"].startswith("arn:aws:ecs:")
    event = json.loads(env_of(stack.task(run["task_arn"]))["TASKRUNNER_EVENT"])
    assert event["detail"]["total"] == 1250


@pytest.mark.parametrize("name", ["schedule-tick.json", "schedule-tick.sqs.json"])
def test_late_schedule_tick_is_recorded_missed_not_run(stack: Stack, name: str) -> None:
    """The sample tick is for 05:00 today; nightly-report's starting deadline is 600 s, so it is long missed."""
    stack.invoke("DispatchFunctionName", load_event(name))
    run = stack.run_record(run_id("nightly-report", Trigger.SCHEDULE, scheduled_at="2026-11-26T05:00:00Z"))

    assert run is not None
    assert run["status"] == "MISSED"
    assert run["reason"].startswith("missed-deadline")
    assert stack.tasks(family="taskrunner-nightly-report") == []


@pytest.mark.parametrize("name", ["manual-run.json", "manual-run.sqs.json"])
def test_manual_run_launches_with_its_environment(stack: Stack, name: str) -> None:
    stack.invoke("DispatchFunctionName", load_event(name))
    rid = run_id("nightly-report", Trigger.MANUAL, request_id="c0ffee00-1234-4bcd-9f00-000000000001")

    env = env_of(stack.task(stack.run_record(rid)["task_arn"]))  # type: ignore[index]

    assert env["REPORT_DATE"] == "2026-11-25"
    assert env["TASKRUNNER_TRIGGER"] == "manual"


def test_mixed_batch_dead_letters_the_bad_record_and_launches_the_good_one(stack: Stack) -> None:
    """GIVEN a batch with an unknown job and a valid upload (its own, never delivered before)
    WHEN the Dispatcher handles it
    THEN the bad record is in the DLQ with its reason (acknowledged, not retried), the good one launched."""
    batch = load_event("dispatch-mixed-batch.sqs.json")
    good = json.loads(batch["Records"][1]["body"])
    good["event"]["detail"]["object"]["sequencer"] = uuid.uuid4().hex.upper()  # a new upload: a new run
    batch["Records"][1]["body"] = json.dumps(good)

    response = stack.invoke("DispatchFunctionName", batch)

    assert response == {"batchItemFailures": []}
    sqs = stack.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=stack.outputs["DispatchDeadLetterQueueUrl"], MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    reasons = [m["MessageAttributes"]["taskrunner-reason"]["StringValue"] for m in messages]
    assert any("unknown job 'no-such-job'" in r for r in reasons)
    assert any(json.loads(m["Body"])["job"] == "no-such-job" for m in messages)
    assert not any(json.loads(m["Body"]).get("job") == "thumbnails" for m in messages)
    rid = run_id("thumbnails", Trigger.S3, event=good["event"])
    run = stack.run_record(rid)
    assert run is not None
    assert (run["job"], run["attempt"]) == ("thumbnails", 1)
    assert run["status"] in {"PENDING", "RUNNING"}  # launched: its task is provisioning or running
    (task,) = [t for t in stack.tasks(status="RUNNING") + stack.tasks(status="STOPPED") if t["startedBy"] == f"{rid}-1"]
    assert run["task_arn"] == task["taskArn"]
    assert env_of(task)["TASKRUNNER_S3_KEY"] == "uploads/images/cat.jpg"
