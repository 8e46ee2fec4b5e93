"""The day-2 commands against the real template in the embedded AWS: jobs, status, logs, stop, pause/resume,
run --wait and runs RUN_ID. Jobs of their own (``probe-*`` registry entries, no triggers) keep these tests'
runs apart from the rest of the session's."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from taskrunner.adapters.pauses import SsmPauses
from taskrunner.cli import logs as logs_command
from taskrunner.cli import run as run_command
from taskrunner.domain.runs import Attempt, RunStatus, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest, Trigger
from taskrunner.local.ecs_events import task_state_change
from tests.integration.cli_helpers import cli, one_line_error, purge, register, seed, spec_of, unregister, visible
from tests.integration.conftest import Stack

PROBES = ("probe-a", "probe-b")
#: The probes' retry policy: exit code 75 retries (start failures do not, so a seeded "lost" run is final).
RETRY = {"max_attempts": 3, "retry_exit_codes": "75", "retry_start_failures": False}
ACCOUNT_TASK = "arn:aws:ecs:us-east-1:123456789012:task/taskrunner-cluster/"


@pytest.fixture(scope="module", autouse=True)
def _probes(stack: Stack, handlers_imported: None) -> Iterator[None]:
    """Registry entries of this module's own (order-audit's spec, no event pattern); the dispatch queue is left
    as found, so later modules never meet a request for a job that is gone."""
    for name in PROBES:
        register(stack, name, "order-audit", event_pattern=None, retry=RETRY)
    yield
    purge(stack, stack.outputs["DispatchQueueUrl"])
    for name in PROBES:
        unregister(stack, name)
    stack.client("ssm").delete_parameters(Names=[f"/taskrunner/taskrunner/paused/{n}" for n in PROBES])


def task_arn() -> str:
    return ACCOUNT_TASK + uuid.uuid4().hex


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def row(out: str, first: str) -> str:
    """The table row whose first cell is ``first``."""
    return next(line for line in out.splitlines() if line.split() and line.split()[0] == first)


# ------------------------------------------------------------------------------------------------------------ jobs


def test_jobs_lists_every_job_with_its_triggers_and_next_tick_in_its_time_zone(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "jobs")

    assert code == 0
    nightly = row(out, "nightly-report")
    assert "schedule cron(0 6 * * ? *) Europe/Berlin" in nightly
    assert " 06:00 Europe/Berlin (in " in nightly
    assert "s3 uploads/images/*.jpg" in row(out, "thumbnails")
    assert "event source com.example.orders; detail-type OrderPlaced" in row(out, "order-audit")
    assert "queue (service)" in row(out, "image-worker")
    assert "queue (per-message)" in row(out, "transcode")
    assert "manual only" in row(out, "probe-a")


def test_jobs_json_has_the_next_tick_queue_depth_and_workers(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    queue = str(spec_of(stack, "image-worker")["queue_url"])
    purge(stack, queue)
    for n in range(3):
        stack.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps({"n": n}))
    try:
        code, out, _ = cli(capsys, "jobs", "--json")
    finally:
        purge(stack, queue)

    assert code == 0
    jobs = {job["job"]: job for job in json_lines(out)}
    schedule = jobs["nightly-report"]["triggers"]["schedule"]
    tick = datetime.fromisoformat(schedule["next_tick"])
    assert timedelta(0) < tick - datetime.now(UTC) <= timedelta(hours=25)
    assert tick.astimezone(ZoneInfo("Europe/Berlin")).hour == 6
    assert schedule["next_tick_local"].startswith(tick.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT06"))
    worker = jobs["image-worker"]
    assert worker["queue_depth"]["visible"] == 3
    assert worker["workers"] == {"running": 0, "pending": 0, "desired": 0}
    assert jobs["thumbnails"]["triggers"]["s3"]["prefix"] == "uploads/images/"
    assert jobs["order-audit"]["triggers"]["event_pattern"]["source"] == ["com.example.orders"]


def test_jobs_shows_the_last_run_and_paused_jobs(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    seed(stack, "probe-a", RunStatus.SUCCEEDED, age=timedelta(hours=2))
    last = seed(stack, "probe-a", RunStatus.FAILED, age=timedelta(minutes=3), reason="exit code 3")
    assert cli(capsys, "pause", "probe-a", "--reason", "freeze")[0] == 0
    try:
        code, out, _ = cli(capsys, "jobs", "--json")
        text_code, text, _ = cli(capsys, "jobs")
    finally:
        cli(capsys, "resume", "probe-a")

    assert code == text_code == 0
    probe = next(job for job in json_lines(out) if job["job"] == "probe-a")
    assert probe["last_run"]["run_id"] == last.run_id
    assert probe["last_run"]["status"] == "FAILED"
    assert probe["paused"] is True
    assert probe["paused_reason"].startswith("freeze (by ")
    assert "FAILED 3m" in row(text, "probe-a")
    assert "paused" in row(text, "probe-a")
    assert "probe-a is paused: freeze (by " in text


@pytest.fixture
def invalid_entry(stack: Stack) -> Iterator[str]:
    name = f"{stack.outputs['RegistryPrefix']}/broken-entry"
    stack.client("ssm").put_parameter(Name=name, Value='{"name": "broken-entry"}', Type="String", Overwrite=True)
    yield "broken-entry"
    stack.client("ssm").delete_parameter(Name=name)


def test_an_invalid_registry_entry_is_listed_not_hidden(
    stack: Stack, invalid_entry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "jobs")
    json_code, json_out, _ = cli(capsys, "jobs", "--json")
    status_code, status_out, _ = cli(capsys, "status")

    assert code == json_code == 0
    assert "invalid registry entry broken-entry: " in out
    [entry] = [job for job in json_lines(json_out) if job["job"] == invalid_entry]
    assert "cluster" in entry["invalid"]
    assert status_code == 4
    assert "registry entry broken-entry is invalid" in status_out


# ---------------------------------------------------------------------------------------------------------- status


@pytest.fixture
def quiet_stack(stack: Stack) -> Iterator[dict[str, str]]:
    """Every dead-letter queue empty and no alarms, before and after."""
    queues = {
        "dispatch": stack.outputs["DispatchDeadLetterQueueUrl"],
        "tracker": stack.outputs["TrackerDeadLetterQueueUrl"],
    }
    sqs = stack.client("sqs")
    for job in ("image-worker", "transcode"):
        policy = sqs.get_queue_attributes(QueueUrl=spec_of(stack, job)["queue_url"], AttributeNames=["RedrivePolicy"])
        name = json.loads(policy["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"].rsplit(":", 1)[-1]
        queues[job] = sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def clean() -> None:
        for url in queues.values():
            purge(stack, url)
        cloudwatch = stack.client("cloudwatch")
        names = [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]]
        if names:
            cloudwatch.delete_alarms(AlarmNames=names)

    clean()
    yield queues
    clean()


def alarm(stack: Stack, name: str, topic: str) -> None:
    cloudwatch = stack.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[topic],
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint [1.0]")


def test_status_is_all_clear_then_names_each_dead_letter_and_alarm(
    stack: Stack, quiet_stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "status")
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "all clear"

    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=quiet_stack["dispatch"], MessageBody="{}")
    for _ in range(2):
        sqs.send_message(QueueUrl=quiet_stack["image-worker"], MessageBody="{}")
    alarm(stack, "taskrunner-DispatchDeadLetterAlarm-ABC123", stack.outputs["AlarmTopicArn"])
    # Another stack whose name starts like ours: its alarm notifies its own topic, and is not ours.
    alarm(stack, "taskrunner-dev-DispatchDeadLetterAlarm-XYZ", "arn:aws:sns:us-east-1:123456789012:other-topic")

    code, out, _ = cli(capsys, "status")
    json_code, json_out, _ = cli(capsys, "status", "--json")

    assert code == json_code == 4
    assert "dispatch 1" in out
    assert "image-worker 2" in out
    assert "taskrunner-DispatchDeadLetterAlarm-ABC123" in out
    assert "taskrunner-dev-" not in out
    attention = out.strip().splitlines()[-1]
    assert attention.startswith("needs attention: dispatch dead-letter queue holds 1; image-worker dead-letter")
    status = json.loads(json_out)
    assert status["dead_letters"] == {"dispatch": 1, "tracker": 0, "image-worker": 2, "transcode": 0} | {
        k: v for k, v in status["dead_letters"].items() if k not in {"dispatch", "tracker", "image-worker", "transcode"}
    }
    assert [a["name"] for a in status["alarms"]] == ["taskrunner-DispatchDeadLetterAlarm-ABC123"]


def test_status_counts_active_runs_and_failures_of_the_last_24_hours(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads(cli(capsys, "status", "--json")[1])
    recent = seed(stack, "probe-b", RunStatus.FAILED, age=timedelta(minutes=5), reason="exit code 3")
    seed(stack, "probe-b", RunStatus.FAILED, age=timedelta(hours=25))
    seed(stack, "probe-b", RunStatus.TIMED_OUT, age=timedelta(hours=1))
    seed(stack, "probe-b", RunStatus.RUNNING, task_arn=task_arn())

    after = json.loads(cli(capsys, "status", "--json")[1])
    _, text, _ = cli(capsys, "status")

    assert after["runs_failed_24h"]["FAILED"] == before["runs_failed_24h"]["FAILED"] + 1
    assert after["runs_failed_24h"]["TIMED_OUT"] == before["runs_failed_24h"]["TIMED_OUT"] + 1
    assert after["runs_active"]["RUNNING"] == before["runs_active"]["RUNNING"] + 1
    assert recent.run_id in [r["run_id"] for r in after["latest_failures"]]
    assert f"probe-b {recent.run_id[:8]} FAILED: exit code 3" in text


# ------------------------------------------------------------------------------------------------------------ logs


def put_logs(stack: Stack, job: str, task: str, *lines: str | tuple[str, timedelta]) -> None:
    """Events in the task's awslogs stream (the group jobs/job.yaml creates; made here for probe jobs)."""
    logs = stack.client("logs")
    group, stream = f"/taskrunner/taskrunner/jobs/{job}", f"{job}/job/{task.rsplit('/', 1)[-1]}"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    if not logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream)["logStreams"]:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = datetime.now(UTC)
    events = []
    for line in lines:
        message, age = line if isinstance(line, tuple) else (line, timedelta(0))
        events.append({"timestamp": int((now - age).timestamp() * 1000), "message": message})
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def test_logs_prints_the_runs_task_output_by_run_id_short_id_or_job(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    task = task_arn()
    run = seed(stack, "probe-a", RunStatus.SUCCEEDED, task_arn=task, exit_code=0)
    put_logs(stack, "probe-a", task, "starting", "done: 42 rows")

    for ref in (run.run_id, run.run_id[:8], "probe-a"):
        code, out, err = cli(capsys, "logs", ref)
        assert code == 0, err
        assert out == "starting\ndone: 42 rows\n"

    code, out, _ = cli(capsys, "logs", run.run_id, "--json")
    assert code == 0
    assert [(e["attempt"], e["message"]) for e in json_lines(out)] == [(1, "starting"), (1, "done: 42 rows")]
    assert all(e["timestamp"] for e in json_lines(out))


def test_logs_since_leaves_out_older_events(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    task = task_arn()
    run = seed(stack, "probe-a", RunStatus.FAILED, task_arn=task, exit_code=3)
    put_logs(stack, "probe-a", task, ("yesterday's line", timedelta(hours=3)), "just now")

    code, out, _ = cli(capsys, "logs", run.run_id, "--since", "1h")

    assert code == 0
    assert out == "just now\n"


def test_logs_of_a_run_without_a_task_or_without_output_say_so(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    skipped = seed(stack, "probe-a", RunStatus.SKIPPED, reason="overlap policy Forbid: a run is active")
    silent = seed(stack, "probe-a", RunStatus.SUCCEEDED, task_arn=task_arn())

    code, _, err = cli(capsys, "logs", skipped.run_id)
    assert code == 1
    assert "attempt 1 has no task (SKIPPED: overlap policy Forbid" in one_line_error(err)

    code, _, err = cli(capsys, "logs", silent.run_id)
    assert code == 1
    assert f"no log stream probe-a/job/{silent.task_arn.rsplit('/', 1)[-1]}" in one_line_error(err)  # type: ignore[union-attr]

    code, _, err = cli(capsys, "logs", "f" * 26)
    assert code == 2
    assert "no run or job 'ffffffffffffffffffffffffff'" in one_line_error(err)


def test_logs_follow_moves_to_each_attempts_task_until_the_run_ends(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a run whose first attempt is running WHEN followed while it fails, is retried and succeeds
    THEN both tasks' output is printed in order, each attempt announced on stderr, and the command ends with it."""
    monkeypatch.setattr(logs_command, "POLL_S", 0.05)
    first, second = task_arn(), task_arn()
    run = seed(stack, "probe-a", RunStatus.RUNNING, task_arn=first)
    put_logs(stack, "probe-a", first, "attempt one starts")
    store = stack.runs()

    def meanwhile() -> None:
        time.sleep(0.4)
        put_logs(stack, "probe-a", first, "attempt one fails")
        store.update(run.run_id, RunStatus.FAILED, 1, exit_code=75, failure="exit")
        time.sleep(0.3)  # a follower sees the failure the job retries, and keeps following
        store.update(run.run_id, RunStatus.RETRYING, 2, reason="retry in 1s")
        time.sleep(0.3)
        store.update(run.run_id, RunStatus.RUNNING, 2, task_arn=second)
        put_logs(stack, "probe-a", second, "attempt two starts")
        time.sleep(0.3)
        put_logs(stack, "probe-a", second, "attempt two done")
        store.update(run.run_id, RunStatus.SUCCEEDED, 2, exit_code=0)

    thread = threading.Thread(target=meanwhile)
    thread.start()
    code, out, err = cli(capsys, "logs", run.run_id, "--follow")
    thread.join()

    assert code == 0, err
    assert out.splitlines() == ["attempt one starts", "attempt one fails", "attempt two starts", "attempt two done"]
    assert f"--- run {run.run_id[:8]} attempt 2 ---" in err


# ------------------------------------------------------------------------------------------------------------ stop


def launched(stack: Stack, capsys: pytest.CaptureFixture[str], job: str) -> str:
    """`taskrunner run JOB`, played through the Dispatcher: the run, PENDING with its task."""
    code, out, err = cli(capsys, "run", job)
    assert code == 0, err
    stack.dispatch_queue(quiet=True).drain()
    return out.strip()


def test_stop_stops_the_task_and_the_tracker_records_who_stopped_the_run_and_why(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = launched(stack, capsys, "order-audit")
    run = stack.run(run_id)
    assert run is not None
    assert run.task_arn

    code, out, err = cli(capsys, "stop", run_id[:8], "--reason", "runaway query")

    assert code == 0, err
    task = stack.task(run.task_arn)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"].startswith("stopped by ")
    assert task["stoppedReason"].endswith(" (taskrunner stop): runaway query")
    assert task["stoppedReason"] in out

    # ECS reports the stop; the Tracker records it.
    stack.publish(task_state_change(task, "STOPPED", stop_code="UserInitiated", stopped_reason=task["stoppedReason"]))
    stack.tracker_queue(quiet=True).drain()
    stopped = stack.run(run_id)
    assert stopped is not None
    assert stopped.status is RunStatus.STOPPED
    assert stopped.stop_code == "UserInitiated"
    assert stopped.reason is not None
    assert stopped.reason.startswith(task["stoppedReason"])

    code, _, err = cli(capsys, "stop", run_id)
    assert code == 1
    assert "already STOPPED: nothing to stop" in one_line_error(err)


def test_stop_of_an_unknown_or_ambiguous_short_id_exits_2(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = uuid.uuid4().hex[:8]
    for tail in ("0" * 18, "1" * 18):
        seed(stack, "probe-b", RunStatus.RUNNING, run_id=prefix + tail, task_arn=task_arn())

    code, _, err = cli(capsys, "stop", prefix)
    assert code == 2
    assert f"run id '{prefix}' is ambiguous: {prefix}{'0' * 18}, {prefix}{'1' * 18}" in one_line_error(err)

    code, _, err = cli(capsys, "stop", "0" * 26)
    assert code == 2
    assert "no run '00000000000000000000000000'" in one_line_error(err)


# ----------------------------------------------------------------------------------------------------------- pause


def test_pause_and_resume_a_job(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    ssm, name = stack.client("ssm"), "/taskrunner/taskrunner/paused/probe-b"

    code, out, _ = cli(capsys, "pause", "probe-b", "--reason", "deploy freeze")
    assert code == 0
    value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    assert value.startswith("deploy freeze (by ")
    assert out.strip() == f"probe-b paused: {value}"

    code, out, _ = cli(capsys, "pause", "probe-b", "--json")
    assert code == 0
    assert json.loads(out) | {"reason": "x"} == {"job": "probe-b", "paused": True, "reason": "x", "was_paused": True}

    code, out, _ = cli(capsys, "resume", "probe-b")
    assert code == 0
    assert out.startswith("probe-b resumed (was paused: paused (by ")
    assert not ssm.get_parameters(Names=[name])["Parameters"]

    code, out, _ = cli(capsys, "resume", "probe-b")
    assert code == 0
    assert out.strip() == "probe-b was not paused"


def test_running_a_paused_job_by_hand_says_it_is_paused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "pause", "probe-b", "--reason", "maintenance")
    try:
        code, _, err = cli(capsys, "run", "probe-b")
    finally:
        cli(capsys, "resume", "probe-b")

    assert code == 0
    assert "note: probe-b is paused (maintenance (by " in err


# ------------------------------------------------------------------------------------------------------ run --wait


def waited_run(stack: Stack, status: RunStatus, **fields: Any) -> str:
    """A request id whose run is already recorded in ``status``: `run --wait` finds it at its first look."""
    request_id = f"wait-{uuid.uuid4()}"
    request = DispatchRequest(job="probe-a", trigger=Trigger.MANUAL, request_id=request_id)
    seed(stack, "probe-a", status, run_id=run_id_for(idempotency_key(request)), **fields)
    return request_id


@pytest.mark.parametrize(
    ("status", "fields", "expected"),
    [
        (RunStatus.SUCCEEDED, {"exit_code": 0}, 0),
        (RunStatus.FAILED, {"exit_code": 3, "failure": "exit"}, 3),
        (RunStatus.FAILED, {"failure": "lost"}, run_command.EXIT_FAILED_NO_CODE),
        (RunStatus.TIMED_OUT, {"exit_code": 143}, run_command.EXIT_TIMED_OUT),
        (RunStatus.STOPPED, {"exit_code": 143, "stop_code": "UserInitiated"}, run_command.EXIT_STOPPED),
        (RunStatus.SKIPPED, {"reason": "paused"}, run_command.EXIT_NOT_STARTED),
        (RunStatus.MISSED, {}, run_command.EXIT_NOT_STARTED),
        (RunStatus.LAUNCH_FAILED, {"reason": "AccessDenied"}, run_command.EXIT_LAUNCH_FAILED),
    ],
)
def test_run_wait_exits_with_the_runs_outcome(
    stack: Stack, capsys: pytest.CaptureFixture[str], status: RunStatus, fields: dict[str, Any], expected: int
) -> None:
    request_id = waited_run(stack, status, **fields)

    code, out, err = cli(capsys, "run", "probe-a", "--request-id", request_id, "--wait", "--timeout", "10")

    assert code == expected, err
    run_id = out.strip()
    assert len(run_id) == 26
    assert f"run {run_id[:8]} {status}, attempt 1" in err


def test_run_wait_json_prints_the_final_record(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    request_id = waited_run(stack, RunStatus.FAILED, exit_code=4, failure="exit")

    code, out, _ = cli(capsys, "run", "probe-a", "--request-id", request_id, "--wait", "--json")

    assert code == 4
    record = json.loads(out)
    assert (record["status"], record["exit_code"]) == ("FAILED", 4)


def test_run_wait_gives_up_at_its_timeout_with_124_and_the_run_goes_on(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "run", "probe-a", "--wait", "--timeout", "1")

    assert code == run_command.EXIT_WAIT_TIMEOUT == 124
    assert f"taskrunner run: run {out.strip()} still not recorded yet after 1s; it goes on" in err


def test_ctrl_c_stops_waiting_and_says_the_run_goes_on(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "wait_for", interrupted)

    code, out, err = cli(capsys, "run", "probe-a", "--wait")

    assert code == 130
    run_id = out.strip()
    assert one_line_error(err) == (
        f"taskrunner run: stopped waiting; run {run_id} goes on (follow it with `taskrunner runs {run_id[:8]}`, "
        f"stop it with `taskrunner stop {run_id[:8]}`)"
    )
    assert visible(stack, stack.outputs["DispatchQueueUrl"]) >= 1  # the request was sent before waiting


def test_timeout_without_wait_is_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "probe-a", "--timeout", "5")

    assert code == 2
    assert "--timeout needs --wait" in one_line_error(err)


# ---------------------------------------------------------------------------------------------------- runs RUN_ID


def test_runs_of_a_run_id_shows_every_recorded_attempt(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = task_arn(), task_arn()
    start = datetime.now(UTC) - timedelta(minutes=10)
    run = seed(
        stack,
        "probe-b",
        RunStatus.SUCCEEDED,
        attempt=2,
        task_arn=second,
        exit_code=0,
        attempts=(
            Attempt(
                number=1,
                status=RunStatus.FAILED,
                task_arn=first,
                started_at=start,
                stopped_at=start + timedelta(seconds=95),
                exit_code=75,
                failure="exit",
                reason="exit code 75",
            ),
            Attempt(number=2, status=RunStatus.SUCCEEDED, task_arn=second, exit_code=0),
        ),
    )

    code, out, _ = cli(capsys, "runs", run.run_id)
    json_code, json_out, _ = cli(capsys, "runs", run.run_id[:10], "--json")

    assert code == json_code == 0
    assert "status  SUCCEEDED (attempt 2)" in out
    one = row(out, "1")
    assert "FAILED" in one
    assert "1m35s" in one
    assert " 75 " in one
    assert "[exit] exit code 75" in one
    assert "SUCCEEDED" in row(out, "2")
    assert f"attempt 1 log stream: probe-b/job/{first.rsplit('/', 1)[-1]}" in out
    record = json.loads(json_out)
    assert [(a["number"], a["status"]) for a in record["attempts"]] == [(1, "FAILED"), (2, "SUCCEEDED")]
    assert record["attempts"][1]["log_stream"] == f"probe-b/job/{second.rsplit('/', 1)[-1]}"


def test_runs_of_a_run_without_attempts_shows_its_own_fields_as_the_latest(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    task = task_arn()
    run = seed(stack, "probe-b", RunStatus.FAILED, attempt=3, task_arn=task, exit_code=2, reason="exit code 2")

    code, out, _ = cli(capsys, "runs", run.run_id, "--json")

    assert code == 0
    [attempt] = json.loads(out)["attempts"]
    assert (attempt["number"], attempt["status"], attempt["exit_code"], attempt["task_arn"]) == (3, "FAILED", 2, task)


def test_runs_of_an_unknown_run_id_exits_2(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "runs", "abcdef0123")

    assert code == 2
    assert "no run or job 'abcdef0123'" in one_line_error(err)


def test_a_run_is_sent_even_when_the_pauses_cannot_be_read(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the pauses is for a note only: a principal allowed to run jobs but not to read them still can."""

    def denied(self: object) -> dict[str, str]:
        raise GetParameterError("AccessDeniedException: ssm:GetParametersByPath")

    monkeypatch.setattr(SsmPauses, "reasons", denied)
    before = visible(stack, stack.outputs["DispatchQueueUrl"])

    code, out, err = cli(capsys, "run", "probe-b")

    assert code == 0, err
    assert len(out.strip()) == 26
    assert visible(stack, stack.outputs["DispatchQueueUrl"]) == before + 1
