"""The Scaler's state table adapter against moto's DynamoDB: batched reads, writes that never overwrite each other,
and per-message workers kept from task events in any order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from taskrunner.adapters.state import DynamoStateStore
from taskrunner.domain.ports import StoredState

TABLE = "scaler-state"


@pytest.fixture
def store() -> Iterator[DynamoStateStore]:
    with mock_aws():
        db: Any = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "job", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "job", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoStateStore(TABLE, db, sleep=lambda _: None)


def test_states_are_read_100_a_call_and_a_job_never_saved_reads_as_empty(store: DynamoStateStore) -> None:
    for i in range(0, 250, 2):
        store.save(f"job-{i:03d}", {"desired": i})
    calls: list[str] = []
    store.db.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **_: calls.append("batch"))

    found = store.load_many([f"job-{i:03d}" for i in range(250)])

    assert len(calls) == 3
    assert found["job-004"].state == {"desired": 4}
    assert found["job-005"] == StoredState()
    assert len(found) == 250


def test_the_scalers_state_write_keeps_the_trackers_worker_sets(store: DynamoStateStore) -> None:
    store.add_workers("transcode", ["arn:t/1", "arn:t/2"])
    store.stopped("transcode", "arn:t/1")

    store.save("transcode", {"desired": 1})
    [item] = store.load_many(["transcode"]).values()

    assert item.state == {"desired": 1}
    assert item.stopped == frozenset({"arn:t/1"})
    assert item.workers is None, "not counted until a ListTasks reconciled it once"


def test_workers_are_live_until_seen_stopping_in_whatever_order_the_events_come(store: DynamoStateStore) -> None:
    assert store.set_workers("transcode", [], 100.0, StoredState())
    store.stopped("transcode", "arn:t/late")  # the STOPPED event overtook the "started" one
    store.started("transcode", "arn:t/late")
    store.started("transcode", "arn:t/ok")
    store.started("transcode", "arn:t/ok")  # delivered twice

    [item] = store.load_many(["transcode"]).values()

    assert item.workers == frozenset({"arn:t/ok"})
    assert item.counted_at == 100.0
    assert item.version == 3, 'the refused "started" changed nothing, so it bumped nothing'


def test_a_reconciliation_writes_only_if_no_event_changed_the_item_since_it_was_read(store: DynamoStateStore) -> None:
    store.set_workers("transcode", ["arn:t/1"], 100.0, StoredState())
    [seen] = store.load_many(["transcode"]).values()
    store.stopped("transcode", "arn:t/1")  # meanwhile

    assert not store.set_workers("transcode", ["arn:t/1", "arn:t/2"], 200.0, seen)
    [now] = store.load_many(["transcode"]).values()
    assert now.workers == frozenset()

    assert store.set_workers("transcode", ["arn:t/1", "arn:t/2"], 200.0, now)
    [after] = store.load_many(["transcode"]).values()
    assert after.workers == frozenset({"arn:t/2"}), "listed but seen stopping: not live"
    assert after.stopped == frozenset({"arn:t/1"})
