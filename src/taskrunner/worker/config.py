"""The worker's configuration, read from the ``TASKRUNNER_*`` variables the job's task definition sets."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import boto3
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskrunner.domain.backoff import backoff_s
from taskrunner.domain.scaling import DRAIN_CHECK_S

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

# Time kept back from the stop timeout to release messages and protection before SIGKILL.
_CLEANUP_RESERVE_S: Final = 2.0
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
    "job": "TASKRUNNER_JOB",
    "drain_table": "TASKRUNNER_DRAIN_TABLE",
    "drain_check_s": "TASKRUNNER_DRAIN_CHECK_S",
}
# Settings where the word "none" means "no limit".
_NULLABLE_FIELDS: Final = frozenset({"idle_exit_after_s", "max_batches"})
_QUEUE_URL_REGION = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/")


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
    job: str | None = None
    """The job this worker serves (its drain signal's key)."""
    drain_table: str | None = None
    """Service mode: the table holding the job's drain signal (the Scaler's state table); unset, no drain."""
    drain_check_s: float = Field(DRAIN_CHECK_S, ge=0)
    """How often at most the drain signal is read, at message boundaries."""
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


def _region(config: WorkerConfig) -> str | None:
    region = config.region
    if region is None and (match := _QUEUE_URL_REGION.match(config.queue_url)):
        region = match.group(1)
    return region


def make_sqs_client(config: WorkerConfig) -> SQSClient:
    """The SQS client a worker uses: adaptive retries; ``AWS_ENDPOINT_URL`` honoured by boto3 itself."""
    return boto3.client("sqs", region_name=_region(config), config=Config(retries={"mode": "adaptive"}))


def make_dynamodb_client(config: WorkerConfig) -> DynamoDBClient:
    """The client of the drain signal: standard retries, short timeouts (a drain check must not stall work)."""
    retry = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2, read_timeout=2)
    return boto3.client("dynamodb", region_name=_region(config), config=retry)
