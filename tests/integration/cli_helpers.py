"""What the CLI's integration tests share: calling ``taskrunner`` in-process, registry entries of their own,
runs seeded into the real runs table, queue helpers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from taskrunner.cli import main
from taskrunner.domain.runs import Run, RunStatus, as_item
from taskrunner.domain.triggers import Trigger
from tests.integration.conftest import Stack

STACK = ["--stack", "taskrunner"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, *STACK] if argv[0] not in {"simulate", "local"} else list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def register(stack: Stack, name: str, like: str, **fields: Any) -> dict[str, Any]:
    """A job ``name`` of this stack like ``like``, with ``fields`` changed (its own task-definition family)."""
    stack.register_job(name, like=like, **fields)
    return spec_of(stack, name)


def unregister(stack: Stack, name: str) -> None:
    stack.client("ssm").delete_parameter(Name=f"{stack.outputs['RegistryPrefix']}/{name}")


def spec_of(stack: Stack, job: str) -> dict[str, Any]:
    name = f"{stack.outputs['RegistryPrefix']}/{job}"
    spec: dict[str, Any] = json.loads(stack.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
    return spec


def purge(stack: Stack, queue_url: str) -> None:
    sqs = stack.client("sqs")
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


def visible(stack: Stack, queue_url: str) -> int:
    attrs = stack.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def peek(stack: Stack, queue_url: str) -> list[dict[str, Any]]:
    """The queue's visible messages, left visible (VisibilityTimeout=0) and undeleted."""
    response = stack.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def seed(
    stack: Stack,
    job: str,
    status: RunStatus,
    *,
    run_id: str | None = None,
    age: timedelta = timedelta(0),
    **fields: Any,
) -> Run:
    """A run in the runs table as the Dispatcher and Tracker would have left it, created ``age`` ago."""
    created = datetime.now(UTC) - age
    run = Run(
        run_id=run_id or uuid.uuid4().hex[:26],
        job=job,
        trigger=fields.pop("trigger", Trigger.MANUAL),
        idempotency_key=f"{job}|seeded|{uuid.uuid4()}",
        status=status,
        created_at=created,
        updated_at=created,
        **fields,
    )
    # Written whole, as a record at any attempt stands (a claim would only create attempt 1).
    item = as_item(run) | {"status_rank": run.status.order(run.attempt)}
    serialize = TypeSerializer().serialize
    stack.client("dynamodb").put_item(
        TableName=stack.outputs["RunsTableName"], Item={k: serialize(v) for k, v in item.items()}
    )
    return run
