"""Delayed re-dispatch of a retry: SQS message delay up to 15 minutes, a one-time EventBridge schedule beyond."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskrunner.adapters.clients import client, error_code
from taskrunner.domain.ports import Retry

if TYPE_CHECKING:
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

MAX_SQS_DELAY_S = 900


class DispatchRetries:
    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        scheduler_role_arn: str,
        *,
        schedule_group: str,
        sqs: SQSClient | None = None,
        scheduler: EventBridgeSchedulerClient | None = None,
        now: Any = None,
    ) -> None:
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.scheduler_role_arn = scheduler_role_arn
        self.schedule_group = schedule_group
        self.sqs: SQSClient = sqs or client("sqs")
        self._scheduler = scheduler
        self.now = now or (lambda: datetime.now(UTC))

    def schedule(self, retry: Retry) -> None:
        body = json.dumps(retry.body)
        if retry.delay_s <= MAX_SQS_DELAY_S:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=retry.delay_s)
            return
        scheduler: EventBridgeSchedulerClient = self._scheduler or client("scheduler")
        when = (self.now() + timedelta(seconds=retry.delay_s)).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            scheduler.create_schedule(
                # In the stack's own group, named with '.', which no job schedule name ("job.<name>") can collide with.
                Name=f"retry.{retry.run_id}.{retry.attempt}",
                GroupName=self.schedule_group,
                ScheduleExpression=f"at({when})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={"Arn": self.queue_arn, "RoleArn": self.scheduler_role_arn, "Input": body},
            )
        except ClientError as exc:
            if error_code(exc) != "ConflictException":  # already scheduled by an earlier delivery
                raise
