"""CloudWatch Logs: the events of one log stream, read forward from the start or from a time.

A task's output is its awslogs stream (``/taskrunner/<stack>/jobs/<job>``, stream
``<job>/<container>/<task id>``); :func:`taskrunner.domain.runs.log_stream` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from taskrunner.adapters.clients import client, error_code


class LogStreamNotFound(LookupError):
    """The group or the stream does not exist (yet: a task that has written nothing has no stream)."""


@dataclass(frozen=True)
class LogEvent:
    timestamp: datetime
    message: str


@dataclass(frozen=True)
class LogPage:
    events: list[LogEvent]
    #: Where the next read continues; the same token again means "nothing newer yet".
    token: str | None


def group_name(stack: str, job: str) -> str:
    """The job's log group, as jobs/job.yaml names it."""
    return f"/taskrunner/{stack}/jobs/{job}"


class CloudWatchLogs:
    def __init__(self, logs: Any = None) -> None:
        # Typed Any: the project's boto3-stubs extras do not include CloudWatch Logs.
        self.logs: Any = logs or client("logs")

    def read(self, group: str, stream: str, *, since: datetime | None = None, token: str | None = None) -> LogPage:
        """One page of events after ``token`` (or from ``since``, or from the start), oldest first."""
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        # A token continues the request it came from: the same startTime goes with it.
        if since is not None:
            kwargs["startTime"] = int(since.timestamp() * 1000)
        if token:
            kwargs["nextToken"] = token
        try:
            response = self.logs.get_log_events(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise LogStreamNotFound(f"{group} {stream}") from exc
            raise
        events = [
            LogEvent(datetime.fromtimestamp(int(e.get("timestamp", 0)) / 1000, UTC), str(e.get("message", "")))
            for e in response.get("events", [])
        ]
        return LogPage(events, response.get("nextForwardToken"))
