"""Leases on messages in hand: visibility changes, deletes, and the heartbeat that keeps them alive.

A message is leased at receive for ``visibility_timeout_s``; the heartbeat renews the lease of every
message in hand, so a job may run for hours on a short lease while the messages of a task that died
come back within one lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from taskrunner.worker.telemetry import Metrics, logger

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from taskrunner.worker.message import Message

SQS_BATCH_MAX: Final = 10


def chunks[T](items: Sequence[T], size: int = SQS_BATCH_MAX) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Leases:
    """The worker's calls that act on received messages; failures are logged and counted, never raised.

    A failed delete or visibility change only means a message is delivered again: at-least-once
    delivery already allows for it, so the worker keeps going.
    """

    def __init__(self, sqs: SQSClient, queue_url: str, metrics: Metrics) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._metrics = metrics

    def change_visibility(self, messages: Sequence[Message], seconds: int, *, purpose: str) -> bool:
        """ChangeMessageVisibility(Batch); failures are logged and counted. True if all succeeded."""
        all_ok = True
        for chunk in chunks(messages):
            by_id = {f"m{index}": message for index, message in enumerate(chunk)}
            try:
                response = self._sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": entry_id, "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": seconds}
                        for entry_id, message in by_id.items()
                    ],
                )
            except (ClientError, BotoCoreError):
                logger.warning(
                    f"{purpose}: ChangeMessageVisibilityBatch failed",
                    extra={"message_ids": [message.message_id for message in chunk]},
                    exc_info=True,
                )
                self._metrics.count("VisibilityChangeFailures", len(chunk))
                all_ok = False
                continue
            for failed in response.get("Failed", []):
                message = by_id[failed["Id"]]
                # Usually ReceiptHandleIsInvalid: the lease lapsed, another receive owns the message now.
                logger.warning(
                    f"{purpose}: visibility change refused; the message may be delivered again",
                    extra={"message_id": message.message_id, "code": failed["Code"], "error": failed.get("Message")},
                )
                self._metrics.count("VisibilityChangeFailures")
                all_ok = False
        return all_ok

    def delete(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        if len(messages) == 1:
            message = messages[0]
            try:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message.receipt_handle)
            except (ClientError, BotoCoreError):
                logger.exception(
                    "delete failed: the message will be delivered again", extra={"message_id": message.message_id}
                )
                self._metrics.count("DeleteFailures")
            return
        for chunk in chunks(messages):
            by_id = {f"m{index}": message for index, message in enumerate(chunk)}
            try:
                response = self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": entry_id, "ReceiptHandle": message.receipt_handle} for entry_id, message in by_id.items()
                    ],
                )
            except (ClientError, BotoCoreError):
                logger.exception(
                    "batch delete failed: the messages will be delivered again",
                    extra={"message_ids": [message.message_id for message in chunk]},
                )
                self._metrics.count("DeleteFailures", len(chunk))
                continue
            for failed in response.get("Failed", []):
                logger.error(
                    "delete refused: the message will be delivered again",
                    extra={
                        "message_id": by_id[failed["Id"]].message_id,
                        "code": failed["Code"],
                        "sender_fault": failed["SenderFault"],
                        "error": failed.get("Message"),
                    },
                )
                self._metrics.count("DeleteFailures")


class Heartbeat:
    """Extends the lease of the messages in hand on a background thread, and calls ``on_tick`` (protection).

    ``discard`` holds the same lock as an extension call, so once it returns no heartbeat can overwrite
    the visibility the worker sets next (a retry backoff, a release).
    """

    def __init__(
        self,
        messages: Iterable[Message],
        *,
        leases: Leases,
        visibility_timeout_s: int,
        every_s: float,
        clock: Callable[[], float],
        on_tick: Callable[[], None],
        tick_max_s: float,
    ) -> None:
        self._leases = leases
        self._visibility_timeout_s = visibility_timeout_s
        self._clock = clock
        self._on_tick = on_tick
        # Keyed by receipt handle: a standard queue may deliver the same message twice in one batch.
        self._in_hand = {message.receipt_handle: message for message in messages}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._interval_s = every_s
        # Wake often enough for ``on_tick`` (re-arming protection) even with a long lease.
        self._tick_s = min(every_s, tick_max_s)
        self._thread = threading.Thread(target=self._run, name="taskrunner-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def discard(self, message: Message) -> None:
        with self._lock:
            self._in_hand.pop(message.receipt_handle, None)

    def _run(self) -> None:
        clock = self._clock
        last_extended = clock()
        while not self._stopped.wait(self._tick_s):
            try:
                now = clock()
                if now - last_extended >= self._interval_s * 0.95:
                    self._extend()
                    last_extended = now
                self._on_tick()
            except Exception:
                logger.exception("heartbeat iteration failed")

    def _extend(self) -> None:
        with self._lock:
            self._leases.change_visibility(
                list(self._in_hand.values()), self._visibility_timeout_s, purpose="heartbeat"
            )
