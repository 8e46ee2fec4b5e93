"""Scaling benchmark: every policy on every scenario, through the simulator.

    python benchmarks/scenarios.py [--scenarios DIR ...] [--no-plots] [--regenerate]

Scenarios: the ones in scenarios/ (the shared scenario set of the taskrunner project) plus unseen-style
ones this script generates into benchmarks/scenarios/ (bursts, ramp, long jobs, a 30 s latency target,
5 messages per task, a 2-task cap, a CSV trace, a 500-task cap). Prints one JSON object per
(scenario, policy), then per scenario whether taskrunner met its bar: p95 wait <= acceptable
latency, no mid-job kill, first launch <= 15 s after a message reaches an empty service, and no
baseline meeting the latency for fewer billed task-seconds. Writes benchmarks/results/
scenarios.json and scenarios.md, and docs/img/sim-<scenario>.png.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from taskrunner.sim.engine import simulate
from taskrunner.sim.policies import POLICIES
from taskrunner.sim.scenario import Scenario, generate_arrivals, generate_processing, load_scenario

REPO = Path(__file__).resolve().parents[1]
SHARED_SCENARIOS = REPO / "scenarios"
GENERATED = REPO / "benchmarks" / "scenarios"
RESULTS = REPO / "benchmarks" / "results"
IMG = REPO / "docs" / "img"
FIRST_LAUNCH_BAR_S = 15.0


def _seg(a: float, b: float, rate: float) -> dict[str, float]:
    return {"from_s": a, "to_s": b, "rate_per_s": rate}


def _base(name: str, seed: int, duration: float, **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "duration_s": duration,
        "seed": seed,
        "arrivals": [],
        "processing_s": {"mean": 10, "cv": 0.5},
        "acceptable_latency_s": 300,
        "max_tasks": 50,
        "visibility_timeout_s": 120,
        "start_latency_s": {"min": 40, "max": 90},
        "billing_minimum_s": 60,
        "messages_per_task": 1,
    }
    doc.update(kw)
    return doc


def generated_scenarios() -> dict[str, tuple[dict[str, Any], str | None]]:
    """Unseen-style scenarios: name -> (scenario JSON, optional CSV trace text)."""
    out: dict[str, tuple[dict[str, Any], str | None]] = {}

    spikes = [_seg(0, 7200, 0.02)] + [_seg(t, t + 10, 30.0) for t in (900, 1500, 2700, 3300, 4800, 6000)]
    out["spiky"] = (
        _base("spiky", 21, 7200, arrivals=spikes, processing_s={"mean": 15, "cv": 1.0}, max_tasks=50),
        None,
    )

    up = [_seg(300 * k, 300 * (k + 1), round(0.2 + 0.5 * k, 2)) for k in range(12)]
    down = [_seg(3600 + 300 * k, 3600 + 300 * (k + 1), round(5.7 - 0.5 * k, 2)) for k in range(12)]
    out["ramp"] = (
        _base(
            "ramp",
            22,
            7200,
            arrivals=up + down,
            processing_s={"mean": 20, "cv": 0.5},
            acceptable_latency_s=240,
            max_tasks=150,
            visibility_timeout_s=300,
        ),
        None,
    )

    out["long-jobs"] = (
        _base(
            "long-jobs",
            23,
            14400,
            arrivals=[_seg(0, 14400, 0.01), _seg(3600, 3720, 0.5), _seg(9000, 9120, 0.5)],
            processing_s={"mean": 300, "cv": 1.0},
            acceptable_latency_s=1800,
            max_tasks=50,
            visibility_timeout_s=900,
        ),
        None,
    )

    out["short-latency"] = (
        _base(
            "short-latency",
            24,
            5400,
            arrivals=[_seg(0, 5400, 1.5), _seg(1800, 3600, 1.5)],
            processing_s={"mean": 5, "cv": 0.5},
            acceptable_latency_s=30,
            max_tasks=40,
            visibility_timeout_s=60,
        ),
        None,
    )

    out["batch5"] = (
        _base(
            "batch5",
            25,
            7200,
            arrivals=[_seg(0, 2400, 0.5), _seg(2400, 4800, 3.0), _seg(4800, 7200, 1.0)],
            processing_s={"mean": 40, "cv": 0.6},
            acceptable_latency_s=300,
            max_tasks=30,
            messages_per_task=5,
            visibility_timeout_s=300,
        ),
        None,
    )

    out["tiny-max"] = (
        _base(
            "tiny-max",
            26,
            10800,
            arrivals=[_seg(0, 10800, 0.03), _seg(2000, 2010, 2.0), _seg(7000, 7010, 2.0)],
            processing_s={"mean": 20, "cv": 0.5},
            acceptable_latency_s=900,
            max_tasks=2,
        ),
        None,
    )

    rng = random.Random(27)
    rows = ["t,count"]
    for minute in range(120):
        level = 40 + 35 * math.sin(math.pi * minute / 120) ** 2
        if minute in (31, 32, 77):
            level += 400
        if 95 <= minute < 100:
            level = 0
        rows.append(f"{minute * 60},{max(0, round(rng.gauss(level, math.sqrt(level + 1))))}")
    out["trace"] = (
        _base(
            "trace",
            27,
            7200,
            arrivals_csv="trace.csv",
            processing_s={"mean": 8, "cv": 0.7},
            acceptable_latency_s=120,
            max_tasks=80,
            visibility_timeout_s=60,
        ),
        "\n".join(rows) + "\n",
    )

    out["big-burst"] = (
        _base(
            "big-burst",
            28,
            10800,
            arrivals=[_seg(0, 10800, 1.0), _seg(1800, 1920, 150.0)],
            processing_s={"mean": 20, "cv": 0.5},
            acceptable_latency_s=3600,
            max_tasks=500,
            visibility_timeout_s=300,
        ),
        None,
    )
    return out


def write_generated(directory: Path = GENERATED) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (doc, trace) in generated_scenarios().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        if trace is not None:
            (directory / doc["arrivals_csv"]).write_text(trace, encoding="utf-8")
        paths.append(path)
    return paths


def verdict(scenario: Scenario, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ours = rows["taskrunner"]
    latency = scenario.acceptable_latency_s
    cheaper = [
        name
        for name, row in rows.items()
        if name != "taskrunner" and row["p95_wait_s"] <= latency and row["billed_task_s"] < ours["billed_task_s"]
    ]
    return {
        "scenario": scenario.name,
        "p95_ok": ours["p95_wait_s"] <= latency,
        "no_kills": ours["mid_job_kills"] == 0,
        "first_launch_ok": ours["first_launch_after_s"] <= FIRST_LAUNCH_BAR_S,
        "cheaper_baseline_meeting_latency": cheaper,
    }


def markdown(results: list[dict[str, Any]], verdicts: list[dict[str, Any]], latencies: dict[str, float]) -> str:
    lines = [
        "| scenario | latency target | policy | p95 wait s | billed task-s | cost ratio "
        "| mid-job kills | first launch s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        mark = "" if row["p95_wait_s"] <= latencies[row["scenario"]] else " ✗"
        lines.append(
            f"| {row['scenario']} | {latencies[row['scenario']]:g} | {row['policy']} | {row['p95_wait_s']:g}{mark} "
            f"| {row['billed_task_s']:,.0f} | {row['cost_ratio']:.2f} | {row['mid_job_kills']} "
            f"| {row['first_launch_after_s']:g} |"
        )
    met = sum(v["p95_ok"] and v["no_kills"] and v["first_launch_ok"] for v in verdicts)
    beaten = [v["scenario"] for v in verdicts if v["cheaper_baseline_meeting_latency"]]
    lines += [
        "",
        f"taskrunner met p95 <= target, 0 mid-job kills and first launch <= {FIRST_LAUNCH_BAR_S:g} s "
        f"on {met} of {len(verdicts)} scenarios; ✗ marks a p95 over the target.",
        "A baseline met the latency for fewer billed task-seconds on: " + (", ".join(beaten) or "none") + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", action="append", type=Path, metavar="DIR", help="scenario directory")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--no-generated", action="store_true", help="skip benchmarks/scenarios/")
    args = parser.parse_args(argv)

    dirs: list[Path] = list(args.scenarios or [SHARED_SCENARIOS])
    if not args.no_generated:
        write_generated()
        dirs.append(GENERATED)
    files = [f for d in dirs for f in sorted(d.glob("*.json"))]
    if not files:
        print(f"no scenario files in {', '.join(map(str, dirs))}", file=sys.stderr)
        return 2

    results: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    latencies: dict[str, float] = {}
    started = time.perf_counter()
    for path in files:
        scenario = load_scenario(path)
        latencies[scenario.name] = scenario.acceptable_latency_s
        arrivals = generate_arrivals(scenario)
        processing = generate_processing(scenario, len(arrivals))
        runs = {name: simulate(scenario, name, arrivals, processing) for name in POLICIES}
        rows = {name: r.summary for name, r in runs.items()}
        for row in rows.values():
            print(json.dumps(row), flush=True)
            results.append(row)
        v = verdict(scenario, rows)
        verdicts.append(v)
        print(json.dumps({"verdict": v}), flush=True)
        if not args.no_plots:
            from taskrunner.sim.plot import plot_runs

            IMG.mkdir(parents=True, exist_ok=True)
            plot_runs(scenario, runs, IMG / f"sim-{scenario.name}.png")

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scenarios.json").write_text(
        json.dumps({"results": results, "verdicts": verdicts}, indent=1) + "\n", encoding="utf-8"
    )
    (RESULTS / "scenarios.md").write_text(markdown(results, verdicts, latencies), encoding="utf-8")
    print(
        f"# {len(files)} scenarios x {len(POLICIES)} policies in {time.perf_counter() - started:.1f} s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
