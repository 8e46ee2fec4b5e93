"""Admission: may this request launch now? Kubernetes CronJob semantics on ECS.

* ``startingDeadlineSeconds``: a schedule tick that reaches us later than the deadline is recorded
  as MISSED, never run late.
* ``concurrencyPolicy``: ``Forbid`` skips a tick while a run is active, ``Replace`` stops the active
  runs and starts the new one, ``Allow`` starts it, capped by ``max_concurrency``.

Overlap applies to schedule ticks and manual runs. Uploads and matched events are data, not
ticks: they are never skipped; when the job is at ``max_concurrency`` they wait in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from taskrunner.domain.jobs import JobSpec, Overlap
from taskrunner.domain.triggers import DispatchRequest, Trigger


class Action(StrEnum):
    LAUNCH = "launch"
    SKIP = "skip"  # recorded (SKIPPED or MISSED) and acknowledged
    DEFER = "defer"  # returned to the queue to try again later


@dataclass(frozen=True)
class Admission:
    action: Action
    reason: str
    #: Task ARNs to stop before launching (Replace).
    stop: tuple[str, ...] = field(default=())


TICK_TRIGGERS = frozenset({Trigger.SCHEDULE, Trigger.MANUAL})


def _is_tick(request: DispatchRequest) -> bool:
    """Overlap and deadline govern a tick's first attempt; a retry continues a run that was already admitted."""
    return request.trigger in TICK_TRIGGERS and request.attempt == 1


def needs_active_tasks(spec: JobSpec, request: DispatchRequest) -> bool:
    """Whether admission depends on the job's active tasks; if not, the ListTasks call is skipped.

    An upload burst for a job with no concurrency cap then costs one ECS call per event (RunTask), not two.
    """
    tick_policy = _is_tick(request) and spec.overlap is not Overlap.ALLOW
    return tick_policy or spec.max_concurrency is not None


def admit(
    spec: JobSpec, request: DispatchRequest, now: datetime, active_tasks: list[str], *, paused: bool = False
) -> Admission:
    """Decide from the job's policy, the request and the job's tasks that are not yet stopped.

    ``paused``: an operator paused the job (``taskrunner pause``); like a suspended CronJob it starts no run, and
    the skipped event is recorded so it can be re-run by hand.
    """
    if paused:
        return Admission(Action.SKIP, "paused: the job is paused (taskrunner resume to start runs again)")
    if _is_tick(request) and request.trigger is Trigger.SCHEDULE and spec.starting_deadline_s is not None:
        assert request.scheduled_at is not None
        late_by = (now - request.scheduled_at).total_seconds()
        if late_by > spec.starting_deadline_s:
            return Admission(Action.SKIP, f"missed-deadline: {late_by:.0f}s late, deadline {spec.starting_deadline_s}s")

    if _is_tick(request) and active_tasks:
        if spec.overlap is Overlap.FORBID:
            return Admission(Action.SKIP, f"overlap-forbid: {len(active_tasks)} run(s) active")
        if spec.overlap is Overlap.REPLACE:
            return Admission(Action.LAUNCH, "overlap-replace", stop=tuple(active_tasks))

    if spec.max_concurrency is not None and len(active_tasks) >= spec.max_concurrency:
        return Admission(Action.DEFER, f"max-concurrency: {len(active_tasks)}/{spec.max_concurrency} active")
    return Admission(Action.LAUNCH, "admitted")
