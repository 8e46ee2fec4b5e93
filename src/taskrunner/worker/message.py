"""What a handler receives: one SQS message, with its attributes decoded once."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef


@dataclass(frozen=True)
class Message:
    """One SQS message handed to a handler."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    """SQS system attributes: ``ApproximateReceiveCount``, ``SentTimestamp``, ``MessageGroupId`` ..."""
    receive_count: int
    """1 on the first delivery; retries and redeliveries count up towards the DLQ's ``maxReceiveCount``."""
    message_attributes: dict[str, str] = field(default_factory=dict)
    """The producer's message attributes of type String or Number."""

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    @classmethod
    def from_sqs(cls, raw: MessageTypeDef) -> Message:
        attributes = {str(name): value for name, value in raw.get("Attributes", {}).items()}
        user_attributes = {
            name: value["StringValue"]
            for name, value in raw.get("MessageAttributes", {}).items()
            if "StringValue" in value
        }
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            attributes=attributes,
            receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
            message_attributes=user_attributes,
        )
