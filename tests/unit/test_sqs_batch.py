"""handlers.common.process_sqs_batch: Lambda's partial batch response, as Powertools' BatchProcessor gives it."""

from __future__ import annotations

from typing import Any

import pytest

from taskrunner.handlers.common import BatchFailed, SqsRecord, process_sqs_batch


def _record(message_id: str, body: str = "{}", receive_count: str | None = "1") -> dict[str, Any]:
    attributes = {"ApproximateReceiveCount": receive_count} if receive_count is not None else {}
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": attributes,
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "eventSource": "aws:sqs",
    }


def test_failed_records_are_reported_and_the_others_are_not() -> None:
    seen: list[SqsRecord] = []

    def handler(record: SqsRecord) -> None:
        seen.append(record)
        if record.body == "bad":
            raise RuntimeError("boom")

    event = {"Records": [_record("a"), _record("b", "bad"), _record("c")]}
    assert process_sqs_batch(event, handler) == {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert [r.message_id for r in seen] == ["a", "b", "c"], "a failure does not stop the batch"
    assert seen[0].receipt_handle == "rh-a"
    assert seen[0].event_source_arn.endswith(":q")


def test_a_batch_where_every_record_failed_fails_the_invocation() -> None:
    def handler(record: SqsRecord) -> None:
        raise RuntimeError(record.message_id)

    with pytest.raises(BatchFailed, match="all 2 records failed"):
        process_sqs_batch({"Records": [_record("a"), _record("b")]}, handler)


def test_all_succeeded_reports_nothing() -> None:
    assert process_sqs_batch({"Records": [_record("a")]}, lambda record: None) == {"batchItemFailures": []}


@pytest.mark.parametrize(("raw", "expected"), [("3", 3), (None, 1), ("", 1)])
def test_receive_count_defaults_to_a_first_delivery(raw: str | None, expected: int) -> None:
    assert SqsRecord.from_raw(_record("a", receive_count=raw)).receive_count == expected
