"""The simulator: deterministic, conserves messages, bills like Fargate, and its CLI contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskrunner.sim.cli import main
from taskrunner.sim.engine import RESULT_KEYS, run, simulate
from taskrunner.sim.policies import POLICIES, ClusterView, Policy
from taskrunner.sim.scenario import ScenarioError, generate_arrivals, load_scenario, parse_scenario

CONTRACT_KEYS = [
    "scenario",
    "policy",
    "messages",
    "p50_wait_s",
    "p95_wait_s",
    "p99_wait_s",
    "max_backlog",
    "billed_task_s",
    "work_s",
    "cost_ratio",
    "mid_job_kills",
    "scale_actions",
    "first_launch_after_s",
]


def scenario_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "small",
        "duration_s": 900,
        "seed": 3,
        "arrivals": [{"from_s": 60, "to_s": 120, "rate_per_s": 2.0}, {"from_s": 0, "to_s": 900, "rate_per_s": 0.05}],
        "processing_s": {"mean": 20, "cv": 0.5},
        "start_latency_s": {"min": 40, "max": 90},
        "acceptable_latency_s": 300,
        "max_tasks": 20,
        "messages_per_task": 1,
        "visibility_timeout_s": 60,
        "billing_minimum_s": 60,
    }
    doc.update(overrides)
    return doc


def write(tmp_path: Path, doc: dict[str, Any], name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


class ScaleUpThenDrop(Policy):
    """Scales to 10 tasks, to 0 while they are busy (what a metric-only scaler may do), then back."""

    name = "scale-up-then-drop"

    def tick(self, view: ClusterView) -> int | None:
        if view.now < 150:
            return 10
        if view.now < 400:
            return 0 if view.in_flight else None
        return 5


def test_same_seed_gives_identical_results() -> None:
    scenario = parse_scenario(scenario_doc())

    first = [json.dumps(run(scenario, name)) for name in POLICIES]
    again = [json.dumps(run(scenario, name)) for name in POLICIES]

    assert first == again


def test_another_seed_gives_another_arrival_stream() -> None:
    assert generate_arrivals(parse_scenario(scenario_doc(seed=1))) != generate_arrivals(
        parse_scenario(scenario_doc(seed=2))
    )


@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_message_is_processed_once_after_the_drain(policy: str) -> None:
    scenario = parse_scenario(scenario_doc())

    result = simulate(scenario, policy)

    assert result.unprocessed == 0
    assert result.completed == result.summary["messages"] == len(generate_arrivals(scenario))
    # a message is started again only after its task was killed under it
    assert result.started >= result.completed
    if result.summary["mid_job_kills"] == 0:
        assert result.started == result.completed


def test_killed_messages_are_reprocessed_and_counted() -> None:
    scenario = parse_scenario(scenario_doc())

    result = simulate(scenario, ScaleUpThenDrop)

    assert result.summary["mid_job_kills"] > 0
    assert result.started > result.completed == result.summary["messages"]
    assert result.unprocessed == 0


def test_taskrunner_never_kills_a_busy_task_where_a_baseline_does() -> None:
    scenario = parse_scenario(scenario_doc(duration_s=1800))

    assert simulate(scenario, ScaleUpThenDrop).summary["mid_job_kills"] > 0
    assert run(scenario, "taskrunner")["mid_job_kills"] == 0


def test_each_task_is_billed_at_least_the_minimum() -> None:
    cheap = simulate(parse_scenario(scenario_doc(billing_minimum_s=60)), "taskrunner")
    dear = simulate(parse_scenario(scenario_doc(billing_minimum_s=5000)), "taskrunner")

    assert cheap.launches == dear.launches > 0
    assert dear.summary["billed_task_s"] >= 5000 * dear.launches
    assert dear.summary["billed_task_s"] > cheap.summary["billed_task_s"]


def test_work_is_processing_time_over_messages_per_task() -> None:
    one = run(parse_scenario(scenario_doc()), "taskrunner")
    five = run(parse_scenario(scenario_doc(messages_per_task=5)), "taskrunner")

    assert five["work_s"] == pytest.approx(one["work_s"] / 5, abs=0.2)
    assert one["cost_ratio"] == pytest.approx(one["billed_task_s"] / one["work_s"], abs=1e-3)


def test_result_has_exactly_the_contract_keys() -> None:
    row = run(parse_scenario(scenario_doc()), "keda")

    assert list(row) == CONTRACT_KEYS == list(RESULT_KEYS)
    assert (row["scenario"], row["policy"]) == ("small", "keda")


def test_first_launch_is_measured_from_the_first_message_at_zero_tasks() -> None:
    scenario = parse_scenario(scenario_doc())

    assert 0 < run(scenario, "taskrunner")["first_launch_after_s"] <= 15
    assert run(scenario, "target-tracking")["first_launch_after_s"] > 60


def test_arrivals_csv_is_read_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "trace.csv").write_text("t,count\n0,10\n60,0\n120,5\n")
    path = write(tmp_path, scenario_doc(arrivals=[], arrivals_csv="trace.csv"))

    arrivals = generate_arrivals(load_scenario(path))

    assert len(arrivals) == 15
    assert all(0 <= t < 60 for t in arrivals[:10])
    assert all(120 <= t < 180 for t in arrivals[10:])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        (json.dumps(scenario_doc(max_tasks=0)), "max_tasks"),
        (json.dumps({k: v for k, v in scenario_doc().items() if k != "processing_s"}), "processing_s"),
        (json.dumps(scenario_doc(arrivals_csv="missing.csv")), "arrivals_csv"),
    ],
)
def test_invalid_scenarios_are_reported_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)

    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(path)
    assert "\n" not in str(err.value)


def test_cli_exits_2_on_a_missing_or_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert "no such scenario file" in capsys.readouterr().err

    bad = write(tmp_path, scenario_doc(duration_s=-1))
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "duration_s" in err
    assert err.count("\n") == 1


def test_cli_json_prints_one_object_per_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, scenario_doc())

    assert main([str(path), "--json"]) == 0

    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["policy"] for r in rows] == list(POLICIES)
    assert all(list(r) == CONTRACT_KEYS for r in rows)


def test_cli_table_for_one_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, scenario_doc())

    assert main([str(path), "--policy", "taskrunner"]) == 0

    out = capsys.readouterr().out
    assert "taskrunner" in out
    assert "p95" in out
    assert "keda" not in out


def test_cli_plot_writes_a_png(tmp_path: Path) -> None:
    path = write(tmp_path, scenario_doc())
    png = tmp_path / "out" / "plot.png"

    assert main([str(path), "--policy", "all", "--json", "--plot", str(png)]) == 0

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
