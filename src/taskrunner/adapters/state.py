"""Scaler state between invocations: one DynamoDB item per queue job."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from taskrunner.adapters.clients import client
from taskrunner.domain.scaling import DRAIN_KEY_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoStateStore:
    def __init__(self, table: str, dynamodb: DynamoDBClient | None = None) -> None:
        self.table = table
        self.db: DynamoDBClient = dynamodb or client("dynamodb")

    def load(self, job: str) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.table, Key={"job": {"S": job}}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        state: dict[str, Any] = json.loads(item["state"]["S"])
        return state

    def save(self, job: str, state: dict[str, Any]) -> None:
        self.db.put_item(TableName=self.table, Item={"job": {"S": job}, "state": {"S": json.dumps(state)}})

    def publish_drain(self, job: str, surplus: int) -> None:
        """The job's drain signal, read and claimed by its workers (``taskrunner.worker.drain``)."""
        item = {"job": {"S": DRAIN_KEY_PREFIX + job}, "surplus": {"N": str(surplus)}, "claimed": {"N": "0"}}
        self.db.put_item(TableName=self.table, Item=item)
