"""The Scaler against the deployed stack: raises and lowers a worker service, launches per-message workers once."""

from __future__ import annotations

import itertools
import json

from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.queues import Queues
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.state import DynamoStateStore
from taskrunner.domain.autoscale import Autoscaler
from tests.integration.conftest import Stack


def spec_of(stack: Stack, job: str) -> dict[str, object]:
    value = stack.client("ssm").get_parameter(Name=f"{stack.outputs['RegistryPrefix']}/{job}")["Parameter"]["Value"]
    return dict(json.loads(value))


def send(stack: Stack, queue_url: str, n: int) -> None:
    sqs = stack.client("sqs")
    for start in range(0, n, 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(min(10, n - start))]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


def purge(stack: Stack, queue_url: str) -> None:
    """Consume everything (PurgeQueue is limited to once a minute)."""
    sqs = stack.client("sqs")
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)


def desired(stack: Stack, service: str) -> int:
    [svc] = stack.client("ecs").describe_services(cluster=stack.outputs["ClusterName"], services=[service])["services"]
    return int(svc["desiredCount"])


def test_first_messages_at_zero_tasks_scale_the_worker_service_out_in_one_round(stack: Stack) -> None:
    """GIVEN the image-worker service at desired 0 and 30 messages arriving
    WHEN the Scaler runs one observation round (the handler string template.yaml names)
    THEN the service's desired count rises at once, within [1, max_tasks]."""
    spec = spec_of(stack, "image-worker")
    purge(stack, str(spec["queue_url"]))
    send(stack, str(spec["queue_url"]), 30)

    result = stack.invoke("ScalerFunctionName", {"rounds": 1})

    assert result["rounds"] == 1
    assert 1 <= desired(stack, str(spec["service"])) <= 20
    assert result["jobs"]["image-worker"]["reason"] == "scale-out"
    purge(stack, str(spec["queue_url"]))


def test_service_scales_back_to_zero_only_after_the_queue_stays_idle(stack: Stack) -> None:
    """GIVEN a scaled-out worker service whose queue has been drained
    WHEN observation rounds continue every 15 s (the Scaler's clock driven forward)
    THEN desired stays up through the idle period, then reaches zero, and never rises without messages."""
    spec = spec_of(stack, "image-worker")
    now = [1_000_000.0]
    ecs = EcsCluster(stack.client("ecs"))
    autoscaler = Autoscaler(
        SsmRegistry(stack.outputs["RegistryPrefix"], stack.client("ssm")),
        Queues(stack.client("sqs")),
        ecs,
        ecs,
        DynamoStateStore(stack.outputs["ScalerStateTableName"], stack.client("dynamodb")),
        stack=stack.bounds(),
        clock=lambda: now[0],
        sleep=lambda _: None,
    )
    purge(stack, str(spec["queue_url"]))
    send(stack, str(spec["queue_url"]), 40)
    autoscaler.round()
    peak = desired(stack, str(spec["service"]))
    purge(stack, str(spec["queue_url"]))

    history = []
    for _ in range(4 * 10):  # ten minutes of 15-second rounds (idle_before_zero_s is 120)
        now[0] += 15
        autoscaler.round()
        history.append(desired(stack, str(spec["service"])))

    assert peak >= 2
    assert history[0] >= 1, "no scale-in before the idle time has passed"
    assert history[6] >= 1, "still inside the 120 s idle time"
    assert history[-1] == 0
    assert all(later <= earlier for earlier, later in itertools.pairwise(history))


def test_per_message_mode_launches_for_the_backlog_once(stack: Stack) -> None:
    """GIVEN 5 messages on the transcode (per-message) queue and no workers
    WHEN the Scaler runs a round, and then another
    THEN 5 worker tasks are launched by the first round and none by the second."""
    spec = spec_of(stack, "transcode")
    send(stack, str(spec["queue_url"]), 5)

    first = stack.invoke("ScalerFunctionName", {"rounds": 1})
    second = stack.invoke("ScalerFunctionName", {"rounds": 1})

    assert first["jobs"]["transcode"]["launched"] == 5
    assert second["jobs"]["transcode"]["launched"] == 0
    assert len(stack.task_arns(family="taskrunner-transcode")) == 5
