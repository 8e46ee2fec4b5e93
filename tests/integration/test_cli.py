"""The ``taskrunner`` CLI against the real template deployed into the embedded AWS, called in-process."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskrunner.adapters.queues import Queues
from taskrunner.cli import main
from taskrunner.cli.errors import EXIT_TARGET, EXIT_USAGE
from taskrunner.cli.inputs import Message
from taskrunner.cli.submit import send_messages
from tests.conftest import ROOT
from tests.integration.cli_helpers import (
    STACK,
    cli,
    one_line_error,
    peek,
    purge,
    register,
    spec_of,
    unregister,
    visible,
)
from tests.integration.conftest import Stack


@pytest.fixture(scope="module", autouse=True)
def _handlers_imported_outside_capsys(handlers_imported: None) -> None:
    """See ``handlers_imported``: this module's tests invoke handlers inside capsys."""


# ---------------------------------------------------------------------------------------------------------- invoke


def test_invoke_runs_the_deployed_dispatcher_in_process(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """GIVEN the manual-run sample event WHEN `taskrunner invoke DispatchFunction` runs it
    THEN stdout is the handler's JSON response, naming the run; logs went to stderr."""
    code, out, _ = cli(capsys, "invoke", "DispatchFunction", "--event", str(ROOT / "events" / "manual-run.json"))

    assert code == 0
    response = json.loads(out)
    [run] = response["runs"]
    assert run["run_id"]
    assert stack.run_record(run["run_id"]) is not None


def test_invoke_accepts_the_physical_function_name(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    name = stack.outputs["DispatchFunctionName"]
    code, out, _ = cli(capsys, "invoke", name, "-e", str(ROOT / "events" / "manual-run.json"))

    assert code == 0
    assert "runs" in json.loads(out)


def test_a_failing_handler_prints_lambdas_error_response_and_exits_1(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN an environment override that breaks the Dispatcher's settings WHEN invoked
    THEN stdout is Lambda's error shape, stderr (after the handler's own logs) a line naming the error, exit 1."""
    event = str(ROOT / "events" / "order-placed.json")

    code, out, err = cli(capsys, "invoke", "DispatchFunction", "-e", event, "--env", "RUNS_TABLE=")

    assert code == 1
    error = json.loads(out)
    assert error["errorType"] == "SettingsError"
    assert "RUNS_TABLE" in error["errorMessage"]
    assert err.strip().splitlines()[-1].startswith("taskrunner invoke: DispatchFunction raised SettingsError")


@pytest.mark.filterwarnings("ignore:Tried to parse")  # moto re-reads the template for ListStackResources
def test_invoke_of_an_unknown_function_lists_the_known_ones(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "invoke", "NopeFunction", "--event", str(ROOT / "events" / "manual-run.json"))

    assert code == EXIT_USAGE
    assert out == ""
    line = one_line_error(err)
    assert "unknown function 'NopeFunction'" in line
    assert "DispatchFunction" in line
    assert "ScalerFunction" in line


def test_invoke_with_an_event_that_is_not_json_names_the_file(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = tmp_path / "bad.json"
    event.write_text("{not json")

    code, _, err = cli(capsys, "invoke", "DispatchFunction", "--event", str(event))

    assert code == EXIT_USAGE
    assert "bad.json is not JSON" in one_line_error(err)


# ---------------------------------------------------------------------------------------------------------- submit


@pytest.fixture
def work_queue(stack: Stack) -> Iterator[str]:
    url = str(spec_of(stack, "image-worker")["queue_url"])
    purge(stack, url)
    yield url
    purge(stack, url)


def test_submit_sends_every_line_to_the_jobs_work_queue(
    stack: Stack, work_queue: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """GIVEN 25 JSON lines (and blank ones) WHEN submitted to the image-worker job
    THEN all 25 are on its work queue, in three batches, and the summary says so."""
    messages = tmp_path / "messages.jsonl"
    messages.write_text(
        "".join(json.dumps({"image": f"img-{i}.jpg"}) + "\n" + ("\n" if i % 7 == 0 else "") for i in range(25))
    )

    code, out, _ = cli(capsys, "submit", "image-worker", "--file", str(messages))

    assert code == 0
    assert out.strip().splitlines()[-1] == "sent 25, failed 0"
    assert visible(stack, work_queue) == 25


def test_submit_to_a_queue_url_reads_stdin(
    stack: Stack, work_queue: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"a": 1}\n{"a": 2}\n'))

    code, out, _ = cli(capsys, "submit", work_queue, "--file", "-")

    assert code == 0
    assert out.strip() == "sent 2, failed 0"
    assert visible(stack, work_queue) == 2


def test_submit_refuses_a_file_with_a_bad_line_before_sending_anything(
    stack: Stack, work_queue: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    messages = tmp_path / "messages.jsonl"
    messages.write_text('{"ok": 1}\n{"ok": 2}\n\n{"ok": 3\n{"ok": 4}\n')

    code, out, err = cli(capsys, "submit", "image-worker", "--file", str(messages))

    assert code == EXIT_USAGE
    assert out == ""
    assert "line 4" in one_line_error(err)
    assert visible(stack, work_queue) == 0


def test_submit_to_a_job_without_a_work_queue_says_so(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    messages = tmp_path / "messages.jsonl"
    messages.write_text('{"ok": 1}\n')

    code, _, err = cli(capsys, "submit", "order-audit", "--file", str(messages))

    assert code == EXIT_USAGE
    assert "job 'order-audit' has no work queue" in one_line_error(err)


class FlakySqs:
    """SendMessageBatch that fails some entries on its side (retryable) and one as the sender's fault."""

    def __init__(self, server_failures: int) -> None:
        self.server_failures = server_failures
        self.calls: list[list[str]] = []

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        entries: list[dict[str, str]] = request["Entries"]
        self.calls.append([e["Id"] for e in entries])
        successful, failed = [], []
        for entry in entries:
            if entry["MessageBody"] == '"poison"':
                failed.append(
                    {"Id": entry["Id"], "SenderFault": True, "Code": "InvalidMessageContents", "Message": "x"}
                )
            elif self.server_failures > 0:
                self.server_failures -= 1
                failed.append(
                    {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                )
            else:
                successful.append({"Id": entry["Id"], "MessageId": "m"})
        return {"Successful": successful, "Failed": failed}


def test_failed_entries_are_retried_and_sender_faults_are_not() -> None:
    sqs = FlakySqs(server_failures=12)
    messages = [Message(i, json.dumps("poison" if i == 5 else i)) for i in range(1, 24)]
    sleeps: list[float] = []

    result = send_messages(Queues(sqs), "url", messages, sleep=sleeps.append)

    assert result.sent == 22
    assert [line for line, _ in result.failed] == [5]
    assert [len(call) for call in sqs.calls] == [10, 10, 3, 10, 2]
    assert sleeps == [0.2]


def test_entries_failing_every_round_are_counted_failed() -> None:
    sqs = FlakySqs(server_failures=10_000)

    result = send_messages(Queues(sqs), "url", [Message(1, "{}"), Message(2, "{}")], sleep=lambda s: None)

    assert result.sent == 0
    assert len(result.failed) == 2
    assert len(sqs.calls) == 6  # the first send and five retry rounds


# ------------------------------------------------------------------------------------------------------ run / runs


@pytest.fixture(scope="module")
def env_job(stack: Stack) -> Iterator[str]:
    """order-audit registered again as env-audit, with A in its AllowedEnvOverrides (the sample jobs allow none);
    without its event pattern, so events of later tests are not routed to it; unregistered after the module."""
    register(stack, "env-audit", "order-audit", allowed_env_overrides="A", event_pattern=None)
    yield "env-audit"
    unregister(stack, "env-audit")


@pytest.fixture(scope="module")
def manual_run(stack: Stack, env_job: str) -> dict[str, Any]:
    """`taskrunner run env-audit --env A=1`, what it queued, then the dispatch queue played through the Dispatcher."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", env_job, "--env", "A=1", *STACK])
    assert code == 0, err.getvalue()
    queued = peek(stack, stack.outputs["DispatchQueueUrl"])
    stack.dispatch_queue(quiet=True).drain()
    return {"run_id": out.getvalue().strip(), "queued": queued}


def test_run_queues_a_manual_request_and_prints_its_run_id(stack: Stack, manual_run: dict[str, Any]) -> None:
    run_id = manual_run["run_id"]
    [request] = [body for body in manual_run["queued"] if body.get("job") == "env-audit" and body["env"] == {"A": "1"}]

    assert len(run_id) == 26
    assert request["trigger"] == "manual"
    run = stack.run_record(run_id)
    assert run is not None
    assert run["job"] == "env-audit"
    assert run["trigger"] == "manual"
    overrides = stack.task(run["task_arn"])["overrides"]["containerOverrides"][0]["environment"]
    assert {"name": "A", "value": "1"} in overrides


def test_run_of_an_unknown_job_exits_2(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    before = visible(stack, stack.outputs["DispatchQueueUrl"])

    code, out, err = cli(capsys, "run", "no-such-job")

    assert code == 2
    assert out == ""
    assert "unknown job 'no-such-job'" in one_line_error(err)
    assert visible(stack, stack.outputs["DispatchQueueUrl"]) == before


def test_run_with_a_reserved_env_name_is_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "order-audit", "--env", "TASKRUNNER_RUN_ID=x")

    assert code == EXIT_USAGE
    assert "TASKRUNNER_RUN_ID may never be overridden" in one_line_error(err)


def test_run_refuses_before_sending_every_override_the_dispatcher_would_refuse(
    stack: Stack, env_job: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN a job that allows only A WHEN run with A, B, LD_PRELOAD and an invalid name
    THEN each refused override is one line on stderr, exit 2, and nothing reaches the dispatch queue."""
    before = visible(stack, stack.outputs["DispatchQueueUrl"])

    code, out, err = cli(
        capsys, "run", env_job, "--env", "A=1", "--env", "B=2", "--env", "LD_PRELOAD=x.so", "--env", "1X=y"
    )

    assert code == EXIT_USAGE
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith("taskrunner run: ") for line in lines)
    assert any("B is not in the job's AllowedEnvOverrides (A)" in line for line in lines)
    assert any("LD_PRELOAD may never be overridden" in line for line in lines)
    assert any("'1X' is not an environment variable name" in line for line in lines)
    assert visible(stack, stack.outputs["DispatchQueueUrl"]) == before


def test_an_override_on_a_job_that_allows_none_names_the_allowed_list(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "run", "order-audit", "--env", "A=1")

    assert code == EXIT_USAGE
    assert "A is not in the job's AllowedEnvOverrides (none)" in one_line_error(err)


def test_runs_of_a_job_shows_the_run_just_dispatched(
    stack: Stack, manual_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = manual_run["run_id"]

    code, out, _ = cli(capsys, "runs", "env-audit")

    assert code == 0
    assert run_id in out
    assert "manual" in out


def test_runs_json_prints_one_object_per_line(
    stack: Stack, manual_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = manual_run["run_id"]

    code, out, _ = cli(capsys, "runs", "env-audit", "--json", "--limit", "50")

    assert code == 0
    runs = [json.loads(line) for line in out.splitlines()]
    assert run_id in [r["run_id"] for r in runs]
    assert all(r["job"] == "env-audit" for r in runs)
    created = [r["created_at"] for r in runs]
    assert created == sorted(created, reverse=True)


def test_runs_filters_by_status_and_across_jobs(
    stack: Stack, manual_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = manual_run["run_id"]
    status = str(stack.run_record(run_id)["status"])  # type: ignore[index]

    code, out, _ = cli(capsys, "runs", "--status", status.lower(), "--json", "--limit", "500")

    assert code == 0
    runs = [json.loads(line) for line in out.splitlines()]
    assert run_id in [r["run_id"] for r in runs]
    assert {r["status"] for r in runs} == {status}
    assert len({r["job"] for r in runs}) >= 1

    code, out, _ = cli(capsys, "runs", "env-audit", "--status", "LAUNCH_FAILED", "--json")
    assert code == 0
    assert run_id not in out


def test_runs_of_an_unknown_job_says_unknown(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "runs", "no-such-job")

    assert code == EXIT_USAGE
    assert "unknown job" in one_line_error(err)


# ---------------------------------------------------------------------------------------------------------- target


def test_a_missing_stack_is_one_line_and_non_zero(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["runs", "--stack", "nope"])
    out, err = capsys.readouterr()

    assert code == EXIT_TARGET
    assert out == ""
    assert one_line_error(err) == "taskrunner runs: stack 'nope' not found in us-east-1"


def test_local_without_a_running_local_stack_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    code = main(["runs", "--local"])
    _, err = capsys.readouterr()

    assert code == EXIT_TARGET
    assert "no local stack running: start `taskrunner local`" in one_line_error(err)


def test_local_reads_the_endpoint_and_stack_from_local_json(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN .taskrunner/local.json naming the embedded AWS and no AWS_ENDPOINT_URL in the environment
    WHEN a command runs with --local THEN it reaches that stack."""
    (tmp_path / ".taskrunner").mkdir()
    (tmp_path / ".taskrunner" / "local.json").write_text(
        json.dumps({"endpoint": stack.endpoint, "stack": "taskrunner"})
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_ENDPOINT_URL")

    code = main(["runs", "order-audit", "--local", "--json"])
    _, err = capsys.readouterr()

    assert code == 0, err


def test_options_before_the_command_are_accepted(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--stack", "nope", "runs"])
    _, err = capsys.readouterr()

    assert code == EXIT_TARGET
    assert "stack 'nope'" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("taskrunner ")


def test_bad_arguments_exit_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--limit", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert main(["submit", "image-worker"]) == 2
    assert "--file" in capsys.readouterr().err
