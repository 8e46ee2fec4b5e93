"""Run history per attempt on the DynamoDB store: the unit tier's scenario (a failed attempt, its retry, a success,
through the real Dispatcher and Tracker) with the runs table of the embedded AWS in place of the fake store."""

from __future__ import annotations

from taskrunner.adapters.store import DynamoRunStore
from tests.integration.conftest import Stack
from tests.unit.test_run_history import assert_history_per_attempt, failed_then_succeeded


def test_each_attempt_keeps_its_own_record_in_dynamodb_and_the_final_reason_is_its_own(stack: Stack) -> None:
    store = DynamoRunStore(stack.outputs["RunsTableName"], stack.client("dynamodb"))

    run = failed_then_succeeded(store, request_id="c0ffee00-1234-4bcd-9f00-0000000d1a10")

    assert_history_per_attempt(run)
    assert store.get(run.run_id) == run
