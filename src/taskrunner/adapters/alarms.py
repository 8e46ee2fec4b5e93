"""CloudWatch alarms in ALARM that belong to one stack.

CloudFormation names a stack's alarms ``<stack>-<LogicalId>-<suffix>`` (nested job stacks:
``<stack>-<JobLogicalId>-<suffix>-<LogicalId>-<suffix>``), so a name prefix finds them in one paginated call.
The prefix alone would also match a stack called ``<stack>-dev``: every alarm of the template notifies the
stack's own alarm topic, which tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskrunner.adapters.clients import client

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient


@dataclass(frozen=True)
class Alarm:
    name: str
    reason: str
    since: datetime | None
    description: str


class CloudWatchAlarms:
    def __init__(self, cloudwatch: CloudWatchClient | None = None) -> None:
        self.cw: CloudWatchClient = cloudwatch or client("cloudwatch")

    def firing(self, stack: str, topic_arn: str | None = None) -> list[Alarm]:
        """Alarms in ALARM named after ``stack`` (and notifying ``topic_arn``, when given), oldest first."""
        found: list[Alarm] = []
        pages = self.cw.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=f"{stack}-", StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
        for page in pages:
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                raw: Any = alarm
                if topic_arn and topic_arn not in raw.get("AlarmActions", []):
                    continue
                found.append(
                    Alarm(
                        name=str(raw["AlarmName"]),
                        reason=str(raw.get("StateReason", "")),
                        since=raw.get("StateUpdatedTimestamp"),
                        description=str(raw.get("AlarmDescription", "")),
                    )
                )
        return sorted(found, key=lambda a: (a.since is None, a.since or datetime.min, a.name))
