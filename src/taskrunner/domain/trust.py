"""What the Dispatcher, Scaler and Tracker believe, and what they re-check: the stack's own bounds.

Two inputs are not ours to trust blindly:

* **A dispatch request.** Anything that may send to the dispatch queue may choose *which* run and *when*, never
  *what runs*. So every request is re-checked against its job before anything is claimed or launched: an upload
  must be in the stack's bucket, under the job's prefix and suffix, from the stack's account and region; a matched
  event must match the job's ``EventPattern`` (EventBridge semantics) and come from the stack's account and region
  (unless the pattern itself names accounts); a schedule tick must be for a job that has a schedule and not from
  the future; environment overrides only ride on manual runs, for names the job allows (:mod:`overrides`).
* **A registry entry.** An SSM parameter is writable by anyone with ``ssm:PutParameter`` on its path; the stack
  writes it, but we trust it only for what the stack could have written there: this stack's cluster, subnets and
  security groups, the task-definition family ``<stack>-<job>``, the service ``<stack>-<job>``, a queue of this
  stack, the stack's bucket, and a public IP only when the stack allows one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.patterns import matches
from taskrunner.domain.triggers import DispatchRequest, Trigger

#: A schedule tick may arrive this far ahead of our clock (clock skew between Scheduler and Lambda), no more.
MAX_TICK_SKEW_S = 300


class StackBounds(BaseModel):
    """What this stack deployed: the only values a registry entry and an event-driven request may name."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(min_length=1)
    cluster_arn: str
    data_bucket: str | None = None
    subnets: frozenset[str] = frozenset()
    security_groups: frozenset[str] = frozenset()
    public_ip: bool = False

    @property
    def family_prefix(self) -> str:
        return f"{self.name}-"

    def family(self, job: str) -> str:
        return f"{self.name}-{job}"


def account_of(arn: str) -> str:
    """``arn:aws:ecs:us-east-1:123456789012:cluster/x`` → ``123456789012``."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def _family(task_definition: str) -> str:
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0]


def _queue_problem(url: str, stack: StackBounds) -> str | None:
    # https://sqs.<region>.amazonaws.com/<account>/<name>, or the embedded AWS's http://host:port/<account>/<name>
    *_, account, name = url.rstrip("/").split("/")
    if account != stack.account or not name.startswith(stack.family_prefix):
        return f"queue {url} is not a queue of this stack"
    return None


def registry_problems(spec: JobSpec, stack: StackBounds) -> list[str]:
    """Why a registry entry names something this stack did not deploy; empty when it is the stack's own."""
    problems: list[str] = []
    if spec.cluster != stack.cluster_arn:
        problems.append(f"cluster {spec.cluster} is not this stack's cluster")
    td = spec.task_definition
    if _family(td) != stack.family(spec.name) or (td.startswith("arn:") and account_of(td) != stack.account):
        problems.append(f"task definition {td} is not this stack's family {stack.family(spec.name)}")
    if spec.container != "job":
        problems.append(f"container {spec.container!r} is not the job's container 'job'")
    if foreign := sorted(set(spec.subnets) - stack.subnets):
        problems.append(f"subnets {foreign} are not the stack's task subnets")
    if foreign := sorted(set(spec.security_groups) - stack.security_groups):
        problems.append(f"security groups {foreign} are not the stack's task security groups")
    if spec.assign_public_ip and not stack.public_ip:
        problems.append("a public IP is not allowed by this stack (AssignPublicIp is DISABLED)")
    if spec.s3_bucket is not None and spec.s3_bucket != stack.data_bucket:
        problems.append(f"bucket {spec.s3_bucket} is not the stack's data bucket")
    if spec.queue_url and (why := _queue_problem(spec.queue_url, stack)):
        problems.append(why)
    if spec.service is not None and spec.service != stack.family(spec.name):
        problems.append(f"service {spec.service} is not this stack's service {stack.family(spec.name)}")
    return problems


def _origin_problems(event: dict[str, Any], spec: JobSpec, stack: StackBounds) -> list[str]:
    problems = []
    if event.get("region") != stack.region:
        problems.append(f"event from region {event.get('region')!r}, not the stack's {stack.region}")
    pattern_names_accounts = bool(spec.event_pattern and "account" in spec.event_pattern)
    if not pattern_names_accounts and event.get("account") != stack.account:
        problems.append(f"event from account {event.get('account')!r}, not the stack's")
    return problems


def request_problems(
    spec: JobSpec, request: DispatchRequest, stack: StackBounds, now: datetime, *, tick_skew_s: float = MAX_TICK_SKEW_S
) -> list[str]:
    """Why this request may not run this job; empty when its trigger may ask for exactly this run."""
    problems = spec.override_problems(dict(request.env), manual=request.trigger is Trigger.MANUAL)
    match request.trigger:
        case Trigger.SCHEDULE:
            if not spec.schedule:
                problems.append(f"job {spec.name} has no schedule")
            assert request.scheduled_at is not None
            if (ahead := (request.scheduled_at - now).total_seconds()) > tick_skew_s:
                problems.append(f"schedule tick is {ahead:.0f}s in the future")
        case Trigger.S3:
            obj = request.s3_object()
            assert obj is not None
            assert request.event is not None
            if spec.s3_bucket is None:
                problems.append(f"job {spec.name} has no S3 trigger")
            elif obj.bucket != spec.s3_bucket:
                problems.append(f"bucket {obj.bucket} is not the job's bucket")
            if not obj.key.startswith(spec.s3_prefix) or not obj.key.endswith(spec.s3_suffix):
                problems.append(f"key {obj.key!r} is not under {spec.s3_prefix!r}*{spec.s3_suffix!r}")
            if request.event.detail_type != "Object Created":
                problems.append(f"an s3 trigger runs on 'Object Created', not {request.event.detail_type!r}")
            problems += _origin_problems(raw_event(request), spec, stack)
        case Trigger.EVENT:
            if not spec.event_pattern:
                problems.append(f"job {spec.name} has no event pattern")
            elif not matches(spec.event_pattern, raw_event(request)):
                problems.append(f"event does not match job {spec.name}'s EventPattern")
            problems += _origin_problems(raw_event(request), spec, stack)
        case Trigger.MANUAL:
            pass
    return problems


def raw_event(request: DispatchRequest) -> dict[str, Any]:
    """The event as EventBridge delivered it (JSON names, ISO time), for pattern matching."""
    assert request.event is not None
    dumped: dict[str, Any] = request.event.model_dump(mode="json", by_alias=True)
    if dumped.get("replay-name") is None:
        dumped.pop("replay-name", None)  # the model's default, not a field of the event
    return dumped
