"""A job's specification, as its registry entry (an SSM parameter written by jobs/job.yaml) holds it.

The spec is validated once here; every Lambda reads it by job name. Lists arrive from
CloudFormation as comma-joined strings (``!Join``), so validators accept both forms.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, field_validator, model_validator

from taskrunner.domain.cron import ScheduleError, check_timezone, parse_schedule
from taskrunner.domain.overrides import allowable, override_problems
from taskrunner.domain.patterns import validate_pattern
from taskrunner.domain.scaling import ScalingParams

JOB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
#: What an exit code can be (a process's status byte).
EXIT_CODE_RANGE = (0, 255)


class InvalidJobSpec(ValueError):
    """A registry entry that does not describe a runnable job (a permanent error)."""


class Capacity(StrEnum):
    FARGATE = "FARGATE"
    FARGATE_SPOT = "FARGATE_SPOT"
    #: Fargate Spot first; on a capacity failure, the same launch on on-demand Fargate.
    SPOT_WITH_FALLBACK = "FARGATE_SPOT_WITH_FALLBACK"


class Overlap(StrEnum):
    """Kubernetes CronJob ``concurrencyPolicy`` semantics."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class QueueMode(StrEnum):
    NONE = "none"
    SERVICE = "service"
    PER_MESSAGE = "per-message"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _split_ints(value: Any) -> Any:
    # Split only: pydantic's list[int] converts, and reports a bad item as a validation error.
    return _split_csv(value)


def _optional_number(value: Any) -> Any:
    # CloudFormation parameters cannot be null: 0 or "" means "not set".
    if value in ("", "0", 0, None):
        return None
    return value


CsvList = Annotated[list[str], BeforeValidator(_split_csv)]
IntList = Annotated[list[int], BeforeValidator(_split_ints)]
OptionalSeconds = Annotated[PositiveInt | None, BeforeValidator(_optional_number)]


class RetryPolicy(BaseModel):
    """Which failures retry (AWS Batch ``evaluateOnExit`` and Kubernetes ``backoffLimit`` are the anchors)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=10)
    backoff_base_s: int = Field(default=10, ge=1, le=3600)
    backoff_max_s: int = Field(default=360, ge=1, le=86_400)
    retry_start_failures: bool = True
    #: Application exit codes that retry; empty means an application failure never retries.
    retry_exit_codes: IntList = Field(default_factory=list)

    @field_validator("retry_exit_codes")
    @classmethod
    def _exit_codes(cls, value: list[int]) -> list[int]:
        low, high = EXIT_CODE_RANGE
        if bad := [code for code in value if not low <= code <= high]:
            raise ValueError(f"exit codes are {low}-{high}, not {', '.join(map(str, bad))}")
        return value


class JobSpec(BaseModel):
    """Everything a Lambda needs to launch, overlap-check, retry and scale one job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    cluster: str
    task_definition: str = Field(description="task definition family (or family:revision / ARN)")
    container: str
    subnets: CsvList = Field(min_length=1)
    security_groups: CsvList = Field(default_factory=list)
    assign_public_ip: bool = False
    capacity: Capacity = Capacity.FARGATE
    platform_version: str = "LATEST"

    #: The job's EventBridge Scheduler expression (its schedule targets the dispatch queue); None for no schedule.
    schedule: str | None = None
    schedule_timezone: str = "UTC"
    overlap: Overlap = Overlap.ALLOW
    starting_deadline_s: OptionalSeconds = None
    max_concurrency: int | None = Field(default=None, ge=1)
    timeout_s: OptionalSeconds = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_suffix: str = ""
    #: An EventBridge event pattern (the job's own rule uses it; bare events are routed with it too).
    event_pattern: dict[str, Any] | None = None

    #: Environment of every run (the Dispatcher passes it as container overrides).
    environment: dict[str, str] = Field(default_factory=dict)
    #: Names of the variables the task definition fills from Secrets Manager / SSM (values never pass through us).
    secrets: CsvList = Field(default_factory=list)
    #: Names a manual run may override (``taskrunner run --env``); nothing else may carry overrides.
    allowed_env_overrides: CsvList = Field(default_factory=list)
    #: ``taskrunner local`` runs this command in place of the image.
    local_command: str = ""

    queue_mode: QueueMode = QueueMode.NONE
    queue_url: str | None = None
    service: str | None = None
    scaling: ScalingParams = Field(default_factory=ScalingParams)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not JOB_NAME.match(value):
            raise ValueError("job name must be 1-40 lowercase letters, digits or '-', starting with a letter")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        # An expression Scheduler would refuse would fail the deploy; one it accepts but we cannot evaluate
        # would never be seen the way the operator meant it. The one parser decides both.
        if value is not None:
            try:
                parse_schedule(value)
            except ScheduleError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("schedule_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            return check_timezone(value)
        except ScheduleError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("s3_prefix", "s3_suffix")
    @classmethod
    def _literal_key_part(cls, value: str) -> str:
        # EventBridge prefix/suffix matching is literal: a '*' would only ever match keys holding a '*'.
        if "*" in value:
            raise ValueError(f"{value!r}: a prefix or suffix is matched literally; '*' is not a wildcard")
        return value

    @field_validator("allowed_env_overrides")
    @classmethod
    def _allowed_overrides(cls, value: list[str]) -> list[str]:
        problems = [why for name in value if (why := allowable(name))]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def reserved_env_names(self) -> frozenset[str]:
        """The job's own variables: an override may not shadow them."""
        return frozenset(self.environment) | frozenset(self.secrets)

    def override_problems(self, env: dict[str, str], *, manual: bool) -> list[str]:
        return override_problems(
            env, manual=manual, allowed=self.allowed_env_overrides, reserved=self.reserved_env_names()
        )

    @field_validator("assign_public_ip", mode="before")
    @classmethod
    def _public_ip(cls, value: Any) -> Any:
        # The registry entry carries the stack's AssignPublicIp as written: ENABLED or DISABLED.
        return {"ENABLED": True, "DISABLED": False}.get(value, value) if isinstance(value, str) else value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        # The entry holds the job's Secrets object (name → ARN); the Lambdas need only the names.
        return sorted(value) if isinstance(value, dict) else value

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _max_concurrency(cls, value: Any) -> Any:
        return _optional_number(value)

    @field_validator("event_pattern", mode="before")
    @classmethod
    def _pattern(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"event_pattern is not JSON: {exc.msg} at position {exc.pos}") from exc
            except (ValueError, RecursionError) as exc:  # >4300-digit integers; nesting past the parser's stack
                raise ValueError(f"event_pattern is not usable JSON: {type(exc).__name__}") from exc
        if value is None:
            return None
        # An entry EventBridge would refuse is refused here, with every reason: its rule could never
        # deliver an event, and routing would treat the pattern as matching nothing.
        if problems := validate_pattern(value):
            raise ValueError("event_pattern is not a valid EventBridge pattern: " + "; ".join(problems))
        return value

    @field_validator("queue_url", "service", "s3_bucket", "schedule", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return value or None

    @model_validator(mode="after")
    def _queue_wiring(self) -> JobSpec:
        if self.queue_mode is not QueueMode.NONE and not self.queue_url:
            raise ValueError(f"queue_mode {self.queue_mode} needs a queue_url")
        if self.queue_mode is QueueMode.SERVICE and not self.service:
            raise ValueError("queue_mode service needs a service name")
        return self

    @classmethod
    def parse(cls, raw: str | bytes | dict[str, Any]) -> JobSpec:
        """Validate a registry entry, turning any validation problem into :class:`InvalidJobSpec`."""
        try:
            if isinstance(raw, dict):
                return cls.model_validate(raw)
            return cls.model_validate_json(raw)
        except ValueError as exc:
            raise InvalidJobSpec(str(exc)) from exc
