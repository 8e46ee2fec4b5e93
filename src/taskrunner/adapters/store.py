"""The runs table (DynamoDB): one item per run, written only with conditions.

Key: ``run_id`` (derived from the event's identity). A ``by-job`` index (``job``, ``created_at``)
serves run history. Finished runs carry ``expires_at`` for the table's TTL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from taskrunner.adapters.clients import client, error_code
from taskrunner.domain.dispatch import TAKEN, classify_claim
from taskrunner.domain.ports import Claim, ClaimKind
from taskrunner.domain.runs import ACTIVE_STATUSES, ATTEMPT_FIELDS, Run, RunStatus, as_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_ser = TypeSerializer()
_de = TypeDeserializer()
_STAMP = TypeAdapter(datetime)


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
        """Attempt 1 creates the run; a retry (attempt n > 1) takes the run over from RETRYING for attempt n.

        The condition of each write admits exactly what :func:`~taskrunner.domain.dispatch.classify_claim` calls
        NEW or RECLAIMED (that function decides the kind, from the record the write replaced or refused), so the
        decision has one home and the write stays atomic.
        """
        if run.attempt > 1:
            return self._claim_retry(run, now)
        item = {k: _plain(v) for k, v in as_item(run).items()}  # a float (retry_due …) as DynamoDB's decimal
        item["lease_until"] = int(run.lease_until or now)
        item["status_rank"] = run.status.order(run.attempt)
        item["attempts"] = {str(run.attempt): {"status": run.status.value}}
        try:
            response = self.db.put_item(
                TableName=self.table,
                Item=_marshal(item),
                # A first attempt may take over only its own job's expired first-attempt claim, never a retry's.
                ConditionExpression="attribute_not_exists(run_id) OR "
                "(#s = :claimed AND lease_until < :now AND attempt = :attempt AND job = :job)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_marshal(
                    {":claimed": RunStatus.CLAIMED.value, ":now": int(now), ":attempt": run.attempt, ":job": run.job}
                ),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return self._refused(run, now)
        old = _run(response["Attributes"]) if response.get("Attributes") else None
        if old is not None and old.redrives:
            self._keep_redrives(run, old.redrives, item["lease_until"])
        return self._taken(old, run, now)

    def _keep_redrives(self, run: Run, redrives: int, lease: int) -> None:
        """A reclaim's put replaced the item: the attempt's re-drive count carries over, so MAX_REDRIVES still
        bounds how often reconciliation re-drives it (only while this claim is still the one in the table)."""
        with contextlib.suppress(ClientError):
            self.db.update_item(
                TableName=self.table,
                Key=_marshal({"run_id": run.run_id}),
                UpdateExpression="SET redrives = :n",
                ConditionExpression="#s = :claimed AND attempt = :a AND lease_until = :lease",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_marshal(
                    {
                        ":n": redrives,
                        ":claimed": RunStatus.CLAIMED.value,
                        ":a": run.attempt,
                        ":lease": lease,
                    }
                ),
            )

    def _claim_retry(self, run: Run, now: float) -> Claim:
        values = {
            ":attempt": run.attempt,
            ":job": run.job,
            ":fresh": {"status": RunStatus.CLAIMED.value},
            ":retrying": RunStatus.RETRYING.value,
            ":claimed": RunStatus.CLAIMED.value,
            ":now": int(now),
            ":lease": int(run.lease_until or now),
            ":rank": RunStatus.CLAIMED.order(run.attempt),
            ":updated": run.updated_at.isoformat(),
        }
        try:
            response = self.db.update_item(
                TableName=self.table,
                Key=_marshal({"run_id": run.run_id}),
                UpdateExpression="SET #s = :claimed, lease_until = :lease, status_rank = :rank, updated_at = :updated, "
                "attempts.#n = if_not_exists(attempts.#n, :fresh)",
                # The job is part of the condition: a retry naming another job's run id takes nothing over.
                ConditionExpression="job = :job AND attempt = :attempt AND "
                "(#s = :retrying OR (#s = :claimed AND lease_until < :now))",
                ExpressionAttributeNames={"#s": "status", "#n": str(run.attempt)},
                ExpressionAttributeValues=_marshal(values),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return self._refused(run, now)
        return self._taken(_run(response["Attributes"]), run, now)

    @staticmethod
    def _taken(old: Run | None, run: Run, now: float) -> Claim:
        kind = classify_claim(old, run, now)
        if kind not in TAKEN:  # the condition and the domain's rule disagree: a bug, never a silent second launch
            raise AssertionError(f"claim of run {run.run_id} was written over a record the domain calls {kind}")
        return Claim(kind, old)

    def _refused(self, run: Run, now: float) -> Claim:
        existing = self.get(run.run_id)
        kind = classify_claim(existing, run, now)
        # Refused, yet takeable when read again: the record changed between the write and the read (or the lease
        # ended within the same second). Another invocation is at it; the redelivery decides again.
        return Claim(ClaimKind.BUSY if kind in TAKEN else kind, existing)

    def get(self, run_id: str) -> Run | None:
        response = self.db.get_item(TableName=self.table, Key=_marshal({"run_id": run_id}), ConsistentRead=True)
        return _run(response["Item"]) if "Item" in response else None

    def update(self, run_id: str, status: RunStatus, attempt: int, **fields: Any) -> bool:
        """Move a run forward; False (and no write) if it is already at or past ``status`` of ``attempt``.

        Attempt-scoped fields (task, times, exit, reason …) are written to the attempt's own record and mirrored
        at the run's top level; one given as None is removed from both, so a run's (and an attempt's) reason is
        its own.
        """
        now = time.time()
        plain = {k: _plain(v) for k, v in fields.items()}
        values: dict[str, Any] = {k: v for k, v in plain.items() if v is not None}
        removed = sorted(k for k, v in plain.items() if v is None)
        values |= {
            "status": status.value,
            "attempt": attempt,
            "updated_at": _iso(now),
            "status_rank": status.order(attempt),
        }
        if status.terminal:
            values["expires_at"] = int(now) + self.history_s
        names = {f"#{k}": k for k in values} | {f"#{k}": k for k in removed}
        sets = [f"#{k} = :{k}" for k in values]
        record = {k: v for k, v in values.items() if k in ATTEMPT_FIELDS} | {"status": status.value}
        names["#n"] = str(attempt)
        sets += [f"attempts.#n.#a_{k} = :a_{k}" for k in record]
        names |= {f"#a_{k}": k for k in record}
        attribute_values = {f":{k}": v for k, v in values.items()} | {f":a_{k}": v for k, v in record.items()}
        # Removed from the attempt's own record too: an attempt's reason is its own, not why it was scheduled.
        cleared = [k for k in removed if k in ATTEMPT_FIELDS]
        names |= {f"#a_{k}": k for k in cleared}
        remove = [
            *(f"#{k}" for k in removed),
            *(f"attempts.#n.#a_{k}" for k in cleared),
            *([] if status is RunStatus.CLAIMED else ["lease_until"]),
        ]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(remove) if remove else "")
        for _ in range(2):
            try:
                self.db.update_item(
                    TableName=self.table,
                    Key=_marshal({"run_id": run_id}),
                    UpdateExpression=expression,
                    # Only forward: a late or repeated update never moves a run back.
                    ConditionExpression="attribute_exists(run_id) AND status_rank < :status_rank",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=_marshal(attribute_values),
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                if error_code(exc) == "ValidationException" and "document path" in str(exc):
                    self._ensure_attempt(run_id, attempt)  # a record written before attempts were kept
                    continue
                raise
            return True
        return False

    def _ensure_attempt(self, run_id: str, attempt: int) -> None:
        with contextlib.suppress(ClientError):
            self.db.update_item(
                TableName=self.table,
                Key=_marshal({"run_id": run_id}),
                UpdateExpression="SET attempts = if_not_exists(attempts, :empty)",
                ConditionExpression="attribute_exists(run_id)",
                ExpressionAttributeValues=_marshal({":empty": {}}),
            )
        self.db.update_item(
            TableName=self.table,
            Key=_marshal({"run_id": run_id}),
            UpdateExpression="SET attempts.#n = if_not_exists(attempts.#n, :empty)",
            ExpressionAttributeNames={"#n": str(attempt)},
            ExpressionAttributeValues=_marshal({":empty": {}}),
        )

    def redriven(self, run: Run, now: float) -> bool:
        """One more re-drive of a lost retry or an abandoned claim, if the run is still exactly where it was."""
        try:
            self.db.update_item(
                TableName=self.table,
                Key=_marshal({"run_id": run.run_id}),
                # retry_due moves on, so the next reconciliation waits a full grace period before trying again.
                UpdateExpression="SET redrives = :next, updated_at = :updated, retry_due = :now",
                ConditionExpression="#s = :s AND attempt = :a AND (attribute_not_exists(redrives) OR redrives = :old)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_marshal(
                    {
                        ":next": run.redrives + 1,
                        ":old": run.redrives,
                        ":updated": _iso(now),
                        ":now": int(now),
                        ":s": run.status.value,
                        ":a": run.attempt,
                    }
                ),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def abandon(self, run: Run, reason: str) -> bool:
        return self.update(run.run_id, RunStatus.LAUNCH_FAILED, run.attempt, reason=reason[:1000])

    def release(self, run_id: str) -> None:
        self.db.update_item(
            TableName=self.table,
            Key=_marshal({"run_id": run_id}),
            # updated_at shows the claim is still alive (its message is back in the queue), not abandoned.
            UpdateExpression="SET lease_until = :zero, updated_at = :updated",
            ConditionExpression="#s = :claimed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=_marshal(
                {":zero": 0, ":claimed": RunStatus.CLAIMED.value, ":updated": _iso(time.time())}
            ),
        )

    def active(self) -> list[Run]:
        """Every run reconciliation owns (a task, a claim or a retry in flight), paging through all of them."""
        runs: list[Run] = []
        for status in ACTIVE_STATUSES:
            paginator = self.db.get_paginator("query")
            pages = paginator.paginate(
                TableName=self.table,
                IndexName="by-status",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_marshal({":s": status.value}),
            )
            runs += [_run(item) for page in pages for item in page.get("Items", [])]
        return runs

    def history(self, job: str, limit: int = 50, status: RunStatus | None = None) -> list[Run]:
        """A job's newest runs through the ``by-job`` index, optionally only those in ``status``.

        A status filter is applied by DynamoDB after reading, so a page may hold few matches: pages are read
        until ``limit`` runs match or the job's runs are exhausted.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by-job",
            "KeyConditionExpression": "job = :job",
            "ExpressionAttributeValues": {":job": _ser.serialize(job)},
            "ScanIndexForward": False,
        }
        if status is not None:
            kwargs["FilterExpression"] = "#s = :status"
            kwargs["ExpressionAttributeNames"] = {"#s": "status"}
            kwargs["ExpressionAttributeValues"][":status"] = _ser.serialize(status.value)
        return self._query(kwargs, limit, filtered=status is not None)

    def recent(self, status: RunStatus, since: datetime | None = None, limit: int = 1000) -> list[Run]:
        """Runs in ``status`` created at or after ``since`` (all of them without it), newest first.

        One query of the ``by-status`` index (``status``, ``created_at``): counting a status never scans the table.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "by-status",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": _ser.serialize(status.value)},
            "ScanIndexForward": False,
        }
        if since is not None:
            kwargs["KeyConditionExpression"] += " AND created_at >= :since"
            kwargs["ExpressionAttributeValues"][":since"] = _ser.serialize(_stamp(since))
        return self._query(kwargs, limit, filtered=False)

    def newest(self, jobs: Iterable[str], limit: int = 50, status: RunStatus | None = None) -> list[Run]:
        """The newest ``limit`` runs across ``jobs``: each job's newest through its index, merged.

        A Scan would have to read the whole table to know which runs are the newest; this reads at most
        ``limit`` matching runs per job.
        """
        runs = [run for job in jobs for run in self.history(job, limit, status)]
        return sorted(runs, key=lambda run: run.created_at, reverse=True)[:limit]

    def _query(self, kwargs: dict[str, Any], limit: int, *, filtered: bool) -> list[Run]:
        runs: list[Run] = []
        while len(runs) < limit:
            # Without a filter every item read is a match; with one, read more per page so few pages are needed.
            page = self.db.query(**kwargs, Limit=max(100, limit) if filtered else limit - len(runs))
            runs += [_run(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return runs[:limit]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(str(value))  # DynamoDB numbers are decimals; boto3 refuses floats
    return value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _stamp(moment: datetime) -> str:
    """``created_at`` as the items hold it (pydantic's JSON form of a UTC time), so range keys compare as strings."""
    return str(_STAMP.dump_python(moment.astimezone(UTC), mode="json"))
