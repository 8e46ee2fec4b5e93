"""What arrives on the dispatch queue, and how a bare EventBridge event finds its jobs.

Three shapes reach the Dispatcher, all from the same queue (or directly, for ``sam local invoke``):

* an *envelope* written by a job's own trigger: ``{"job": ..., "trigger": "schedule", "scheduled_at": ...}``,
  ``{"job": ..., "trigger": "s3" | "event", "event": <aws.events.event.json>}``, or a manual run request;
* a *bare* EventBridge event (moto delivers S3-originated events to SQS without the target's
  InputTransformer, and ``sam local invoke -e events/s3-object-created.json`` sends one directly);
  it is routed to every job whose S3 trigger or event pattern matches it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticSerializationError

from taskrunner.domain.errors import PermanentError
from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.overrides import ENV_NAME, MAX_OVERRIDE_CHARS
from taskrunner.domain.patterns import matches


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    S3 = "s3"
    EVENT = "event"
    MANUAL = "manual"


class EventBridgeModel(BaseModel):
    """An EventBridge event, field for field Powertools' parser ``EventBridgeModel`` (same names, aliases,
    Scheduler ``"{}"`` rule). Declared here because importing Powertools' parser loads every model it
    ships, a measurable share of each handler's cold start for the one model we use."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]
    replay_name: str | None = Field(None, alias="replay-name")

    @field_validator("detail", mode="before")
    @classmethod
    def _scheduler_detail(cls, value: Any, info: ValidationInfo) -> Any:
        # EventBridge Scheduler sends detail as the string "{}" when the schedule has no payload.
        return {} if info.data.get("source") == "aws.scheduler" and value == "{}" else value


class S3Object(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    sequencer: str = ""
    size: int | None = None


class DispatchRequest(BaseModel):
    """One request to run one job once. Its idempotency key is derived from its content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str = Field(min_length=1, max_length=64)
    trigger: Trigger
    scheduled_at: datetime | None = None
    event: EventBridgeModel | None = None
    request_id: str | None = Field(default=None, min_length=8, max_length=64)
    env: dict[str, str] = Field(default_factory=dict)
    #: A retry is the original request again, with the run it continues and its attempt number.
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{26}$")
    attempt: int = Field(default=1, ge=1, le=10)

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        # Only the shape here; which names a request may carry depends on its job (domain.overrides, trust).
        bad = [name for name in value if not ENV_NAME.match(name)]
        if bad:
            raise ValueError(f"invalid environment variable names: {sorted(bad)}")
        if sum(len(k) + len(v) for k, v in value.items()) > MAX_OVERRIDE_CHARS:
            raise ValueError(f"environment overrides exceed {MAX_OVERRIDE_CHARS} characters")
        return value

    def model_post_init(self, __context: Any) -> None:
        required: dict[Trigger, str] = {
            Trigger.SCHEDULE: "scheduled_at",
            Trigger.S3: "event",
            Trigger.EVENT: "event",
            Trigger.MANUAL: "request_id",
        }
        field = required[self.trigger]
        if getattr(self, field) is None:
            raise ValueError(f"a {self.trigger} request needs '{field}'")
        if (self.attempt > 1) != (self.run_id is not None):
            raise ValueError("a retry (attempt > 1) names its run_id, and only a retry does")
        if self.trigger is Trigger.S3:
            self.s3_object()  # validates the event's shape now, not at launch time

    def s3_object(self) -> S3Object | None:
        """The uploaded object of an S3 "Object Created" event, if this request carries one."""
        if self.event is None or self.event.source != "aws.s3":
            if self.trigger is Trigger.S3:
                raise ValueError("an s3 request needs an aws.s3 event")
            return None
        detail: Any = self.event.detail
        try:
            obj = detail["object"]
            return S3Object(
                bucket=detail["bucket"]["name"],
                key=obj["key"],
                sequencer=str(obj.get("sequencer", "")),
                size=obj.get("size"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"S3 event detail lacks bucket.name or object.key: {exc}") from exc


S3_NOTIFICATION_ADVICE = (
    "S3 Event Notifications are not a taskrunner trigger; send S3 events through EventBridge instead (turn on "
    "the bucket's EventBridge notifications: a job with S3Prefix has the rule that routes them)"
)


def what_arrived(payload: Any) -> str:
    """What a payload is, in words, for a refusal that tells the sender what they sent (never raises)."""
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    if payload.get("Event") == "s3:TestEvent":
        return "an S3 Event Notification test event (s3:TestEvent)"
    records = payload.get("Records")
    if isinstance(records, list):
        sources = sorted({str(r.get("eventSource") or r.get("EventSource")) for r in records if isinstance(r, dict)})
        return f"a Records batch (eventSource {', '.join(sources) or 'none'})"
    if "detail-type" in payload or "source" in payload:
        return f"an EventBridge event (source {payload.get('source')!r}, detail-type {payload.get('detail-type')!r})"
    if payload.get("Type") == "Notification" and "TopicArn" in payload:
        return f"an SNS notification (TopicArn {payload.get('TopicArn')!r})"
    if "httpMethod" in payload or "routeKey" in payload:
        return f"an API Gateway request (httpMethod {payload.get('httpMethod') or payload.get('routeKey')!r})"
    keys = sorted(str(k) for k in payload)[:6]
    return f"a JSON object with keys {keys}" + (" …" if len(payload) > 6 else "")


def is_dispatch_request(payload: dict[str, Any]) -> bool:
    return "job" in payload or "trigger" in payload


def is_s3_notification(payload: dict[str, Any]) -> bool:
    """An S3 Event Notification (a bucket notification configured to this queue), or its ``s3:TestEvent``."""
    if payload.get("Event") == "s3:TestEvent" and payload.get("Service") == "Amazon S3":
        return True
    records = payload.get("Records")
    return isinstance(records, list) and any(isinstance(r, dict) and r.get("eventSource") == "aws:s3" for r in records)


def is_bare_event(payload: dict[str, Any]) -> bool:
    return "detail-type" in payload and "source" in payload and "job" not in payload


def s3_matches(spec: JobSpec, obj: S3Object) -> bool:
    return (
        spec.s3_bucket is not None
        and spec.s3_bucket == obj.bucket
        and obj.key.startswith(spec.s3_prefix)
        and obj.key.endswith(spec.s3_suffix)
    )


def route(event: EventBridgeModel, raw: dict[str, Any], specs: list[JobSpec]) -> list[DispatchRequest]:
    """Requests for every job a bare event triggers: S3 uploads by bucket/prefix/suffix, others by pattern."""
    requests: list[DispatchRequest] = []
    if event.source == "aws.s3" and event.detail_type == "Object Created":
        probe = DispatchRequest(job="probe", trigger=Trigger.S3, event=event)
        obj = probe.s3_object()
        assert obj is not None
        requests += [
            DispatchRequest(job=spec.name, trigger=Trigger.S3, event=event) for spec in specs if s3_matches(spec, obj)
        ]
    requests += [
        DispatchRequest(job=spec.name, trigger=Trigger.EVENT, event=event)
        for spec in specs
        if spec.event_pattern and matches(spec.event_pattern, raw)
    ]
    return requests


def requests_from(body: str | dict[str, Any], all_specs: Callable[[], list[JobSpec]]) -> list[DispatchRequest]:
    """Parse one dispatch-queue body (or a direct invocation payload) into requests.

    Raises :class:`PermanentError` with a readable reason for anything that can never succeed.
    """
    try:
        payload = json.loads(body) if isinstance(body, str) else body
    except json.JSONDecodeError as exc:
        raise PermanentError(f"body is not JSON: {exc.msg} at position {exc.pos}") from exc
    except (ValueError, RecursionError) as exc:  # >4300-digit integers; nesting deeper than the parser's stack
        raise PermanentError(f"body is not usable JSON: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise PermanentError(f"body must be a JSON object, got {type(payload).__name__}")
    if is_s3_notification(payload):
        raise PermanentError(f"the body is {what_arrived(payload)}: {S3_NOTIFICATION_ADVICE}")
    if is_bare_event(payload):
        try:
            event = EventBridgeModel.model_validate(payload)
            requests = route(event, payload, all_specs())
        except ValidationError as exc:
            raise PermanentError(f"{what_arrived(payload)} that is not valid: {describe(exc)}") from exc
        if not requests:
            raise PermanentError(f"no job matches {what_arrived(payload)}")
    elif not is_dispatch_request(payload):
        raise PermanentError(f"not a dispatch request (job, trigger, …): {what_arrived(payload)}")
    else:
        try:
            requests = [DispatchRequest.model_validate(payload)]
        except ValidationError as exc:
            raise PermanentError(f"invalid request: {describe(exc)}") from exc
    for request in requests:
        # The launch serialises the event into the task's environment: a lone surrogate (a valid JSON
        # escape, not UTF-8) or nesting past pydantic's serialiser limit must fail now, permanently.
        try:
            request.model_dump_json()
        except PydanticSerializationError as exc:
            raise PermanentError(f"request cannot be serialised: {exc}") from exc
    return requests


def describe(exc: ValidationError, limit: int = 3) -> str:
    """A one-line summary of a pydantic error: where and what, for the first few problems."""
    parts = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:limit]]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
