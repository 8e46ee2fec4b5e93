"""What the handlers share: telling apart the payload shapes AWS can deliver, and dead-lettering with a reason.

A Lambda function fed by SQS is also invokable directly (``sam local invoke``, a rule or a notification aimed
at it by mistake), so the event's shape is decided by design, not assumed: an SQS batch is a ``Records`` list
whose every record has ``eventSource == "aws:sqs"`` and the fields SQS always sends; an empty list is an empty
batch; ``Records`` from S3, SNS, DynamoDB or Kinesis are named as such; anything else is the function's direct
payload. Nothing here raises on any JSON value.

An SQS batch is processed by :func:`process_sqs_batch`, the partial-batch-response contract Lambda's
event source mapping defines (``ReportBatchItemFailures``), with the semantics of Powertools'
``BatchProcessor`` (each record on its own; the failed ones returned; the whole batch failed when every
record failed). It is written out here because importing ``aws_lambda_powertools.utilities.batch``
(and with it every event data class and asyncio) cost a quarter of each handler's cold start for what
is one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from taskrunner.domain.ports import Messages
from taskrunner.domain.triggers import S3_NOTIFICATION_ADVICE
from taskrunner.observability import count, logger

#: What SQS puts in every record it delivers to Lambda.
SQS_RECORD_FIELDS = ("messageId", "receiptHandle", "body", "attributes", "eventSourceARN")
#: ``eventSource`` (or ``EventSource``, SNS's spelling) of the other services that deliver ``Records``.
RECORD_SOURCES = {
    "aws:s3": "an S3 Event Notification (eventSource aws:s3)",
    "aws:sns": "an SNS notification (EventSource aws:sns)",
    "aws:dynamodb": "a DynamoDB stream batch",
    "aws:kinesis": "a Kinesis batch",
    "aws:ses": "an SES notification",
}


class Shape(StrEnum):
    SQS_BATCH = "sqs-batch"
    EMPTY_BATCH = "empty-batch"
    FOREIGN_RECORDS = "foreign-records"  # Records from another service (S3, SNS …), or malformed SQS records
    DIRECT = "direct"  # the function's own payload (an EventBridge event, a request, a tick)
    NOT_AN_OBJECT = "not-an-object"


@dataclass(frozen=True)
class Payload:
    shape: Shape
    #: What arrived, in words, for a refusal that tells the user what they sent.
    what: str


def _source(record: Any) -> str:
    if not isinstance(record, dict):
        return type(record).__name__
    return str(record.get("eventSource") or record.get("EventSource") or "")


def classify(event: Any) -> Payload:
    """The shape of a Lambda event, decided from its content alone."""
    if not isinstance(event, dict):
        return Payload(Shape.NOT_AN_OBJECT, f"a JSON {type(event).__name__}, not an object")
    if "Records" not in event:
        return Payload(Shape.DIRECT, "a direct payload")
    records = event["Records"]
    if not isinstance(records, list):
        return Payload(Shape.FOREIGN_RECORDS, f"'Records' that is a {type(records).__name__}, not a list")
    if not records:
        return Payload(Shape.EMPTY_BATCH, "an empty Records list")
    sources = {_source(r) for r in records}
    if sources == {"aws:sqs"} and all(all(f in r for f in SQS_RECORD_FIELDS) for r in records):
        return Payload(Shape.SQS_BATCH, f"an SQS batch of {len(records)}")
    named = sorted(
        RECORD_SOURCES.get(s, f"records with eventSource {s!r}" if s else "records without eventSource")
        for s in sources
    )
    if sources == {"aws:sqs"}:
        named = ["SQS records missing fields SQS always sends"]
    return Payload(Shape.FOREIGN_RECORDS, " and ".join(named))


def refusal(payload: Payload, function: str) -> str:
    """Why the function will not process this payload, and what to send instead."""
    if "S3 Event Notification" in payload.what:
        return f"{function} received {payload.what}: {S3_NOTIFICATION_ADVICE}"
    return f"{function} received {payload.what}, which it does not process"


@dataclass(frozen=True)
class SqsRecord:
    """The fields of an SQS record the handlers read, from the record Lambda delivers."""

    message_id: str
    receipt_handle: str
    body: str
    event_source_arn: str
    attributes: dict[str, Any]

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> SqsRecord:
        return cls(
            message_id=raw["messageId"],
            receipt_handle=raw["receiptHandle"],
            body=raw["body"],
            event_source_arn=raw["eventSourceARN"],
            attributes=raw["attributes"],
        )

    @property
    def receive_count(self) -> int:
        """``ApproximateReceiveCount``: 1 on the first delivery."""
        return int(self.attributes.get("ApproximateReceiveCount") or 1)


class BatchFailed(Exception):
    """Every record of the batch failed: the invocation fails, so SQS redelivers the whole batch."""


def process_sqs_batch(event: dict[str, Any], record_handler: Callable[[SqsRecord], object]) -> dict[str, Any]:
    """Each record handled on its own; the ones whose handler raised are reported in ``batchItemFailures``.

    As Powertools' ``BatchProcessor`` (``raise_on_entire_batch_failure``): when every record failed the
    invocation raises :class:`BatchFailed` instead, so the failure shows as a function error (and counts
    towards the event source mapping's retries) rather than a success that returned everything.
    """
    records = event["Records"]
    failures: list[dict[str, str]] = []
    for raw in records:
        try:
            record_handler(SqsRecord.from_raw(raw))
        except Exception:
            message_id = raw.get("messageId") if isinstance(raw, dict) else None
            logger.warning("record failed: it stays on the queue", extra={"message_id": message_id}, exc_info=True)
            failures.append({"itemIdentifier": str(message_id)})
    if records and len(failures) == len(records):
        msg = f"all {len(records)} records failed processing; each error is logged above"
        raise BatchFailed(msg)
    return {"batchItemFailures": failures}


def record_source(record: SqsRecord) -> dict[str, str]:
    return {"message-id": record.message_id, "source-queue": record.event_source_arn}


def dead_letter(
    queues: Messages, queue_url: str, body: str, reason: str, source: dict[str, str], *, metric: str, kind: str
) -> None:
    """Keep a message that can never succeed, with why: the DLQ has it, the log says it, a metric counts it.

    ``kind`` is a fixed class of failure (low cardinality); the reason's detail is in the DLQ and the log.
    """
    queues.dead_letter(queue_url, body, reason, source)
    logger.warning("dead-lettered", extra={"reason": reason, "kind": kind, **source})
    count(metric, reason=kind)
