"""SQS operations the handlers need beyond what the event-source mapping does for them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskrunner.adapters.clients import client
from taskrunner.domain.ports import QueueDepth

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType

MAX_VISIBILITY_S = 43_200
DEPTH_ATTRIBUTES: tuple[QueueAttributeFilterType, ...] = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def queue_url_from_arn(arn: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` → the queue URL, honouring a custom endpoint (local mode)."""
    _, _, _, region, account, name = arn.split(":", 5)
    sqs = client("sqs")
    endpoint = sqs.meta.endpoint_url.rstrip("/")
    if "amazonaws" in endpoint:
        return f"https://sqs.{region}.amazonaws.com/{account}/{name}"
    return f"{endpoint}/{account}/{name}"


class Queues:
    def __init__(self, sqs: SQSClient | None = None) -> None:
        self.sqs: SQSClient = sqs or client("sqs")

    def dead_letter(self, queue_url: str, body: str, reason: str, source: dict[str, str]) -> None:
        """Send a message we will never be able to process to its DLQ now, with why, losing nothing."""
        attributes: dict[str, Any] = {
            "taskrunner-reason": {"DataType": "String", "StringValue": reason[:1024] or "unknown"},
        }
        attributes |= {
            f"taskrunner-{k}": {"DataType": "String", "StringValue": v[:1024]} for k, v in source.items() if v
        }
        self.sqs.send_message(
            QueueUrl=queue_url, MessageBody=body or json.dumps({"empty": True}), MessageAttributes=attributes
        )

    def retry_after(self, queue_url: str, receipt_handle: str, delay_s: int) -> None:
        """Make a message we failed on visible again after ``delay_s`` rather than the queue's timeout."""
        self.sqs.change_message_visibility(
            QueueUrl=queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(delay_s, MAX_VISIBILITY_S)),
        )

    def depth(self, queue_url: str) -> QueueDepth | None:
        """Live depth (not CloudWatch's 1-minute metric); None when the call fails, so scaling holds."""
        try:
            response = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(DEPTH_ATTRIBUTES))
            attrs: dict[str, str] = {str(k): v for k, v in response["Attributes"].items()}
        except (ClientError, BotoCoreError):
            return None
        return QueueDepth(*(int(attrs.get(name, 0)) for name in DEPTH_ATTRIBUTES))

    def send(self, queue_url: str, body: str, delay_s: int = 0) -> str:
        """SendMessage; the message id."""
        response = self.sqs.send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay_s)
        return str(response.get("MessageId", ""))

    def send_batch(self, queue_url: str, entries: list[tuple[str, str]]) -> tuple[list[str], list[dict[str, Any]]]:
        """SendMessageBatch of (id, body) entries: the ids sent, and SQS's ``Failed`` entries as it returns them."""
        response = self.sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in entries]
        )
        sent = [str(ok["Id"]) for ok in response.get("Successful", [])]
        return sent, [dict(failure) for failure in response.get("Failed", [])]

    def dead_letter_queue(self, queue_url: str) -> str | None:
        """The URL of the queue's redrive target (its DLQ), or None when it has none.

        Resolved with GetQueueUrl on this client, so it points at the same endpoint as ``queue_url``.
        """
        response = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
        policy = response.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            return None
        arn = str(json.loads(policy).get("deadLetterTargetArn", ""))
        if arn.count(":") < 5:
            return None
        _, _, _, _, account, name = arn.split(":", 5)
        return str(self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
