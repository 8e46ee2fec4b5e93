"""Cold-start benchmark: each handler module's import time as a ratio to ``import boto3`` alone, and the
unzipped size of each built function package.

Both imports are measured in fresh interpreters, interleaved, in the same run (the median of
``--repeat`` runs each), so machine noise hits both sides alike. The package size is read from
``sam build``'s output (``make build``), which is what ``sam deploy`` uploads.

The import is measured with tracing disabled, as it always was. With tracing on, the X-Ray SDK is no
longer imported at init but by the first traced invocation (``observability.LazyTracer``); what that
costs once per execution environment is measured too (``first_traced_call_ms``: building the real
Tracer in a Lambda-like environment after the handler's import), so the figure is not hidden.
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
TRACED_PROBE = (
    "import time; import {module}; from taskrunner.observability import tracer; "
    "t = time.perf_counter(); assert tracer.load() is not None; print(time.perf_counter() - t)"
)


def _seconds(code: str, env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def import_seconds(module: str) -> float:
    env = os.environ | {"POWERTOOLS_TRACE_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    return _seconds(PROBE.format(module=module), env)


def first_traced_call_seconds(module: str) -> float:
    """What the first invocation adds with tracing on: the X-Ray SDK import and boto3 patching."""
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    env |= {"LAMBDA_TASK_ROOT": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return _seconds(TRACED_PROBE.format(module=module), env)


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    modules = {name: mod for name, mod in HANDLERS.items() if (ROOT / "src" / (mod.replace(".", "/") + ".py")).exists()}
    result_note = (
        "import with POWERTOOLS_TRACE_DISABLED; first_traced_call_ms: the X-Ray SDK, loaded at the first traced call"
    )
    samples: dict[str, list[float]] = {"boto3": [], **{name: [] for name in modules}}
    traced: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(args.repeat):  # interleaved: noise lands on every module alike
        samples["boto3"].append(import_seconds("boto3"))
        for name, module in modules.items():
            samples[name].append(import_seconds(module))
            traced[name].append(first_traced_call_seconds(module))
    boto3_s = statistics.median(samples["boto3"])
    result: dict[str, object] = {
        "benchmark": "coldstart",
        "repeat": args.repeat,
        "boto3_import_ms": round(boto3_s * 1000, 1),
        "note": result_note,
    }
    functions = {}
    for name in modules:
        median = statistics.median(samples[name])
        package = args.build_dir / name
        functions[name] = {
            "import_ms": round(median * 1000, 1),
            "ratio_to_boto3": round(median / boto3_s, 3),
            "first_traced_call_ms": round(statistics.median(traced[name]) * 1000, 1),
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
