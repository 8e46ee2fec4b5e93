"""Scaler state between invocations: one DynamoDB item per queue job.

The item holds the scaler's JSON state (``state``) and, for per-message jobs, the live workers as string sets:
``live`` (launched by the Scaler, or seen starting by the Tracker) and ``stopped`` (seen stopping), with ``ver``
bumped by each event-driven change and ``counted_at`` the last ListTasks reconciliation. A worker is live when it
is in ``live`` and not in ``stopped``, whatever order the events arrived in. Every write is an ``UpdateItem`` of
its own attributes, so the Scaler's state write and the Tracker's set updates never overwrite each other.

A service job also has a drain item, keyed ``drain/<job>`` (``{surplus, claimed}``): the Scaler publishes how many
surplus workers should finish and exit, and workers claim one each with a conditional update.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskrunner.adapters.clients import client, error_code
from taskrunner.domain.backoff import backoff_s
from taskrunner.domain.ports import StoredState
from taskrunner.domain.scaling import DRAIN_KEY_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchGetItem reads at most 100 items a call.
BATCH_GET_MAX = 100
#: Rounds of UnprocessedKeys re-reads before a job's read counts as failed (the Scaler holds it this round).
UNPROCESSED_RETRIES = 3


def _stored(item: dict[str, Any]) -> StoredState:
    state = json.loads(item["state"]["S"]) if "state" in item else None
    live = set(item.get("live", {}).get("SS", []))
    stopped = set(item.get("stopped", {}).get("SS", []))
    counted = item.get("counted_at", {}).get("N")
    return StoredState(
        state=state,
        # Never reconciled: workers launched before the first count are unknown, so the first count is a ListTasks.
        workers=frozenset(live - stopped) if counted is not None else None,
        stopped=frozenset(stopped),
        counted_at=float(counted) if counted is not None else None,
        version=int(item.get("ver", {}).get("N", 0)),
    )


class DynamoStateStore:
    def __init__(
        self, table: str, dynamodb: DynamoDBClient | None = None, sleep: Any = time.sleep, retries: int = 3
    ) -> None:
        self.table = table
        self.db: DynamoDBClient = dynamodb or client("dynamodb")
        self.sleep = sleep
        self.retries = retries

    def load_many(self, jobs: Sequence[str]) -> dict[str, StoredState]:
        """BatchGetItem (strongly consistent) in pages of 100; keys DynamoDB left unprocessed are re-read a few
        times with back-off, and left out (so held this round) if they still are."""
        found: dict[str, StoredState] = {}
        unique = list(dict.fromkeys(jobs))
        for start in range(0, len(unique), BATCH_GET_MAX):
            keys: list[Any] = [{"job": {"S": job}} for job in unique[start : start + BATCH_GET_MAX]]
            requested = set(unique[start : start + BATCH_GET_MAX])
            for attempt in range(self.retries + 1):
                response: Any = self.db.batch_get_item(
                    RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["job"]["S"]] = _stored(dict(item))
                keys = list(response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", []))
                if not keys:
                    break
                if attempt < self.retries:
                    self.sleep(backoff_s(attempt + 1, 0.05, 1.0))  # the one back-off rule: 50, 100, 200 ms
            unread = {k["job"]["S"] for k in keys}
            found |= {job: StoredState() for job in requested - unread - set(found)}
        return found

    def load(self, job: str) -> dict[str, Any] | None:
        """One job's scaler state (the CLI and tests read it this way)."""
        return self.load_many([job]).get(job, StoredState()).state

    def save(self, job: str, state: dict[str, Any]) -> None:
        self.db.update_item(
            TableName=self.table,
            Key={"job": {"S": job}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": {"S": json.dumps(state)}},
        )

    def add_workers(self, job: str, task_arns: Sequence[str]) -> None:
        if task_arns:
            self.db.update_item(
                TableName=self.table,
                Key={"job": {"S": job}},
                UpdateExpression="ADD live :a",
                ExpressionAttributeValues={":a": {"SS": list(task_arns)}},
            )

    def set_workers(self, job: str, task_arns: Sequence[str], at: float, seen: StoredState) -> bool:
        """What ListTasks listed replaces ``live``, if no event changed the item since ``seen`` was read.

        Tombstones of tasks ListTasks no longer lists are dropped; those it still lists stay (ECS lists a stopping
        task a little longer than its STOPPED event takes), and are not live.
        """
        version = seen.version
        stopped = set(seen.stopped) & set(task_arns)
        live = set(task_arns) - stopped
        sets, removes, values = ["counted_at = :at"], [], {":at": {"N": repr(at)}}
        for name, members in (("live", live), ("stopped", stopped)):
            if members:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"SS": sorted(members)}  # type: ignore[dict-item]
            else:
                removes.append(name)  # DynamoDB has no empty set
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        if version:
            condition, values[":v"] = "ver = :v", {"N": str(version)}
        else:
            condition = "attribute_not_exists(ver)"
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"job": {"S": job}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False  # an event changed the workers meanwhile: reconcile again next time
            raise
        return True

    # The Tracker's side (WorkerLedger): from ECS task state changes, in any order, any number of times.

    def started(self, job: str, task_arn: str) -> None:
        try:
            self.db.update_item(
                TableName=self.table,
                Key={"job": {"S": job}},
                UpdateExpression="ADD live :a, ver :one",
                ConditionExpression="attribute_not_exists(stopped) OR NOT contains(stopped, :arn)",
                ExpressionAttributeValues={":a": {"SS": [task_arn]}, ":one": {"N": "1"}, ":arn": {"S": task_arn}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":  # seen stopping already: stays stopped
                raise

    def stopped(self, job: str, task_arn: str) -> None:
        self.db.update_item(
            TableName=self.table,
            Key={"job": {"S": job}},
            UpdateExpression="DELETE live :a ADD stopped :a, ver :one",
            ExpressionAttributeValues={":a": {"SS": [task_arn]}, ":one": {"N": "1"}},
        )

    def publish_drain(self, job: str, surplus: int) -> None:
        """The job's drain signal, read and claimed by its workers (``taskrunner.worker.drain``)."""
        item = {"job": {"S": DRAIN_KEY_PREFIX + job}, "surplus": {"N": str(surplus)}, "claimed": {"N": "0"}}
        self.db.put_item(TableName=self.table, Item=item)
