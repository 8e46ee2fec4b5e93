"""The worker's loop: receive, handle, delete; stop gracefully on a signal.

See the package docstring (:mod:`taskrunner.worker`) for the lifecycle and its reasons.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Final, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from taskrunner.worker.config import WorkerConfig, WorkerConfigError, make_dynamodb_client, make_sqs_client
from taskrunner.worker.drain import Drain, DrainSignal, DynamoDrainSignal
from taskrunner.worker.leases import Heartbeat, Leases
from taskrunner.worker.message import Message
from taskrunner.worker.protection import ProtectionHold, TaskProtection
from taskrunner.worker.telemetry import Metrics, logger

if TYPE_CHECKING:
    from types import FrameType

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

# After this many consecutive receive failures the task exits 1, so that ECS replaces it and the
# failure shows up in the service's events, instead of a task that polls nothing forever.
_MAX_RECEIVE_ERRORS: Final = 10
# Receive errors that no retry fixes: the task exits 1 at once.
_FATAL_RECEIVE_ERRORS: Final = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAddress",
    }
)


class _Phase(Enum):
    BUSY = "busy"  # our own bookkeeping and API calls: never interrupted
    RECEIVING = "receiving"
    HANDLING = "handling"


class _ForcedStop(BaseException):
    """Raised in the main thread by a second stop signal (or the stop deadline) to abandon in-hand work."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _FatalError(Exception):
    """The queue cannot be consumed; retrying inside this task will not help."""


@dataclass(frozen=True)
class WorkerStats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "Unknown"))


class Worker:
    """Consumes a queue with ``handler``. See the package docstring for the lifecycle."""

    def __init__(
        self,
        handler: Callable[[Message], object],
        config: WorkerConfig,
        *,
        sqs: SQSClient | None = None,
        protection: TaskProtection | None = None,
        drain: DrainSignal | None = None,
        dynamodb: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self._handler = handler
        self._sqs = sqs or make_sqs_client(config)
        self._metrics = Metrics()
        self._leases = Leases(self._sqs, config.queue_url, self._metrics)
        self._protection = ProtectionHold(
            protection or TaskProtection(config.ecs_agent_uri),
            minutes=config.protection_minutes,
            metrics=self._metrics,
            clock=clock,
        )
        self._drain = self._make_drain(drain, dynamodb)
        self._drained = False
        self._stats = WorkerStats()
        self._started = False
        self._phase = _Phase.BUSY
        self._done = threading.Event()
        # Stop state: plain attributes, because signal handlers must not take locks the main thread may hold.
        self._stopping = False
        self._forced = False
        self._stop_signum: int | None = None
        self._stop_deadline: float | None = None
        self._signals_installed = False

    def _make_drain(self, signal: DrainSignal | None, dynamodb: DynamoDBClient | None) -> Drain | None:
        """Service workers follow their job's drain signal; per-message tasks exit on their own."""
        config = self.config
        if config.mode != "service":
            return None
        if signal is None:
            if not (config.drain_table and config.job):
                return None
            db = dynamodb or make_dynamodb_client(config)
            signal = DynamoDrainSignal(db, config.drain_table, config.job, self._metrics)
        return Drain(signal, check_s=config.drain_check_s, clock=self.clock)

    # -- public ------------------------------------------------------------------------------------

    @property
    def stats(self) -> WorkerStats:
        return self._stats

    @property
    def drained(self) -> bool:
        """The worker exited because its job's drain signal named it surplus."""
        return self._drained

    @property
    def stop_requested(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        """Graceful stop from any thread: no new receives; the message in hand is finished."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        """Route SIGTERM and SIGINT to this worker (call from the main thread, which must also call run)."""
        if threading.current_thread() is not threading.main_thread():
            msg = "signal handlers can only be installed from the main thread"
            raise RuntimeError(msg)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self._signals_installed = True

    def run(self) -> int:
        """Consume until stopped (service) or drained (per-message). Returns the process exit code."""
        if self._started:
            msg = "a Worker runs once"
            raise RuntimeError(msg)
        self._started = True
        if self._signals_installed and threading.current_thread() is not threading.main_thread():
            msg = "with signal handlers installed, run() must be called from the main thread"
            raise RuntimeError(msg)
        config = self.config
        logger.info(
            "worker started",
            extra={
                "queue_url": config.queue_url,
                "mode": config.mode,
                "batch_size": config.batch_size,
                "visibility_timeout_s": config.visibility_timeout_s,
                "heartbeat_every_s": config.heartbeat_every_s,
                "protection": self._uses_protection,
                "drain": self._drain is not None,
            },
        )
        if self._signals_installed:
            threading.Thread(target=self._watch_stop_deadline, name="taskrunner-stop-deadline", daemon=True).start()
        exit_code = 0
        try:
            exit_code = self._loop()
        except _ForcedStop as stop:
            exit_code = 128 + stop.signum
        except _FatalError as err:
            logger.error(str(err))
            exit_code = 1
        finally:
            self._phase = _Phase.BUSY
            self._done.set()
            self._protection.release()
            self._metrics.flush()
        logger.info("worker stopped", extra={"exit_code": exit_code, **vars(self._stats)})
        return exit_code

    # -- main loop ---------------------------------------------------------------------------------

    @property
    def _uses_protection(self) -> bool:
        return self.config.mode == "service"

    def _loop(self) -> int:
        config = self.config
        idle_since = self.clock()
        batches = 0
        receive_errors = 0
        while not self._stopping:
            batch = self._receive()
            if batch is None:
                receive_errors += 1
                if receive_errors >= _MAX_RECEIVE_ERRORS:
                    msg = f"{receive_errors} consecutive receive failures on {config.queue_url}: giving up"
                    raise _FatalError(msg)
                self._sleep(min(2.0**receive_errors, 30.0))
                continue
            receive_errors = 0
            if self._stopping:
                if batch:
                    self._release(batch, reason="received after the stop request")
                break
            if not batch:
                if self._uses_protection:
                    self._protection.release()
                elif config.idle_exit_after_s is not None and (self.clock() - idle_since >= config.idle_exit_after_s):
                    logger.info("queue drained: exiting", extra={"batches": batches})
                    break
                self._metrics.flush()
                continue
            self._process_batch(batch)
            batches += 1
            if self._drain is not None and not self._stopping and self._drain.claim():
                # A message boundary with nothing in hand: leave now instead of re-protecting.
                self._drained = True
                self._metrics.count("WorkersDrained")
                logger.info("drain: surplus worker, nothing in hand: releasing protection and exiting")
                self._metrics.flush()
                break
            self._metrics.flush()
            idle_since = self.clock()
            if config.mode == "per-message" and config.max_batches is not None and batches >= config.max_batches:
                logger.info("max_batches reached: exiting", extra={"batches": batches})
                break
        if self._forced and self._stop_signum is not None:
            return 128 + self._stop_signum
        return 0

    def _receive(self) -> list[Message] | None:
        """The next batch; [] when the poll came back empty; None after a (logged) transient error."""
        config = self.config
        self._phase = _Phase.RECEIVING
        try:
            response = self._sqs.receive_message(
                QueueUrl=config.queue_url,
                MaxNumberOfMessages=config.batch_size,
                WaitTimeSeconds=config.wait_time_s,
                VisibilityTimeout=config.visibility_timeout_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except ClientError as err:
            code = _error_code(err)
            if code in _FATAL_RECEIVE_ERRORS:
                msg = f"cannot receive from {config.queue_url}: {code}: {err}"
                raise _FatalError(msg) from err
            logger.warning("receive failed", extra={"error_code": code}, exc_info=True)
            self._metrics.count("ReceiveErrors")
            return None
        except BotoCoreError:
            logger.warning("receive failed", exc_info=True)
            self._metrics.count("ReceiveErrors")
            return None
        finally:
            self._phase = _Phase.BUSY
        messages = [Message.from_sqs(raw) for raw in response.get("Messages", [])]
        if messages:
            self._bump(received=len(messages))
            self._metrics.count("MessagesReceived", len(messages))
        return messages

    def _process_batch(self, batch: list[Message]) -> None:
        config = self.config
        if self._uses_protection:
            self._protection.ensure()
        succeeded: list[Message] = []
        resolved: set[str] = set()
        with Heartbeat(
            batch,
            leases=self._leases,
            visibility_timeout_s=config.visibility_timeout_s,
            every_s=config.heartbeat_every_s,
            clock=self.clock,
            on_tick=self._protection.refresh_if_due,
            # Wake often enough to re-arm protection well before it lapses, even with a long lease.
            tick_max_s=config.protection_minutes * 60 / 4,
        ) as heartbeat:
            try:
                for message in batch:
                    if self._stopping:
                        break  # graceful stop: messages not yet started are released below
                    if self._handle(message):
                        succeeded.append(message)  # stays leased until the batch delete
                    else:
                        heartbeat.discard(message)
                        self._retry_later(message)
                    resolved.add(message.receipt_handle)
            finally:
                self._phase = _Phase.BUSY
                for message in batch:
                    heartbeat.discard(message)
                # Interrupted or never started: back on the queue at once, for another worker.
                leftovers = [message for message in batch if message.receipt_handle not in resolved]
                self._leases.delete(succeeded)
                if leftovers:
                    self._release(leftovers, reason="worker stopping")

    def _handle(self, message: Message) -> bool:
        logger.thread_safe_append_keys(message_id=message.message_id, receive_count=message.receive_count)
        started = time.monotonic()
        try:
            logger.info("processing message")
            self._phase = _Phase.HANDLING
            try:
                self._handler(message)
            finally:
                self._phase = _Phase.BUSY
        except Exception:
            duration = time.monotonic() - started
            logger.exception("handler failed: the message stays on the queue", extra={"duration_s": round(duration, 3)})
            self._bump(failed=1)
            self._metrics.count("MessagesFailed")
            return False
        else:
            duration = time.monotonic() - started
            logger.info("message processed", extra={"duration_s": round(duration, 3)})
            self._bump(succeeded=1)
            self._metrics.count("MessagesSucceeded")
            self._metrics.seconds("ProcessingTime", duration)
            return True
        finally:
            logger.thread_safe_remove_keys(["message_id", "receive_count"])

    # -- SQS calls ---------------------------------------------------------------------------------

    def _retry_later(self, message: Message) -> None:
        delay = self.config.retry_delay_s(message.receive_count)
        if self._leases.change_visibility([message], delay, purpose="retry backoff"):
            logger.info(
                "message will be retried after a backoff",
                extra={"message_id": message.message_id, "retry_in_s": delay},
            )

    def _release(self, messages: Sequence[Message], *, reason: str) -> None:
        if self._leases.change_visibility(messages, 0, purpose="release"):
            logger.info(
                "messages released for redelivery",
                extra={"message_ids": [message.message_id for message in messages], "reason": reason},
            )
        self._bump(released=len(messages))
        self._metrics.count("MessagesReleased", len(messages))

    # -- stopping ----------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self._stopping or self._stop_deadline is None:
            self._stopping = True
            self._stop_signum = signum
            self._stop_deadline = time.monotonic() + self.config.drain_budget_s
            logger.info(
                "stop requested: finishing the message in hand",
                extra={"signal": name, "drain_budget_s": self.config.drain_budget_s},
            )
            return
        if self._forced:
            return
        self._forced = True
        self._stop_signum = signum
        logger.warning("stopping now: in-hand messages are released for redelivery", extra={"signal": name})
        if self._phase in (_Phase.RECEIVING, _Phase.HANDLING):
            raise _ForcedStop(signum)

    def _watch_stop_deadline(self) -> None:
        """Interrupts a handler that would otherwise be SIGKILLed mid-message, leaving time to clean up."""
        main_thread = threading.main_thread().ident
        while not self._done.wait(0.1):
            deadline = self._stop_deadline
            if deadline is None or self._forced or time.monotonic() < deadline:
                continue
            logger.warning("stop timeout almost reached: interrupting the handler")
            if main_thread is not None:
                signal.pthread_kill(main_thread, self._stop_signum or signal.SIGTERM)
            return

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 0.1))

    def _bump(self, *, received: int = 0, succeeded: int = 0, failed: int = 0, released: int = 0) -> None:
        stats = self._stats
        self._stats = WorkerStats(
            received=stats.received + received,
            succeeded=stats.succeeded + succeeded,
            failed=stats.failed + failed,
            released=stats.released + released,
        )


def run(handler: Callable[[Message], object], config: WorkerConfig | None = None) -> NoReturn:
    """Entry point of a worker image: configuration from the environment, signals, exit code."""
    if config is None:
        try:
            config = WorkerConfig.from_env()
        except WorkerConfigError as err:
            logger.error(str(err))
            sys.exit(2)
    worker = Worker(handler, config)
    worker.install_signal_handlers()
    sys.exit(worker.run())
