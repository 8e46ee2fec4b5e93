"""Cold-start benchmark: each handler module's import time as a ratio to ``import boto3`` alone, and the
unzipped size of each built function package.

Both imports are measured in fresh interpreters, interleaved, in the same run (the median of
``--repeat`` runs each), so machine noise hits both sides alike. The package size is read from
``sam build``'s output (``make build``), which is what ``sam deploy`` uploads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {
    "DispatchFunction": "taskrunner.handlers.dispatcher",
    "ScalerFunction": "taskrunner.handlers.scaler",
    "TrackerFunction": "taskrunner.handlers.tracker",
}
PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str) -> float:
    env = os.environ | {"POWERTOOLS_TRACE_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.strip())


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    modules = {name: mod for name, mod in HANDLERS.items() if (ROOT / "src" / (mod.replace(".", "/") + ".py")).exists()}
    samples: dict[str, list[float]] = {"boto3": [], **{name: [] for name in modules}}
    for _ in range(args.repeat):  # interleaved: noise lands on every module alike
        samples["boto3"].append(import_seconds("boto3"))
        for name, module in modules.items():
            samples[name].append(import_seconds(module))
    boto3_s = statistics.median(samples["boto3"])
    result: dict[str, object] = {
        "benchmark": "coldstart",
        "repeat": args.repeat,
        "boto3_import_ms": round(boto3_s * 1000, 1),
    }
    functions = {}
    for name in modules:
        median = statistics.median(samples[name])
        package = args.build_dir / name
        functions[name] = {
            "import_ms": round(median * 1000, 1),
            "ratio_to_boto3": round(median / boto3_s, 3),
            "package_mb": round(tree_bytes(package) / 1e6, 2) if package.exists() else None,
        }
    result["functions"] = functions
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
