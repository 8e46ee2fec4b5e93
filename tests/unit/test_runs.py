"""Runs: the keys that make a launch exactly-once, and the forward-only status order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskrunner.domain.runs import (
    RunStatus,
    as_item,
    client_token,
    idempotency_key,
    parse_started_by,
    run_detail,
    run_id_for,
    started_by,
)
from taskrunner.domain.triggers import requests_from
from tests.conftest import load_event
from tests.unit.fakes import (
    FakeRegistry,
    event_request,
    job_spec,
    make_run,
    manual_request,
    retry_of,
    s3_request,
    schedule_request,
)

# --------------------------------------------------------------------------- idempotency keys


@pytest.mark.parametrize("name", ["schedule-tick", "s3-object-created", "order-placed", "manual-run"])
def test_redelivery_of_the_same_body_gives_the_same_key(name):
    """GIVEN the same queue message delivered twice (SQS is at-least-once)
    THEN both deliveries map to one key, hence one run."""
    body = load_event(f"{name}.sqs.json")["Records"][0]["body"]
    first = [idempotency_key(r) for r in requests_from(body, list)]
    second = [idempotency_key(r) for r in requests_from(body, list)]
    assert first == second


def test_the_same_upload_delivered_bare_or_enveloped_gives_the_same_key():
    registry = FakeRegistry(job_spec(name="thumbnails", s3_bucket="taskrunner-example-data"))
    (bare,) = requests_from(load_event("s3-object-created.json"), registry.all)
    (queued,) = requests_from(load_event("s3-object-created.sqs.json")["Records"][0]["body"], list)
    assert idempotency_key(bare) == idempotency_key(queued)


def test_s3_key_ignores_the_event_id():
    """EventBridge may redeliver an S3 upload under a new event id; the sequencer identifies the write."""
    assert idempotency_key(s3_request(event_id="a")) == idempotency_key(s3_request(event_id="b"))


def test_s3_overwrite_of_the_same_key_is_a_new_run():
    first = s3_request(sequencer="00617F08299329D189")
    overwrite = s3_request(sequencer="00617F0829932AAAAA")
    assert idempotency_key(first) != idempotency_key(overwrite)


def test_s3_different_keys_are_different_runs():
    assert idempotency_key(s3_request("uploads/a.jpg")) != idempotency_key(s3_request("uploads/b.jpg"))


def test_s3_key_names_the_bucket_and_key():
    assert idempotency_key(s3_request("uploads/images/cat.jpg")) == (
        "thumbnails|s3|taskrunner-example-data/uploads/images/cat.jpg|00617F08299329D189"
    )


def test_the_same_event_for_two_jobs_is_two_runs():
    assert idempotency_key(s3_request(job="thumbnails")) != idempotency_key(s3_request(job="archive"))
    assert idempotency_key(schedule_request("a")) != idempotency_key(schedule_request("b"))
    assert idempotency_key(manual_request("a")) != idempotency_key(manual_request("b"))
    assert idempotency_key(event_request(job="a")) != idempotency_key(event_request(job="b"))


def test_schedule_key_is_the_tick_not_the_delivery():
    tick = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    assert idempotency_key(schedule_request(scheduled_at=tick.timestamp())) == (
        "nightly-report|schedule|2026-11-26T05:00:00+00:00"
    )
    assert idempotency_key(schedule_request(scheduled_at=tick.timestamp() + 60)) != idempotency_key(
        schedule_request(scheduled_at=tick.timestamp())
    )


def test_event_key_is_the_event_id():
    assert idempotency_key(event_request(event_id="e-1")) == "order-audit|event|e-1"
    assert idempotency_key(event_request(event_id="e-1")) != idempotency_key(event_request(event_id="e-2"))


def test_manual_key_is_the_request_id():
    assert idempotency_key(manual_request(request_id="req-0001")) == "nightly-report|manual|req-0001"


def test_manual_env_is_not_part_of_the_identity():
    assert idempotency_key(manual_request(A="1")) == idempotency_key(manual_request(A="2"))


def test_a_retry_has_the_key_of_the_request_it_repeats():
    """A retry is the original request again (attempt n): same identity, same run."""
    original = s3_request()
    run_id = run_id_for(idempotency_key(original))
    assert idempotency_key(retry_of(original, run_id, 2)) == idempotency_key(original)


# --------------------------------------------------------------------------- run ids and client tokens


def test_run_id_is_26_hex_chars_and_deterministic():
    run_id = run_id_for("thumbnails|s3|b/k|1")
    assert len(run_id) == 26
    assert int(run_id, 16) >= 0
    assert run_id == run_id_for("thumbnails|s3|b/k|1")
    assert run_id != run_id_for("thumbnails|s3|b/k|2")


def test_run_id_is_a_pinned_hash():
    """Pinned: changing the derivation would relaunch every event redelivered across a deploy."""
    assert run_id_for("nightly-report|schedule|2026-11-26T05:00:00+00:00") == "7fef2f42096992640002143c01"


KEYS = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=2000)


@settings(max_examples=300, deadline=None)
@given(key=KEYS, attempt=st.integers(min_value=1, max_value=10))
def test_client_token_fits_ecs(key, attempt):
    """ECS: clientToken is at most 64 characters, each in ASCII 33-126; the fallback suffix too."""
    token = client_token(run_id_for(key), attempt)
    for candidate in (token, token + "-od"):
        assert len(candidate) <= 64
        assert all(33 <= ord(c) <= 126 for c in candidate)


@settings(max_examples=200, deadline=None)
@given(a=KEYS, b=KEYS, attempt=st.integers(min_value=1, max_value=10))
def test_client_token_is_unique_per_run_and_attempt(a, b, attempt):
    assert client_token(run_id_for(a), attempt) != client_token(run_id_for(a), attempt % 10 + 1)
    if a != b:
        assert client_token(run_id_for(a), attempt) != client_token(run_id_for(b), attempt)


def test_client_token_and_started_by_shape():
    assert started_by("0123456789abcdef0123456789", 3) == "0123456789abcdef0123456789-3"
    assert client_token("0123456789abcdef0123456789", 3) == "tr-0123456789abcdef0123456789-3"


@settings(max_examples=200, deadline=None)
@given(key=KEYS, attempt=st.integers(min_value=1, max_value=10))
def test_started_by_round_trips_and_fits_ecs(key, attempt):
    """ECS: startedBy is up to 128 of [A-Za-z0-9_/-]; the Tracker maps it back to (run, attempt)."""
    value = started_by(run_id_for(key), attempt)
    assert len(value) <= 128
    assert all(c.isascii() and (c.isalnum() or c in "_/-") for c in value)
    assert parse_started_by(value) == (run_id_for(key), attempt)


@pytest.mark.parametrize(
    "value",
    ["", "taskrunner-scaler-thumbnails", "ecs-svc/123456", "0123456789abcdef0123456789", "0123456789abcdef-1", "x-1"],
)
def test_parse_started_by_ignores_tasks_that_are_not_runs(value):
    assert parse_started_by(value) is None


# --------------------------------------------------------------------------- status order


FORWARD = [RunStatus.RETRYING, RunStatus.CLAIMED, RunStatus.PENDING, RunStatus.RUNNING]
TERMINAL = [
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.TIMED_OUT,
    RunStatus.STOPPED,
    RunStatus.SKIPPED,
    RunStatus.MISSED,
    RunStatus.LAUNCH_FAILED,
]


def test_every_status_has_a_rank():
    assert set(FORWARD + TERMINAL) == set(RunStatus)
    for status in RunStatus:
        assert isinstance(status.rank, int)


def test_ranks_move_forward_through_the_lifecycle():
    ranks = [s.rank for s in FORWARD]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert all(t.rank > RunStatus.RUNNING.rank for t in TERMINAL)


def test_terminal_states_share_one_rank_so_none_replaces_another():
    assert len({t.rank for t in TERMINAL}) == 1


@pytest.mark.parametrize("status", list(RunStatus))
def test_terminal_flag(status):
    assert status.terminal is (status in TERMINAL)


@pytest.mark.parametrize("attempt", range(1, 10))
def test_every_state_of_the_next_attempt_orders_after_every_state_of_this_one(attempt):
    """A late event of attempt n (even its terminal state) can never overwrite attempt n+1."""
    latest_of_this = max(s.order(attempt) for s in RunStatus)
    earliest_of_next = min(s.order(attempt + 1) for s in RunStatus)
    assert latest_of_this < earliest_of_next
    assert RunStatus.RETRYING.order(attempt + 1) == earliest_of_next


def test_order_within_an_attempt_follows_rank():
    assert [s.order(2) for s in FORWARD] == sorted(s.order(2) for s in FORWARD)
    assert RunStatus.SUCCEEDED.order(2) == RunStatus.FAILED.order(2)


# --------------------------------------------------------------------------- run details


def test_run_detail_per_trigger():
    assert run_detail(schedule_request()) == {"scheduled_at": "2026-11-26T05:00:00+00:00"}
    assert run_detail(s3_request("uploads/images/cat.jpg")) == {
        "bucket": "taskrunner-example-data",
        "key": "uploads/images/cat.jpg",
        "event_id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail_type": "Object Created",
    }
    assert run_detail(event_request(event_id="e-1")) == {"event_id": "e-1", "detail_type": "OrderPlaced"}
    assert run_detail(manual_request()) == {}


def test_as_item_is_json_and_drops_nones():
    item = as_item(make_run(manual_request()))
    assert item["status"] == "CLAIMED"
    assert item["trigger"] == "manual"
    assert isinstance(item["created_at"], str)
    assert "task_arn" not in item
    assert "lease_until" not in item
