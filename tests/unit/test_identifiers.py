"""Identifiers built from job names cannot collide, for any valid job name (issue 9: ``encoders-1`` broke tracking).

A job name is ``[a-z][a-z0-9-]{0,39}`` (domain.jobs.JOB_NAME): digits and dashes anywhere after the first letter,
so ``encoders`` and ``encoders-1`` — or ``a-1`` and ``a-1-2`` — are two jobs whose names are prefixes of each other.
For every pair of distinct valid names, and every run and attempt:

* a run's task ``startedBy`` (``<run id>-<attempt>``) round-trips through ``parse_started_by`` whatever the job;
* a per-message worker's ``startedBy`` (``taskrunner-scaler-<job>``) is never taken for a run's, names its job
  alone, and fits ECS;
* the job's schedule (``job.<name>``, jobs/job.yaml) and a retry's one-time schedule (``retry.<run>.<attempt>``,
  adapters/retries.py) share the stack's group without ever sharing a name, and fit EventBridge Scheduler;
* the ``job`` dimension a metric is emitted with is the job's name, exactly (nothing truncated or merged).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner.adapters.retries import DispatchRetries
from taskrunner.domain.jobs import JOB_NAME
from taskrunner.domain.launch import worker_task_request
from taskrunner.domain.ports import Retry
from taskrunner.domain.runs import RUN_ID_LENGTH, parse_started_by, run_id_for, started_by
from taskrunner.local.cfn_yaml import load
from taskrunner.observability import count, emit
from tests.conftest import ROOT
from tests.unit.fakes import STARTED_BY, job_spec

#: Names that are prefixes of one another, digit suffixes, dashes doubled or last: what broke or could break a parser.
EDGES = ["encoders", "encoders-1", "encoders-12", "a", "a-1", "a-1-2", "a1", "a--1", "a-", "x" * 40, "taskrunner"]
names = st.sampled_from(EDGES) | st.from_regex(JOB_NAME, fullmatch=True)
attempts = st.integers(1, 10)  # RetryPolicy.max_attempts is at most 10
#: EventBridge Scheduler: a schedule name is 1-64 of [0-9a-zA-Z-_.].
SCHEDULE_NAME = r"^[0-9a-zA-Z\-_.]{1,64}$"
EXAMPLES = settings(max_examples=300, deadline=None)


def scaler_started_by(job: str) -> str:
    return str(worker_task_request(job_spec(name=job), 1, "token")["startedBy"])


@functools.cache
def _job_schedule_name_template() -> str:
    template = load(Path(ROOT, "jobs", "job.yaml"))
    (schedule,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"]
    return str(schedule["Properties"]["Name"]["Fn::Sub"])


def job_schedule_name(job: str) -> str:
    """The name jobs/job.yaml gives the job's schedule, with its JobName parameter substituted."""
    return _job_schedule_name_template().replace("${JobName}", job)


class _Scheduler:
    def __init__(self) -> None:
        self.names: list[str] = []

    def create_schedule(self, **kwargs: Any) -> None:
        self.names.append(kwargs["Name"])


def retry_schedule_name(run_id: str, attempt: int) -> str:
    """The name the retry adapter gives a one-time schedule (a retry later than SQS's 15-minute delay)."""
    scheduler = _Scheduler()
    retries = DispatchRetries("url", "arn", "role", schedule_group="g", sqs=object(), scheduler=scheduler)  # type: ignore[arg-type]
    retries.schedule(Retry(run_id, attempt, 3600, {"job": "x"}))
    (name,) = scheduler.names
    return name


def test_the_edge_names_are_valid_job_names() -> None:
    assert all(JOB_NAME.match(name) for name in EDGES)


@EXAMPLES
@given(job=names, key=st.text(max_size=50), attempt=attempts)
def test_a_runs_started_by_round_trips_for_any_job(job: str, key: str, attempt: int) -> None:
    run_id = run_id_for(f"{job}|manual|{key}")

    value = started_by(run_id, attempt)

    assert parse_started_by(value) == (run_id, attempt)
    assert STARTED_BY.match(value)


@EXAMPLES
@given(job=names, other=names, key=st.text(max_size=50), attempt=attempts)
def test_a_workers_started_by_is_never_a_runs_and_names_its_job_alone(
    job: str, other: str, key: str, attempt: int
) -> None:
    mine = scaler_started_by(job)

    assert parse_started_by(mine) is None  # the Tracker ignores workers: never "a state change of unknown run"
    assert STARTED_BY.match(mine)
    assert mine.removeprefix("taskrunner-scaler-") == job
    assert mine != started_by(run_id_for(f"{job}|manual|{key}"), attempt)
    if other != job:
        assert scaler_started_by(other) != mine


def test_the_issue_9_name_is_a_worker_not_a_run() -> None:
    assert parse_started_by("taskrunner-scaler-encoders-1") is None
    assert scaler_started_by("encoders-1") != scaler_started_by("encoders")


@EXAMPLES
@given(job=names, other=names, key=st.text(max_size=50), attempt=attempts)
def test_schedule_names_fit_the_scheduler_and_never_collide(job: str, other: str, key: str, attempt: int) -> None:
    ours = job_schedule_name(job)
    retry = retry_schedule_name(run_id_for(f"{job}|schedule|{key}"), attempt)

    assert (ours, retry) == (f"job.{job}", f"retry.{run_id_for(f'{job}|schedule|{key}')}.{attempt}")
    for name in (ours, retry):
        assert re.match(SCHEDULE_NAME, name), name
    assert ours != retry
    assert len(retry) == len("retry.") + RUN_ID_LENGTH + 1 + len(str(attempt))
    if other != job:
        assert job_schedule_name(other) != ours


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def dimensions_emitted(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """The dimension values of every EMF record printed since the last call."""
    found = []
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line)
        (keys,) = record["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        found.append({key: record[key] for key in keys})
    return found


@pytest.mark.usefixtures("metrics_on")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(names, min_size=2, max_size=4, unique=True))
def test_the_job_dimension_is_the_jobs_name_exactly(jobs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for job in jobs:
        count("RunsLaunched", job=job)
        emit({"Backlog": 1}, job=job)

    emitted = [d["job"] for d in dimensions_emitted(capsys) if "job" in d]

    assert emitted == [job for job in jobs for _ in range(2)]
