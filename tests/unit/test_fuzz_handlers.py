"""Every handler fuzzed at its entry point: malformed or hostile events end as a recorded reason, never a crash,
never a launched task, and never cost a valid record in the same batch.

The handlers run with in-memory fakes of their ports (the same `handle_event` the Lambda entry point calls).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner.domain.runs import RunStatus, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.handlers import dispatcher, scaler, tracker
from taskrunner.local.invoke import LambdaContext
from taskrunner.settings import ScalerSettings
from tests.conftest import load_event
from tests.unit.fakes import (
    CLUSTER_ARN,
    STACK_ENV,
    FakeCluster,
    FakeMessages,
    FakeRegistry,
    FakeRunStore,
    dispatcher_handler_service,
    job_spec,
    sqs_record,
    tracker_handler_service,
)

CONTEXT = LambdaContext(function_name="fuzz")
FUZZ = settings(
    max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "job",
        "trigger",
        "scheduled_at",
        "event",
        "request_id",
        "env",
        "run_id",
        "attempt",
        "source",
        "detail-type",
        "detail",
        "id",
        "time",
        "taskArn",
        "clusterArn",
        "lastStatus",
    ]
)
HOSTILE_OBJECTS = st.dictionaries(KEYS | st.text(max_size=10), JSON, max_size=8)
HOSTILE_BODIES = st.one_of(
    HOSTILE_OBJECTS.map(json.dumps),
    JSON.map(json.dumps),
    st.text(alphabet=string.printable, max_size=200),
    st.sampled_from(["", "{", "[]", "null", "1e999999", '"' + "x" * 20_000 + '"', "{" * 5000 + "}" * 5000]),
    st.builds(
        lambda job: json.dumps({"job": job, "trigger": "manual", "request_id": "0123456789abcdef"}),
        st.text(max_size=50),
    ),
)


def dispatcher_service() -> tuple[dispatcher.Service, FakeCluster, FakeMessages]:
    svc = dispatcher_handler_service(FakeRegistry(job_spec(), job_spec(name="order-audit")))
    return svc.service, svc.cluster, svc.messages


@FUZZ
@given(hostile=st.lists(HOSTILE_BODIES, min_size=1, max_size=4), position=st.integers(0, 4), n=st.integers(0, 10**9))
def test_dispatcher_batches_never_crash_launch_garbage_or_lose_the_valid_record(
    hostile: list[str], position: int, n: int
) -> None:
    svc, cluster, messages = dispatcher_service()
    valid = json.dumps({"job": "order-audit", "trigger": "manual", "request_id": f"valid-request-{n:012d}"})
    bodies = [*hostile[:position], valid, *hostile[position:]]
    event = {"Records": [sqs_record(body, i) for i, body in enumerate(bodies)]}

    response = dispatcher.handle_event(svc, event, CONTEXT)

    plausible = sum(1 for body in hostile if _is_plausible_launch(body))
    assert response["batchItemFailures"] == [], "garbage is dead-lettered and acknowledged, never retried"
    valid_run = run_id_for(idempotency_key(DispatchRequest.model_validate_json(valid)))
    assert sum(1 for r in cluster.requests if r["startedBy"] == f"{valid_run}-1") == 1, "the valid record ran"
    assert len(cluster.requests) == 1 + plausible, "nothing is launched for a malformed record"
    assert len(messages.dead) == len(hostile) - plausible, "every malformed record is dead-lettered"


def _is_plausible_launch(body: str) -> bool:
    """A generated body that is, by chance, a valid manual run of a known job (hypothesis can build those)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(payload, dict)
        and set(payload) == {"job", "trigger", "request_id"}
        and payload.get("job") in ("nightly-report", "order-audit")  # a tuple: the value may be unhashable
    )


def tracker_service() -> tuple[tracker.Service, FakeRunStore, FakeMessages]:
    svc = tracker_handler_service(FakeRegistry(job_spec()), accept_direct_events=True)
    return svc.service, svc.store, svc.messages


@FUZZ
@given(hostile=st.lists(HOSTILE_BODIES, min_size=1, max_size=4))
def test_tracker_batches_never_crash_and_dead_letter_garbage_with_a_reason(hostile: list[str]) -> None:
    svc, store, messages = tracker_service()
    event = {"Records": [sqs_record(body, i) for i, body in enumerate(hostile)]}

    response = tracker.handle_event(svc, event, CONTEXT)

    assert response["batchItemFailures"] == []
    assert len(messages.dead) == len(hostile)
    assert all(reason for _, reason in messages.dead)
    assert not [c for c in store.calls if c[0] == "update" and c[3]], "garbage never moves a run"


@settings(max_examples=5000, deadline=None)
@given(
    other=st.dictionaries(
        st.sampled_from(["taskArn", "clusterArn", "lastStatus", "startedBy", "containers", "stopCode", "version"]),
        JSON,
        max_size=7,
    )
)
def test_tracker_rejects_state_changes_for_other_clusters_and_broken_details(other: dict[str, Any]) -> None:
    svc, store, messages = tracker_service()
    base = load_event("ecs-task-stopped.json")  # its cluster is not this stack's
    base["detail"] = base["detail"] | other
    if base["detail"].get("clusterArn") == CLUSTER_ARN:
        base["detail"]["clusterArn"] = CLUSTER_ARN + "-other"

    response = tracker.handle_event(svc, base, CONTEXT)

    assert "dead_lettered" in response
    assert messages.dead
    assert not [c for c in store.calls if c[0] == "update" and c[2] is not RunStatus.CLAIMED and c[3]]


@dataclass
class NoLaunches:
    background: bool = False

    def collect(self) -> list[Any]:
        return []


@dataclass
class CountingAutoscaler:
    rounds: int = 0
    invalid: dict[str, str] = field(default_factory=dict)
    launcher: NoLaunches = field(default_factory=NoLaunches)

    def round(self) -> list[Any]:
        self.rounds += 1
        return []


@FUZZ
@given(event=JSON | HOSTILE_OBJECTS)
def test_scaler_never_crashes_and_never_scales_on_a_malformed_event(event: Any) -> None:
    autoscaler = CountingAutoscaler()
    settings_ = ScalerSettings.from_env(
        {
            "REGISTRY_PREFIX": "/taskrunner/t/jobs",
            "SCALER_STATE_TABLE": "s",
            "SCALER_INTERVAL_S": "0.001",
            "SCALER_WINDOW_S": "0.002",
        }
        | STACK_ENV
    )
    svc = scaler.Service(settings_, autoscaler)  # type: ignore[arg-type]

    response = scaler.handle_event(svc, event, CONTEXT)

    if "error" in response:
        assert autoscaler.rounds == 0
    else:
        assert autoscaler.rounds == response["rounds"] >= 1
