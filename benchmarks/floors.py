"""Scheduled floors on the diurnal scenario: what a floor ahead of the known peak buys, and what it costs.

    python benchmarks/floors.py [--out benchmarks/results/floors.json]

The scenario is the project's shared ``diurnal`` one (benchmarks/scenarios/floors/diurnal.json, copied verbatim):
six hours, 0.2 messages/s rising in steps to 5/s at hours 2h40-3h20 and back, 30 s messages (cv 0.8), a 180 s
acceptable latency. Simulated t = 0 is 00:00 UTC, so the peak is at 02:00-04:00. Each variant is the same
scenario with ``scheduled_floors`` set (the jobs/job.yaml ``ScheduledFloors`` text), run through the simulator
with the same arrival and processing draws; ``none`` is taskrunner without a floor, and the baselines (KEDA,
target tracking, step scaling) run on the same draws for reference. Prints one JSON object and writes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from taskrunner.domain.floors import parse_floors
from taskrunner.sim.engine import simulate
from taskrunner.sim.policies import POLICIES
from taskrunner.sim.scenario import generate_arrivals, generate_processing, load_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "benchmarks" / "scenarios" / "floors" / "diurnal.json"

#: Floors a user who knows the day's shape would write: the rise to 3/s at 02:00 needs about 3 x 30 = 90
#: workers, the 5/s step at 02:40 about 150; each starts 5 minutes ahead (Fargate takes 40-90 s to start).
VARIANTS = {
    "none": "",
    "peak-90": "cron(55 1 * * ? *)/2h10m=90",
    "steps-90-150": "cron(55 1 * * ? *)/2h10m=90; cron(35 2 * * ? *)/50m=150",
}


def run() -> dict[str, Any]:
    base = load_scenario(SCENARIO)
    arrivals = generate_arrivals(base)
    processing = generate_processing(base, len(arrivals))
    variants = {}
    for name, floors in VARIANTS.items():
        scenario = base.model_copy(update={"scheduled_floors": parse_floors(floors)})
        result = simulate(scenario, "taskrunner", arrivals, processing)
        variants[name] = (
            {"scheduled_floors": floors}
            | {
                k: result.summary[k]
                for k in (
                    "p50_wait_s",
                    "p95_wait_s",
                    "p99_wait_s",
                    "max_backlog",
                    "billed_task_s",
                    "cost_ratio",
                    "mid_job_kills",
                    "scale_actions",
                )
            }
            | {"meets_latency": result.summary["p95_wait_s"] <= base.acceptable_latency_s}
        )
    baselines = {}
    for policy in POLICIES:
        if policy == "taskrunner":
            continue
        summary = simulate(base, policy, arrivals, processing).summary
        baselines[policy] = {k: summary[k] for k in ("p95_wait_s", "p99_wait_s", "billed_task_s", "mid_job_kills")}
    return {
        "benchmark": "floors",
        "scenario": base.name,
        "messages": len(arrivals),
        "acceptable_latency_s": base.acceptable_latency_s,
        "taskrunner": variants,
        "baselines": baselines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON result here too")
    args = parser.parse_args(argv)
    text = json.dumps(run())
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
