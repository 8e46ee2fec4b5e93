"""A job that runs long: a line every second for the seconds given (default 600), and a clean exit on SIGTERM.

Local mode runs it in place of an image (``--command JOB=python examples/jobs/long.py 600``); the end-to-end
tests stop it with ``taskrunner stop`` (ECS StopTask sends SIGTERM, as local mode does) and check the run ends
STOPPED.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType


def main(argv: list[str]) -> int:
    seconds = int(argv[1]) if len(argv) > 1 else 600

    def stop(signum: int, frame: FrameType | None) -> None:
        print("stopping on SIGTERM", flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    for second in range(seconds):
        print(f"working: {second}s of {seconds}s", flush=True)
        time.sleep(1)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
