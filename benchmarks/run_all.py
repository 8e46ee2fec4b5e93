"""`make bench`: every benchmark, JSON results in benchmarks/results/, then the README's tables.

Sizes are flags of each benchmark; with the sizes below the whole run takes about an hour on two cores
(the chaos run is most of it). The issue-sized runs (10,000 events) are the same commands with ``--events 10000``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PY = sys.executable

STEPS: list[tuple[str, list[str]]] = [
    ("scenarios", [PY, "benchmarks/scenarios.py"]),
    ("build", ["make", "build"]),
    ("coldstart", [PY, "benchmarks/coldstart.py", "--out", str(RESULTS / "coldstart.json")]),
    ("scaler_tick", [PY, "benchmarks/scaler_tick.py", "--jobs", "500", "--out", str(RESULTS / "scaler_tick.json")]),
    (
        "dispatch",
        [PY, "benchmarks/dispatch.py", "--events", "2000", "--baseline", "--out", str(RESULTS / "dispatch.json")],
    ),
    (
        "chaos",
        [
            PY,
            "benchmarks/chaos.py",
            "--events",
            "1000",
            "--seed",
            "3",
            "--hold",
            "1100",
            "--out",
            str(RESULTS / "chaos.json"),
        ],
    ),
    ("report", [PY, "benchmarks/report.py"]),
]


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, command in STEPS:
        print(f"== {name}: {' '.join(command)}", flush=True)
        if subprocess.run(
            command, cwd=ROOT, check=False, stdout=subprocess.DEVNULL if name == "build" else None
        ).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
