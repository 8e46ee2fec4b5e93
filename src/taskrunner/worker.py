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
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskrunner.domain.backoff import backoff_s

if TYPE_CHECKING:
    from types import FrameType

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

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

SERVICE_NAME: Final = "taskrunner-worker"

#: The worker's structured logger. Handlers may log through it (or through ``Logger(child=True)``):
#: while a message is handled, every line of the handling thread carries ``message_id``.
logger = Logger(service=SERVICE_NAME)

# Time kept back from the stop timeout to release messages and protection before SIGKILL.
_CLEANUP_RESERVE_S: Final = 2.0
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
_SQS_BATCH_MAX: Final = 10
_ENV_VARS: Final[Mapping[str, str]] = {
    "queue_url": "TASKRUNNER_QUEUE_URL",
    "mode": "TASKRUNNER_QUEUE_MODE",
    "wait_time_s": "TASKRUNNER_WAIT_TIME_S",
    "batch_size": "TASKRUNNER_BATCH_SIZE",
    "visibility_timeout_s": "TASKRUNNER_VISIBILITY_TIMEOUT_S",
    "heartbeat_every_s": "TASKRUNNER_HEARTBEAT_EVERY_S",
    "protection_minutes": "TASKRUNNER_PROTECTION_MINUTES",
    "idle_exit_after_s": "TASKRUNNER_IDLE_EXIT_AFTER_S",
    "max_batches": "TASKRUNNER_MAX_BATCHES",
    "stop_timeout_s": "TASKRUNNER_STOP_TIMEOUT_S",
    "retry_backoff_base_s": "TASKRUNNER_RETRY_BACKOFF_BASE_S",
    "retry_backoff_max_s": "TASKRUNNER_RETRY_BACKOFF_MAX_S",
    "ecs_agent_uri": "ECS_AGENT_URI",
}
# Settings where the word "none" means "no limit".
_NULLABLE_FIELDS: Final = frozenset({"idle_exit_after_s", "max_batches"})
_QUEUE_URL_REGION = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


# --------------------------------------------------------------------------------------------------
# Message and configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One SQS message handed to a handler."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    """SQS system attributes: ``ApproximateReceiveCount``, ``SentTimestamp``, ``MessageGroupId`` ..."""
    receive_count: int
    """1 on the first delivery; retries and redeliveries count up towards the DLQ's ``maxReceiveCount``."""
    message_attributes: dict[str, str] = field(default_factory=dict)
    """The producer's message attributes of type String or Number."""

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    @classmethod
    def from_sqs(cls, raw: MessageTypeDef) -> Message:
        attributes = {str(name): value for name, value in raw.get("Attributes", {}).items()}
        user_attributes = {
            name: value["StringValue"]
            for name, value in raw.get("MessageAttributes", {}).items()
            if "StringValue" in value
        }
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            attributes=attributes,
            receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
            message_attributes=user_attributes,
        )


class WorkerConfigError(ValueError):
    """The worker's configuration is missing or invalid; the message names the environment variable."""


def _env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _env_agent_uri() -> str | None:
    return os.environ.get("ECS_AGENT_URI") or None


class WorkerConfig(BaseModel):
    """How a worker consumes its queue. Built by :meth:`from_env` inside a job's container."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_url: str = Field(min_length=1)
    mode: Literal["service", "per-message"] = "service"
    """``service``: a long-running service task, scaled by desired count, stopped by SIGTERM.
    ``per-message``: a task started for a batch; it drains the queue and exits 0."""
    wait_time_s: int = Field(20, ge=0, le=20)
    """Long-poll wait of each ReceiveMessage."""
    batch_size: int = Field(1, ge=1, le=10)
    visibility_timeout_s: int = Field(60, ge=1, le=43_200)
    """The lease taken at receive and renewed by each heartbeat."""
    heartbeat_every_s: float = Field(20.0, gt=0)
    """Defaults to a third of ``visibility_timeout_s``, so two heartbeats may fail before a lease lapses."""
    protection_minutes: int = Field(120, ge=1, le=2880)
    """ExpiresInMinutes of each protection request (ECS default 120); re-armed at half of it."""
    idle_exit_after_s: float | None = Field(0.0, ge=0)
    """Per-message mode: exit once polls have returned nothing for this long (0: the first empty poll).
    None: never exit on idleness. Ignored in service mode."""
    max_batches: int | None = Field(None, ge=1)
    """Per-message mode: exit after this many batches even if more work is queued. None: drain."""
    stop_timeout_s: float = Field(30.0, gt=0)
    """The task definition's stopTimeout: time between SIGTERM and SIGKILL (ECS default 30, Fargate max 120)."""
    retry_backoff_base_s: float = Field(5.0, ge=0)
    retry_backoff_max_s: int = Field(900, ge=0, le=43_200)
    ecs_agent_uri: str | None = Field(default_factory=_env_agent_uri)
    """Injected by ECS into every container; unset locally, where protection is a no-op."""
    region: str | None = Field(default_factory=_env_region)
    """AWS region of the queue; when unset, taken from an ``https://sqs.<region>.amazonaws.com`` URL."""

    @model_validator(mode="before")
    @classmethod
    def _default_heartbeat(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("heartbeat_every_s") is None:
            visibility = data.get("visibility_timeout_s", 60)
            try:
                return {**data, "heartbeat_every_s": float(visibility) / 3}
            except (TypeError, ValueError):
                return data  # the visibility_timeout_s field reports the bad value
        return data

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> WorkerConfig:
        if self.heartbeat_every_s >= self.visibility_timeout_s:
            msg = (
                f"heartbeat_every_s ({self.heartbeat_every_s}) must be shorter than "
                f"visibility_timeout_s ({self.visibility_timeout_s}), or leases lapse between heartbeats"
            )
            raise ValueError(msg)
        return self

    def retry_delay_s(self, receive_count: int) -> int:
        """Visibility given to a message whose handler failed on delivery number ``receive_count``."""
        # base * 2^n after delivery n (5 s base: 10 s, 20 s, 40 s ...), as it always was.
        delay = backoff_s(max(receive_count, 0) + 1, self.retry_backoff_base_s, self.retry_backoff_max_s)
        return min(math.ceil(delay), self.retry_backoff_max_s)

    @property
    def drain_budget_s(self) -> float:
        """How long after the first stop signal the handler may keep running."""
        return self.stop_timeout_s - min(_CLEANUP_RESERVE_S, self.stop_timeout_s / 2)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerConfig:
        """Read ``TASKRUNNER_*`` variables (``ECS_AGENT_URI``, ``AWS_REGION`` too); empty means unset.

        Raises :class:`WorkerConfigError` naming the variable when one is missing or invalid.
        """
        values: dict[str, Any] = {}
        for name, variable in _ENV_VARS.items():
            raw = environ.get(variable, "").strip()
            if not raw:
                continue
            values[name] = None if name in _NULLABLE_FIELDS and raw.lower() == "none" else raw
        if "queue_url" not in values:
            msg = (
                f"{_ENV_VARS['queue_url']} is not set: it must hold the URL of the SQS queue this worker "
                "consumes (the job's task definition injects it)"
            )
            raise WorkerConfigError(msg)
        values.setdefault("ecs_agent_uri", None)
        values["region"] = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            problems = []
            for error in err.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                env_var = _ENV_VARS.get(name)
                where = f"{env_var}={values.get(name)!r}" if env_var is not None else "TASKRUNNER_* settings"
                problems.append(f"{where}: {error['msg']}")
            raise WorkerConfigError("invalid worker configuration: " + "; ".join(problems)) from None


def make_sqs_client(config: WorkerConfig) -> SQSClient:
    """The SQS client a worker uses: adaptive retries; ``AWS_ENDPOINT_URL`` honoured by boto3 itself."""
    region = config.region
    if region is None and (match := _QUEUE_URL_REGION.match(config.queue_url)):
        region = match.group(1)
    return boto3.client("sqs", region_name=region, config=Config(retries={"mode": "adaptive"}))


# --------------------------------------------------------------------------------------------------
# ECS task scale-in protection
# --------------------------------------------------------------------------------------------------


def _field(document: Mapping[str, Any], name: str) -> Any:
    """The agent answers in PascalCase; accept camelCase too."""
    if name in document:
        return document[name]
    return document.get(name[:1].lower() + name[1:])


class TaskProtection:
    """Client of the ECS agent's scale-in protection endpoint, ``$ECS_AGENT_URI/task-protection/v1/state``.

    ``enable``/``disable`` return True when the agent confirmed the requested state, and False when the
    agent answered with ``failure``/``error`` or could not be reached (logged as a warning). Without an
    agent URI (local runs) every call is a no-op that returns True and logs that once.
    """

    PATH: Final = "/task-protection/v1/state"

    def __init__(self, agent_uri: str | None, *, timeout_s: float = 5.0) -> None:
        if agent_uri and not agent_uri.startswith(("http://", "https://")):
            msg = f"ECS agent URI must be an http(s) URL, got {agent_uri!r}"
            raise ValueError(msg)
        self._url = agent_uri.rstrip("/") + self.PATH if agent_uri else None
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._noop_logged = False
        self._refusal: str | None = None
        # The agent is link-local: an HTTP(S)_PROXY meant for the internet must not capture it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TaskProtection:
        return cls(environ.get("ECS_AGENT_URI") or None)

    @property
    def configured(self) -> bool:
        """An agent endpoint is known (the worker runs in an ECS task)."""
        return self._url is not None

    @property
    def usable(self) -> bool:
        """False once the agent said this task cannot be protected (a standalone task, not in a service)."""
        return self._refusal is None

    def enable(self, expires_in_minutes: int = 120) -> bool:
        if not 1 <= expires_in_minutes <= 2880:
            msg = f"ExpiresInMinutes must be within 1..2880, got {expires_in_minutes}"
            raise ValueError(msg)
        return self._put(True, {"ProtectionEnabled": True, "ExpiresInMinutes": expires_in_minutes})

    def disable(self) -> bool:
        return self._put(False, {"ProtectionEnabled": False})

    def _put(self, wanted: bool, payload: Mapping[str, bool | int]) -> bool:
        if self._url is None:
            if not self._noop_logged:
                self._noop_logged = True
                logger.info("ECS_AGENT_URI is not set: task scale-in protection is a no-op here")
            return True
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self._url,
            data=json.dumps(payload).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with self._lock:  # keeps enable/disable from different threads in order at the agent
            try:
                with self._opener.open(request, timeout=self._timeout_s) as response:
                    status, raw = int(response.status), response.read()
            except urllib.error.HTTPError as err:
                with err:
                    status, raw = err.code, err.read()
            except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, refused, garbled
                logger.warning(
                    "task protection request failed",
                    extra={"protection_enabled": wanted, "error": repr(err)},
                )
                return False
        return self._check(wanted, status, raw)

    def _check(self, wanted: bool, status: int, raw: bytes) -> bool:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            logger.warning(
                "task protection: unreadable agent response",
                extra={"protection_enabled": wanted, "status": status, "body": raw[:500].decode(errors="replace")},
            )
            return False
        protection = body.get("protection")
        confirmed = isinstance(protection, dict) and _field(protection, "ProtectionEnabled") is wanted
        if 200 <= status < 300 and confirmed:
            logger.debug("task protection updated", extra={"protection_enabled": wanted, "protection": protection})
            return True
        failure, error = body.get("failure"), body.get("error")
        reason = _field(failure, "Reason") if isinstance(failure, dict) else None
        if reason == "TASK_NOT_VALID":
            self._refusal = str(reason)
            logger.warning(
                "the ECS agent says this task cannot be protected (not part of a service): "
                "protection is off for the rest of this task",
                extra={"failure": failure},
            )
        else:
            logger.warning(
                "task protection request refused",
                extra={"protection_enabled": wanted, "status": status, "failure": failure, "error": error},
            )
        return False


# --------------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------------


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


class _Metrics:
    """CloudWatch EMF metrics on stdout, isolated from any ``Metrics`` the handler uses."""

    def __init__(self) -> None:
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "taskrunner"
        self._emf = EphemeralMetrics(namespace=namespace, service=SERVICE_NAME)
        self._lock = threading.Lock()
        self._pending = False

    def count(self, name: str, value: int = 1) -> None:
        if value:
            self._add(name, MetricUnit.Count, value)

    def seconds(self, name: str, value: float) -> None:
        self._add(name, MetricUnit.Seconds, value)

    def _add(self, name: str, unit: MetricUnit, value: float) -> None:
        with self._lock:
            self._emf.add_metric(name=name, unit=unit, value=value)
            self._pending = True

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._pending = False
                self._emf.flush_metrics()


def _chunks[T](items: Sequence[T], size: int = _SQS_BATCH_MAX) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", "Unknown"))


class _Heartbeat:
    """Extends the lease of the messages in hand, and re-arms protection, on a background thread.

    ``discard`` holds the same lock as an extension call, so once it returns no heartbeat can overwrite
    the visibility the worker sets next (a retry backoff, a release).
    """

    def __init__(self, worker: Worker, messages: Iterable[Message]) -> None:
        config = worker.config
        self._worker = worker
        # Keyed by receipt handle: a standard queue may deliver the same message twice in one batch.
        self._in_hand = {message.receipt_handle: message for message in messages}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._interval_s = config.heartbeat_every_s
        # Wake often enough to re-arm protection well before it lapses, even with a long lease.
        self._tick_s = min(config.heartbeat_every_s, config.protection_minutes * 60 / 4)
        self._thread = threading.Thread(target=self._run, name="taskrunner-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def discard(self, message: Message) -> None:
        with self._lock:
            self._in_hand.pop(message.receipt_handle, None)

    def _run(self) -> None:
        clock = self._worker.clock
        last_extended = clock()
        while not self._stopped.wait(self._tick_s):
            try:
                now = clock()
                if now - last_extended >= self._interval_s * 0.95:
                    self._extend()
                    last_extended = now
                self._worker._refresh_protection_if_due()
            except Exception:
                logger.exception("heartbeat iteration failed")

    def _extend(self) -> None:
        with self._lock:
            self._worker._change_visibility(
                list(self._in_hand.values()), self._worker.config.visibility_timeout_s, purpose="heartbeat"
            )


class Worker:
    """Consumes a queue with ``handler``. See the module docstring for the lifecycle."""

    def __init__(
        self,
        handler: Callable[[Message], object],
        config: WorkerConfig,
        *,
        sqs: SQSClient | None = None,
        protection: TaskProtection | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self._handler = handler
        self._sqs = sqs or make_sqs_client(config)
        self._protection = protection or TaskProtection(config.ecs_agent_uri)
        self._metrics = _Metrics()
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
        self._protection_lock = threading.Lock()
        self._protected_at: float | None = None

    # -- public ------------------------------------------------------------------------------------

    @property
    def stats(self) -> WorkerStats:
        return self._stats

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
            self._release_protection()
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
                    self._release_protection()
                elif config.idle_exit_after_s is not None and (self.clock() - idle_since >= config.idle_exit_after_s):
                    logger.info("queue drained: exiting", extra={"batches": batches})
                    break
                self._metrics.flush()
                continue
            self._process_batch(batch)
            self._metrics.flush()
            batches += 1
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
        if self._uses_protection:
            self._ensure_protected()
        succeeded: list[Message] = []
        resolved: set[str] = set()
        with _Heartbeat(self, batch) as heartbeat:
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
                self._delete(succeeded)
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
        if self._change_visibility([message], delay, purpose="retry backoff"):
            logger.info(
                "message will be retried after a backoff",
                extra={"message_id": message.message_id, "retry_in_s": delay},
            )

    def _release(self, messages: Sequence[Message], *, reason: str) -> None:
        if self._change_visibility(messages, 0, purpose="release"):
            logger.info(
                "messages released for redelivery",
                extra={"message_ids": [message.message_id for message in messages], "reason": reason},
            )
        self._bump(released=len(messages))
        self._metrics.count("MessagesReleased", len(messages))

    def _change_visibility(self, messages: Sequence[Message], seconds: int, *, purpose: str) -> bool:
        """ChangeMessageVisibility(Batch); failures are logged and counted. True if all succeeded."""
        all_ok = True
        for chunk in _chunks(messages):
            by_id = {f"m{index}": message for index, message in enumerate(chunk)}
            try:
                response = self._sqs.change_message_visibility_batch(
                    QueueUrl=self.config.queue_url,
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

    def _delete(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        if len(messages) == 1:
            message = messages[0]
            try:
                self._sqs.delete_message(QueueUrl=self.config.queue_url, ReceiptHandle=message.receipt_handle)
            except (ClientError, BotoCoreError):
                logger.exception(
                    "delete failed: the message will be delivered again", extra={"message_id": message.message_id}
                )
                self._metrics.count("DeleteFailures")
            return
        for chunk in _chunks(messages):
            by_id = {f"m{index}": message for index, message in enumerate(chunk)}
            try:
                response = self._sqs.delete_message_batch(
                    QueueUrl=self.config.queue_url,
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

    # -- protection --------------------------------------------------------------------------------

    def _ensure_protected(self) -> None:
        """Before a batch: protect the task unless a recent enable still covers it."""
        if not self._protection.usable:
            return
        with self._protection_lock:
            now = self.clock()
            if self._protected_at is not None and now - self._protected_at < self._protection_refresh_s:
                return
            self._enable_protection(now)

    def _refresh_protection_if_due(self) -> None:
        """From the heartbeat: a long job re-arms protection at half its lifetime."""
        with self._protection_lock:
            now = self.clock()
            if self._protected_at is not None and now - self._protected_at >= self._protection_refresh_s:
                self._enable_protection(now)

    @property
    def _protection_refresh_s(self) -> float:
        return self.config.protection_minutes * 60 / 2

    def _enable_protection(self, now: float) -> None:
        if self._protection.enable(self.config.protection_minutes):
            self._protected_at = now
        else:
            logger.warning("processing without task scale-in protection: a scale-in may interrupt this task")
            self._metrics.count("ProtectionFailures")

    def _release_protection(self) -> None:
        """Queue idle or worker stopping: make the task eligible for scale-in again."""
        with self._protection_lock:
            if self._protected_at is None:
                return
            if self._protection.disable():
                self._protected_at = None
            else:
                # Still marked protected, so the next empty poll tries again; it lapses on its own anyway.
                self._metrics.count("ProtectionFailures")

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
