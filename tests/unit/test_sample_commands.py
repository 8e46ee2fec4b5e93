"""Every sample job's container Command runs as ECS would run it (CloudFormation splits the CommaDelimitedList
at each comma), and every LocalCommand names a program that exists."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from taskrunner.cli.validate import find_problems

ROOT = Path(__file__).resolve().parents[2]
BLOCKS, _ = find_problems(ROOT / "template.yaml")
#: What the Dispatcher gives every run (and an upload's or an event's run).
RUN_ENV = {
    "TASKRUNNER_JOB": "sample",
    "TASKRUNNER_RUN_ID": "0" * 26,
    "TASKRUNNER_ATTEMPT": "1",
    "TASKRUNNER_TRIGGER": "manual",
    "TASKRUNNER_S3_BUCKET": "bucket",
    "TASKRUNNER_S3_KEY": "uploads/images/cat.jpg",
    "TASKRUNNER_EVENT": '{"detail": {"total": 1250}}',
}


@pytest.mark.parametrize("block", [b for b in BLOCKS if "Command" in b.parameters], ids=lambda b: b.logical_id)
def test_the_container_command_runs(block):
    argv = str(block.parameters["Command"]).split(",")  # what CommaDelimitedList makes of it
    assert argv[0] == "python"
    done = subprocess.run(
        [sys.executable, *argv[1:]], env=RUN_ENV, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


@pytest.mark.parametrize("block", [b for b in BLOCKS if "LocalCommand" in b.parameters], ids=lambda b: b.logical_id)
def test_the_local_command_names_a_program_that_exists(block):
    argv = shlex.split(str(block.parameters["LocalCommand"]))
    assert argv[0] == "python"
    assert (ROOT / argv[1]).is_file()
