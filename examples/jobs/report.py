"""Stand-in for nightly-report's image in local mode: writes a small report into the job's EFS folder.

The Dispatcher gives every run ``TASKRUNNER_RUN_ID``, ``TASKRUNNER_TRIGGER`` and, for a schedule tick,
``TASKRUNNER_SCHEDULED_AT``; the task definition gives ``TASKRUNNER_EFS_DIR`` (the job's access point,
``.taskrunner/efs/nightly-report/reports`` in local mode). The report is named after the run, so a
retried attempt rewrites the same file.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path


def main() -> int:
    run_id = os.environ.get("TASKRUNNER_RUN_ID", "manual")
    report = {
        "job": os.environ.get("TASKRUNNER_JOB", "nightly-report"),
        "run_id": run_id,
        "attempt": int(os.environ.get("TASKRUNNER_ATTEMPT", "1")),
        "trigger": os.environ.get("TASKRUNNER_TRIGGER", ""),
        "scheduled_at": os.environ.get("TASKRUNNER_SCHEDULED_AT"),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"report for {report['scheduled_at'] or 'an unscheduled run'} (run {run_id})")
    efs_dir = os.environ.get("TASKRUNNER_EFS_DIR")
    if efs_dir:
        target = Path(efs_dir) / f"report-{run_id}.json"
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(report, indent=2))
        partial.replace(target)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
