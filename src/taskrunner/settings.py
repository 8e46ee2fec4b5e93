"""One settings model per handler, validated from the function's environment on its first invocation.

Resource names have no defaults: a function deployed without one fails at once with the name of
the missing variable, instead of calling AWS with an empty string.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from taskrunner.domain.trust import StackBounds, account_of


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


def _csv(value: object) -> object:
    return frozenset(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


CsvSet = Annotated[frozenset[str], BeforeValidator(_csv)]


class StackSettings(HandlerSettings):
    """What the stack deployed, from the function's environment: the bounds its inputs are checked against."""

    stack_name: str = Field(alias="STACK_NAME", min_length=1)
    region: str = Field(alias="AWS_REGION", min_length=1)
    cluster_arn: str = Field(alias="CLUSTER_ARN", pattern=r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/")
    data_bucket: str = Field(alias="DATA_BUCKET", min_length=3)
    task_subnets: CsvSet = Field(alias="TASK_SUBNETS", min_length=1)
    task_security_groups: CsvSet = Field(alias="TASK_SECURITY_GROUPS", min_length=1)
    assign_public_ip: bool = Field(alias="ASSIGN_PUBLIC_IP")

    @field_validator("assign_public_ip", mode="before")
    @classmethod
    def _public_ip(cls, value: object) -> object:
        return value == "ENABLED" if value in ("ENABLED", "DISABLED") else value

    def bounds(self) -> StackBounds:
        return StackBounds(
            name=self.stack_name,
            account=account_of(self.cluster_arn),
            region=self.region,
            cluster_arn=self.cluster_arn,
            data_bucket=self.data_bucket,
            subnets=self.task_subnets,
            security_groups=self.task_security_groups,
            public_ip=self.assign_public_ip,
        )


class DispatcherSettings(StackSettings):
    runs_table: str = Field(alias="RUNS_TABLE", min_length=1)
    registry_prefix: str = Field(alias="REGISTRY_PREFIX", pattern=r"^/")
    dead_letter_queue_url: str = Field(alias="DISPATCH_DLQ_URL", min_length=1)
    run_history_days: int = Field(alias="RUN_HISTORY_DAYS", ge=1, le=3650)
    #: How long a claim is held before a redelivery may take it over (it must outlast one launch).
    lease_s: float = Field(default=120, alias="DISPATCH_LEASE_S", gt=0, le=900)
    #: Multiplies every back-off the Dispatcher asks of SQS (below 1 only where tests compress time).
    backoff_scale: float = Field(default=1.0, alias="DISPATCH_BACKOFF_SCALE", gt=0, le=10)
    #: How far ahead of our clock a schedule tick may be (clock skew); local mode's sped-up schedules widen it.
    tick_skew_s: float = Field(default=300, alias="DISPATCH_TICK_SKEW_S", ge=0)


class ScalerSettings(StackSettings):
    registry_prefix: str = Field(alias="REGISTRY_PREFIX", pattern=r"^/")
    state_table: str = Field(alias="SCALER_STATE_TABLE", min_length=1)
    #: Observe every this many seconds within one invocation (a first message gets a launch within it).
    interval_s: float = Field(alias="SCALER_INTERVAL_S", gt=0, le=60)
    #: Stop starting rounds after this many seconds, so a minute's invocations never overlap.
    window_s: float = Field(alias="SCALER_WINDOW_S", gt=0, le=840)


class TrackerSettings(HandlerSettings):
    stack_name: str = Field(alias="STACK_NAME", min_length=1)
    runs_table: str = Field(alias="RUNS_TABLE", min_length=1)
    registry_prefix: str = Field(alias="REGISTRY_PREFIX", pattern=r"^/")
    run_history_days: int = Field(alias="RUN_HISTORY_DAYS", ge=1, le=3650)
    cluster_arn: str = Field(alias="CLUSTER_ARN", pattern=r"^arn:aws[a-z-]*:ecs:")
    #: The stack's EventBridge Scheduler group: retries later than SQS's 15-minute delay are one-time schedules in it.
    schedule_group: str = Field(alias="SCHEDULE_GROUP", min_length=1)
    #: Direct invokes with a state change are refused on AWS (only the tracker queue and the reconcile tick are
    #: trusted); local mode and `taskrunner invoke` set this to accept them.
    accept_direct_events: bool = Field(default=False, alias="TRACKER_ACCEPT_DIRECT_EVENTS")
    dispatch_queue_url: str = Field(alias="DISPATCH_QUEUE_URL", min_length=1)
    dispatch_queue_arn: str = Field(alias="DISPATCH_QUEUE_ARN", pattern=r"^arn:aws[a-z-]*:sqs:")
    dead_letter_queue_url: str = Field(alias="TRACKER_DLQ_URL", min_length=1)
    retry_scheduler_role_arn: str = Field(alias="RETRY_SCHEDULER_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam:")
    #: Where per-message workers' starts and stops are counted for the Scaler; without it, they are not counted
    #: (the Scaler's ListTasks reconciliation still does).
    scaler_state_table: str | None = Field(default=None, alias="SCALER_STATE_TABLE", min_length=1)
