"""One settings model per handler, validated from the function's environment on its first invocation.

Resource names have no defaults: a function deployed without one fails at once with the name of
the missing variable, instead of calling AWS with an empty string.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SettingsError(RuntimeError):
    pass


class HandlerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(env))
        except ValidationError as exc:
            missing = [str(e["loc"][0]) for e in exc.errors()]
            raise SettingsError(f"{cls.__name__}: missing or invalid environment variables: {missing}") from exc


class DispatcherSettings(HandlerSettings):
    runs_table: str = Field(alias="RUNS_TABLE", min_length=1)
    registry_prefix: str = Field(alias="REGISTRY_PREFIX", pattern=r"^/")
    dead_letter_queue_url: str = Field(alias="DISPATCH_DLQ_URL", min_length=1)
    run_history_days: int = Field(alias="RUN_HISTORY_DAYS", ge=1, le=3650)
    #: How long a claim is held before a redelivery may take it over (it must outlast one launch).
    lease_s: float = Field(default=120, alias="DISPATCH_LEASE_S", gt=0, le=900)
    #: Multiplies every back-off the Dispatcher asks of SQS (below 1 only where tests compress time).
    backoff_scale: float = Field(default=1.0, alias="DISPATCH_BACKOFF_SCALE", gt=0, le=10)


class ScalerSettings(HandlerSettings):
    registry_prefix: str = Field(alias="REGISTRY_PREFIX", pattern=r"^/")
    state_table: str = Field(alias="SCALER_STATE_TABLE", min_length=1)
    #: Observe every this many seconds within one invocation (a first message gets a launch within it).
    interval_s: float = Field(alias="SCALER_INTERVAL_S", gt=0, le=60)
    #: Stop starting rounds after this many seconds, so a minute's invocations never overlap.
    window_s: float = Field(alias="SCALER_WINDOW_S", gt=0, le=840)


class TrackerSettings(HandlerSettings):
    runs_table: str = Field(alias="RUNS_TABLE", min_length=1)
    registry_prefix: str = Field(alias="REGISTRY_PREFIX", pattern=r"^/")
    run_history_days: int = Field(alias="RUN_HISTORY_DAYS", ge=1, le=3650)
    cluster_arn: str = Field(alias="CLUSTER_ARN", pattern=r"^arn:aws[a-z-]*:ecs:")
    dispatch_queue_url: str = Field(alias="DISPATCH_QUEUE_URL", min_length=1)
    dispatch_queue_arn: str = Field(alias="DISPATCH_QUEUE_ARN", pattern=r"^arn:aws[a-z-]*:sqs:")
    dead_letter_queue_url: str = Field(alias="TRACKER_DLQ_URL", min_length=1)
    retry_scheduler_role_arn: str = Field(alias="RETRY_SCHEDULER_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam:")
