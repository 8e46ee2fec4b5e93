"""Render the measured results in benchmarks/results/ into the README's benchmark section.

The README holds markers (``<!-- BENCH:SCENARIOS -->`` …); everything between a marker and the next
``<!-- /BENCH -->`` is replaced with tables built from the JSON files, so the page shows only
numbers a run produced.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text().strip().splitlines()[-1])
    return data


def scenarios() -> str:
    table = RESULTS / "scenarios.md"
    return table.read_text().strip() if table.exists() else "_not measured yet: run `make bench`_"


def api_row(name: str, api: dict[str, Any]) -> str:
    """One API of the scaler_tick result: its steady rate against its documented quota."""
    quota = api["quota_per_s"] if api["quota_per_s"] else "not published"
    share = f"{api['share_of_quota']:.1%}" if api["share_of_quota"] is not None else "—"
    return f"| `{name}` | {api['calls_per_s']} | {quota} | {share} | {api.get('burst_calls_per_s', '—')} |"


def chaos_runs() -> list[dict[str, Any]]:
    """Every chaos result (``chaos.json``: the largest run; ``chaos-<events>.json``: others), one row each, by size."""
    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("chaos*.json")):
        data = load(path.name)
        if data:
            runs.setdefault(json.dumps(data, sort_keys=True), data)
    return sorted(runs.values(), key=lambda run: (run["events"], run.get("seed", 0)))


def _n(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else str(value)


def chaos_section() -> list[str]:
    runs = chaos_runs()
    if not runs:
        return []
    rows = []
    for run in runs:
        faults = run["faults_injected"]
        rows.append(
            f"| {run['events']:,} | {run.get('seed', 'n/a')} | {run['runs_launched']:,} "
            f"| {_n(run.get('attempts_launched'))} | {run['lost']} | {run['duplicates']} | {_n(run.get('stuck'))} "
            f"| {run['retried']:,} | {run['dead_lettered']} | {_n(faults.get('max_held_running'))} "
            f"| {', '.join(f'{k} {v:,}' for k, v in run['final_status'].items())} | {run['seconds']:,} "
            f"| {_n(run.get('cpu_seconds'))} | {_n(run.get('events_per_s'))} | {_n(run.get('api_calls_per_event'))} |"
        )
    largest = runs[-1]
    faults = ", ".join(
        f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(largest["faults_injected"].items()) if k != "max_held_running"
    )
    calls = ", ".join(
        f"{name} {c['calls']:,} calls / {c['seconds']} s" for name, c in list(largest.get("api_calls", {}).items())[:6]
    )
    return [
        "### Chaos: triggers through Dispatcher and Tracker with faults injected",
        "",
        "| events | seed | runs launched | attempts | lost | duplicates | stuck | retried | dead-lettered "
        "| most runs active at once | final status | seconds | CPU seconds | events/s | AWS calls per event |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Faults injected in the {largest['events']:,}-event run (seed {largest.get('seed')}): {faults}."
        + (f" Where its time went (wall clock of the AWS calls): {calls}." if calls else ""),
        "",
        "All of it runs in the embedded AWS (moto): the real template, the product's handlers and their boto3 calls "
        "over HTTP, moto's DynamoDB, SQS, EventBridge and ECS API; the harness plays the ECS agent (a task's fate "
        "and its state-change events) and injects the faults. It proves the bookkeeping under faults (each run "
        "launched once, finished once, never stuck), not AWS's latency or Fargate's start times. `seconds` is the "
        "wall clock on a shared 2-core machine; `CPU seconds` is this process's own (product, harness and moto "
        "together). Reproduce: `.venv/bin/python benchmarks/chaos.py --events 1000 --seed 3 --hold 1100 --json` "
        "(`--events 10000` for the issue-sized run; `--out FILE` writes the JSON line).",
        "",
    ]


def others() -> str:
    parts: list[str] = []
    dispatch = load("dispatch.json")
    if dispatch:
        naive = dispatch.get("naive") or {}
        parts += [
            "### Dispatch: S3 uploads through EventBridge and the Dispatcher, RunTask throttled",
            "",
            "| uploads | duplicate deliveries injected | RunTask throttled | runs launched | duplicates | lost "
            "| dead-lettered | RunTask calls | throttles | events/s | events/s without faults (same run) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {dispatch['events']:,} | {dispatch['duplicate_deliveries_injected']:,} | {dispatch['throttle_rate']:.0%} "
            f"| {dispatch['runs_launched']:,} | {dispatch['duplicates']} | {dispatch['lost']} | {dispatch['dead_lettered']} "
            f"| {dispatch['run_task_calls']:,} | {dispatch['throttles']:,} | {dispatch['events_per_s']} "
            f"| {dispatch.get('baseline_events_per_s', 'n/a')} |",
            "",
        ]
        if "calls_per_event" in dispatch:
            parts += [
                "| consumer (same uploads, duplicates, throttling) | AWS calls per event | per launched run "
                "| tasks launched | duplicate tasks | events/s |",
                "|---|---:|---:|---:|---:|---:|",
                f"| taskrunner Dispatcher | {dispatch['calls_per_event']} | {dispatch['calls_per_launched_run']} "
                f"| {dispatch['runs_launched']:,} | {dispatch['duplicates']} | {dispatch['events_per_s']} |",
            ]
            if naive:
                parts.append(
                    f"| naive Lambda→RunTask | {naive['calls_per_event']} | "
                    f"{round(sum(naive['handler_calls'].values()) / max(1, naive['tasks_launched']), 3)} "
                    f"| {naive['tasks_launched']:,} | {naive['duplicates']} | {naive['events_per_s']} |"
                )
            parts.append("")
        parts += [
            f"Uploads are real `PutObject` calls; moto's EventBridge routes them to the dispatch queue; an in-process "
            f"event-source mapping delivers batches of 10 to the handler (one Lambda container, sequentially). "
            f"botocore retry mode: {dispatch.get('retry_mode', 'adaptive')}. The Dispatcher's calls are its "
            "handler's own (claim, RunTask, record; the registry is cached), not the poller's receive and delete. "
            "Reproduce: `.venv/bin/python benchmarks/dispatch.py --events 1000 --baseline`; 20 launches/s on AWS "
            "on paper: [docs/scaler-capacity.md](docs/scaler-capacity.md#dispatch-at-the-fargate-launch-rate).",
            "",
        ]
    parts += chaos_section()
    cold = load("coldstart.json")
    if cold:
        parts += [
            "### Cold start and package size",
            "",
            f"`import boto3` alone: {cold['boto3_import_ms']} ms (median of {cold['repeat']} fresh interpreters, interleaved).",
            "",
            "| function | handler import ms | ratio to `import boto3` | package MB (unzipped) |",
            "|---|---:|---:|---:|",
            *[
                f"| {name} | {f['import_ms']} | {f['ratio_to_boto3']} | {f['package_mb']} |"
                for name, f in cold["functions"].items()
            ],
            "",
            "Reproduce: `make build && .venv/bin/python benchmarks/coldstart.py`.",
            "",
        ]
    tick = load("scaler_tick.json")
    if tick and "apis" in tick:
        interval = tick["observation_interval_s"]
        parts += [
            f"### Scaler: one stack, {tick['jobs']:,} queue jobs "
            f"({tick['service_jobs']:,} services, {tick['per_message_jobs']:,} per-message)",
            "",
            f"Busy jobs observed every {interval['busy']:g} s, idle jobs every {interval['idle']:g} s, every queue's "
            f"depth every {interval['queue_depth']:g} s (on the Scaler's clock, which advances 15 s a round). In moto a "
            f"round took up to {tick['round_s']} s ({tick['threads']} threads, one process on shared cores): moto's CPU, "
            "not AWS's latency; the round on AWS is estimated in the docs.",
            "",
            "| API | calls/s (steady window) | documented quota /s | share | calls/s in the opening burst |",
            "|---|---:|---:|---:|---:|",
            *[api_row(name, api) for name, api in tick["apis"].items()],
            "",
            "Quotas, sources and the levers: [docs/scaler-capacity.md](docs/scaler-capacity.md). "
            f"Reproduce: `.venv/bin/python benchmarks/scaler_tick.py --jobs {tick['jobs']}`.",
            "",
        ]
    return "\n".join(parts).strip() or "_not measured yet: run `make bench`_"


def render(text: str, marker: str, body: str) -> str:
    pattern = re.compile(rf"<!-- BENCH:{marker} -->.*?<!-- /BENCH -->", re.DOTALL)
    block = f"<!-- BENCH:{marker} -->\n{body}\n<!-- /BENCH -->"
    if f"<!-- BENCH:{marker} -->" not in text:
        raise SystemExit(f"README has no BENCH:{marker} marker")
    return pattern.sub(lambda _: block, text, count=1)


def main() -> int:
    text = README.read_text()
    text = render(text, "SCENARIOS", scenarios())
    text = render(text, "OTHERS", others())
    README.write_text(text)
    print(f"README benchmark section rendered from {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
