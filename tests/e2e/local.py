"""``taskrunner local`` started as a developer starts it (a subprocess of ``taskrunner.local.runner``), and the
probes the e2e tests use on it: one way to start it, find its endpoint and outputs, wait, and read runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from taskrunner.adapters.store import DynamoRunStore
from taskrunner.domain.runs import Run, RunStatus
from tests.conftest import ROOT


def cli_env() -> dict[str, str]:
    """This process's environment without anything that points boto3 elsewhere: --local alone must do."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def taskrunner(*args: str, stdin: str | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, ``--local``, as a second terminal would run it."""
    return subprocess.run(
        [sys.executable, "-m", "taskrunner.cli", *args, "--local"],
        cwd=ROOT,
        env=cli_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


#: What a running ``taskrunner local`` writes: its pid, endpoint and stack name.
STATE = ROOT / ".taskrunner" / "local.json"


def wait_for[T](probe: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.3) -> T:
    """The first value ``probe`` returns that is not None, or an AssertionError naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Local:
    proc: subprocess.Popen[str]
    endpoint: str = ""
    stack: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    #: Local mode's activity feed (--json lines), when started with ``read_activity``.
    activity: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def store(self) -> DynamoRunStore:
        return DynamoRunStore(self.outputs["RunsTableName"], self.client("dynamodb"))

    def run(self, run_id: str) -> Run | None:
        return self.store().get(run_id)

    def reaches(self, run_id: str, *statuses: RunStatus, timeout_s: float = 30) -> Run:
        def probe() -> Run | None:
            run = self.run(run_id)
            return run if run is not None and run.status in statuses else None

        return wait_for(probe, timeout_s, f"run {run_id} to reach {statuses}")

    def finished(self, run_id: str, timeout_s: float = 30) -> Run:
        return self.reaches(run_id, *[status for status in RunStatus if status.terminal], timeout_s=timeout_s)


@contextmanager
def running_local(args: Sequence[str], *, read_activity: bool = False) -> Iterator[Local]:
    """``taskrunner local --no-view --json ARGS`` until the block ends (SIGTERM, then kill after 60 s).

    With ``read_activity`` its output is read as it comes into ``Local.activity`` (so the pipe never fills);
    without, the output stays in the pipe for a test that reads it at the end.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskrunner.local.runner", "--no-view", "--json", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    instance = Local(proc)
    reader = threading.Thread(target=_read_activity, args=(instance,), daemon=True)
    if read_activity:
        reader.start()

    def started() -> dict[str, Any] | None:
        if proc.poll() is not None:
            output = "" if read_activity or proc.stdout is None else proc.stdout.read()
            raise AssertionError(f"taskrunner local exited with {proc.returncode}: {output[-3000:]}")
        try:
            state = json.loads(STATE.read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("pid") == proc.pid else None

    try:
        state = wait_for(started, 60, ".taskrunner/local.json")
        instance.endpoint, instance.stack = state["endpoint"], state["stack"]
        stack = instance.client("cloudformation").describe_stacks(StackName=instance.stack)["Stacks"][0]
        instance.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        yield instance
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if reader.is_alive():
            reader.join(timeout=5)


def _read_activity(local: Local) -> None:
    assert local.proc.stdout is not None
    for line in local.proc.stdout:
        if line.startswith("{"):
            local.activity.append(json.loads(line))
