"""Two corrections to moto's ECS task model, so DescribeTasks agrees with the local task processes.

* moto advances a task's ``lastStatus`` one step on every DescribeTasks (RUNNING → DEACTIVATING →
  STOPPING → DEPROVISIONING → STOPPED after four calls, desired status still RUNNING). The Tracker's
  reconciliation would then see a task that is still running locally as stopped. :func:`pin_task_states`
  keeps a task RUNNING until StopTask.
* moto reports every container with ``exitCode`` 0 and ``lastStatus`` PENDING. :func:`record_container`
  writes the local process's real state, so a run reconciled from DescribeTasks (a lost event) gets
  the real exit code.

Both reach into the in-process moto server's backend (local mode runs it in this process). They are
best effort: should moto's internals change, local mode still works; DescribeTasks is then only less exact.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)

_TASK_MODEL = "ecs::task"


def pin_task_states() -> None:
    from moto.moto_api import state_manager

    # "manual" progression advances after this many DescribeTasks calls: in effect never.
    state_manager.set_transition(model_name=_TASK_MODEL, transition={"progression": "manual", "times": 2**62})


def unpin_task_states() -> None:
    from moto.moto_api import state_manager

    state_manager.unset_transition(_TASK_MODEL)


def _task(task_arn: str, cluster_arn: str) -> Any:
    from moto.ecs.models import ecs_backends

    _, _, _, region, account, rest = cluster_arn.split(":", 5)
    cluster_name = rest.split("/", 1)[1]
    return ecs_backends[account][region].tasks[cluster_name][task_arn]


def record_container(task_arn: str, cluster_arn: str, last_status: str, exit_code: int | None = None) -> None:
    try:
        task = _task(task_arn, cluster_arn)
    except (KeyError, IndexError, ValueError, ImportError):
        log.debug("moto task %s not found: DescribeTasks keeps moto's container state", task_arn)
        return
    for container in task.containers:
        container.last_status = last_status
        if exit_code is not None:
            with contextlib.suppress(AttributeError):
                container.exitCode = exit_code
