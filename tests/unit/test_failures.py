"""The failure taxonomy (domain/failures.py): every class of stopped task, its precedence, its retry, its docs.

Each class of the table has a realistic "ECS Task State Change" detail here, built from the messages
AWS's stopped-task pages print; a test fails when a class has none, so a row cannot be added untested.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskrunner.domain.dispatch import Dispatcher, Result
from taskrunner.domain.failures import (
    LOST,
    OOM_EXIT_CODE,
    RETRY_RULES,
    TABLE,
    FailureKind,
    RetryRule,
    classify,
    render_markdown,
)
from taskrunner.domain.jobs import RetryPolicy
from taskrunner.domain.runs import RunStatus, started_by
from taskrunner.domain.tracking import TIMEOUT_REASON, TaskState, Tracker, should_retry, verdict
from tests.unit.fakes import (
    ACCOUNT,
    CLUSTER_ARN,
    REGION,
    STACK,
    FakeClock,
    FakeCluster,
    FakeRegistry,
    FakeRetryScheduler,
    FakeRunStore,
    job_spec,
    make_run,
    schedule_request,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "failures.md"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/taskrunner/0d5f8f0f6b3c4b8a9c3e2f1a0b9c8d7e"
RUN_ID = "0123456789abcdef0123456789"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"


def container(exit_code: int | None = None, reason: str | None = None, *, name: str = "job") -> dict[str, Any]:
    """A container of a stopped task as the event shows it (``exitCode`` and ``reason`` only when ECS has them)."""
    shown: dict[str, Any] = {
        "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/taskrunner/0d5f8f0f/{name}",
        "name": name,
        "lastStatus": "STOPPED",
    }
    if exit_code is not None:
        shown["exitCode"] = exit_code
    if reason is not None:
        shown["reason"] = reason
    return shown


def stopped(
    stop_code: str | None = None, reason: str | None = None, *containers: dict[str, Any], attempt: int = 1
) -> dict[str, Any]:
    """The detail of an "ECS Task State Change" event for a stopped task of a run."""
    detail: dict[str, Any] = {
        "taskArn": TASK_ARN,
        "clusterArn": CLUSTER_ARN,
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "startedBy": started_by(RUN_ID, attempt),
        "launchType": "FARGATE",
        "containers": list(containers) or [container()],
        "version": 5,
    }
    if stop_code is not None:
        detail["stopCode"] = stop_code
    if reason is not None:
        detail["stoppedReason"] = reason
    return detail


ESSENTIAL_EXITED = "Essential container in task exited"

#: One realistic stopped task per class of the table, by the class's name.
CASES: dict[str, dict[str, Any]] = {
    "taskrunner timeout": stopped("UserInitiated", f"{TIMEOUT_REASON} after 3600s", container(143)),
    "taskrunner Replace overlap policy": stopped(
        "UserInitiated", f"taskrunner: replaced by run {RUN_ID} (overlap Replace)", container(143)
    ),
    "SpotInterruption": stopped("SpotInterruption", "Your Spot Task was interrupted.", container(137)),
    "TerminationNotice": stopped("TerminationNotice", "Your Spot Task was interrupted.", container(143)),
    "TaskFailedToStart": stopped(
        "TaskFailedToStart",
        "Unexpected EC2 error while attempting to Create Network Interface with public IP assignment enabled "
        "in subnet 'subnet-0a1b2c3d4e5f67890'",
    ),
    "InfrastructureHealth": stopped("InfrastructureHealth", None, container(143)),
    "Task maintenance (retirement)": stopped(
        None, "ECS is performing maintenance on the underlying infrastructure hosting the task", container(143)
    ),
    "Host EC2 instance stopped or terminated": stopped(None, "Host EC2 (instance i-0123456789abcdef0) terminated."),
    "Container instance deregistered": stopped(None, "Container instance deregistration forced by user"),
    "UserInitiated": stopped("UserInitiated", "Task stopped by user", container(143)),
    "ServiceSchedulerInitiated": stopped(
        "ServiceSchedulerInitiated",
        "Scaling activity initiated by (deployment ecs-svc/1234567890123456789)",
        container(0),
    ),
    "OutOfMemoryError": stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(137, OOM_REASON)),
    "CannotPullContainerError": stopped(
        None,
        None,
        container(
            reason="CannotPullContainerError: API error (404): repository "
            "111122223333.dkr.ecr.us-east-1.amazonaws.com/reports/nightly not found"
        ),
    ),
    "ResourceInitializationError: secrets or registry auth": stopped(
        None,
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
        "failed: unable to retrieve secret from asm: service call has been retried 1 time(s): "
        "AccessDeniedException: User is not authorized to perform: secretsmanager:GetSecretValue",
    ),
    "ResourceInitializationError: EFS mount": stopped(
        None,
        "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: "
        "b'mount.nfs4: mounting fs-06f98f3e7fbc8300c.efs.us-east-1.amazonaws.com:/data failed, reason given by "
        "server: No such file or directory' : unsuccessful EFS utils command execution; code: 32",
    ),
    # The log-group message names ResourceNotFoundException too: the logging row must come first.
    "ResourceInitializationError: log driver": stopped(
        None,
        "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
        "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not "
        "exist. : exit status 1",
    ),
    "ResourceInitializationError": stopped(
        None, "ResourceInitializationError: failed to configure ENI: failed to setup regular eni: netplugin failed"
    ),
    "ResourceNotFoundException": stopped(
        None,
        "Fetching secret data from AWS Secrets Manager in region us-east-1: secret "
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf: ResourceNotFoundException: "
        "Secrets Manager can't find the specified secret.",
    ),
    "CannotStartContainerError": stopped(
        None,
        None,
        container(reason="CannotStartContainerError: failed to get container status: container not found"),
    ),
    "CannotCreateVolumeError": stopped(
        None, None, container(reason="CannotCreateVolumeError: failed to create volume data: invalid mount")
    ),
    "ContainerRuntimeTimeoutError (to RUNNING)": stopped(
        None,
        None,
        container(reason="ContainerRuntimeTimeoutError: Could not transition to running; timed out after waiting 1m"),
    ),
    "InternalError": stopped(None, "InternalError: ENI attachment reported after the provisioning timeout"),
    "Capacity is unavailable": stopped(
        None, "Capacity is unavailable at this time. Please try again later or in a different availability zone"
    ),
    "Network interface provisioning timeout": stopped(
        None, "Timeout waiting for network interface provisioning to complete."
    ),
    "Network interface creation error": stopped(
        None,
        "Unexpected EC2 error while attempting to Create Network Interface with public IP assignment enabled "
        "in subnet 'subnet-0a1b2c3d4e5f67890'",
    ),
    "ContainerRuntimeError": stopped(
        None, None, container(reason="ContainerRuntimeError: failed to get the container's exit status")
    ),
    "ContainerRuntimeTimeoutError": stopped(
        None,
        None,
        container(reason="ContainerRuntimeTimeoutError: Could not transition to stopped; timed out after waiting 1m"),
    ),
    "CannotStopContainerError": stopped(
        None,
        None,
        container(reason="CannotStopContainerError: failed sending SIGTERM to container: context deadline exceeded"),
    ),
    "CannotInspectContainerError": stopped(
        None, None, container(reason="CannotInspectContainerError: context deadline exceeded")
    ),
    "EssentialContainerExited, exit code 0": stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(0)),
    "EssentialContainerExited, non-zero exit code": stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(2)),
    "EssentialContainerExited, no exit code": stopped("EssentialContainerExited", ESSENTIAL_EXITED, container()),
    "any other stop, exit code 0": stopped(None, None, container(0)),
    "any other stop, non-zero exit code": stopped(None, None, container(3)),
    "any other stop, no exit code": stopped(None, None, container()),
}

#: Whether each category retries under the default policy (3 attempts, start failures on, no exit codes listed).
RETRIED_BY_DEFAULT = {
    FailureKind.START: True,
    FailureKind.SPOT: True,
    FailureKind.PLATFORM: True,
    FailureKind.LOST: True,
    FailureKind.EXIT: False,
    FailureKind.OOM: False,
    FailureKind.TIMEOUT: False,
    FailureKind.STOPPED: False,
}
STATUS = {None: RunStatus.SUCCEEDED, FailureKind.TIMEOUT: RunStatus.TIMED_OUT, FailureKind.STOPPED: RunStatus.STOPPED}


def task(detail: dict[str, Any]) -> TaskState:
    return TaskState.model_validate(detail)


# --------------------------------------------------------------------------- every class


def test_every_class_of_the_table_has_a_case():
    assert set(CASES) == {row.name for row in TABLE}
    assert len({row.name for row in TABLE}) == len(TABLE), "class names are unique"


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_each_class_is_recognised_by_its_own_row(row):
    """GIVEN a stopped task of the class WHEN it is classified THEN its row, not an earlier one, matches."""
    detail = CASES[row.name]
    found = classify(detail.get("stopCode"), detail.get("stoppedReason"), detail["containers"])
    outcome = verdict(task(detail))

    assert found.stop_class == row
    assert outcome.failure == row.kind
    assert outcome.status is STATUS.get(row.kind, RunStatus.FAILED)


@pytest.mark.parametrize("row", [row for row in TABLE if row.kind is not None], ids=lambda row: row.name)
def test_each_failing_class_retries_as_its_category_says(row):
    outcome = verdict(task(CASES[row.name]))
    exit_code = task(CASES[row.name]).exit_code

    assert should_retry(RetryPolicy(), 1, outcome.failure, exit_code) is RETRIED_BY_DEFAULT[row.kind]


def test_every_category_has_a_retry_rule_and_the_rules_are_batchs():
    assert set(RETRY_RULES) == set(FailureKind)
    assert {kind for kind, retried in RETRIED_BY_DEFAULT.items() if retried} == {
        kind for kind, rule in RETRY_RULES.items() if rule is RetryRule.WHILE_ATTEMPTS_REMAIN
    }


def test_every_class_cites_a_public_aws_page():
    for row in (*TABLE, LOST):
        assert re.match(r"https://(docs\.aws\.amazon\.com|repost\.aws)/", row.source), row.name
        assert row.example, row.name
        assert row.why, row.name


def test_the_stored_failure_values_are_kept():
    """Run records store these strings; the values other code wrote must keep meaning the same."""
    assert {k.value for k in FailureKind} >= {"start", "spot", "exit", "timeout", "stopped", "lost"}
    assert FailureKind.OOM.value == "oom"
    assert FailureKind.PLATFORM.value == "platform"


# --------------------------------------------------------------------------- the OOM regression


def oom_task() -> TaskState:
    return task(stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(137, OOM_REASON)))


def test_an_oom_kill_is_the_applications_failure_not_a_start_failure():
    """Regression: "OutOfMemoryError: Container killed" was a start-failure marker, so an OOM kill retried."""
    outcome = verdict(oom_task())

    assert outcome.failure is FailureKind.OOM
    assert outcome.status is RunStatus.FAILED
    assert outcome.reason.startswith("exit code 137: ")
    assert OOM_REASON in outcome.reason


def test_an_oom_kill_is_not_retried_unless_the_job_lists_137():
    assert not should_retry(RetryPolicy(), 1, FailureKind.OOM, 137)
    assert not should_retry(RetryPolicy(retry_exit_codes=[1, 75]), 1, FailureKind.OOM, 137)
    assert should_retry(RetryPolicy(retry_exit_codes=[OOM_EXIT_CODE]), 1, FailureKind.OOM, 137)


def test_an_oom_kill_retries_on_137_even_when_ecs_reports_no_exit_code():
    """The kill is what 137 means: listing 137 asks for it, whatever code ECS managed to record."""
    assert should_retry(RetryPolicy(retry_exit_codes=[137]), 1, FailureKind.OOM, None)


def test_a_listed_137_still_respects_the_attempt_limit():
    assert not should_retry(RetryPolicy(max_attempts=2, retry_exit_codes=[137]), 2, FailureKind.OOM, 137)


def tracked(spec_retry: dict[str, Any]) -> tuple[FakeRunStore, FakeRetryScheduler, Any]:
    store = FakeRunStore()
    store.seed(make_run(schedule_request(), RUN_ID, status=RunStatus.RUNNING, task_arn=TASK_ARN))
    retries = FakeRetryScheduler()
    tracker = Tracker(
        FakeRegistry(job_spec(retry=spec_retry)),
        store,
        retries,
        stack_name="taskrunner",
        clock=FakeClock(),
        rng=lambda: 0.5,
    )
    # The run's own task: its job's group and task-definition family (the Tracker refuses any other).
    own = oom_task().model_copy(
        update={
            "group": "taskrunner:nightly-report",
            "task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/taskrunner-nightly-report:1",
        }
    )
    return store, retries, tracker.track(own)


def test_the_tracker_fails_an_oom_run_for_good_and_records_137():
    store, retries, outcome = tracked({"max_attempts": 3})

    run = store.get(RUN_ID)
    assert outcome.status is RunStatus.FAILED
    assert outcome.retry is None
    assert retries.scheduled == []
    assert run is not None
    assert run.status is RunStatus.FAILED
    assert run.failure == "oom"
    assert run.exit_code == 137


def test_the_tracker_retries_an_oom_run_when_the_job_lists_137():
    store, retries, outcome = tracked({"max_attempts": 3, "retry_exit_codes": "137"})

    run = store.get(RUN_ID)
    assert outcome.retry is not None
    assert [r.attempt for r in retries.scheduled] == [2]
    assert run is not None
    assert run.status is RunStatus.RETRYING
    assert "(oom)" in (run.reason or "")


# --------------------------------------------------------------------------- precedence


def kind_of(detail: dict[str, Any]) -> FailureKind | None:
    return verdict(task(detail)).failure


def test_a_stop_code_wins_over_the_exit_code_under_it():
    """A deliberate stop SIGTERMs the application (143); a failed start can leave a 137: neither is an exit."""
    assert kind_of(stopped("UserInitiated", "Task stopped by user", container(143))) is FailureKind.STOPPED
    assert kind_of(stopped("TaskFailedToStart", "Task failed to start", container(137))) is FailureKind.START
    assert kind_of(stopped("SpotInterruption", "Your Spot Task was interrupted.", container(137))) is FailureKind.SPOT


def test_a_user_stop_with_a_reason_of_its_own_is_a_stop():
    """StopTask takes any reason (the CLI's, an operator's): the stop code alone makes it deliberate."""
    detail = stopped("UserInitiated", "stopped by on-call: bad input batch", container(1))
    assert kind_of(detail) is FailureKind.STOPPED


def test_a_scheduler_stop_of_a_task_that_exited_0_is_still_a_stop():
    outcome = verdict(task(CASES["ServiceSchedulerInitiated"]))
    assert (outcome.status, outcome.failure) == (RunStatus.STOPPED, FailureKind.STOPPED)


def test_taskrunners_timeout_wins_over_the_user_stop_code_ecs_records_for_it():
    detail = stopped("UserInitiated", f"{TIMEOUT_REASON} after 60s", container(143))
    assert verdict(task(detail)).status is RunStatus.TIMED_OUT


def test_the_timeout_row_recognises_the_reason_the_reconciler_stops_with():
    """tracking.TIMEOUT_REASON and the table's timeout row must agree, or timeouts become user stops."""
    reconciler_stop = stopped(None, f"{TIMEOUT_REASON} after 900s")
    assert kind_of(reconciler_stop) is FailureKind.TIMEOUT


def test_the_replace_row_recognises_the_reason_the_dispatcher_stops_with():
    """The stop reason is taken from a real Replace dispatch, so the row and dispatch.py cannot drift."""
    cluster = FakeCluster()
    old = cluster.add_task(family="taskrunner-nightly-report")
    registry = FakeRegistry(job_spec(overlap="Replace"))
    dispatcher = Dispatcher(registry, FakeRunStore(), cluster, stack=STACK, clock=FakeClock(), lease_s=60)
    assert dispatcher.dispatch(schedule_request()).result is Result.LAUNCHED
    ((arn, reason),) = cluster.stopped
    assert arn == old

    outcome = verdict(task(stopped(None, reason, container(143))))
    assert (outcome.status, outcome.failure) == (RunStatus.STOPPED, FailureKind.STOPPED)


def test_a_user_stop_during_the_image_pull_is_a_stop_not_a_start_failure():
    """The task's stop code and reason say why it stopped; the container's reason is the pull it cut short."""
    detail = stopped(
        "UserInitiated",
        "Task stopped by user",
        container(reason="CannotPullContainerError: failed to copy: httpReadSeeker: failed open: context canceled"),
    )
    assert kind_of(detail) is FailureKind.STOPPED


def test_the_containers_reason_is_more_specific_than_the_tasks():
    """stoppedReason says an essential container exited; the container's reason says it was killed for memory."""
    assert kind_of(stopped(None, ESSENTIAL_EXITED, container(137, OOM_REASON))) is FailureKind.OOM


def test_an_oom_reason_in_the_tasks_stopped_reason_counts_too():
    assert kind_of(stopped(None, OOM_REASON, container(137))) is FailureKind.OOM


def test_a_plain_137_without_an_oom_reason_is_an_exit_code():
    """SIGKILL after the stop timeout is 137 too: without ECS's OOM message it is the application's exit."""
    outcome = verdict(task(stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(137))))
    assert outcome.failure is FailureKind.EXIT
    assert should_retry(RetryPolicy(retry_exit_codes=[137]), 1, outcome.failure, 137)
    assert not should_retry(RetryPolicy(), 1, outcome.failure, 137)


def test_a_platform_message_wins_over_the_scheduler_stop_code():
    detail = stopped(
        "ServiceSchedulerInitiated", "ECS is performing maintenance on the underlying infrastructure hosting the task"
    )
    assert kind_of(detail) is FailureKind.PLATFORM


def test_a_spot_message_without_a_stop_code_is_spot():
    assert kind_of(stopped(None, "Your Spot Task was interrupted.", container(137))) is FailureKind.SPOT


def test_a_fargate_start_failure_keeps_its_stop_code_class_and_shows_the_message():
    detail = stopped(
        "TaskFailedToStart",
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/reports/nightly:v2: not found",
    )
    outcome = verdict(task(detail))
    assert outcome.failure is FailureKind.START
    assert outcome.reason.startswith("CannotPullContainerError")


# --------------------------------------------------------------------------- the essential container


def test_a_sidecar_that_exits_non_zero_does_not_fail_a_job_that_succeeded():
    """A non-essential sidecar may exit 1 (or be SIGTERMed, 143) without stopping the task: the job's
    container, ``job`` in every taskrunner task definition, exited 0, so the run succeeded."""
    detail = stopped(
        "EssentialContainerExited",
        ESSENTIAL_EXITED,
        container(1, name="log-router"),
        container(0),
        container(143, name="xray"),
    )
    outcome = verdict(task(detail))
    assert (outcome.status, outcome.failure) == (RunStatus.SUCCEEDED, None)


def test_the_essential_containers_exit_code_is_the_one_reported():
    detail = stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(143, name="log-router"), container(2))
    outcome = verdict(task(detail))
    assert outcome.failure is FailureKind.EXIT
    assert outcome.reason.startswith("exit code 2: ")


def test_a_sidecars_oom_is_not_the_runs_verdict():
    detail = stopped(
        "EssentialContainerExited", ESSENTIAL_EXITED, container(137, OOM_REASON, name="sidecar"), container(0)
    )
    assert verdict(task(detail)).status is RunStatus.SUCCEEDED


def test_the_job_containers_oom_is_the_runs_verdict_whatever_the_sidecars_did():
    detail = stopped(
        "EssentialContainerExited", ESSENTIAL_EXITED, container(0, name="sidecar"), container(137, OOM_REASON)
    )
    assert kind_of(detail) is FailureKind.OOM


def test_without_a_job_container_every_container_is_judged():
    """A task definition of the job's own names its containers otherwise: which is essential is unknown,
    so a failure anywhere is the run's failure (the worst exit code speaks)."""
    detail = stopped("EssentialContainerExited", ESSENTIAL_EXITED, container(0, name="app"), container(1, name="envoy"))
    outcome = verdict(task(detail))
    assert outcome.failure is FailureKind.EXIT
    assert outcome.reason.startswith("exit code 1: ")


def test_the_reason_shown_keeps_every_containers_reason():
    detail = stopped(None, ESSENTIAL_EXITED, container(137, OOM_REASON), container(143, "stopped", name="sidecar"))
    assert verdict(task(detail)).reason == f"exit code 137: {ESSENTIAL_EXITED} | {OOM_REASON}; stopped"


# --------------------------------------------------------------------------- retry policy edges


@pytest.mark.parametrize("kind", [FailureKind.START, FailureKind.SPOT, FailureKind.PLATFORM, FailureKind.LOST])
def test_the_platforms_failures_retry_only_while_attempts_remain_and_start_retries_are_on(kind):
    assert should_retry(RetryPolicy(max_attempts=3), 2, kind, None)
    assert not should_retry(RetryPolicy(max_attempts=3), 3, kind, None)
    assert not should_retry(RetryPolicy(retry_start_failures=False), 1, kind, None)


def test_an_exit_retries_only_for_a_listed_code():
    policy = RetryPolicy(retry_exit_codes=[75])
    assert should_retry(policy, 1, FailureKind.EXIT, 75)
    assert not should_retry(policy, 1, FailureKind.EXIT, 1)
    assert not should_retry(policy, 1, FailureKind.EXIT, None)


@pytest.mark.parametrize("kind", [FailureKind.TIMEOUT, FailureKind.STOPPED])
def test_timeouts_and_deliberate_stops_are_final_whatever_is_listed(kind):
    assert not should_retry(RetryPolicy(retry_exit_codes=[0, 1, 137, 143]), 1, kind, 143)


def test_a_success_never_retries():
    assert not should_retry(RetryPolicy(retry_exit_codes=[0]), 1, None, 0)


# --------------------------------------------------------------------------- totality


STOP_CODES = st.sampled_from(
    [
        None,
        "TaskFailedToStart",
        "EssentialContainerExited",
        "UserInitiated",
        "ServiceSchedulerInitiated",
        "SpotInterruption",
        "TerminationNotice",
        "InfrastructureHealth",
        "SomethingNew",
    ]
)
CONTAINERS = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["job", "sidecar", "app"])},
        optional={"exitCode": st.one_of(st.none(), st.integers(-255, 255)), "reason": st.text(max_size=40)},
    ),
    max_size=3,
)


@given(stop_code=STOP_CODES, reason=st.one_of(st.none(), st.text(max_size=80)), containers=CONTAINERS)
def test_every_stopped_task_is_classified(stop_code, reason, containers):
    """The fallbacks at the end of the table match anything: a new stop code or message never crashes."""
    found = classify(stop_code, reason, containers)
    assert found.stop_class in TABLE
    assert found.kind is None or found.kind in FailureKind


# --------------------------------------------------------------------------- the documented table


GENERATED = re.compile(r"<!-- BEGIN generated: .*? -->\n(.*?)<!-- END generated -->", re.DOTALL)


def test_docs_failures_md_is_the_table_the_code_classifies_with():
    """docs/failures.md is rendered from domain/failures.py; regenerate the block between the markers with
    ``.venv/bin/python -c 'from taskrunner.domain.failures import render_markdown; print(render_markdown())'``."""
    block = GENERATED.search(DOCS.read_text(encoding="utf-8"))
    assert block is not None, "docs/failures.md lost its generated block"
    assert block.group(1) == render_markdown()


def test_the_docs_start_with_the_summary_the_readme_repeats():
    text = DOCS.read_text(encoding="utf-8")
    assert text.index("## In short") < text.index("<!-- BEGIN generated")


def test_the_rendered_table_lists_every_class_once_in_precedence_order():
    rendered = render_markdown()
    rows = [line for line in rendered.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [line.split(" | ")[1] for line in rows] == [row.name for row in (*TABLE, LOST)]
    assert "stopped\\|terminated" in rendered, "a pipe in a pattern is escaped, or the table breaks"
