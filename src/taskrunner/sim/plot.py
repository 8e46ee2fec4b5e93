"""The simulator's plot: for each policy, backlog and tasks over time (left) and how long messages wait (right).

Made to compare policies at a glance: every panel of a column shares its y axis (messages, tasks, seconds), the
acceptable latency is a line on the wait panels, mid-job kills are marked where they happened, and the x axis
ends when the last policy has drained the scenario (a dotted line marks the end of arrivals).

The wait is the age of the oldest waiting message (SQS's ``ApproximateAgeOfOldestMessage``, what the latency
target bounds), from the samples and the scenario's arrivals: the queue is first in, first out, so the oldest
waiting message is the first arrival not yet taken. (A killed task's messages reappear at the back: the age
right after a kill is then a lower bound.)

matplotlib is a CLI extra, imported here only (and with the Agg backend: no display needed).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from taskrunner.sim.engine import Sample, SimResult
from taskrunner.sim.scenario import Scenario, generate_arrivals

BACKLOG, RUNNING, DESIRED, WAIT, TARGET, KILL = "#f4a582", "#2166ac", "#1b7837", "#762a83", "#d6604d", "#b2182b"


def oldest_wait(series: Sequence[Sample], arrivals: Sequence[float]) -> list[float]:
    """At each sample: seconds the oldest waiting message has waited (0 with an empty queue)."""
    waits = []
    for sample in series:
        arrived = bisect.bisect_right(arrivals, sample.t)
        first_waiting = arrived - sample.backlog
        waits.append(sample.t - arrivals[first_waiting] if sample.backlog and 0 <= first_waiting < arrived else 0.0)
    return waits


def kill_times(result: SimResult) -> list[float]:
    """When the policy stopped a task holding messages, if the simulation recorded it."""
    return list(getattr(result, "kill_times", None) or ())


def plot_end_s(scenario: Scenario, runs: Mapping[str, SimResult]) -> float:
    """Where the x axis ends: the last moment any policy still had work queued or in flight (at least the
    scenario's duration), not the drain limit a stuck baseline ran into."""
    busy = [s.t for r in runs.values() for s in r.series if s.backlog or s.in_flight]
    run_end = max((r.end_s for r in runs.values()), default=scenario.duration_s)
    end = max([scenario.duration_s, *busy])
    return min(end + 60.0, max(run_end, scenario.duration_s))


def build_figure(scenario: Scenario, runs: Mapping[str, SimResult]) -> Any:
    """The figure (matplotlib), one row per policy: [backlog and tasks | wait]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    arrivals = generate_arrivals(scenario)
    end_min = plot_end_s(scenario, runs) / 60
    fig, axes = plt.subplots(
        len(names),
        2,
        figsize=(14, 2.5 * len(names) + 0.8),
        sharex=True,
        sharey="col",
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 2]},
    )
    task_axes = []
    waits = {name: oldest_wait(runs[name].series, arrivals) for name in names}
    top_tasks = max([1, *(max(s.running, s.desired) for r in runs.values() for s in r.series)])
    top_wait = max([scenario.acceptable_latency_s, *(w for ws in waits.values() for w in ws)])
    for row, name in enumerate(names):
        result = runs[name]
        minutes = [s.t / 60 for s in result.series]
        ax, wait_ax = axes[row, 0], axes[row, 1]
        ax.fill_between(
            minutes, [s.backlog for s in result.series], step="post", color=BACKLOG, alpha=0.6, label="backlog"
        )
        ax.set_ylabel("messages")
        tasks = ax.twinx()
        task_axes.append(tasks)
        tasks.step(minutes, [s.running for s in result.series], where="post", color=RUNNING, label="running")
        tasks.step(
            minutes,
            [s.desired for s in result.series],
            where="post",
            color=DESIRED,
            linestyle="--",
            linewidth=0.9,
            label="desired",
        )
        tasks.set_ylabel("tasks")
        kills = kill_times(result)
        if kills:
            tasks.plot(
                [t / 60 for t in kills],
                [_running_at(result.series, t) for t in kills],
                linestyle="none",
                marker="x",
                color=KILL,
                markersize=7,
                label="mid-job kill",
                gid="mid-job-kills",
            )
        summary = result.summary
        kill_text = f"{summary['mid_job_kills']} mid-job kills" if summary["mid_job_kills"] else "no mid-job kills"
        ax.set_title(
            f"{name}: p95 wait {summary['p95_wait_s']:g} s, billed {summary['billed_task_s']:,.0f} task-s "
            f"(x{summary['cost_ratio']:.2f} of work), {kill_text}",
            fontsize=9,
            loc="left",
        )
        handles = ax.get_legend_handles_labels()[0] + tasks.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper right", fontsize=7)

        wait_ax.step(minutes, waits[name], where="post", color=WAIT, label="oldest message's wait")
        wait_ax.axhline(
            scenario.acceptable_latency_s,
            color=TARGET,
            linestyle="--",
            linewidth=1,
            label=f"latency target {scenario.acceptable_latency_s:g} s",
            gid="latency-target",
        )
        wait_ax.set_ylabel("wait s")
        wait_ax.legend(loc="upper right", fontsize=7)
        for axis in (ax, wait_ax):
            axis.axvline(scenario.duration_s / 60, color="grey", linestyle=":", linewidth=0.8, gid="arrivals-end")
    for tasks in task_axes:  # twin axes are not shared by sharey: give them all the same range
        tasks.set_ylim(0, top_tasks * 1.08)
    axes[0, 1].set_ylim(0, top_wait * 1.08)
    axes[0, 0].set_ylim(bottom=0)
    axes[0, 0].set_xlim(0, end_min)
    for column in (0, 1):
        axes[-1, column].set_xlabel("minutes")
    fig.suptitle(
        f"{scenario.name}: acceptable latency {scenario.acceptable_latency_s:g} s, max {scenario.max_tasks} tasks, "
        f"{scenario.messages_per_task} message(s) per task; arrivals end at {scenario.duration_s / 60:g} min",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _running_at(series: Sequence[Sample], t: float) -> int:
    index = bisect.bisect_right([s.t for s in series], t) - 1
    return series[max(index, 0)].running if series else 0


def plot_runs(scenario: Scenario, runs: Mapping[str, SimResult], path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    fig = build_figure(scenario, runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
