"""``taskrunner simulate SCENARIO.json``: replay a traffic scenario through the scaling policies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from taskrunner.sim.engine import RESULT_KEYS, SimResult, simulate
from taskrunner.sim.policies import POLICIES
from taskrunner.sim.scenario import ScenarioError, generate_arrivals, generate_processing, load_scenario

_COLUMNS = (
    ("policy", "policy", "{}"),
    ("p50 s", "p50_wait_s", "{:g}"),
    ("p95 s", "p95_wait_s", "{:g}"),
    ("p99 s", "p99_wait_s", "{:g}"),
    ("max backlog", "max_backlog", "{}"),
    ("billed task-s", "billed_task_s", "{:,.0f}"),
    ("cost ratio", "cost_ratio", "{:.3f}"),
    ("kills", "mid_job_kills", "{}"),
    ("actions", "scale_actions", "{}"),
    ("1st launch s", "first_launch_after_s", "{:g}"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskrunner simulate",
        description="Replay a traffic scenario through taskrunner's scaler and the baselines.",
    )
    parser.add_argument(
        "scenario", metavar="SCENARIO.json", help="scenario file (format: docs/scenarios.md; samples in scenarios/)"
    )
    parser.add_argument("--policy", choices=[*POLICIES, "all"], default="all")
    parser.add_argument("--json", action="store_true", help="one JSON object per policy and line")
    parser.add_argument("--plot", metavar="FILE.png", help="draw backlog, running and desired over time")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"taskrunner simulate: {exc}", file=sys.stderr)
        return 2
    names = list(POLICIES) if args.policy == "all" else [args.policy]
    arrivals = generate_arrivals(scenario)
    processing = generate_processing(scenario, len(arrivals))
    runs: dict[str, SimResult] = {name: simulate(scenario, name, arrivals, processing) for name in names}

    if args.json:
        for result in runs.values():
            print(json.dumps({key: result.summary[key] for key in RESULT_KEYS}))
    else:
        print(
            f"{scenario.name}: {len(arrivals)} messages, acceptable latency "
            f"{scenario.acceptable_latency_s:g} s, max {scenario.max_tasks} tasks"
        )
        print(_table([r.summary for r in runs.values()], scenario.acceptable_latency_s))
    if args.plot:
        from taskrunner.sim.plot import plot_runs

        written = plot_runs(scenario, runs, args.plot)
        if not args.json:
            print(f"plot written to {written}")
    return 0


def _table(rows: list[dict[str, Any]], latency: float) -> str:
    cells = [[head for head, _, _ in _COLUMNS]]
    for row in rows:
        line = [fmt.format(row[key]) for _, key, fmt in _COLUMNS]
        if row["p95_wait_s"] > latency:
            line[2] += "!"
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    out = []
    for n, r in enumerate(cells):
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("! = p95 wait over the acceptable latency")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
