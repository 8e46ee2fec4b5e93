"""DispatchRequest and requests_from: every body the dispatch queue (or a direct invoke) can carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskrunner.domain.errors import PermanentError
from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.triggers import DispatchRequest, S3Object, Trigger, is_bare_event, requests_from, s3_matches
from tests.conftest import load_event
from tests.unit.fakes import (
    DATA_BUCKET,
    FakeRegistry,
    eventbridge_event,
    job_spec,
    s3_event,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"

THUMBNAILS = job_spec(name="thumbnails", s3_bucket=DATA_BUCKET, s3_prefix="uploads/images/")
ORDER_AUDIT = job_spec(
    name="order-audit", event_pattern={"source": ["com.example.orders"], "detail-type": ["OrderPlaced"]}
)
NIGHTLY = job_spec(name="nightly-report")


def registry(*specs: JobSpec) -> FakeRegistry:
    return FakeRegistry(*(specs or (THUMBNAILS, ORDER_AUDIT, NIGHTLY)))


#: Samples that are another Lambda's input (the Tracker's ECS task state changes), not the Dispatcher's.
NOT_FOR_THE_DISPATCHER = {"aws.ecs"}


def bodies_in_events_folder() -> list[tuple[str, Any]]:
    """(label, body) for every Dispatcher sample: the bare files, and each record body of the .sqs.json files."""
    found: list[tuple[str, Any]] = []
    for path in sorted(EVENTS.glob("*.json")):
        data = load_event(path.name)
        if data.get("source") in NOT_FOR_THE_DISPATCHER:
            continue
        if "Records" in data:
            found += [(f"{path.name}#{i}", record["body"]) for i, record in enumerate(data["Records"])]
        else:
            found.append((path.name, data))
    return found


SAMPLES = bodies_in_events_folder()


def test_the_events_folder_has_every_trigger_kind():
    assert len(SAMPLES) >= 9
    kinds = {r.trigger for _, body in SAMPLES for r in requests_from(body, registry().all)}
    assert kinds >= {Trigger.SCHEDULE, Trigger.S3, Trigger.EVENT, Trigger.MANUAL}


@pytest.mark.parametrize(("label", "body"), SAMPLES, ids=[label for label, _ in SAMPLES])
def test_every_sample_body_parses(label, body):
    requests = requests_from(body, registry().all)
    assert requests, label
    assert all(isinstance(r, DispatchRequest) for r in requests)


def test_a_task_state_change_sent_to_the_dispatcher_is_permanent():
    """The Tracker's sample reaches no job here: dead-lettered with a reason, not retried."""
    others = [load_event(p.name) for p in sorted(EVENTS.glob("*.json"))]
    others = [data for data in others if data.get("source") in NOT_FOR_THE_DISPATCHER]
    assert others
    for data in others:
        with pytest.raises(
            PermanentError,
            match=r"no job matches an EventBridge event \(source 'aws\.ecs', detail-type 'ECS Task State Change'\)",
        ):
            requests_from(data, registry().all)


@pytest.mark.parametrize("name", ["schedule-tick", "manual-run", "order-placed", "s3-object-created"])
def test_sqs_body_and_bare_file_give_the_same_request(name):
    """The queued envelope and the direct invocation of the same sample mean the same run."""
    (sqs_body,) = [r["body"] for r in load_event(f"{name}.sqs.json")["Records"]]
    from_queue = requests_from(sqs_body, registry().all)
    direct = requests_from(load_event(f"{name}.json"), registry().all)
    assert [(r.job, r.trigger) for r in from_queue] == [(r.job, r.trigger) for r in direct]


def test_schedule_envelope():
    (request,) = requests_from(load_event("schedule-tick.json"), registry().all)
    assert request.job == "nightly-report"
    assert request.trigger is Trigger.SCHEDULE
    assert request.scheduled_at == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def test_naive_scheduled_at_is_taken_as_utc():
    (request,) = requests_from({"job": "a", "trigger": "schedule", "scheduled_at": "2026-11-26T05:00:00"}, list)
    assert request.scheduled_at == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def test_scheduled_at_keeps_its_offset():
    (request,) = requests_from({"job": "a", "trigger": "schedule", "scheduled_at": "2026-11-26T06:00:00+01:00"}, list)
    assert request.scheduled_at == datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    assert request.scheduled_at.utcoffset() == timedelta(hours=1)
    assert request.scheduled_at.tzinfo == timezone(timedelta(hours=1))


def test_manual_envelope_with_env():
    (request,) = requests_from(load_event("manual-run.json"), registry().all)
    assert request.trigger is Trigger.MANUAL
    assert request.request_id == "c0ffee00-1234-4bcd-9f00-000000000001"
    assert request.env == {"REPORT_DATE": "2026-11-25"}


def test_s3_envelope_exposes_the_object():
    (request,) = requests_from(load_event("s3-object-created.sqs.json")["Records"][0]["body"], registry().all)
    assert request.s3_object() == S3Object(
        bucket=DATA_BUCKET, key="uploads/images/cat.jpg", sequencer="00617F08299329D189", size=5
    )


def test_event_envelope_has_no_s3_object():
    (request,) = requests_from(load_event("order-placed.sqs.json")["Records"][0]["body"], registry().all)
    assert request.trigger is Trigger.EVENT
    assert request.event is not None
    assert request.event.detail_type == "OrderPlaced"
    assert request.s3_object() is None


def test_envelopes_do_not_consult_the_registry():
    """An envelope names its job; whether it exists is the Dispatcher's question (UnknownJob)."""

    def no_registry() -> list[JobSpec]:
        raise AssertionError("requests_from read the registry for an envelope")

    (request,) = requests_from({"job": "no-such-job", "trigger": "manual", "request_id": "12345678"}, no_registry)
    assert request.job == "no-such-job"


# --------------------------------------------------------------------------- bare events


def test_bare_s3_event_routes_by_bucket_prefix_and_suffix():
    jobs = registry(
        job_spec(name="images", s3_bucket=DATA_BUCKET, s3_prefix="uploads/images/"),
        job_spec(name="jpegs", s3_bucket=DATA_BUCKET, s3_prefix="uploads/", s3_suffix=".jpg"),
        job_spec(name="everything", s3_bucket=DATA_BUCKET),
        job_spec(name="pngs", s3_bucket=DATA_BUCKET, s3_suffix=".png"),
        job_spec(name="docs", s3_bucket=DATA_BUCKET, s3_prefix="uploads/docs/"),
        job_spec(name="other-bucket", s3_bucket="another-bucket", s3_prefix="uploads/images/"),
        job_spec(name="no-s3-trigger"),
    )
    requests = requests_from(s3_event("uploads/images/cat.jpg"), jobs.all)

    assert sorted(r.job for r in requests) == ["everything", "images", "jpegs"]
    assert {r.trigger for r in requests} == {Trigger.S3}


def test_bare_s3_sample_routes_to_its_job():
    (request,) = requests_from(load_event("s3-object-created.json"), registry().all)
    assert (request.job, request.trigger) == ("thumbnails", Trigger.S3)


def test_bare_custom_event_routes_by_pattern():
    jobs = registry(
        ORDER_AUDIT,
        job_spec(name="big-orders", event_pattern={"detail": {"total": [{"numeric": [">=", 1000]}]}}),
        job_spec(name="small-orders", event_pattern={"detail": {"total": [{"numeric": ["<", 1000]}]}}),
        job_spec(name="other-source", event_pattern={"source": ["com.example.billing"]}),
        THUMBNAILS,
    )
    requests = requests_from(load_event("order-placed.json"), jobs.all)
    assert sorted(r.job for r in requests) == ["big-orders", "order-audit"]
    assert {r.trigger for r in requests} == {Trigger.EVENT}


def test_pattern_sees_the_event_as_delivered_with_detail_type_spelled_with_a_dash():
    jobs = registry(job_spec(name="typed", event_pattern={"detail-type": [{"prefix": "Order"}]}))
    assert [r.job for r in requests_from(eventbridge_event(), jobs.all)] == ["typed"]


def test_bare_s3_event_can_also_match_a_pattern():
    """A job may listen to uploads through a pattern as well; both kinds of request come back."""
    jobs = registry(THUMBNAILS, job_spec(name="s3-audit", event_pattern={"source": ["aws.s3"]}))
    requests = requests_from(s3_event(), jobs.all)
    assert sorted((r.job, r.trigger) for r in requests) == [("s3-audit", Trigger.EVENT), ("thumbnails", Trigger.S3)]


def test_bare_event_with_epoch_time_is_accepted():
    """moto's EventBridge puts an epoch number in ``time``."""
    event = eventbridge_event() | {"time": 1795680000}
    (request,) = requests_from(event, registry().all)
    assert request.event is not None
    assert request.event.time == datetime.fromtimestamp(1795680000, UTC)


@pytest.mark.parametrize(
    "event",
    [
        eventbridge_event(source="com.example.unknown", detail_type="Whatever"),
        s3_event("other/prefix/file.txt"),
        s3_event(bucket="someone-elses-bucket"),
    ],
    ids=["custom", "s3-prefix", "s3-bucket"],
)
def test_bare_event_matching_no_job_is_permanent_with_a_reason(event):
    with pytest.raises(
        PermanentError, match=r"no job matches an EventBridge event \(source '[\w.]+', detail-type '[\w ]+'\)"
    ):
        requests_from(event, registry().all)


def test_bare_event_with_an_empty_registry_is_permanent():
    with pytest.raises(PermanentError, match="no job matches"):
        requests_from(s3_event(), list)


def test_bare_s3_event_without_bucket_is_permanent():
    event = s3_event()
    del event["detail"]["bucket"]
    with pytest.raises(PermanentError, match=r"bucket\.name or object\.key"):
        requests_from(event, registry().all)


def test_bare_event_missing_envelope_fields_is_permanent():
    event = eventbridge_event()
    del event["id"], event["time"]
    with pytest.raises(PermanentError, match=r"EventBridge event .* that is not valid: (id|time)"):
        requests_from(event, registry().all)


@pytest.mark.parametrize(
    ("payload", "bare"),
    [
        ({"detail-type": "x", "source": "y"}, True),
        ({"detail-type": "x", "source": "y", "job": "a"}, False),
        ({"source": "y"}, False),
        ({"job": "a", "trigger": "manual"}, False),
    ],
)
def test_is_bare_event(payload, bare):
    assert is_bare_event(payload) is bare


def test_s3_matches_needs_a_bucket():
    obj = S3Object(bucket=DATA_BUCKET, key="uploads/images/cat.jpg")
    assert s3_matches(job_spec(s3_bucket=DATA_BUCKET), obj)
    assert not s3_matches(job_spec(s3_prefix="uploads/"), obj)


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("body", ["", "{", "not json", "{'job': 'a'}", '{"job": "a",}', "\x00"])
def test_non_json_is_permanent(body):
    with pytest.raises(PermanentError, match="body is not JSON"):
        requests_from(body, registry().all)


@pytest.mark.parametrize(("body", "kind"), [("[]", "list"), ('"job"', "str"), ("42", "int"), ("null", "NoneType")])
def test_non_object_is_permanent(body, kind):
    with pytest.raises(PermanentError, match=f"body must be a JSON object, got {kind}"):
        requests_from(body, registry().all)


@pytest.mark.parametrize("trigger", ["cron", "SCHEDULE", "retry", "", None, 1])
def test_unknown_trigger_is_permanent(trigger):
    with pytest.raises(PermanentError, match="trigger"):
        requests_from({"job": "a", "trigger": trigger, "scheduled_at": "2026-11-26T05:00:00Z"}, list)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"job": "a", "trigger": "schedule"}, "a schedule request needs 'scheduled_at'"),
        ({"job": "a", "trigger": "s3"}, "a s3 request needs 'event'"),
        ({"job": "a", "trigger": "event"}, "a event request needs 'event'"),
        ({"job": "a", "trigger": "manual"}, "a manual request needs 'request_id'"),
        ({"job": "a", "trigger": "s3", "event": eventbridge_event()}, "an s3 request needs an aws.s3 event"),
        ({"trigger": "manual", "request_id": "12345678"}, "job: Field required"),
        ({"job": "", "trigger": "manual", "request_id": "12345678"}, "job: String should have at least 1"),
    ],
)
def test_missing_required_field_per_trigger_is_permanent(body, reason):
    with pytest.raises(PermanentError) as caught:
        requests_from(body, registry().all)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("invalid request: ")


@pytest.mark.parametrize("drop", ["bucket", "object"])
def test_s3_envelope_without_bucket_or_key_is_permanent(drop):
    event = s3_event()
    del event["detail"][drop]
    with pytest.raises(PermanentError, match=r"S3 event detail lacks bucket\.name or object\.key"):
        requests_from({"job": "thumbnails", "trigger": "s3", "event": event}, registry().all)


@pytest.mark.parametrize("detail", ["a string", [1, 2], None, {"bucket": "b", "object": {"key": "k"}}])
def test_s3_envelope_with_malformed_detail_is_permanent(detail):
    event = s3_event() | {"detail": detail}
    with pytest.raises(PermanentError):
        requests_from({"job": "thumbnails", "trigger": "s3", "event": event}, registry().all)


@pytest.mark.parametrize("request_id", ["short", "x" * 65], ids=["too-short", "too-long"])
def test_request_id_length_is_bounded(request_id):
    with pytest.raises(PermanentError, match="request_id"):
        requests_from({"job": "a", "trigger": "manual", "request_id": request_id}, list)


RUN_ID = "0123456789abcdef0123456789"
MANUAL = {"job": "a", "trigger": "manual", "request_id": "12345678"}


@pytest.mark.parametrize("attempt", [0, 11, -1, "one"])
def test_attempt_is_bounded(attempt):
    with pytest.raises(PermanentError, match="attempt"):
        requests_from(MANUAL | {"run_id": RUN_ID, "attempt": attempt}, list)


@pytest.mark.parametrize("name", ["schedule-tick", "manual-run", "order-placed", "s3-object-created"])
def test_a_retry_is_the_original_body_with_run_id_and_attempt(name):
    (original,) = requests_from(load_event(f"{name}.sqs.json")["Records"][0]["body"], registry().all)
    body = json.loads(original.model_dump_json(by_alias=True, exclude_defaults=True))
    (retry,) = requests_from(body | {"run_id": RUN_ID, "attempt": 3}, registry().all)
    assert (retry.job, retry.trigger, retry.run_id, retry.attempt) == (original.job, original.trigger, RUN_ID, 3)
    assert retry.model_dump(exclude={"run_id", "attempt"}) == original.model_dump(exclude={"run_id", "attempt"})


@pytest.mark.parametrize(
    "extra",
    [{"attempt": 2}, {"run_id": RUN_ID}, {"run_id": RUN_ID, "attempt": 1}],
    ids=["attempt-without-run", "run-without-attempt", "run-with-attempt-1"],
)
def test_run_id_and_attempt_come_together(extra):
    with pytest.raises(PermanentError, match=r"a retry \(attempt > 1\) names its run_id, and only a retry does"):
        requests_from(MANUAL | extra, list)


@pytest.mark.parametrize("run_id", ["r" * 100, RUN_ID.upper(), RUN_ID[:-1], RUN_ID + "0", "../" + RUN_ID[3:], ""])
def test_run_id_must_be_a_run_id(run_id):
    """A retry's run id comes from the message: it must look like one (it becomes startedBy and the token)."""
    with pytest.raises(PermanentError, match="run_id"):
        requests_from(MANUAL | {"run_id": run_id, "attempt": 2}, list)


def test_unknown_envelope_fields_are_permanent():
    with pytest.raises(PermanentError, match="priority"):
        requests_from({"job": "a", "trigger": "manual", "request_id": "12345678", "priority": "high"}, list)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "", "A B", "É", "A" * 129])
def test_invalid_env_names_are_permanent(name):
    body = {"job": "a", "trigger": "manual", "request_id": "12345678", "env": {name: "x"}}
    with pytest.raises(PermanentError, match="invalid environment variable names"):
        requests_from(body, list)


@pytest.mark.parametrize("name", ["A", "_private", "taskrunner_lower", "PATH", "A" * 128])
def test_ordinary_env_names_are_accepted(name):
    body = {"job": "a", "trigger": "manual", "request_id": "12345678", "env": {name: "x"}}
    (request,) = requests_from(body, list)
    assert request.env == {name: "x"}


def test_env_overrides_are_capped():
    body = {"job": "a", "trigger": "manual", "request_id": "12345678", "env": {"BIG": "x" * 4094}}
    with pytest.raises(PermanentError, match="exceed 4096 characters"):
        requests_from(body, list)


def test_env_values_must_be_strings():
    body = {"job": "a", "trigger": "manual", "request_id": "12345678", "env": {"N": 1}}
    with pytest.raises(PermanentError, match=r"env\.N"):
        requests_from(body, list)


@pytest.mark.parametrize("when", ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "", 1e20])
def test_invalid_datetimes_are_permanent(when):
    with pytest.raises(PermanentError, match="scheduled_at"):
        requests_from({"job": "a", "trigger": "schedule", "scheduled_at": when}, list)


def test_error_summary_is_one_line_and_capped():
    body = {"job": 1, "trigger": "bogus", "attempt": 0, "env": {"TASKRUNNER_X": 1}, "extra": True}
    with pytest.raises(PermanentError) as caught:
        requests_from(body, list)
    message = str(caught.value)
    assert "\n" not in message
    assert "more)" in message
    assert message.count(";") == 2


def test_validation_errors_never_leak_as_pydantic_errors():
    """The handler dead-letters PermanentError only; a raw ValidationError would be retried forever."""
    for body in [{"job": "a", "trigger": "schedule"}, {"job": "a"}, {}, eventbridge_event() | {"detail-type": 5}]:
        with pytest.raises(PermanentError) as caught:
            requests_from(body, registry().all)
        assert type(caught.value) is PermanentError


# --------------------------------------------------------------------------- hostile bodies (bugs found by fuzzing)


def test_deeply_nested_json_is_permanent():
    """GIVEN a 200 KB body of nested brackets (fits in one SQS message)
    WHEN it is parsed
    THEN it is a PermanentError, not a RecursionError that the batch would retry until the DLQ, reason-less."""
    depth = 100_000
    with pytest.raises(PermanentError):
        requests_from('{"job": ' + "[" * depth + "]" * depth + "}", registry().all)


def test_integer_beyond_pythons_digit_limit_is_permanent():
    """json.loads raises a plain ValueError (not JSONDecodeError) for integers of more than 4300 digits."""
    with pytest.raises(PermanentError):
        requests_from(
            '{"job": "a", "trigger": "manual", "request_id": "12345678", "attempt": 1' + "0" * 5000 + "}",
            list,
        )


@pytest.mark.parametrize(
    "detail_json",
    ['{"note": "\\ud800"}', '{"x": ' * 300 + "1" + "}" * 300],
    ids=["lone-surrogate", "nested-300-deep"],
)
def test_event_the_launch_cannot_serialise_is_rejected_up_front(detail_json):
    r"""GIVEN an event whose detail is valid JSON that pydantic cannot serialise back (the escape \ud800
    is not encodable as UTF-8; 300 levels exceed pydantic's serialiser depth)
    WHEN it is parsed
    THEN it is rejected now, or the request it yields can be serialised (the launch puts the event in the
    task's environment as JSON); a request that crashes the launch later is neither."""
    event = json.dumps(eventbridge_event(detail={"note": "x"})).replace('{"note": "x"}', detail_json)
    body = '{"job": "order-audit", "trigger": "event", "event": ' + event + "}"
    try:
        requests = requests_from(body, registry().all)
    except PermanentError:
        return
    (request,) = requests  # not rejected: then exactly the one request, and it serialises
    assert request.event is not None
    request.event.model_dump_json(by_alias=True)
