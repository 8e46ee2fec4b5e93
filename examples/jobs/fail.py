"""A job that fails on purpose: prints what it was asked to do, then exits with the code given (default 3).

Local mode runs it in place of an image (``--command JOB=python examples/jobs/fail.py 3``); the end-to-end tests
use it to check that ``taskrunner run --wait`` exits with a task's own exit code and ``taskrunner logs`` shows
the task's output.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    code = int(argv[1]) if len(argv) > 1 else 3
    print(f"run {os.environ.get('TASKRUNNER_RUN_ID', '?')} attempt {os.environ.get('TASKRUNNER_ATTEMPT', '?')}")
    print(f"failing on purpose with exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
