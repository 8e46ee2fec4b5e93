"""Backlog, running tasks and desired count over time: one panel per policy.

matplotlib is a CLI extra, imported here only (and with the Agg backend: no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from taskrunner.sim.engine import SimResult
from taskrunner.sim.scenario import Scenario


def plot_runs(scenario: Scenario, runs: Mapping[str, SimResult], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names = list(runs)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.4 * len(names) + 0.6), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        result = runs[name]
        minutes = [s.t / 60 for s in result.series]
        ax.fill_between(
            minutes, [s.backlog for s in result.series], step="post", color="#f4a582", alpha=0.6, label="backlog"
        )
        ax.set_ylabel("messages")
        tasks = ax.twinx()
        tasks.step(minutes, [s.running for s in result.series], where="post", color="#2166ac", label="running")
        tasks.step(
            minutes,
            [s.desired for s in result.series],
            where="post",
            color="#1b7837",
            linestyle="--",
            linewidth=0.9,
            label="desired",
        )
        tasks.set_ylabel("tasks")
        tasks.set_ylim(bottom=0)
        row = result.summary
        ax.set_title(
            f"{name}: p95 wait {row['p95_wait_s']:g} s, billed {row['billed_task_s']:,.0f} task-s "
            f"(x{row['cost_ratio']:.2f} of work), {row['mid_job_kills']} mid-job kills",
            fontsize=9,
            loc="left",
        )
        handles = ax.get_legend_handles_labels()[0] + tasks.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("minutes")
    fig.suptitle(
        f"{scenario.name}: acceptable latency {scenario.acceptable_latency_s:g} s, "
        f"max {scenario.max_tasks} tasks, {scenario.messages_per_task} message(s) per task",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
