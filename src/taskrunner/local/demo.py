"""``taskrunner local --scenario demo``: the three trigger kinds end to end, checked, in about a minute.

(a) nightly-report's schedule fires once → a run that SUCCEEDED, its report in the job's EFS folder;
(b) ``uploads/images/cat.jpg`` is uploaded to the data bucket → moto's EventBridge routes the upload to
    the dispatch queue → a thumbnails run that SUCCEEDED, whose process read the object (the thumbnail
    in the job's EFS folder records the object's size);
(c) a burst of 40 messages on image-worker's queue → the Scaler raises the service's desired count
    above 1, the worker processes (``examples/worker/app.py``) process every message, and the service
    scales back to 0.

So that (c) scales to zero within the demo, the demo rewrites image-worker's registry entry with a
short idle period and scale-in window (:data:`DEMO_SCALING`) before local mode starts; the template's
values (120 s and 300 s) are production-like and would keep the service up for minutes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskrunner.domain.runs import Run, RunStatus, idempotency_key, run_id_for
from taskrunner.domain.triggers import DispatchRequest
from taskrunner.local.runtime import LocalRuntime

SCHEDULED_JOB = "nightly-report"
UPLOAD_JOB = "thumbnails"
UPLOAD_KEY = "uploads/images/cat.jpg"
UPLOAD_SIZE = 24_576
SERVICE_JOB = "image-worker"
MESSAGES = 40
MESSAGE_SLEEP_S = 0.5
#: image-worker's scaling, lowered for the demo (template.yaml: IdleBeforeZeroSeconds, ScaleInWindowSeconds).
DEMO_SCALING = {"idle_before_zero_s": 20, "scale_in_window_s": 30}
TIMEOUT_S = 150.0


def prepare(runtime: LocalRuntime) -> dict[str, Any]:
    """Before the runtime starts: shorten image-worker's idle period and scale-in window in its registry entry."""
    ssm = runtime.clients["ssm"]
    name = f"{runtime.outputs['RegistryPrefix']}/{SERVICE_JOB}"
    spec = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    before = {k: spec["scaling"][k] for k in DEMO_SCALING}
    spec["scaling"] |= DEMO_SCALING
    ssm.put_parameter(Name=name, Value=json.dumps(spec), Type="String", Overwrite=True)
    runtime.catalog.refresh()
    runtime.activity.add("demo", f"scaling for the demo: {DEMO_SCALING} (template: {before})", SERVICE_JOB)
    return {"job": SERVICE_JOB, "template": before, "demo": DEMO_SCALING}


def _image(size: int) -> bytes:
    """A deterministic stand-in for a JPEG (SOI marker, then filler)."""
    filler = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(size // 32 + 1))
    return (b"\xff\xd8\xff\xe0" + filler)[:size]


@dataclass
class Progress:
    started: float
    report_run: str
    sent_ids: list[str] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, round(time.monotonic() - self.started, 1))


def run(runtime: LocalRuntime, started: float | None = None) -> dict[str, Any]:
    """The scenario; returns the summary (``passed`` only if every check passed)."""
    t0 = time.monotonic()
    origin = started if started is not None else t0
    activity = runtime.activity
    s3, sqs = runtime.clients["s3"], runtime.clients["sqs"]

    # (a) the schedule, once
    tick = runtime.fire_schedule(SCHEDULED_JOB)
    report_run = run_id_for(idempotency_key(DispatchRequest.model_validate(json.loads(tick.body))))
    progress = Progress(t0, report_run)
    activity.add("demo", f"(a) fired the schedule once: run {report_run[:8]}", SCHEDULED_JOB)

    # (b) an upload
    thumbs = runtime.efs_dir(UPLOAD_JOB) / f"{Path(UPLOAD_KEY).name}.thumb.json"
    thumbs.unlink(missing_ok=True)
    image = _image(UPLOAD_SIZE)
    s3.put_object(Bucket=runtime.outputs["DataBucketName"], Key=UPLOAD_KEY, Body=image, ContentType="image/jpeg")
    activity.add("demo", f"(b) uploaded s3://{runtime.outputs['DataBucketName']}/{UPLOAD_KEY}", UPLOAD_JOB)

    # (c) a burst on the worker service's queue; the Scaler looks at once rather than at its next 15 s round
    spec = runtime.catalog.spec(SERVICE_JOB)
    if spec is None or not spec.queue_url:
        raise RuntimeError(f"{SERVICE_JOB} is not registered with a work queue")
    for start in range(0, MESSAGES, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": i, "sleep_s": MESSAGE_SLEEP_S})}
            for i in range(start, min(start + 10, MESSAGES))
        ]
        response = sqs.send_message_batch(QueueUrl=spec.queue_url, Entries=entries)
        progress.sent_ids += [m["MessageId"] for m in response.get("Successful", [])]
    runtime.scaler_timer.kick()
    activity.add("demo", f"(c) sent {len(progress.sent_ids)} messages", SERVICE_JOB)

    results_dir = runtime.efs_dir(SERVICE_JOB)
    state: dict[str, Any] = {}
    deadline = t0 + TIMEOUT_S
    while time.monotonic() < deadline and not runtime.stopping:
        state = _observe(runtime, progress, thumbs, results_dir, spec.queue_url)
        if state["report_done"] and state["upload_done"] and state["scaled_to_zero"]:
            break
        time.sleep(0.5)

    report_file = runtime.efs_dir(SCHEDULED_JOB) / f"report-{report_run}.json"
    thumbnail = _json(thumbs)
    upload_run: Run | None = state.get("upload_run")
    report: Run | None = state.get("report")
    processed = state.get("processed", 0)
    dead_letters = runtime.dead_letters()
    checks = {
        "schedule_run_succeeded": report is not None and report.status is RunStatus.SUCCEEDED,
        "report_written": (_json(report_file) or {}).get("run_id") == report_run,
        "upload_run_succeeded": upload_run is not None and upload_run.status is RunStatus.SUCCEEDED,
        "thumbnail_read_object": thumbnail is not None
        and thumbnail.get("size") == len(image)
        and upload_run is not None
        and thumbnail.get("run_id") == upload_run.run_id,
        "service_scaled_up": runtime.max_desired.get(SERVICE_JOB, 0) > 1,
        "all_messages_processed": processed == len(progress.sent_ids) == MESSAGES and state.get("queue_empty", False),
        "service_scaled_to_zero": bool(state.get("scaled_to_zero")),
        "no_dead_letters": all(v == 0 for v in dead_letters.values()),
    }
    runs = sorted(runtime.all_runs(), key=lambda r: r.created_at)
    return {
        "scenario": "demo",
        "passed": all(checks.values()),
        "checks": checks,
        "runs": [
            {
                "run_id": r.run_id,
                "job": r.job,
                "trigger": str(r.trigger),
                "status": str(r.status),
                "attempt": r.attempt,
                "exit_code": r.exit_code,
                **({"reason": r.reason} if r.reason else {}),
            }
            for r in runs
        ],
        "max_desired": runtime.max_desired.get(SERVICE_JOB, 0),
        "messages_sent": len(progress.sent_ids),
        "messages_processed": processed,
        "service_desired": state.get("desired"),
        "service_workers": state.get("workers"),
        "timeline_s": progress.marks,
        "scaling_override": {"job": SERVICE_JOB, **DEMO_SCALING},
        "seconds": round(time.monotonic() - origin, 1),
    }


def _observe(runtime: LocalRuntime, progress: Progress, thumbs: Path, results: Path, queue_url: str) -> dict[str, Any]:
    store = runtime.runs_store
    report = store.get(progress.report_run)
    uploads = [r for r in store.history(UPLOAD_JOB, limit=20) if r.detail.get("key") == UPLOAD_KEY]
    upload_run = max(uploads, key=lambda r: r.created_at) if uploads else None
    report_done = report is not None and report.status.terminal
    upload_done = upload_run is not None and upload_run.status.terminal and thumbs.exists()
    if report_done:
        progress.mark("schedule_run_finished")
    if upload_done:
        progress.mark("upload_run_finished")

    processed = sum(1 for message_id in progress.sent_ids if (results / f"{message_id}.json").exists())
    visible, in_flight, delayed = runtime.depth(queue_url)
    queue_empty = visible == 0 and in_flight == 0 and delayed == 0
    if runtime.max_desired.get(SERVICE_JOB, 0) > 1:
        progress.mark("scaled_up")
    all_done = processed == len(progress.sent_ids) and queue_empty
    if all_done:
        progress.mark("messages_processed")
    pool = next((p for p in runtime.services.snapshot() if p.job == SERVICE_JOB), None)
    desired = pool.desired if pool else None
    workers = len(pool.workers) if pool else 0
    scaled_to_zero = all_done and "scaled_up" in progress.marks and desired == 0 and workers == 0
    if scaled_to_zero:
        progress.mark("scaled_to_zero")
    return {
        "report": report,
        "upload_run": upload_run,
        "report_done": report_done,
        "upload_done": upload_done,
        "processed": processed,
        "queue_empty": queue_empty,
        "desired": desired,
        "workers": workers,
        "scaled_to_zero": scaled_to_zero,
    }


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
