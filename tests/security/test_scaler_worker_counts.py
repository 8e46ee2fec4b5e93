"""The Tracker now writes the Scaler's per-message worker counts: only the stack's own per-message workers move them.

A task another stack, another family or a one-off run started cannot raise or lower a job's count by naming the job
in its group (an under-count would make the Scaler launch more; an over-count, fewer).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest

from taskrunner.domain.errors import PermanentError
from taskrunner.handlers import tracker
from tests.unit.fakes import ACCOUNT, CLUSTER_ARN, FakeRegistry, tracker_handler_service
from tests.unit.test_autoscale import States

TASK = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/taskrunner/forged"


def state_change(status: str, **detail: Any) -> dict[str, Any]:
    body = {
        "taskArn": TASK,
        "clusterArn": CLUSTER_ARN,
        "lastStatus": status,
        "startedBy": "taskrunner-scaler-transcode",
        "group": "taskrunner:transcode",
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/taskrunner-transcode:1",
    } | detail
    return {"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": body}


FORGED = {
    "another stack's family": {
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/other-transcode:1"
    },
    "another job's family": {"taskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/taskrunner-x:1"},
    "a one-off run's startedBy": {"startedBy": "0123456789abcdef0123456789-1"},
    "a service task": {"startedBy": "ecs-svc/123", "group": "service:taskrunner-transcode"},
    "a mismatched group": {"group": "taskrunner:other"},
}


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
@pytest.mark.parametrize("status", ["RUNNING", "STOPPED"])
def test_a_task_that_is_not_the_jobs_per_message_worker_never_moves_its_count(
    forged: dict[str, Any], status: str
) -> None:
    ledger = States()
    svc = dataclasses.replace(tracker_handler_service(FakeRegistry()).service, workers=ledger)

    with contextlib.suppress(PermanentError):  # refused as a run's state change: fine, if no count moved
        tracker.track(svc, state_change(status, **forged))

    assert ledger.live == {}
    assert ledger.gone == {}
    assert ledger.version == {}


def test_the_jobs_own_worker_moves_it() -> None:
    ledger = States()
    svc = dataclasses.replace(tracker_handler_service(FakeRegistry()).service, workers=ledger)

    tracker.track(svc, state_change("STOPPED"))

    assert ledger.gone == {"transcode": {TASK}}
