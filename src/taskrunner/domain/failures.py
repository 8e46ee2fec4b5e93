"""The failure taxonomy: what a stopped ECS task says about whose failure it was, and whether it retries.

A stopped task carries a ``stopCode`` (a closed set, the ECS API's ``TaskStopCode``), a free-text
``stoppedReason`` and, per container, an ``exitCode`` and a ``reason``. AWS documents what those mean
on "Amazon ECS stopped task error messages" and its sub-pages; :data:`TABLE` is that documentation
turned into data, one row per class, each with the page it comes from. ``docs/failures.md`` is
rendered from this table (a unit test fails when they differ), so the code and the table a user reads
to choose ``RetryExitCodes`` cannot drift apart.

Whose failure it was decides the retry, as AWS Batch's ``evaluateOnExit`` does: the platform's
failures (the application never started, Spot took the capacity back, the infrastructure stopped a
running application) retry while attempts remain; the application's own failures (a non-zero exit,
running out of memory) retry only when the job lists the exit code; a timeout and a deliberate stop
are final.

The module is pure: it reads the fields of a task, never AWS.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    """A run's failure category. The values are stored with every run record: never rename one."""

    START = "start"  # the platform never started the application: image pull, initialisation, capacity
    SPOT = "spot"  # Spot took the capacity back
    PLATFORM = "platform"  # the infrastructure stopped (or lost) a running application
    OOM = "oom"  # the application used more memory than it was given: its own failure
    EXIT = "exit"  # the application exited non-zero
    TIMEOUT = "timeout"  # taskrunner stopped it past the job's TimeoutSeconds
    STOPPED = "stopped"  # stopped on purpose: by a user, a Replace overlap policy, a deployment or scale-in
    LOST = "lost"  # the task vanished without a stop event (reconciliation)


class RetryRule(StrEnum):
    """When a failure of a kind retries; the value is what docs/failures.md says."""

    WHILE_ATTEMPTS_REMAIN = "yes, while attempts remain"
    LISTED_EXIT_CODE = "only if its exit code is in `RetryExitCodes`"
    LISTED_137 = "only if `RetryExitCodes` lists 137"
    NEVER = "no"


#: The exit code ECS reports for a container the kernel killed for memory (SIGKILL, 128 + 9).
OOM_EXIT_CODE = 137

RETRY_RULES: Mapping[FailureKind, RetryRule] = {
    FailureKind.START: RetryRule.WHILE_ATTEMPTS_REMAIN,
    FailureKind.SPOT: RetryRule.WHILE_ATTEMPTS_REMAIN,
    FailureKind.PLATFORM: RetryRule.WHILE_ATTEMPTS_REMAIN,
    FailureKind.LOST: RetryRule.WHILE_ATTEMPTS_REMAIN,
    FailureKind.EXIT: RetryRule.LISTED_EXIT_CODE,
    # No separate option: an OOM kill is exit 137, so a job that wants it retried says so the same way.
    FailureKind.OOM: RetryRule.LISTED_137,
    FailureKind.TIMEOUT: RetryRule.NEVER,
    FailureKind.STOPPED: RetryRule.NEVER,
}


def retries(
    kind: FailureKind, exit_code: int | None, *, retry_start_failures: bool, retry_exit_codes: Collection[int]
) -> bool:
    """Whether a failure of this kind retries under a job's policy (attempts left are the caller's to check)."""
    rule = RETRY_RULES[kind]
    if rule is RetryRule.WHILE_ATTEMPTS_REMAIN:
        return retry_start_failures
    if rule is RetryRule.LISTED_EXIT_CODE:
        return exit_code is not None and exit_code in retry_exit_codes
    if rule is RetryRule.LISTED_137:
        return OOM_EXIT_CODE in retry_exit_codes
    return False


class ExitCondition(StrEnum):
    """What a row requires of the essential container's exit code, besides its stop code or message."""

    ANY = "any"
    ZERO = "0"
    NONZERO = "non-zero"
    MISSING = "none reported"

    def holds(self, exit_code: int | None) -> bool:
        match self:
            case ExitCondition.ANY:
                return True
            case ExitCondition.ZERO:
                return exit_code == 0
            case ExitCondition.NONZERO:
                return exit_code is not None and exit_code != 0
            case ExitCondition.MISSING:
                return exit_code is None


@dataclass(frozen=True)
class StopClass:
    """One class of stopped task: how to recognise it, which category it is, and where AWS says so.

    A row matches when the task's ``stopCode`` is one of ``stop_codes`` *or* ``message`` (a regular
    expression) is found in the task's ``stoppedReason`` or the essential container's ``reason``, and
    the exit condition holds. A row with neither matches any task (the fallbacks at the end).
    ``kind`` None means the run succeeded.
    """

    name: str
    kind: FailureKind | None
    example: str
    source: str
    stop_codes: tuple[str, ...] = ()
    message: str | None = None
    exit: ExitCondition = ExitCondition.ANY
    why: str = ""

    def matches(self, stop_code: str | None, reasons: Sequence[str], exit_code: int | None) -> bool:
        if not self.exit.holds(exit_code):
            return False
        if not self.stop_codes and self.message is None:
            return True
        if stop_code is not None and stop_code in self.stop_codes:
            return True
        return self.message is not None and any(re.search(self.message, r) for r in reasons)

    @property
    def retried(self) -> str:
        return RETRY_RULES[self.kind].value if self.kind is not None else "— (succeeded)"


_GUIDE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/"
STOPPED_TASK_ERRORS = _GUIDE + "stopped-task-error-codes.html"  # "Amazon ECS stopped task error messages"
_API_TASK = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Task.html"
_STOP_TASK = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html"
_REPOST = "https://repost.aws/knowledge-center/"

#: The taxonomy, in precedence order: the first row that matches a stopped task classifies it.
TABLE: tuple[StopClass, ...] = (
    # taskrunner's own StopTask reason (tracking.TIMEOUT_REASON). ECS records it as UserInitiated, so it
    # must be recognised before the deliberate stops.
    StopClass(
        "taskrunner timeout",
        FailureKind.TIMEOUT,
        "taskrunner: timed out after 3600s",
        _STOP_TASK,
        message=r"^taskrunner: timed out",
        why="the reconciler stopped the run past the job's TimeoutSeconds",
    ),
    # taskrunner's own StopTask reason for a run a Replace overlap policy replaces (domain/dispatch.py).
    StopClass(
        "taskrunner Replace overlap policy",
        FailureKind.STOPPED,
        "taskrunner: replaced by run <run id> (overlap Replace)",
        _STOP_TASK,
        message=r"^taskrunner: replaced by run",
        why="a newer tick of a Replace job stopped this run",
    ),
    # Spot before anything that reads exit codes: a reclaimed task's container is SIGKILLed (137).
    StopClass(
        "SpotInterruption",
        FailureKind.SPOT,
        "Your Spot Task was interrupted.",
        _GUIDE + "spot-interruption-errors.html",
        stop_codes=("SpotInterruption",),
        why="no Spot capacity, or Fargate took the Spot capacity back",
    ),
    StopClass(
        "TerminationNotice",
        FailureKind.SPOT,
        "Your Spot Task was interrupted.",
        _GUIDE + "fargate-capacity-providers.html",
        stop_codes=("TerminationNotice",),
        message=r"Your Spot Task was interrupted",
        why="the two-minute Fargate Spot termination notice",
    ),
    # A stop code that says the task never started wins over the message and exit codes under it: a
    # container stopped during start-up (a dependency's startTimeout, say) can report 137 or 1.
    StopClass(
        "TaskFailedToStart",
        FailureKind.START,
        "Unexpected EC2 error while attempting to Create Network Interface with public IP assignment "
        "enabled in subnet 'subnet-id'",
        _GUIDE + "failed-to-start-error.html",
        stop_codes=("TaskFailedToStart",),
        why="ECS says the task never reached RUNNING",
    ),
    # The platform stopping a running application. Before the deliberate stops: ECS may record a
    # retirement or an instance going away under the scheduler's or a user's stop code.
    StopClass(
        "InfrastructureHealth",
        FailureKind.PLATFORM,
        "(stopCode only)",
        _API_TASK,
        stop_codes=("InfrastructureHealth",),
        why="ECS stopped the task for the health of the infrastructure under it",
    ),
    StopClass(
        "Task maintenance (retirement)",
        FailureKind.PLATFORM,
        "ECS is performing maintenance on the underlying infrastructure hosting the task",
        _GUIDE + "task-maintenance.html",
        message=r"ECS is performing maintenance on the underlying infrastructure",
        why="AWS retired the host the task ran on",
    ),
    StopClass(
        "Host EC2 instance stopped or terminated",
        FailureKind.PLATFORM,
        "Host EC2 (instance id) stopped/terminated",
        _GUIDE + "stopped-task-errors.html",
        message=r"Host EC2 \(instance [^)]*\) (stopped|terminated)",
        why="the container instance went away under a running task",
    ),
    StopClass(
        "Container instance deregistered",
        FailureKind.PLATFORM,
        "Container instance deregistration forced by user",
        _GUIDE + "stopped-task-errors.html",
        message=r"Container instance deregistration forced by user",
        why="the instance was taken out of the cluster, not the run stopped",
    ),
    # Deliberate stops are final, and they win over the start-failure messages below: a task stopped
    # while its image was being pulled can carry the pull's cancellation as a container reason.
    StopClass(
        "UserInitiated",
        FailureKind.STOPPED,
        "Task stopped by user",
        _REPOST + "ecs-task-stopped",
        stop_codes=("UserInitiated",),
        message=r"^Task stopped by user",
        why="StopTask: a user, `taskrunner`, or a Replace overlap policy (`taskrunner: replaced by run …`)",
    ),
    StopClass(
        "ServiceSchedulerInitiated",
        FailureKind.STOPPED,
        "Scaling activity initiated by (deployment deployment-id)",
        _GUIDE + "stopped-task-errors.html",
        stop_codes=("ServiceSchedulerInitiated",),
        message=r"^Scaling activity initiated by",
        why="a service deployment or scale-in stopped the task",
    ),
    # The application's own failure. Before the exit codes, so that it is told apart from a plain 137.
    StopClass(
        "OutOfMemoryError",
        FailureKind.OOM,
        "OutOfMemoryError: Container killed due to memory usage",
        _GUIDE + "out-of-memory.html",
        message=r"OutOfMemoryError",
        why="the container used more memory than the task definition gives it",
    ),
    # Start failures that carry no TaskFailedToStart stop code (older events, DescribeTasks answers).
    StopClass(
        "CannotPullContainerError",
        FailureKind.START,
        "CannotPullContainerError: API error (404): repository 111122223333.dkr.ecr.us-east-1.amazonaws.com"
        "/<repo>/<image> not found",
        _GUIDE + "task_cannot_pull_image.html",
        message=r"CannotPullContainer",
        why="the image could not be pulled: network route, execution role, tag, registry rate limit",
    ),
    StopClass(
        "ResourceInitializationError: secrets or registry auth",
        FailureKind.START,
        "ResourceInitializationError: unable to pull secrets or registry auth: <reason>",
        _GUIDE + "resource-initialization-error.html",
        message=r"ResourceInitializationError: unable to pull secrets or registry auth",
        why="Secrets Manager, SSM or ECR authentication was unreachable or denied before the container ran",
    ),
    StopClass(
        "ResourceInitializationError: EFS mount",
        FailureKind.START,
        "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: <reason>",
        _GUIDE + "resource-initialization-error.html",
        message=r"ResourceInitializationError: failed to invoke EFS utils commands",
        why="the EFS volume could not be mounted",
    ),
    StopClass(
        "ResourceInitializationError: log driver",
        FailureKind.START,
        "ResourceInitializationError: failed to initialize logging driver: <reason>",
        _GUIDE + "resource-initialization-error.html",
        message=r"ResourceInitializationError: failed to (initialize logging driver|validate logger args)",
        why="the awslogs driver could not start (log group, role, network)",
    ),
    StopClass(
        "ResourceInitializationError",
        FailureKind.START,
        "ResourceInitializationError: <reason>",
        _GUIDE + "resource-initialization-error.html",
        message=r"ResourceInitializationError",
        why="the agent could not create the task's resources (ENI, volumes, secrets)",
    ),
    StopClass(
        "ResourceNotFoundException",
        FailureKind.START,
        "Fetching secret data from AWS Secrets Manager in region <region>: secret <secretARN>: "
        "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
        _GUIDE + "resource-not-found-error.html",
        message=r"ResourceNotFoundException",
        why="a secret the task definition names does not exist",
    ),
    StopClass(
        "CannotStartContainerError",
        FailureKind.START,
        "CannotStartContainerError: failed to get container status: <reason>",
        _GUIDE + "cannot-start-container.html",
        message=r"CannotStartContainerError",
        why="the container runtime could not start the container",
    ),
    StopClass(
        "CannotCreateVolumeError",
        FailureKind.START,
        "CannotCreateVolumeError: <reason>",
        _GUIDE + "cannot-create-volume.html",
        message=r"CannotCreateVolumeError",
        why="the agent could not create the volume mount of the task definition",
    ),
    StopClass(
        "ContainerRuntimeTimeoutError (to RUNNING)",
        FailureKind.START,
        "ContainerRuntimeTimeoutError: Could not transition to running; timed out after waiting 1m: <reason>",
        _GUIDE + "container-runtime-timeout-error.html",
        message=r"(ContainerRuntimeTimeoutError|DockerTimeoutError): Could not transition to running",
        why="the container never reached RUNNING",
    ),
    StopClass(
        "InternalError",
        FailureKind.START,
        "InternalError: <reason>",
        _GUIDE + "failed-to-start-error.html",
        message=r"InternalError",
        why="ENI attachment reported after ECS's provisioning timeout",
    ),
    StopClass(
        "Capacity is unavailable",
        FailureKind.START,
        "Capacity is unavailable at this time. Please try again later or in a different availability zone",
        _REPOST + "ecs-fargate-runtask-capacity",
        message=r"Capacity is unavailable",
        why="Fargate had no capacity for the task in its subnets' zones",
    ),
    StopClass(
        "Network interface provisioning timeout",
        FailureKind.START,
        "Timeout waiting for network interface provisioning to complete.",
        _REPOST + "ecs-fargate-network-interface-errors",
        message=r"(?i)network interface provision",
        why="Fargate could not attach the task's ENI",
    ),
    StopClass(
        "Network interface creation error",
        FailureKind.START,
        "Unexpected EC2 error while attempting to Create Network Interface with public IP assignment "
        "enabled in subnet 'subnet-id'",
        _GUIDE + "failed-to-start-error.html",
        message=r"Unexpected EC2 error while attempting to Create Network Interface",
        why="the subnet has no free IP addresses",
    ),
    # The container runtime failing a task that did start: the platform's failure, not the application's.
    StopClass(
        "ContainerRuntimeError",
        FailureKind.PLATFORM,
        "ContainerRuntimeError: <reason>",
        _GUIDE + "container-runtime-error.html",
        message=r"ContainerRuntimeError",
        why="the container runtime failed",
    ),
    StopClass(
        "ContainerRuntimeTimeoutError",
        FailureKind.PLATFORM,
        "ContainerRuntimeTimeoutError: Could not transition to stopped; timed out after waiting 1m: <reason>",
        _GUIDE + "container-runtime-timeout-error.html",
        message=r"ContainerRuntimeTimeoutError|DockerTimeoutError",
        why="the runtime did not move a running container to STOPPED in time",
    ),
    StopClass(
        "CannotStopContainerError",
        FailureKind.PLATFORM,
        "CannotStopContainerError: failed sending SIGTERM to container: <reason>",
        _GUIDE + "cannot-stop-container.html",
        message=r"CannotStopContainerError",
        why="the agent could not stop the container",
    ),
    StopClass(
        "CannotInspectContainerError",
        FailureKind.PLATFORM,
        "CannotInspectContainerError: <reason>",
        _GUIDE + "cannot-inspect-container.html",
        message=r"CannotInspectContainerError",
        why="the agent lost track of the container through the runtime",
    ),
    # The essential container exited: its exit code is the application's answer.
    StopClass(
        "EssentialContainerExited, exit code 0",
        None,
        "Essential container in task exited",
        _REPOST + "ecs-task-stopped",
        stop_codes=("EssentialContainerExited",),
        message=r"^Essential container in task exited",
        exit=ExitCondition.ZERO,
        why="the application finished successfully",
    ),
    StopClass(
        "EssentialContainerExited, non-zero exit code",
        FailureKind.EXIT,
        "Essential container in task exited",
        _REPOST + "ecs-task-stopped",
        stop_codes=("EssentialContainerExited",),
        message=r"^Essential container in task exited",
        exit=ExitCondition.NONZERO,
        why="the application failed; its exit code says how",
    ),
    StopClass(
        "EssentialContainerExited, no exit code",
        FailureKind.PLATFORM,
        "Essential container in task exited",
        _REPOST + "ecs-task-stopped",
        stop_codes=("EssentialContainerExited",),
        message=r"^Essential container in task exited",
        exit=ExitCondition.MISSING,
        why="ECS lost the exit code of the application it ran",
    ),
    # Nothing above matched: the exit code decides.
    StopClass(
        "any other stop, exit code 0",
        None,
        "(any)",
        STOPPED_TASK_ERRORS,
        exit=ExitCondition.ZERO,
        why="the application finished successfully",
    ),
    StopClass(
        "any other stop, non-zero exit code",
        FailureKind.EXIT,
        "(any)",
        STOPPED_TASK_ERRORS,
        exit=ExitCondition.NONZERO,
        why="the application failed",
    ),
    StopClass(
        "any other stop, no exit code",
        FailureKind.START,
        "(any)",
        STOPPED_TASK_ERRORS,
        exit=ExitCondition.MISSING,
        why="no container reported an exit: the application most likely never ran",
    ),
)

#: Not a stopped task: the reconciler's verdict on a run whose task DescribeTasks no longer finds.
LOST = StopClass(
    "task not found (reconciliation)",
    FailureKind.LOST,
    "task not found by DescribeTasks (state change lost)",
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stopped-task-errors.html",
    why="ECS keeps stopped tasks for about an hour; a run whose stop event was lost is retried",
)

#: The container name jobs/job.yaml gives the one essential container of every job's task definition.
ESSENTIAL_CONTAINER = "job"


def essential_containers(containers: Sequence[Mapping[str, Any]], essential: str) -> list[Mapping[str, Any]]:
    """The containers whose exit and reason speak for the task.

    A non-essential sidecar can exit (non-zero too) without stopping the task, and the rest are
    SIGTERMed when the essential container exits: only the essential container's exit is the
    application's. ECS events do not say which container is essential, so it is known by name; a task
    without a container of that name (a task definition of its own) is judged on all its containers.
    """
    named = [c for c in containers if c.get("name") == essential]
    return named or list(containers)


def exit_code_of(containers: Sequence[Mapping[str, Any]]) -> int | None:
    codes = [c.get("exitCode") for c in containers]
    known = [int(c) for c in codes if isinstance(c, int | float) and not isinstance(c, bool)]
    return max(known, key=abs) if known else None  # several judged containers: the worst speaks


@dataclass(frozen=True)
class Classification:
    stop_class: StopClass
    exit_code: int | None
    reason: str

    @property
    def kind(self) -> FailureKind | None:
        return self.stop_class.kind


def classify(
    stop_code: str | None,
    stopped_reason: str | None,
    containers: Sequence[Mapping[str, Any]],
    *,
    essential: str = ESSENTIAL_CONTAINER,
) -> Classification:
    """The class of a stopped task: the first row of :data:`TABLE` that matches it."""
    judged = essential_containers([c for c in containers if isinstance(c, Mapping)], essential)
    exit_code = exit_code_of(judged)
    reasons = [r for r in (stopped_reason, *(str(c["reason"]) for c in judged if c.get("reason"))) if r]
    stop_class = next(row for row in TABLE if row.matches(stop_code, reasons, exit_code))
    # Every container's reason is shown: a sidecar's is no verdict, but it can explain one.
    shown = [str(c["reason"]) for c in containers if isinstance(c, Mapping) and c.get("reason")]
    told = " | ".join(r for r in (stopped_reason, "; ".join(shown)) if r)
    text = told or stop_code or ("stopped without an exit code" if exit_code is None else stop_class.name)
    if stop_class.kind in {FailureKind.EXIT, FailureKind.OOM} and exit_code is not None:
        text = f"exit code {exit_code}: {text}"
    return Classification(stop_class, exit_code, text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _matched_on(row: StopClass) -> str:
    parts = [f"stopCode `{code}`" for code in row.stop_codes]
    if row.message is not None:
        parts.append(f"message ~ `{row.message}`")
    matched = " or ".join(parts) or "anything"
    if row.exit is not ExitCondition.ANY:
        matched += f"; exit code {row.exit.value}"
    return matched


def render_markdown() -> str:
    """The two tables of docs/failures.md: the retry rule per category, and the classes in precedence order."""
    lines = [
        "| Category | Retried? |",
        "|---|---|",
        *(f"| `{kind.value}` | {_cell(rule.value)} |" for kind, rule in RETRY_RULES.items()),
        "",
        "| # | Class | Matched on | Category | Retried? | Example message | Why | Source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, row in enumerate((*TABLE, LOST), start=1):
        category = f"`{row.kind.value}`" if row.kind is not None else "succeeded"
        matched = _matched_on(row) if row is not LOST else "reconciliation only"
        cells = (str(number), row.name, matched, category, row.retried, f"`{row.example}`", row.why, row.source)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
