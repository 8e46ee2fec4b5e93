"""Run-history queries of the ``RunStore`` port, the same assertions against the DynamoDB store (the real table
in the embedded AWS) and the unit tier's fake, so the fake cannot drift from what the CLI reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.ports import RunStore
from taskrunner.domain.runs import Run, RunStatus
from taskrunner.domain.triggers import Trigger
from tests.integration.conftest import Stack
from tests.unit.fakes import FakeRunStore

#: Runs are created far in the future, so queries by time see only this module's runs in the shared table.
EPOCH = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["dynamodb", "fake"])
def store(request: pytest.FixtureRequest) -> RunStore:
    if request.param == "fake":
        return FakeRunStore()
    stack: Stack = request.getfixturevalue("stack")
    return DynamoRunStore(stack.outputs["RunsTableName"], stack.client("dynamodb"))


def seed(store: RunStore, job: str, minute: int, status: RunStatus) -> Run:
    created = EPOCH + timedelta(minutes=minute)
    run = Run(
        run_id=uuid.uuid4().hex[:26],
        job=job,
        trigger=Trigger.MANUAL,
        idempotency_key=f"{job}|{minute}",
        status=status,
        created_at=created,
        updated_at=created,
    )
    store.claim(run, now=created.timestamp())
    return run


def job_name() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def test_history_filters_by_status_and_reads_past_pages_without_a_match(store: RunStore) -> None:
    """GIVEN a job with 3 old FAILED runs under 120 newer SUCCEEDED ones
    WHEN its 2 newest FAILED runs are asked for THEN those two come back, newest first."""
    job = job_name()
    failed = [seed(store, job, minute, RunStatus.FAILED) for minute in range(3)]
    for minute in range(3, 123):
        seed(store, job, minute, RunStatus.SUCCEEDED)

    found = store.history(job, 2, RunStatus.FAILED)

    assert [run.run_id for run in found] == [failed[2].run_id, failed[1].run_id]
    assert len(store.history(job, 500)) == 123
    assert store.history(job, 5)[0].created_at == EPOCH + timedelta(minutes=122)


def test_recent_counts_a_status_since_a_time_across_jobs(store: RunStore) -> None:
    first, second = job_name(), job_name()
    seed(store, first, 10, RunStatus.TIMED_OUT)  # before `since`
    late = [seed(store, first, 70, RunStatus.TIMED_OUT), seed(store, second, 80, RunStatus.TIMED_OUT)]
    seed(store, second, 90, RunStatus.SUCCEEDED)

    found = [r for r in store.recent(RunStatus.TIMED_OUT, since=EPOCH + timedelta(hours=1)) if r.job in (first, second)]

    assert [r.run_id for r in found] == [late[1].run_id, late[0].run_id]
    everything = {r.run_id for r in store.recent(RunStatus.TIMED_OUT) if r.job in (first, second)}
    assert len(everything) == 3


def test_newest_merges_jobs_newest_first_up_to_the_limit(store: RunStore) -> None:
    first, second = job_name(), job_name()
    runs = [seed(store, first if minute % 2 else second, minute, RunStatus.SUCCEEDED) for minute in range(6)]
    seed(store, first, 7, RunStatus.FAILED)

    found = store.newest([first, second], limit=4, status=RunStatus.SUCCEEDED)

    assert [r.run_id for r in found] == [r.run_id for r in reversed(runs)][:4]
