"""The chaos benchmark's speed-ups change how fast moto answers, never what it answers; its table renders every run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import boto3
import pytest
from botocore.retries import standard
from moto import mock_aws
from moto.ecs.models import EC2ContainerServiceBackend
from moto.sqs.models import SQSBackend, sqs_backends

from taskrunner.local.moto_ecs import pin_task_states, unpin_task_states

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chaos = _module("chaos")
report = _module("report")


@pytest.fixture
def ecs(monkeypatch):
    """A cluster with three Fargate tasks in moto, kept RUNNING until stopped as local mode does; patches undone."""
    pin_task_states()
    monkeypatch.setattr(EC2ContainerServiceBackend, "describe_tasks", EC2ContainerServiceBackend.describe_tasks)
    monkeypatch.setattr(EC2ContainerServiceBackend, "stop_task", EC2ContainerServiceBackend.stop_task)
    with mock_aws():
        client = boto3.client("ecs", region_name="us-east-1")
        client.create_cluster(clusterName="c")
        client.register_task_definition(family="f", containerDefinitions=[{"name": "job", "image": "x", "memory": 512}])
        network = {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}
        arns = [
            client.run_task(cluster="c", taskDefinition="f", launchType="FARGATE", networkConfiguration=network)[
                "tasks"
            ][0]["taskArn"]
            for _ in range(3)
        ]
        yield client, arns
    unpin_task_states()


def _described(client, arns):
    return sorted(
        (t["taskArn"], t["lastStatus"], t.get("stoppedReason"))
        for t in client.describe_tasks(cluster="c", tasks=arns)["tasks"]
    )


def test_indexed_describe_and_stop_answer_as_moto_does(ecs):
    client, arns = ecs
    client.stop_task(cluster="c", task=arns[0], reason="moto's own stop")
    before = _described(client, arns)
    chaos.index_moto_task_lookups()
    assert _described(client, arns) == before
    client.stop_task(cluster="c", task=arns[1], reason="indexed stop")
    after = {arn: (status, reason) for arn, status, reason in _described(client, arns)}
    assert after[arns[1]] == ("STOPPED", "indexed stop")
    assert after[arns[2]][0] == before[[a for a, *_ in before].index(arns[2])][1]
    # A task named by its ID only still goes to moto's own lookup.
    task_id = arns[2].rsplit("/", 1)[-1]
    assert [t["taskArn"] for t in client.describe_tasks(cluster="c", tasks=[task_id])["tasks"]] == [arns[2]]


def test_botocore_backoff_is_scaled_not_skipped(monkeypatch):
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", standard.ExponentialBackoff.delay_amount)
    backoff = standard.ExponentialBackoff(random=lambda: 1.0)
    context = standard.RetryContext(attempt_number=3)
    full = backoff.delay_amount(context)
    chaos.compress_botocore_backoff(0.05)
    assert backoff.delay_amount(context) == pytest.approx(full * 0.05)
    assert full > 0


def test_the_table_renders_every_chaos_run_once_with_stuck_and_speed(tmp_path, monkeypatch):
    base = {
        "benchmark": "chaos",
        "runs_expected": 10,
        "runs_launched": 10,
        "lost": 0,
        "duplicates": 0,
        "retried": 2,
        "dead_lettered": 0,
        "final_status": {"SUCCEEDED": 9, "FAILED": 1},
        "seconds": 12.5,
    }
    new = base | {
        "events": 10,
        "seed": 3,
        "stuck": 0,
        "attempts_launched": 12,
        "cpu_seconds": 7.5,
        "events_per_s": 0.8,
        "api_calls_per_event": 15.5,
        "faults_injected": {"oom_kills": 1, "max_held_running": 10},
        "api_calls": {"dynamodb:UpdateItem": {"calls": 50, "seconds": 4.0}},
    }
    old = base | {"events": 5, "seed": 1, "faults_injected": {"throttle": 3}}
    (tmp_path / "chaos.json").write_text(json.dumps(new))
    (tmp_path / "chaos-10.json").write_text(json.dumps(new))  # the same run under both names: one row
    (tmp_path / "chaos-5.json").write_text(json.dumps(old))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    lines = report.chaos_section()
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 2
    assert rows[0].startswith("| 5 | 1 |")
    assert "| n/a |" in rows[0]
    assert rows[1].startswith("| 10 | 3 | 10 | 12 | 0 | 0 | 0 |")
    assert "| 7.5 | 0.8 | 15.5 |" in rows[1]
    text = "\n".join(lines)
    assert "oom kills 1" in text
    assert "max held running" not in text
    assert "dynamodb:UpdateItem 50 calls / 4.0 s" in text


def test_retention_is_read_directly_with_moto_s_answer(monkeypatch):
    monkeypatch.setattr(
        SQSBackend, "is_message_valid_based_on_retention_period", SQSBackend.is_message_valid_based_on_retention_period
    )
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        backend = sqs_backends["123456789012"]["us-east-1"]
        [message] = backend.get_queue("q")._messages
        original = backend.is_message_valid_based_on_retention_period
        chaos.read_retention_directly()
        assert backend.is_message_valid_based_on_retention_period("q", message) is original("q", message) is True
        message.sent_timestamp -= 61_000  # past the queue's 60 s retention
        assert backend.is_message_valid_based_on_retention_period("q", message) is original("q", message) is False
