"""The runs table (DynamoDB): one item per run, written only with conditions.

Key: ``run_id`` (derived from the event's identity). A ``by-job`` index (``job``, ``created_at``)
serves run history. Finished runs carry ``expires_at`` for the table's TTL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from taskrunner.adapters.clients import client, error_code
from taskrunner.domain.ports import Claim, ClaimKind
from taskrunner.domain.runs import Run, RunStatus, as_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ser = TypeSerializer()
_de = TypeDeserializer()


def _marshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in item.items()}


def _unmarshal(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _run(item: dict[str, Any]) -> Run:
    data = _unmarshal(item)
    return Run.model_validate({k: (float(v) if k == "lease_until" else v) for k, v in data.items()})


class DynamoRunStore:
    def __init__(self, table: str, dynamodb: DynamoDBClient | None = None, history_days: int = 30) -> None:
        self.table = table
        self.db: DynamoDBClient = dynamodb or client("dynamodb")
        self.history_s = history_days * 86_400

    def claim(self, run: Run, now: float) -> Claim:
        item = as_item(run)
        item["lease_until"] = int(run.lease_until or now)
        item["status_rank"] = run.status.rank
        try:
            response = self.db.put_item(
                TableName=self.table,
                Item=_marshal(item),
                ConditionExpression="attribute_not_exists(run_id) OR (#s = :claimed AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_marshal({":claimed": RunStatus.CLAIMED.value, ":now": int(now)}),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            existing = self.get(run.run_id)
            if existing is not None and existing.status is RunStatus.CLAIMED:
                return Claim(ClaimKind.BUSY, existing)
            return Claim(ClaimKind.DUPLICATE, existing)
        if response.get("Attributes"):
            return Claim(ClaimKind.RECLAIMED, _run(response["Attributes"]))
        return Claim(ClaimKind.NEW)

    def get(self, run_id: str) -> Run | None:
        response = self.db.get_item(TableName=self.table, Key=_marshal({"run_id": run_id}), ConsistentRead=True)
        return _run(response["Item"]) if "Item" in response else None

    def update(self, run_id: str, status: RunStatus, **fields: Any) -> None:
        now = time.time()
        values: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        values |= {"status": status.value, "updated_at": _iso(now), "status_rank": status.rank}
        if status.terminal:
            values["expires_at"] = int(now) + self.history_s
        names = {f"#{k}": k for k in values}
        sets = ", ".join(f"#{k} = :{k}" for k in values)
        remove = " REMOVE lease_until" if status is not RunStatus.CLAIMED else ""
        try:
            self.db.update_item(
                TableName=self.table,
                Key=_marshal({"run_id": run_id}),
                UpdateExpression=f"SET {sets}{remove}",
                # Only forward: a late or repeated update never moves a run back.
                ConditionExpression="attribute_exists(run_id) AND "
                "(attribute_not_exists(status_rank) OR status_rank < :status_rank)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_marshal({f":{k}": v for k, v in values.items()}),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def release(self, run_id: str) -> None:
        self.db.update_item(
            TableName=self.table,
            Key=_marshal({"run_id": run_id}),
            UpdateExpression="SET lease_until = :zero",
            ConditionExpression="#s = :claimed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_marshal({":zero": 0, ":claimed": RunStatus.CLAIMED.value}),
        )

    def history(self, job: str, limit: int = 50) -> list[Run]:
        response = self.db.query(
            TableName=self.table,
            IndexName="by-job",
            KeyConditionExpression="job = :job",
            ExpressionAttributeValues=_marshal({":job": job}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_run(item) for item in response.get("Items", [])]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
