"""The worker library: what a job's container imports to consume its work queue.

A job's image needs only a handler::

    from taskrunner.worker import Message, run

    def handle(message: Message) -> None:
        ...  # return: the message is deleted; raise: it is retried later

    if __name__ == "__main__":
        run(handle)

What the worker does around the handler, and why:

* It long-polls the queue and leases each message for ``visibility_timeout_s``. A heartbeat thread
  keeps extending the lease of every message in hand, so a job may run for hours on a short lease,
  and the messages of a task that died come back within one lease.
* In service mode it holds ECS task scale-in protection while it has work, so neither the Scaler's
  scale-in nor a deployment stops a task mid-message (anchors section 6). Protection is enabled lazily
  before a batch, re-armed at half its lifetime for long jobs, and dropped only when a poll comes back
  empty, so back-to-back batches do not flap it.
  If the agent refuses or cannot be reached, the worker **still processes** the message. The lease and
  redelivery already give at-least-once delivery, and refusing work would turn an agent hiccup into an
  outage. The failure is logged as a warning and counted (metric ``ProtectionFailures``).
  Per-message tasks are started by RunTask, not by a service: nothing scales them in, and the agent
  would refuse with ``TASK_NOT_VALID``. So they skip protection.
* Scale-in drains instead of killing (:mod:`~taskrunner.worker.drain`): between batches a service
  worker checks its job's drain signal, published by the Scaler. When the signal names more surplus
  workers than have claimed a drain, the worker claims one with a conditional update. It then takes
  no more messages, releases protection and exits 0 (``WorkersDrained``). So a lowered desired count
  takes effect at the next message boundary, and no worker has to be stopped mid-job.
* Success deletes the message. A batch's successes stay leased and are deleted together when the batch
  ends (``DeleteMessageBatch``; failed entries are logged and counted).
  A handler exception leaves the message on the queue, so the redrive policy (``maxReceiveCount`` then
  the DLQ) still applies. The worker moves its visibility to the one back-off rule
  (``domain.backoff.backoff_s``: base doubled per delivery, capped at ``retry_backoff_max_s``; 10 s, 20 s,
  40 s ... 900 s by default). That avoids both a hot retry loop and waiting out a whole lease. A per-message task still
  exits 0 after a failed message: the retry belongs to the queue (the Scaler sees the message again),
  not to the task.
* The first SIGTERM/SIGINT stops receiving and lets the running handler finish. The worker deletes on
  success, releases (visibility 0) the messages of the batch that had not started, drops protection and
  exits 0. A poll in progress is allowed to complete (at most ``wait_time_s``), and what it returns is
  released.
  The handler is interrupted in two cases: a second signal arrives, or the handler is still running
  ``stop_timeout_s`` minus a small cleanup reserve after the first signal (ECS sends SIGKILL at
  ``stop_timeout_s``). Its messages are then released for prompt redelivery, and the process exits with
  128 + the signal number.

Exit codes of :func:`run`: 0 finished or stopped gracefully, 1 the queue is unusable (missing, access
denied, persistent receive errors), 2 invalid configuration, 128 + N interrupted by signal N.

The package keeps one concern per module: :mod:`~taskrunner.worker.config` (settings from the
environment), :mod:`~taskrunner.worker.message`, :mod:`~taskrunner.worker.protection` (the ECS agent's
endpoint and the worker's hold on it), :mod:`~taskrunner.worker.leases` (visibility, deletes,
heartbeat), :mod:`~taskrunner.worker.drain` (scale-in at a message boundary),
:mod:`~taskrunner.worker.loop` (receive/handle/delete, signals) and :mod:`~taskrunner.worker.telemetry`
(logger, metrics). Import from ``taskrunner.worker`` itself: the names below are the public API.
"""

from __future__ import annotations

from taskrunner.worker.config import WorkerConfig, WorkerConfigError, make_sqs_client
from taskrunner.worker.loop import Worker, WorkerStats, run
from taskrunner.worker.message import Message
from taskrunner.worker.protection import TaskProtection
from taskrunner.worker.telemetry import SERVICE_NAME, logger

__all__ = [
    "SERVICE_NAME",
    "Message",
    "TaskProtection",
    "Worker",
    "WorkerConfig",
    "WorkerConfigError",
    "WorkerStats",
    "logger",
    "make_sqs_client",
    "run",
]
