"""Scale-in without a kill: a surplus service worker drains at a message boundary and exits.

ECS only stops unprotected tasks, and a worker is protected while it has work, so with a backlog a
lowered desired count would wait for the queue to empty. The Scaler therefore publishes, per job,
how many protected workers are surplus (``domain.scaling.drain_target``): one DynamoDB item,
``{"job": "drain/<job>", "surplus": N, "claimed": k}``, rewritten with ``claimed`` reset only when
the number changes. Between batches a worker reads it (at most every ``drain_check_s``; its cached
copy otherwise) and, when ``claimed < surplus``, claims one drain with a conditional update: exactly
``surplus`` workers win, whatever the race. The winner takes no more messages, releases protection
and exits 0; the service's lowered desired count keeps ECS from replacing it.

Failure modes are all on the side of keeping the worker: a signal that cannot be read or claimed
(throttling, no permission, no item) means "no drain", logged and counted (``DrainSignalErrors``).
The simulator runs the same steps (``taskrunner.sim.engine``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from taskrunner.domain.scaling import DRAIN_KEY_PREFIX
from taskrunner.worker.telemetry import Metrics, logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def drain_key(job: str) -> str:
    return DRAIN_KEY_PREFIX + job


class DrainSignal(Protocol):
    def unclaimed(self) -> int:
        """Surplus not yet claimed (0 when there is none or it cannot be read)."""
        ...

    def claim(self) -> bool:
        """Atomically claim one drain; False when none is left (or the claim failed)."""
        ...


class DynamoDrainSignal:
    """The job's drain item: a consistent-enough read, and a conditional increment for the claim."""

    def __init__(self, dynamodb: DynamoDBClient, table: str, job: str, metrics: Metrics) -> None:
        self._db = dynamodb
        self._table = table
        self._key = {"job": {"S": drain_key(job)}}
        self._metrics = metrics

    def unclaimed(self) -> int:
        try:
            item = self._db.get_item(TableName=self._table, Key=self._key, ProjectionExpression="surplus, claimed").get(
                "Item"
            )
        except (ClientError, BotoCoreError):
            logger.warning("drain signal: read failed; not draining", exc_info=True)
            self._metrics.count("DrainSignalErrors")
            return 0
        if not item:
            return 0
        try:
            return int(item["surplus"]["N"]) - int(item.get("claimed", {"N": "0"})["N"])
        except (KeyError, ValueError):
            logger.warning("drain signal: malformed item; not draining", extra={"item": str(item)[:300]})
            self._metrics.count("DrainSignalErrors")
            return 0

    def claim(self) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key,
                # The Scaler writes both numbers (claimed 0); an item without them fails the condition.
                UpdateExpression="SET claimed = claimed + :one",
                ConditionExpression="claimed < surplus",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False  # another worker took the last one
            logger.warning("drain signal: claim failed; not draining", exc_info=True)
            self._metrics.count("DrainSignalErrors")
            return False
        except BotoCoreError:
            logger.warning("drain signal: claim failed; not draining", exc_info=True)
            self._metrics.count("DrainSignalErrors")
            return False
        return True


class Drain:
    """The worker's check at a message boundary: read at most every ``check_s``, claim when it shows surplus."""

    def __init__(self, signal: DrainSignal, *, check_s: float, clock: Callable[[], float]) -> None:
        self._signal = signal
        self._check_s = check_s
        self._clock = clock
        self._read_at = -math.inf
        self._cached = 0

    def claim(self) -> bool:
        now = self._clock()
        if now - self._read_at >= self._check_s:
            self._read_at = now
            self._cached = self._signal.unclaimed()
        if self._cached <= 0:
            return False
        if self._signal.claim():
            return True
        self._cached = 0  # all taken: wait for the next read
        return False
