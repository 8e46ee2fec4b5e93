"""Example taskrunner worker.

Each message is a JSON object ``{"n": int, "sleep_s": float}``: the worker sleeps ``sleep_s`` (standing
in for real work), computes ``n * n`` and, when ``TASKRUNNER_EFS_DIR`` is set (the job's EFS mount),
writes ``<message id>.json`` there. Redelivery of the same message rewrites the same file, so the job
is idempotent under SQS's at-least-once delivery.

Run it locally against the embedded AWS (``taskrunner local``) or any queue::

    TASKRUNNER_QUEUE_URL=... python examples/worker/app.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from taskrunner.worker import Message, logger, run


class Work(BaseModel):
    n: int
    sleep_s: float = Field(0.0, ge=0, le=12 * 3600)


def handle(message: Message) -> None:
    # A malformed body raises here: the message is retried with backoff, then lands in the DLQ.
    work = Work.model_validate_json(message.body)
    time.sleep(work.sleep_s)
    result = {"message_id": message.message_id, "n": work.n, "square": work.n * work.n}
    efs_dir = os.environ.get("TASKRUNNER_EFS_DIR")
    if efs_dir:
        target = Path(efs_dir) / f"{message.message_id}.json"
        # Write-then-rename: a task stopped mid-write never leaves a torn result for readers.
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(result))
        partial.replace(target)
    logger.info("work done", extra={"n": work.n, "square": result["square"]})


if __name__ == "__main__":
    run(handle)
