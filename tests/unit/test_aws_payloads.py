"""Published AWS payloads (tests/events/aws/), run through the handlers' entry points as AWS delivers them.

Each row of ``tests/events/aws/manifest.json`` names a payload file, a function (Dispatcher or Tracker), a
delivery and what a user expects:

* delivery ``direct``: the file is the Lambda event itself (a rule or a service invoking the function, or
  ``sam local invoke -e``);
* delivery ``sqs-body``: the file is the body of one message on the function's queue, delivered in the SQS
  record envelope of the "Using Lambda with Amazon SQS" example (the manifest's ``envelope``); with
  ``input_template`` the body is what the job's EventBridge rule writes (jobs/job.yaml's InputTransformer).

Expectations: ``launched`` (one RunTask, for the named job, and no dead letter), ``dead-lettered`` (every
record acknowledged and kept in the DLQ with a reason containing ``reason_contains``), ``tracked`` (the run
moves to ``status``), ``ignored`` (nothing changes, nothing is dead-lettered), ``error-response`` (a direct
invoke is refused with a returned reason containing ``reason_contains``). In every row no exception escapes
the handler and no record is lost. Phrases are matched case-insensitively.

A row with ``as_run`` tracks a published ECS event as a run of ours: a run of that job is put in the store
and the event's ``detail.startedBy`` is set, in memory, to that run's (a published event cannot carry a
taskrunner run id). The Tracker's cluster is the event's own ``clusterArn``, as if the stack's cluster had
that ARN; the job registry is the manifest's ``jobs``, on the payloads' own buckets.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from taskrunner.domain.runs import RunStatus, idempotency_key, run_id_for, started_by
from taskrunner.handlers import dispatcher, tracker
from taskrunner.local.invoke import LambdaContext
from tests.unit.fakes import (
    CLUSTER_ARN,
    DispatcherWorld,
    FakeClock,
    FakeCluster,
    FakeRegistry,
    FakeRunStore,
    TrackerWorld,
    dispatcher_handler_service,
    job_spec,
    make_run,
    manual_request,
    tracker_handler_service,
)

CORPUS = Path(__file__).resolve().parents[1] / "events" / "aws"
MANIFEST: dict[str, Any] = json.loads((CORPUS / "manifest.json").read_text())
CONTEXT = LambdaContext(function_name="aws-payloads")
EVENT_PLACEHOLDER = "<aws.events.event.json>"


# --------------------------------------------------------------------------- payloads and deliveries


def payload_text(row: dict[str, Any]) -> str:
    if "inline" in row:
        return json.dumps(row["inline"])
    return (CORPUS / str(row["file"])).read_text()


def published_sqs_record(body: str) -> dict[str, Any]:
    """The published SQS record envelope, carrying ``body`` (its MD5 recomputed, as SQS would send it)."""
    envelope = MANIFEST["envelope"]
    published = json.loads((CORPUS / envelope["file"]).read_text())
    record: dict[str, Any] = copy.deepcopy(published["Records"][envelope["record"]])
    record["body"] = body
    record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()  # SQS's own checksum of the body
    return record


def delivered(row: dict[str, Any], text: str) -> tuple[dict[str, Any], list[str]]:
    """The Lambda event for the row, and the SQS message bodies it carries (none for a non-SQS event)."""
    if row["delivery"] == "direct":
        event = json.loads(text)
        records = event.get("Records") if isinstance(event, dict) else None
        bodies = [r["body"] for r in records or [] if isinstance(r, dict) and r.get("eventSource") == "aws:sqs"]
        return event, bodies
    assert row["delivery"] == "sqs-body", row
    body = text
    if "input_template" in row:
        body = row["input_template"].replace(EVENT_PLACEHOLDER, json.dumps(json.loads(text)))
    return {"Records": [published_sqs_record(body)]}, [body]


def as_run_of_ours(row: dict[str, Any], text: str, store: FakeRunStore) -> tuple[str, str]:
    """Seed a PENDING run of ``as_run.job`` and return (the event text naming it in startedBy, the run id)."""
    request = manual_request(row["as_run"]["job"])
    run_id = run_id_for(idempotency_key(request))
    attempt = row["as_run"]["attempt"]
    store.seed(make_run(request, run_id, attempt=attempt, status=RunStatus.PENDING))
    event = json.loads(text)
    # A task of that run carries taskrunner's own marks: its startedBy, its job's group and task-definition family.
    job = row["as_run"]["job"]
    region, account = event["region"], event["account"]
    event["detail"] |= {
        "startedBy": started_by(run_id, attempt),
        "group": f"taskrunner:{job}",
        "taskDefinitionArn": f"arn:aws:ecs:{region}:{account}:task-definition/taskrunner-{job}:1",
    }
    return json.dumps(event, indent=2), run_id


# --------------------------------------------------------------------------- services on fakes


def origin(text: str) -> dict[str, str]:
    """Where a payload comes from — the account, region and bucket of the first EventBridge event in it — so the
    stack the test plays is deployed there (a published example is from its author's account, not ours)."""

    def first_event(node: Any) -> dict[str, Any] | None:
        if isinstance(node, str) and node.lstrip().startswith("{"):
            try:
                node = json.loads(node)
            except ValueError:
                return None
        if isinstance(node, dict):
            if "detail-type" in node:
                return node
            return next((e for e in map(first_event, node.values()) if e), None)
        if isinstance(node, list):
            return next((e for e in map(first_event, node) if e), None)
        return None

    try:
        event = first_event(json.loads(text)) or {}
    except ValueError:
        event = {}
    found: dict[str, str] = {}
    account, region = event.get("account"), event.get("region")
    if isinstance(account, str) and account.isdigit() and len(account) == 12:
        found["CLUSTER_ARN"] = f"arn:aws:ecs:{region or 'us-east-1'}:{account}:cluster/taskrunner"
    if isinstance(region, str) and region:
        found["AWS_REGION"] = region
    bucket = (event.get("detail") or {}).get("bucket", {}) if isinstance(event.get("detail"), dict) else {}
    if isinstance(bucket, dict) and isinstance(bucket.get("name"), str):
        found["DATA_BUCKET"] = bucket["name"]
    return found


def registry(cluster_arn: str = CLUSTER_ARN) -> FakeRegistry:
    # The manifest's jobs as written: an S3 job without a prefix takes the whole bucket.
    specs = [
        job_spec(cluster=cluster_arn, **({"s3_prefix": ""} if "s3_bucket" in entry else {}) | entry)
        for entry in MANIFEST["jobs"]
    ]
    return FakeRegistry(*specs)


def dispatcher_world(text: str) -> DispatcherWorld:
    where = origin(text)
    return dispatcher_handler_service(registry(where.get("CLUSTER_ARN", CLUSTER_ARN)), FakeClock(), **where)


def tracker_world(cluster_arn: str) -> TrackerWorld:
    """The Tracker as local mode and `taskrunner invoke` run it (direct invokes accepted), so every shape a
    direct invoke can carry is judged; on AWS a direct state change is refused (tests/security)."""
    return tracker_handler_service(registry(cluster_arn), accept_direct_events=True, cluster_arn=cluster_arn)


def cluster_of(text: str) -> str:
    """The ECS event's own cluster, so a published state change is for "this stack's" cluster."""
    try:
        payload = json.loads(text)
        arn = payload["detail"]["clusterArn"]
    except (KeyError, TypeError, ValueError):
        return CLUSTER_ARN
    return arn if isinstance(arn, str) and arn else CLUSTER_ARN


# --------------------------------------------------------------------------- expectations


def record_expectations(row: dict[str, Any], count: int) -> list[dict[str, Any]]:
    if "records" in row:
        assert len(row["records"]) == count, "the manifest names an expectation for every record"
        return list(row["records"])
    return [{"expect": row["expect"], **{k: row[k] for k in ("reason_contains", "job") if k in row}}] * count


def refusal_text(response: Any) -> str:
    """The reason a direct invoke was refused with: an ``error`` (or ``dead_lettered``) string in the response."""
    assert isinstance(response, dict), f"the handler returns a JSON object, got {response!r}"
    for key in ("error", "dead_lettered"):
        if isinstance(response.get(key), str) and response[key]:
            return str(response[key])
    raise AssertionError(f"not refused: the response names no error: {response!r}")


def assert_contains(reason: str, phrase: str) -> None:
    assert phrase.lower() in reason.lower(), f"the reason should say {phrase!r}: {reason!r}"


def launched_jobs(cluster: FakeCluster) -> list[str]:
    return [request["taskDefinition"].removeprefix("taskrunner-") for request in cluster.requests]


def applied_updates(store: FakeRunStore) -> list[tuple[str, str, RunStatus | None, bool]]:
    return [call for call in store.calls if call[0] == "update" and call[3]]


ROWS = [pytest.param(row, id=row["id"]) for row in MANIFEST["rows"]]


@pytest.mark.parametrize("row", ROWS)
def test_published_payload(row: dict[str, Any]) -> None:
    text = payload_text(row)
    if row["function"] == "dispatcher":
        check_dispatcher(row, text)
    else:
        assert row["function"] == "tracker", row
        check_tracker(row, text)


def check_dispatcher(row: dict[str, Any], text: str) -> None:
    world = dispatcher_world(text)
    event, bodies = delivered(row, text)

    response = dispatcher.handle_event(world.service, event, CONTEXT)

    if row["expect"] == "error-response":
        assert row["delivery"] == "direct", "only a direct invoke can be answered with an error"
        assert_contains(refusal_text(response), row["reason_contains"])
        assert world.cluster.requests == [], "nothing is launched for a refused payload"
        return
    if row["delivery"] == "direct" and "Records" not in event:
        # A bare event invoked directly: its runs are the response.
        assert row["expect"] == "launched", row
        assert world.messages.dead == [], f"a valid event was dead-lettered: {world.messages.dead}"
        assert [run["result"] for run in response.get("runs", [])] == ["launched"], response
        assert launched_jobs(world.cluster) == [row["job"]], "one run, for the job the event is for"
        assert [item["job"] for item in world.store.items.values()] == [row["job"]]
        return
    if not bodies:
        raise AssertionError(f"expected SQS records to {row['expect']}, the event carries none: {event!r}")
    assert response.get("batchItemFailures") == [], f"every record is settled, none returned: {response!r}"
    expected = record_expectations(row, len(bodies))
    dead = dict(world.messages.dead)
    want_jobs = sorted(e["job"] for e in expected if e["expect"] == "launched")
    assert sorted(launched_jobs(world.cluster)) == want_jobs, "one run launched per valid record, for its job"
    assert sorted(item["job"] for item in world.store.items.values()) == want_jobs
    for body, expectation in zip(bodies, expected, strict=True):
        if expectation["expect"] == "dead-lettered":
            assert body in dead, f"the record is kept in the DLQ, not dropped: {body[:120]!r}"
            assert_contains(dead[body], expectation["reason_contains"])
        else:
            assert expectation["expect"] == "launched", expectation
            assert body not in dead, f"a valid record was dead-lettered: {dead.get(body)!r}"
    assert len(world.messages.dead) == sum(1 for e in expected if e["expect"] == "dead-lettered")


def check_tracker(row: dict[str, Any], text: str) -> None:
    world = tracker_world(cluster_of(text))
    run_id = None
    if "as_run" in row:
        text, run_id = as_run_of_ours(row, text, world.store)
    event, bodies = delivered(row, text)

    response = tracker.handle_event(world.service, event, CONTEXT)

    if row["expect"] == "error-response":
        assert row["delivery"] == "direct", "only a direct invoke can be answered with an error"
        assert_contains(refusal_text(response), row["reason_contains"])
        assert applied_updates(world.store) == [], "a refused payload moves no run"
        return
    if event.get("Records") is not None or row["delivery"] == "sqs-body":
        if not bodies:
            raise AssertionError(f"expected SQS records to {row['expect']}, the event carries none: {event!r}")
        assert response.get("batchItemFailures") == [], f"every record is settled, none returned: {response!r}"
    match row["expect"]:
        case "tracked":
            assert run_id is not None
            assert world.messages.dead == [], f"a state change of a run was dead-lettered: {world.messages.dead}"
            assert world.store.status(run_id) is RunStatus(row["status"]), "the run took the task's state"
            run = world.store.get(run_id)
            assert run is not None
            assert run.task_arn == json.loads(text)["detail"]["taskArn"]
        case "ignored":
            assert world.messages.dead == [], f"an event that is not for us was dead-lettered: {world.messages.dead}"
            assert applied_updates(world.store) == []
            assert "error" not in response, response
        case "dead-lettered":
            expected = record_expectations(row, len(bodies))
            dead = dict(world.messages.dead)
            for body, expectation in zip(bodies, expected, strict=True):
                assert expectation["expect"] == "dead-lettered", expectation
                assert body in dead, f"the record is kept in the DLQ, not dropped: {body[:120]!r}"
                assert_contains(dead[body], expectation["reason_contains"])
            assert len(world.messages.dead) == len(bodies)
            assert applied_updates(world.store) == []
        case other:
            raise AssertionError(f"no such expectation for the Tracker: {other!r}")
