"""The simulator's plot, read back from its axes: shared y per column, the latency target as a line, a wait
panel, kills marked, and the x axis ending when the scenario is done."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from taskrunner.sim.engine import Sample, SimResult, simulate
from taskrunner.sim.plot import build_figure, oldest_wait, plot_end_s, plot_runs
from taskrunner.sim.scenario import generate_arrivals, generate_processing, parse_scenario

SCENARIO = parse_scenario(
    {
        "name": "small",
        "duration_s": 600,
        "seed": 3,
        "arrivals": [{"from_s": 60, "to_s": 240, "rate_per_s": 1.5}],
        "processing_s": {"mean": 6, "cv": 0.3},
        "acceptable_latency_s": 90,
        "max_tasks": 6,
    }
)


@dataclasses.dataclass
class KilledResult(SimResult):
    kill_times: list[float] = dataclasses.field(default_factory=list)


@pytest.fixture(scope="module")
def runs() -> dict[str, SimResult]:
    arrivals = generate_arrivals(SCENARIO)
    processing = generate_processing(SCENARIO, len(arrivals))
    found = {name: simulate(SCENARIO, name, arrivals, processing) for name in ("taskrunner", "keda")}
    keda = found["keda"]
    found["keda"] = KilledResult(
        **{f.name: getattr(keda, f.name) for f in dataclasses.fields(SimResult)}, kill_times=[300.0]
    )
    return found


@pytest.fixture(scope="module")
def figure(runs):
    fig = build_figure(SCENARIO, runs)
    yield fig
    plt.close(fig)


def _panels(fig):
    """(left, twin, wait) axes per policy row."""
    axes = fig.axes
    grid = [ax for ax in axes if ax.get_subplotspec() is not None and ax.get_ylabel() != "tasks"]
    left = [ax for ax in grid if ax.get_ylabel() == "messages"]
    waits = [ax for ax in grid if ax.get_ylabel() == "wait s"]
    twins = [ax for ax in axes if ax.get_ylabel() == "tasks"]
    return left, twins, waits


def test_every_policy_has_a_backlog_panel_a_task_axis_and_a_wait_panel(figure):
    left, twins, waits = _panels(figure)
    assert (len(left), len(twins), len(waits)) == (2, 2, 2)


def test_y_axes_are_shared_across_policy_panels(figure, runs):
    left, twins, waits = _panels(figure)
    for column in (left, twins, waits):
        assert len({ax.get_ylim() for ax in column}) == 1
    assert twins[0].get_ylim()[0] == 0
    assert twins[0].get_ylim()[1] >= max(s.running for s in runs["keda"].series)
    assert waits[0].get_ylim()[1] > SCENARIO.acceptable_latency_s


def test_the_latency_target_is_a_line_on_every_wait_panel(figure):
    _, _, waits = _panels(figure)
    for ax in waits:
        [target] = [line for line in ax.get_lines() if line.get_gid() == "latency-target"]
        assert set(target.get_ydata()) == {SCENARIO.acceptable_latency_s}


def test_the_wait_panel_shows_the_oldest_messages_wait(figure, runs):
    _, _, waits = _panels(figure)
    drawn = [line for line in waits[0].get_lines() if line.get_label() == "oldest message's wait"]
    expected = oldest_wait(runs["taskrunner"].series, generate_arrivals(SCENARIO))
    assert list(drawn[0].get_ydata()) == expected
    assert max(expected) > 0


def test_mid_job_kills_are_marked_where_they_happened(figure):
    _, twins, _ = _panels(figure)
    marks = [line for ax in twins for line in ax.get_lines() if line.get_gid() == "mid-job-kills"]
    assert len(marks) == 1  # keda's; taskrunner recorded none
    assert list(marks[0].get_xdata()) == [5.0]


def test_the_x_axis_ends_when_the_scenario_is_done(figure, runs):
    left, _, _ = _panels(figure)
    end = plot_end_s(SCENARIO, runs)
    assert left[0].get_xlim() == (0.0, end / 60)
    assert SCENARIO.duration_s <= end <= max(r.end_s for r in runs.values())


def test_the_x_axis_does_not_run_on_to_a_drain_limit():
    idle = [Sample(t, 0, 0, 0, 0, 0) for t in range(0, 7200, 60)]
    busy = [Sample(t, 5 if t < 900 else 0, 0, 1, 0, 1) for t in range(0, 7200, 60)]
    result = SimResult({}, idle, 0, 0, 0, 0, 7200)
    assert plot_end_s(SCENARIO, {"a": result, "b": dataclasses.replace(result, series=busy)}) == 840 + 60


def test_oldest_wait_is_the_first_untaken_arrivals_age():
    arrivals = [10.0, 20.0, 30.0]
    series = [Sample(25, 2, 0, 0, 0, 0), Sample(35, 1, 0, 0, 0, 0), Sample(40, 0, 0, 0, 0, 0)]
    assert oldest_wait(series, arrivals) == [15.0, 5.0, 0.0]


def test_plot_runs_writes_the_png(tmp_path, runs):
    path = plot_runs(SCENARIO, runs, tmp_path / "out" / "small.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
