"""What the SQS-fed handlers share: dead-lettering a message with its reason, logged and counted."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from taskrunner.domain.ports import Messages
from taskrunner.observability import count, logger


def record_source(record: SQSRecord) -> dict[str, str]:
    return {"message-id": record.message_id, "source-queue": record.event_source_arn}


def dead_letter(
    queues: Messages, queue_url: str, body: str, reason: str, source: dict[str, str], *, metric: str
) -> None:
    """Keep a message that can never succeed, with why: the DLQ has it, the log says it, a metric counts it."""
    queues.dead_letter(queue_url, body, reason, source)
    logger.warning("dead-lettered", extra={"reason": reason, **source})
    count(metric, reason=reason.split(":", maxsplit=1)[0])
