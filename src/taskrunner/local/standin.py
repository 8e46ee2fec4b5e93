"""``python -m taskrunner.local.standin``: the LocalCommand ``taskrunner new job`` writes into a new block.

Until the job has a local stand-in of its own, a local run should show that it ran and with what, not
"succeed" doing nothing: this prints the run's trigger and what came with it (the upload, the schedule tick,
the matched event) and exits 0. ``TASKRUNNER_STANDIN_EXIT`` makes it exit with another code (to try retries).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    env = os.environ
    job, trigger = env.get("TASKRUNNER_JOB", "?"), env.get("TASKRUNNER_TRIGGER", "manual")
    print(f"{job}: {trigger} run {env.get('TASKRUNNER_RUN_ID', '-')} attempt {env.get('TASKRUNNER_ATTEMPT', '1')}")
    for name in ("TASKRUNNER_SCHEDULED_AT", "TASKRUNNER_S3_BUCKET", "TASKRUNNER_S3_KEY", "TASKRUNNER_EVENT"):
        if name in env:
            print(f"  {name}={env[name]}")
    code = env.get("TASKRUNNER_STANDIN_EXIT", "0")
    return int(code) if code.isdigit() else 0


if __name__ == "__main__":
    sys.exit(main())
