"""The ``RunStore`` port's contract, the same assertions against the DynamoDB store (the real runs table in the
embedded AWS) and the unit tier's fake: claims (new, duplicate, busy, reclaimed after the lease, a retry's takeover),
forward-only updates across attempts, each attempt's own record, release, re-drive, abandon and active paging.

The unit tier's exactly-once tests stand on the fake; this module is what makes them mean something for DynamoDB.
Both stores classify a claim with the domain's one rule (``domain.dispatch.classify_claim``); here the DynamoDB
store's condition expressions are held to that rule.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.ports import ClaimKind, RunStore
from taskrunner.domain.runs import ACTIVE_STATUSES, Run, RunStatus
from taskrunner.domain.triggers import Trigger
from tests.integration.conftest import Stack
from tests.unit.fakes import ConditionFailed, FakeRunStore

NOW = 4_102_444_800.0  # 2100-01-01: far from every other module's runs in the shared table
LEASE_S = 120


@pytest.fixture(params=["dynamodb", "fake"])
def store(request: pytest.FixtureRequest) -> RunStore:
    if request.param == "fake":
        return FakeRunStore(clock=lambda: NOW)
    stack: Stack = request.getfixturevalue("stack")
    return DynamoRunStore(stack.outputs["RunsTableName"], stack.client("dynamodb"))


def new_run(
    job: str = "contract", *, attempt: int = 1, now: float = NOW, run_id: str | None = None, **fields: Any
) -> Run:
    stamp = datetime.fromtimestamp(now, UTC)
    return Run(
        run_id=run_id or uuid.uuid4().hex[:26],
        job=job,
        trigger=Trigger.MANUAL,
        idempotency_key=f"{job}|manual|{uuid.uuid4()}",
        status=RunStatus.CLAIMED,
        attempt=attempt,
        created_at=stamp,
        updated_at=stamp,
        lease_until=now + LEASE_S,
        **({"request": '{"job": "contract", "trigger": "manual", "request_id": "12345678"}'} | fields),
    )


def current(store: RunStore, run: Run) -> Run:
    found = store.get(run.run_id)
    assert found is not None, f"run {run.run_id} is not in the store"
    return found


def at_retry(store: RunStore, run: Run, attempt: int = 2) -> Run:
    """The run as the Tracker leaves it after attempt ``attempt - 1`` failed: RETRYING for ``attempt``."""
    assert store.claim(run, NOW).kind is ClaimKind.NEW
    assert store.update(run.run_id, RunStatus.PENDING, 1, task_arn="arn:task/1")
    assert store.update(run.run_id, RunStatus.FAILED, 1, exit_code=2, reason="exit code 2", failure="exit")
    assert store.update(run.run_id, RunStatus.RETRYING, attempt, reason="attempt 1 failed", retry_due=int(NOW) + 10)
    return current(store, run)


# --------------------------------------------------------------------------- claim: first attempt


def test_a_first_claim_is_new_and_holds_the_lease(store: RunStore) -> None:
    run = new_run()

    claim = store.claim(run, NOW)

    assert (claim.kind, claim.existing) == (ClaimKind.NEW, None)
    stored = current(store, run)
    assert (stored.status, stored.attempt, stored.job) == (RunStatus.CLAIMED, 1, "contract")
    assert stored.lease_until == NOW + LEASE_S
    assert [a.number for a in stored.attempts] == [1]


def test_a_claim_with_a_live_lease_is_busy_and_writes_nothing(store: RunStore) -> None:
    run = new_run()
    store.claim(run, NOW)

    claim = store.claim(run.model_copy(update={"lease_until": NOW + 500}), NOW + LEASE_S - 1)

    assert claim.kind is ClaimKind.BUSY
    assert claim.existing is not None
    assert claim.existing.status is RunStatus.CLAIMED
    assert current(store, run).lease_until == NOW + LEASE_S


def test_a_claim_past_the_lease_is_reclaimed_with_a_new_lease(store: RunStore) -> None:
    """The claiming Lambda died mid-launch: after its lease, a redelivery takes the run over (and adopts)."""
    run = new_run()
    store.claim(run, NOW)
    later = NOW + LEASE_S + 1

    claim = store.claim(new_run(run_id=run.run_id, now=later), later)

    assert claim.kind is ClaimKind.RECLAIMED
    assert claim.existing is not None
    assert claim.existing.lease_until == NOW + LEASE_S
    assert current(store, run).lease_until == later + LEASE_S


def test_a_claim_of_a_run_past_its_claim_is_a_duplicate(store: RunStore) -> None:
    run = new_run()
    store.claim(run, NOW)
    store.update(run.run_id, RunStatus.PENDING, 1, task_arn="arn:task/1")

    for now in (NOW, NOW + LEASE_S + 1, NOW + 86_400):
        claim = store.claim(run, now)
        assert claim.kind is ClaimKind.DUPLICATE
        assert claim.existing is not None
        assert claim.existing.status is RunStatus.PENDING
    assert current(store, run).task_arn == "arn:task/1"


def test_a_first_attempt_never_takes_over_another_jobs_expired_claim(store: RunStore) -> None:
    run = new_run("contract")
    store.claim(run, NOW)

    claim = store.claim(new_run("intruder", run_id=run.run_id), NOW + LEASE_S + 1)

    assert claim.kind is ClaimKind.DUPLICATE
    assert current(store, run).job == "contract"


def test_a_first_attempt_never_takes_over_a_retry(store: RunStore) -> None:
    run = at_retry(store, new_run())

    assert store.claim(run.model_copy(update={"attempt": 1}), NOW + 10_000).kind is ClaimKind.DUPLICATE
    assert (current(store, run).status, current(store, run).attempt) == (RunStatus.RETRYING, 2)


# --------------------------------------------------------------------------- claim: a retry's takeover


def test_a_retry_claim_takes_the_run_over_from_retrying(store: RunStore) -> None:
    run = at_retry(store, new_run())

    claim = store.claim(new_run(run_id=run.run_id, attempt=2), NOW)

    assert claim.kind is ClaimKind.NEW
    assert claim.existing is not None
    assert claim.existing.status is RunStatus.RETRYING
    stored = current(store, run)
    assert (stored.status, stored.attempt, stored.lease_until) == (RunStatus.CLAIMED, 2, NOW + LEASE_S)
    assert [a.number for a in stored.attempts] == [1, 2]
    assert stored.attempt_record(1) is not None
    assert stored.attempt_record(1).exit_code == 2


def test_a_retry_claim_is_busy_then_reclaimed_after_its_lease(store: RunStore) -> None:
    run = at_retry(store, new_run())
    retry = new_run(run_id=run.run_id, attempt=2)
    store.claim(retry, NOW)

    assert store.claim(retry, NOW + 1).kind is ClaimKind.BUSY
    later = NOW + LEASE_S + 1
    assert store.claim(new_run(run_id=run.run_id, attempt=2, now=later), later).kind is ClaimKind.RECLAIMED
    assert current(store, run).lease_until == later + LEASE_S


@pytest.mark.parametrize(
    ("job", "attempt"),
    [("contract", 3), ("contract", 1), ("intruder", 2)],
    ids=["a-later-attempt", "the-first-attempt", "another-jobs-retry"],
)
def test_a_retry_claim_of_anything_but_this_attempts_retry_is_a_duplicate(
    store: RunStore, job: str, attempt: int
) -> None:
    run = at_retry(store, new_run())

    claim = store.claim(new_run(job, run_id=run.run_id, attempt=attempt), NOW + 10_000)

    assert claim.kind is ClaimKind.DUPLICATE
    assert (current(store, run).status, current(store, run).job) == (RunStatus.RETRYING, "contract")


def test_a_retry_claim_of_a_run_that_does_not_exist_is_a_duplicate_and_creates_nothing(store: RunStore) -> None:
    run = new_run(attempt=2)

    assert store.claim(run, NOW).kind is ClaimKind.DUPLICATE
    assert store.get(run.run_id) is None


# --------------------------------------------------------------------------- update


def test_updates_only_move_forward_within_an_attempt(store: RunStore) -> None:
    run = new_run()
    store.claim(run, NOW)

    assert store.update(run.run_id, RunStatus.PENDING, 1, task_arn="arn:task/1")
    assert not store.update(run.run_id, RunStatus.PENDING, 1, task_arn="arn:task/late")
    assert store.update(run.run_id, RunStatus.RUNNING, 1)
    assert not store.update(run.run_id, RunStatus.PENDING, 1)
    assert store.update(run.run_id, RunStatus.SUCCEEDED, 1, exit_code=0)
    assert not store.update(run.run_id, RunStatus.FAILED, 1, exit_code=1)

    stored = current(store, run)
    assert (stored.status, stored.task_arn, stored.exit_code) == (RunStatus.SUCCEEDED, "arn:task/1", 0)
    assert stored.lease_until is None  # past the claim, no lease


def test_every_state_of_a_later_attempt_is_past_every_state_of_an_earlier_one(store: RunStore) -> None:
    run = at_retry(store, new_run())

    assert not store.update(run.run_id, RunStatus.SUCCEEDED, 1)  # a late event of attempt 1
    assert not store.update(run.run_id, RunStatus.RUNNING, 1)
    assert store.update(run.run_id, RunStatus.PENDING, 2, task_arn="arn:task/2")
    assert store.update(run.run_id, RunStatus.RETRYING, 3)
    assert not store.update(run.run_id, RunStatus.FAILED, 2)
    assert (current(store, run).status, current(store, run).attempt) == (RunStatus.RETRYING, 3)


def test_an_update_of_a_missing_run_writes_nothing(store: RunStore) -> None:
    run_id = uuid.uuid4().hex[:26]

    assert not store.update(run_id, RunStatus.RUNNING, 1)
    assert store.get(run_id) is None


def test_each_attempt_keeps_its_own_record_and_a_final_reason_is_its_own(store: RunStore) -> None:
    """Attempt 1 failed (exit 2, its reason); attempt 2 succeeded: the run shows attempt 2's outcome, with no reason,
    and attempt 1's task, times, exit, stop code, reason and log stream are still there."""
    run = new_run()
    store.claim(run, NOW)
    first = {
        "task_arn": "arn:task/1",
        "log_stream": "contract/job/1",
        "started_at": datetime.fromtimestamp(NOW + 60, UTC),
        "stopped_at": datetime.fromtimestamp(NOW + 90, UTC),
        "exit_code": 2,
        "stop_code": "EssentialContainerExited",
        "reason": "Essential container in task exited",
        "failure": "exit",
    }
    store.update(run.run_id, RunStatus.PENDING, 1, task_arn="arn:task/1")
    store.update(run.run_id, RunStatus.FAILED, 1, **first)
    store.update(run.run_id, RunStatus.RETRYING, 2, reason="attempt 1 failed (exit); retry in 10s", retry_due=int(NOW))
    store.claim(new_run(run_id=run.run_id, attempt=2), NOW + 100)
    cleared = dict.fromkeys(("reason", "exit_code", "stop_code", "failure", "started_at", "stopped_at"))
    store.update(run.run_id, RunStatus.PENDING, 2, task_arn="arn:task/2", **cleared)
    store.update(
        run.run_id,
        RunStatus.SUCCEEDED,
        2,
        task_arn="arn:task/2",
        log_stream="contract/job/2",
        exit_code=0,
        stop_code="EssentialContainerExited",
        reason=None,
        failure=None,
        started_at=datetime.fromtimestamp(NOW + 160, UTC),
        stopped_at=datetime.fromtimestamp(NOW + 200, UTC),
    )

    stored = current(store, run)
    assert (stored.status, stored.attempt, stored.exit_code, stored.reason, stored.failure) == (
        RunStatus.SUCCEEDED,
        2,
        0,
        None,
        None,
    )
    assert stored.task_arn == "arn:task/2"
    one, two = stored.attempt_record(1), stored.attempt_record(2)
    assert one is not None
    assert two is not None
    assert one.model_dump(exclude={"number", "status"}) == first
    assert one.status is RunStatus.FAILED
    assert (two.status, two.task_arn, two.exit_code, two.log_stream) == (
        RunStatus.SUCCEEDED,
        "arn:task/2",
        0,
        "contract/job/2",
    )
    assert two.reason is None  # not the reason attempt 2 was scheduled for, nor attempt 1's
    assert two.started_at == datetime.fromtimestamp(NOW + 160, UTC)


# --------------------------------------------------------------------------- release, redriven, abandon


def test_release_ends_the_lease_so_a_redelivery_claims_at_once(store: RunStore) -> None:
    run = new_run()
    store.claim(run, NOW)

    store.release(run.run_id)

    assert current(store, run).lease_until == 0
    assert store.claim(run, NOW + 1).kind is ClaimKind.RECLAIMED


def test_release_of_a_run_past_its_claim_is_refused_and_changes_nothing(store: RunStore) -> None:
    run = new_run()
    store.claim(run, NOW)
    store.update(run.run_id, RunStatus.PENDING, 1, task_arn="arn:task/1")

    with pytest.raises((ClientError, ConditionFailed)):
        store.release(run.run_id)
    assert (current(store, run).status, current(store, run).task_arn) == (RunStatus.PENDING, "arn:task/1")


def test_redriven_counts_once_per_reading_of_the_run(store: RunStore) -> None:
    """Two reconciliations that read the same lost retry: only one re-drives it."""
    run = at_retry(store, new_run())

    assert store.redriven(run, NOW + 1000)
    assert not store.redriven(run, NOW + 1001)  # the same (now stale) reading
    again = current(store, run)
    assert (again.redrives, again.retry_due) == (1, NOW + 1000)
    assert store.redriven(again, NOW + 2000)
    assert current(store, run).redrives == 2


def test_redriven_refuses_a_run_that_moved_on(store: RunStore) -> None:
    run = at_retry(store, new_run())
    store.claim(new_run(run_id=run.run_id, attempt=2), NOW)

    assert not store.redriven(run, NOW + 1000)
    assert current(store, run).redrives == 0


def test_abandon_records_launch_failed_with_its_reason_only_once(store: RunStore) -> None:
    run = at_retry(store, new_run())

    assert store.abandon(run, "RETRYING abandoned: the dispatch message was lost")
    assert not store.abandon(run, "again")

    stored = current(store, run)
    assert (stored.status, stored.attempt) == (RunStatus.LAUNCH_FAILED, 2)
    assert stored.reason == "RETRYING abandoned: the dispatch message was lost"


# --------------------------------------------------------------------------- active


def test_active_returns_every_run_reconciliation_owns_across_pages(store: RunStore) -> None:
    """Runs of every status; the PENDING ones are large enough (≈100 KB each) that DynamoDB returns them in several
    1 MB pages: every active one comes back, and no final one."""
    statuses = [RunStatus.PENDING] * 12 + [*ACTIVE_STATUSES, RunStatus.SUCCEEDED, RunStatus.LAUNCH_FAILED]
    mine: dict[str, RunStatus] = {}
    for status in statuses:
        run = new_run(request="x" * 100_000 if status is RunStatus.PENDING else None)
        store.claim(run, NOW)
        if status is RunStatus.RETRYING:
            store.update(run.run_id, RunStatus.FAILED, 1)
            store.update(run.run_id, RunStatus.RETRYING, 2)
        elif status is not RunStatus.CLAIMED:
            store.update(run.run_id, status, 1, task_arn="arn:task/x")
        mine[run.run_id] = status
    queries: list[str] = []
    if isinstance(store, DynamoRunStore):
        store.db.meta.events.register("after-call.dynamodb.Query", lambda **_: queries.append("page"))

    found = {run.run_id: run.status for run in store.active() if run.run_id in mine}

    assert found == {rid: status for rid, status in mine.items() if status in ACTIVE_STATUSES}
    assert set(found.values()) == set(ACTIVE_STATUSES)
    if isinstance(store, DynamoRunStore):
        assert len(queries) > len(ACTIVE_STATUSES), "the active runs fit one page each: paging was not exercised"


def test_a_reclaim_keeps_the_attempts_redrive_count(store: RunStore) -> None:
    """Re-drives bound how often reconciliation sends one attempt again: a reclaim (the re-driven message arriving,
    its claim past the lease) must not start the count over, or MAX_REDRIVES never ends a first attempt's loop."""
    run = new_run()
    store.claim(run, NOW)
    assert store.redriven(current(store, run), NOW + 1000)
    assert store.redriven(current(store, run), NOW + 2000)

    later = NOW + 3000
    assert store.claim(new_run(run_id=run.run_id, now=later), later).kind is ClaimKind.RECLAIMED

    stored = current(store, run)
    assert (stored.status, stored.redrives, stored.lease_until) == (RunStatus.CLAIMED, 2, later + LEASE_S)


def test_the_next_attempts_retrying_write_starts_its_redrive_count_over(store: RunStore) -> None:
    run = new_run()
    store.claim(run, NOW)
    store.redriven(current(store, run), NOW + 1000)
    store.update(run.run_id, RunStatus.FAILED, 1, exit_code=2)

    assert store.update(run.run_id, RunStatus.RETRYING, 2, retry_due=int(NOW) + 2000, redrives=0)

    assert current(store, run).redrives == 0
