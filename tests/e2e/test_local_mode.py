"""``taskrunner local`` as a developer leaves it running: reachable through .taskrunner/local.json, runs jobs
as local processes with their real exit codes, and stops cleanly on SIGTERM (as on Ctrl-C)."""

from __future__ import annotations

import json
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskrunner.domain.runs import Run, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from tests.e2e.local import STATE, Local, running_local, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    """GIVEN taskrunner local on a chosen port, nightly-report's command replaced by one that exits 3."""
    args = ["--port", str(free_port()), "--command", "nightly-report=python -c 'raise SystemExit(3)'"]
    with running_local(args) as instance:
        yield instance


def test_local_json_names_the_endpoint_on_the_requested_port(local: Local) -> None:
    state = json.loads(STATE.read_text())
    assert state["endpoint"].startswith("http://127.0.0.1:")
    assert state["stack"] == "taskrunner"
    assert local.outputs["ClusterName"]


def test_an_event_matching_a_pattern_runs_its_job_locally(local: Local) -> None:
    """WHEN an OrderPlaced event over 1000 is put on the default bus
    THEN order-audit's rule routes it, its local command (examples/jobs/audit.py) runs and the run SUCCEEDS."""
    local.client("events").put_events(
        Entries=[
            {
                "Source": "com.example.orders",
                "DetailType": "OrderPlaced",
                "Detail": json.dumps({"order_id": f"o-{uuid.uuid4().hex[:6]}", "total": 1500}),
            }
        ]
    )

    def audit_run() -> Run | None:
        runs = [r for r in local.store().history("order-audit", limit=5) if r.status.terminal]
        return runs[0] if runs else None

    run = wait_for(audit_run, 30, "an order-audit run")
    assert run.status == "SUCCEEDED", run
    assert run.exit_code == 0


def test_a_failing_command_fails_its_run_with_its_exit_code_and_describe_tasks_agrees(local: Local) -> None:
    body = {"job": "nightly-report", "trigger": "manual", "request_id": str(uuid.uuid4())}
    local.client("sqs").send_message(QueueUrl=local.outputs["DispatchQueueUrl"], MessageBody=json.dumps(body))
    run_id = run_id_for(idempotency_key(DispatchRequest.model_validate(body)))

    run = local.finished(run_id)

    assert run.status == "FAILED"
    assert run.exit_code == 3
    assert run.failure == "exit"
    [task] = local.client("ecs").describe_tasks(cluster=local.outputs["ClusterName"], tasks=[run.task_arn])["tasks"]
    assert task["lastStatus"] == "STOPPED"
    assert task["containers"][0]["exitCode"] == 3


def test_a_per_message_job_gets_tasks_that_drain_its_queue_and_exit(local: Local) -> None:
    """WHEN messages arrive on transcode's queue (per-message mode)
    THEN within a Scaler round RunTask starts worker tasks, run locally, that drain the queue and exit 0."""
    prefix = local.outputs["RegistryPrefix"]
    spec = json.loads(local.client("ssm").get_parameter(Name=f"{prefix}/transcode")["Parameter"]["Value"])
    sqs = local.client("sqs")
    for n in range(3):
        sqs.send_message(QueueUrl=spec["queue_url"], MessageBody=json.dumps({"n": n, "sleep_s": 0}))

    def finished_tasks() -> list[str] | None:
        arns = local.client("ecs").list_tasks(
            cluster=local.outputs["ClusterName"], startedBy="taskrunner-scaler-transcode", desiredStatus="STOPPED"
        )["taskArns"]
        attributes = sqs.get_queue_attributes(QueueUrl=spec["queue_url"], AttributeNames=["All"])["Attributes"]
        empty = attributes["ApproximateNumberOfMessages"] == "0" == attributes["ApproximateNumberOfMessagesNotVisible"]
        return arns if arns and empty else None

    arns = wait_for(finished_tasks, 45, "transcode's tasks to drain its queue")
    tasks = local.client("ecs").describe_tasks(cluster=local.outputs["ClusterName"], tasks=arns)["tasks"]
    assert {c["exitCode"] for task in tasks for c in task["containers"]} == {0}


def test_sigterm_stops_everything_and_removes_local_json(local: Local) -> None:
    """WHEN local mode gets SIGTERM (what Ctrl-C does)
    THEN it exits 0, removes .taskrunner/local.json, and leaves no task or worker process behind."""
    local.proc.send_signal(signal.SIGTERM)
    output, _ = local.proc.communicate(timeout=60)

    assert local.proc.returncode == 0, output[-3000:]
    assert not STATE.exists()
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    pids = [entry["pid"] for entry in entries if "pid" in entry]
    assert pids, "no task process was reported"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"process {pid} outlived local mode"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
