"""An SQS event-source mapping, played in-process: receive a batch, invoke the handler, delete what succeeded.

moto keeps the mapping's configuration but never invokes a function; local mode, tests and
benchmarks use this to deliver queue messages exactly as Lambda's poller does: Lambda's SQS event
shape, ``ReportBatchItemFailures`` honoured, failed messages left for their visibility timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskrunner.local.invoke import RUNTIME_VARIABLES, DeployedFunction, invoke


@dataclass
class Delivery:
    received: int
    failed: int
    response: Any


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    region = queue_arn.split(":")[3]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": dict(m.get("Attributes", {})),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v["DataType"],
                    }
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class EventSourceMapping:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: DeployedFunction,
        batch_size: int = 10,
        wait_time_s: int = 0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function = function
        self.batch_size = batch_size
        self.wait_time_s = wait_time_s
        self.extra_env = extra_env or {}

    def poll_once(self) -> Delivery:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return Delivery(0, 0, None)
        try:
            settings = {k: v for k, v in self.extra_env.items() if k not in RUNTIME_VARIABLES}
            runtime = {k: v for k, v in self.extra_env.items() if k in RUNTIME_VARIABLES}
            response = invoke(self.function, sqs_event(messages, self.queue_arn), settings, runtime_env=runtime)
        except KeyboardInterrupt:
            raise
        except BaseException:  # a failed (or killed) invocation fails the whole batch, as in Lambda
            return Delivery(len(messages), len(messages), None)
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        return Delivery(len(messages), len(failed), response)

    def drain(self, max_polls: int = 10_000) -> int:
        """Deliver until the queue returns nothing (visible messages only); the number of messages received."""
        total = 0
        for _ in range(max_polls):
            delivery = self.poll_once()
            if delivery.received == 0:
                break
            total += delivery.received
        return total
