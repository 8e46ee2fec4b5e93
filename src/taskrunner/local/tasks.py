"""ECS tasks as local processes: what moto's ECS accepts but never runs.

* :class:`RunTasks` watches the cluster for tasks launched by RunTask (desired status RUNNING) and
  starts each as a subprocess of its job's local command, with the task definition's container
  environment plus the RunTask overrides. It publishes "ECS Task State Change" RUNNING when the
  process starts and STOPPED with its exit code when it exits (PutEvents: the stack's rule routes
  them to the Tracker's queue), then calls StopTask so DescribeTasks agrees. A task stopped through
  the API (a Replace overlap policy, a timeout, a user) gets SIGTERM, and SIGKILL after its
  container's ``stopTimeout``, as ECS does.
* :class:`WorkerServices` keeps each ECS service's desired count of worker processes (moto's
  running count jumps to the desired count, with no tasks). On scale-in it SIGTERMs surplus workers
  that hold no task scale-in protection (the worker library finishes its message first); protected
  workers keep running until they drop protection, as ECS does.

Every process gets the embedded AWS's endpoint, fake credentials and region, ``ECS_AGENT_URI`` (the
fake agent of :mod:`taskrunner.local.agent`), and ``TASKRUNNER_EFS_DIR`` mapped to
``.taskrunner/efs/<job><EfsPath>``. Output goes to ``.taskrunner/logs/<job>/<task id>.log``, like
the job's awslogs stream.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from taskrunner.domain.backoff import backoff_s as backoff
from taskrunner.local.activity import Activity
from taskrunner.local.agent import FakeEcsAgent
from taskrunner.local.ecs_events import task_state_change
from taskrunner.local.jobs import JobCatalog, LocalCommand
from taskrunner.local.moto_ecs import record_container

#: Environment of this process that never reaches a task: a container starts with its task definition's.
_PRIVATE_PREFIXES = ("AWS_", "TASKRUNNER_", "POWERTOOLS_", "ECS_", "_X_AMZN", "LAMBDA_", "SCALER_", "PYTEST_")
#: How long a task whose job has no local command "runs" before it is reported as exiting 0.
NO_COMMAND_RUN_S = 1.0
DEFAULT_STOP_TIMEOUT_S = 30.0


def _cannot_start(command: LocalCommand, exc: OSError) -> str:
    """``LocalCommand 'python nope.py': No such file or directory: 'nope'``: the parameter (or --command) to fix."""
    why = exc.strerror or str(exc)
    if exc.filename:
        why += f": {exc.filename!r}"
    return f"{command.source} {command.text!r}: {why}"


def restart_delay(failures_in_row: int) -> float:
    """ECS's restart throttling of a task that keeps failing, as local mode plays it (the one back-off rule)."""
    return backoff(failures_in_row + 1, 1.0, RESTART_BACKOFF_MAX_S)


#: Restart back-off of a worker that keeps exiting while its service still wants it (ECS throttles too).
RESTART_BACKOFF_MAX_S = 60.0


def base_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AWS credentials and settings, nor taskrunner's own variables."""
    source = dict(os.environ if environ is None else environ)
    return {k: v for k, v in source.items() if not k.startswith(_PRIVATE_PREFIXES)}


def env_list(entries: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {str(e["name"]): str(e.get("value", "")) for e in entries or [] if "name" in e}


class SecretUnavailable(RuntimeError):
    """A secret of the task definition could not be read: the task fails to start, as on ECS."""


@dataclass(frozen=True)
class TaskEnvironment:
    """How a container's environment becomes a local process's."""

    root: Path
    endpoint: str
    region: str
    credentials: dict[str, str]
    base: dict[str, str]

    def secrets(self, container: dict[str, Any]) -> dict[str, str]:
        """The container definition's ``secrets``, read from the embedded AWS as ECS reads them at task start.

        Raises :class:`SecretUnavailable` (ECS: ``ResourceInitializationError``), so the task fails to start.
        """
        found: dict[str, str] = {}
        for entry in container.get("secrets") or []:
            name, arn = entry.get("name", ""), entry.get("valueFrom", "")
            try:
                found[name] = self._secret(arn)
            except Exception as exc:
                raise SecretUnavailable(
                    f"ResourceInitializationError: unable to pull secrets or registry auth: "
                    f"retrieving secret {name} from {arn}: {exc}"
                ) from exc
        return found

    def _secret(self, arn: str) -> str:
        service = arn.split(":")[2] if arn.startswith("arn:") else "ssm"
        client = boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.credentials.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=self.credentials.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=self.credentials.get("AWS_SESSION_TOKEN"),
        )
        if service == "secretsmanager":
            return str(client.get_secret_value(SecretId=arn)["SecretString"])
        name = arn.split(":parameter", 1)[1] if ":parameter" in arn else arn
        return str(client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])

    def efs_dir(self, job: str, efs_path: str) -> Path:
        return self.root / ".taskrunner" / "efs" / job / efs_path.strip("/")

    def build(self, job: str, efs_path: str, *layers: dict[str, str], agent_uri: str | None = None) -> dict[str, str]:
        env = dict(self.base)
        for layer in layers:
            env |= layer
        env |= self.credentials | {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "PYTHONUNBUFFERED": "1",
        }
        if env.get("TASKRUNNER_EFS_DIR"):  # the task definition mounts the job's access point
            efs = self.efs_dir(job, efs_path)
            efs.mkdir(parents=True, exist_ok=True)
            env["TASKRUNNER_EFS_DIR"] = str(efs)
        if agent_uri:
            env["ECS_AGENT_URI"] = agent_uri
        return env


def spawn(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        # A session of its own: Ctrl-C in the terminal reaches local mode, which stops its tasks in order.
        return subprocess.Popen(  # noqa: S603 - the job's own LocalCommand, from its template block
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _signal(popen: subprocess.Popen[bytes] | None, signum: int) -> None:
    if popen is not None and popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signum)


def exit_code(returncode: int) -> int:
    """A container's exit code: 128 + N for a process killed by signal N (Popen reports -N)."""
    return 128 - returncode if returncode < 0 else returncode


def last_line(path: Path | None, limit: int = 4096) -> str:
    if path is None or not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        lines = [line for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


class _TaskDefinitions:
    """DescribeTaskDefinition, cached by ARN (a revision never changes)."""

    def __init__(self, ecs: Any) -> None:
        self._ecs = ecs
        self._cache: dict[str, dict[str, Any]] = {}

    def container(self, arn: str) -> dict[str, Any]:
        if arn not in self._cache:
            definition = self._ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            self._cache[arn] = dict(definition["containerDefinitions"][0])
        return self._cache[arn]


# ------------------------------------------------------------------------------------------------------- run tasks


@dataclass
class LocalTask:
    arn: str
    job: str
    task: dict[str, Any]  # as DescribeTasks returned it at start
    command: LocalCommand | None
    popen: subprocess.Popen[bytes] | None
    log_path: Path | None
    started: float  # monotonic
    started_at: datetime
    stop_timeout_s: float
    agent_id: str
    stop_reason: str | None = None
    stop_requested: float | None = None
    exit_code: int | None = None
    done: bool = False

    @property
    def task_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


class RunTasks:
    def __init__(
        self,
        ecs: Any,
        cluster: str,
        cluster_arn: str,
        catalog: JobCatalog,
        environment: TaskEnvironment,
        agent: FakeEcsAgent,
        publish: Callable[[dict[str, Any]], None],
        activity: Activity,
    ) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._cluster_arn = cluster_arn
        self._catalog = catalog
        self._env = environment
        self._agent = agent
        self._publish = publish
        self._activity = activity
        self._definitions = _TaskDefinitions(ecs)
        self._lock = threading.Lock()
        self.tasks: dict[str, LocalTask] = {}

    def _running_arns(self) -> set[str]:
        pages = self._ecs.get_paginator("list_tasks").paginate(cluster=self._cluster, desiredStatus="RUNNING")
        return {arn for page in pages for arn in page.get("taskArns", [])}

    def sync(self) -> None:
        running = self._running_arns()
        new = sorted(running - set(self.tasks))
        for start in range(0, len(new), 100):
            described = self._ecs.describe_tasks(
                cluster=self._cluster, tasks=new[start : start + 100], include=["TAGS"]
            )
            for task in described.get("tasks", []):
                self._start(task)
        now = time.monotonic()
        for task in list(self.tasks.values()):
            if task.done:
                continue
            if task.arn not in running and task.stop_requested is None:
                self._stopped_from_outside(task)
            if task.popen is not None:
                code = task.popen.poll()
                if code is not None:
                    self._finish(task, exit_code(code))
                elif task.stop_requested is not None and now - task.stop_requested > task.stop_timeout_s:
                    _signal(task.popen, signal.SIGKILL)
            elif task.stop_requested is not None or now - task.started >= NO_COMMAND_RUN_S:
                self._finish(task, 0 if task.stop_requested is None else 143)

    def _start(self, task: dict[str, Any]) -> None:
        container = self._definitions.container(task["taskDefinitionArn"])
        defined = env_list(container.get("environment"))
        job = defined.get("TASKRUNNER_JOB") or _tag(task, "taskrunner:job") or "?"
        overrides: dict[str, str] = {}
        for override in task.get("overrides", {}).get("containerOverrides", []):
            if override.get("name") in (None, container.get("name")):
                overrides |= env_list(override.get("environment"))
        command = self._catalog.command(job)
        now = time.monotonic()
        local = LocalTask(
            arn=task["taskArn"],
            job=job,
            task=task,
            command=command,
            popen=None,
            log_path=None,
            started=now,
            started_at=datetime.now(UTC),
            stop_timeout_s=float(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT_S),
            agent_id=uuid.uuid4().hex,
        )
        with self._lock:
            self.tasks[local.arn] = local
        self._publish(task_state_change(task, "RUNNING", version=2))
        record_container(local.arn, self._cluster_arn, "RUNNING")
        if command is None:
            self._activity.add("task", f"{local.task_id[:8]} started: no local command, reported as exiting 0", job)
            return
        try:
            secrets = self._env.secrets(container)
        except SecretUnavailable as exc:
            self._activity.add("error", f"{local.task_id[:8]} cannot start: {exc}", job)
            self._finish(local, None, reason=str(exc))
            return
        agent_uri = self._agent.register(local.agent_id, local.arn, in_service=False)
        env = self._env.build(job, self._catalog.efs_path(job), defined, secrets, overrides, agent_uri=agent_uri)
        local.log_path = self._env.root / ".taskrunner" / "logs" / job / f"{local.task_id}.log"
        try:
            local.popen = spawn(command.argv, env, self._env.root, local.log_path)
        except OSError as exc:
            # What ECS reports when a container cannot start: the run fails as a start failure.
            self._activity.add("error", f"{local.task_id[:8]} cannot start: {_cannot_start(command, exc)}", job)
            self._finish(local, None, reason=f"CannotStartContainerError: {exc}")
            return
        run_id = overrides.get("TASKRUNNER_RUN_ID")
        what = f"run {run_id[:8]}" if run_id else f"startedBy {task.get('startedBy', '')}"
        self._activity.add(
            "task",
            f"{local.task_id[:8]} started ({what}): {command.text}",
            job,
            pid=local.popen.pid,
            log=str(local.log_path),
        )

    def _stopped_from_outside(self, task: LocalTask) -> None:
        described = self._ecs.describe_tasks(cluster=self._cluster, tasks=[task.arn]).get("tasks", [])
        reason = (described[0].get("stoppedReason") if described else "") or "Task stopped by user"
        task.stop_reason = reason
        task.stop_requested = time.monotonic()
        _signal(task.popen, signal.SIGTERM)
        self._activity.add("task", f"{task.task_id[:8]} StopTask ({reason}): SIGTERM", task.job)

    def _finish(self, task: LocalTask, code: int | None, reason: str | None = None) -> None:
        task.done = True
        task.exit_code = code
        self._agent.forget(task.agent_id)
        if reason is not None:
            stop_code, stopped_reason = "TaskFailedToStart", reason
        elif task.stop_reason is not None:
            stop_code, stopped_reason = "UserInitiated", task.stop_reason
        else:
            stop_code, stopped_reason = "EssentialContainerExited", "Essential container in task exited"
        # The event first, StopTask second: a reconciliation in between never sees a stop without its exit code.
        self._publish(
            task_state_change(
                task.task, "STOPPED", exit_code=code, stop_code=stop_code, stopped_reason=stopped_reason, version=3
            )
        )
        record_container(task.arn, self._cluster_arn, "STOPPED", code)
        if task.stop_reason is None:
            with contextlib.suppress(Exception):  # already stopped through the API: nothing to agree with
                self._ecs.stop_task(cluster=self._cluster, task=task.arn, reason=stopped_reason)
        tail = last_line(task.log_path)
        self._activity.add(
            "task",
            f"{task.task_id[:8]} exited {code if code is not None else '-'}" + (f": {tail[:120]}" if tail else ""),
            task.job,
            exit_code=code,
        )

    def active(self) -> list[LocalTask]:
        with self._lock:
            return [t for t in self.tasks.values() if not t.done]

    def recent(self, n: int) -> list[LocalTask]:
        with self._lock:
            return sorted(self.tasks.values(), key=lambda t: t.started, reverse=True)[:n]

    def stop_all(self) -> list[subprocess.Popen[bytes]]:
        """SIGTERM every task process (local mode is stopping); the caller waits for them."""
        procs = [t.popen for t in self.active() if t.popen is not None]
        for popen in procs:
            _signal(popen, signal.SIGTERM)
        return procs


def _tag(task: dict[str, Any], key: str) -> str | None:
    for tag in task.get("tags", []):
        if tag.get("key") == key:
            return str(tag.get("value"))
    return None


# --------------------------------------------------------------------------------------------------------- services


@dataclass
class Worker:
    worker_id: str
    arn: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: float
    draining_since: float | None = None
    exit_code: int | None = None

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class ServicePool:
    service: str
    job: str
    task_definition: str
    desired: int = 0
    max_desired: int = 0
    workers: list[Worker] = field(default_factory=list)
    started_total: int = 0
    failures_in_row: int = 0
    next_start_at: float = 0.0
    note: str = ""

    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.draining_since is None]

    def draining(self) -> list[Worker]:
        return [w for w in self.workers if w.draining_since is not None]


class WorkerServices:
    def __init__(
        self,
        ecs: Any,
        cluster: str,
        cluster_arn: str,
        catalog: JobCatalog,
        environment: TaskEnvironment,
        agent: FakeEcsAgent,
        activity: Activity,
    ) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._cluster_arn = cluster_arn
        self._catalog = catalog
        self._env = environment
        self._agent = agent
        self._activity = activity
        self._definitions = _TaskDefinitions(ecs)
        self._lock = threading.Lock()
        self.pools: dict[str, ServicePool] = {}

    def sync(self) -> None:
        pages = self._ecs.get_paginator("list_services").paginate(cluster=self._cluster)
        arns = [arn for page in pages for arn in page.get("serviceArns", [])]
        for start in range(0, len(arns), 10):
            described = self._ecs.describe_services(cluster=self._cluster, services=arns[start : start + 10])
            for service in described.get("services", []):
                self._sync_one(service)

    def _sync_one(self, service: dict[str, Any]) -> None:
        name = service["serviceName"]
        container = self._definitions.container(service["taskDefinition"])
        job = env_list(container.get("environment")).get("TASKRUNNER_JOB") or name
        with self._lock:
            pool = self.pools.setdefault(name, ServicePool(name, job, service["taskDefinition"]))
        pool.task_definition = service["taskDefinition"]
        desired = int(service.get("desiredCount", 0))
        if desired != pool.desired:
            self._activity.add("service", f"desired count {pool.desired} → {desired}", job)
        pool.desired = desired
        pool.max_desired = max(pool.max_desired, desired)
        self._reap(pool)
        self._scale(pool, container)

    def _reap(self, pool: ServicePool) -> None:
        now = time.monotonic()
        for worker in list(pool.workers):
            code = worker.popen.poll()
            if code is None:
                if worker.draining_since is not None and now - worker.draining_since > self._stop_timeout(pool):
                    _signal(worker.popen, signal.SIGKILL)
                continue
            worker.exit_code = exit_code(code)
            pool.workers.remove(worker)
            self._agent.forget(worker.worker_id)
            if worker.draining_since is not None:
                self._activity.add("worker", f"{worker.worker_id} stopped (exit {worker.exit_code})", pool.job)
                continue
            # Exited while its service still wanted it: ECS replaces the task, with a back-off if it keeps failing.
            quick = now - worker.started < 30
            pool.failures_in_row = pool.failures_in_row + 1 if quick else 0
            delay = restart_delay(pool.failures_in_row) if pool.failures_in_row else 0.0
            pool.next_start_at = now + delay
            tail = last_line(worker.log_path)
            self._activity.add(
                "worker",
                f"{worker.worker_id} exited {worker.exit_code} unexpectedly; replaced in {delay:.0f}s"
                + (f": {tail[:120]}" if tail else ""),
                pool.job,
            )

    def _scale(self, pool: ServicePool, container: dict[str, Any]) -> None:
        running = pool.running()
        if len(running) < pool.desired:
            command = self._catalog.command(pool.job)
            if command is None:
                if pool.note != "no-command":
                    pool.note = "no-command"
                    self._activity.add("service", f"{pool.service}: no local command, no workers run", pool.job)
                return
            pool.note = ""
            if time.monotonic() >= pool.next_start_at:
                for _ in range(pool.desired - len(running)):
                    self._start_worker(pool, container, command)
        elif len(running) > pool.desired:
            surplus = len(running) - pool.desired
            # ECS scales in only tasks without scale-in protection; protected ones wait until they drop it.
            unprotected = [w for w in running if not self._agent.protected(w.worker_id)]
            for worker in sorted(unprotected, key=lambda w: w.started, reverse=True)[:surplus]:
                worker.draining_since = time.monotonic()
                _signal(worker.popen, signal.SIGTERM)
                self._activity.add("worker", f"{worker.worker_id} scale-in: SIGTERM (unprotected)", pool.job)

    def _start_worker(self, pool: ServicePool, container: dict[str, Any], command: LocalCommand) -> None:
        pool.started_total += 1
        worker_id = f"{pool.job}-{pool.started_total}"
        task_id = uuid.uuid4().hex
        arn = f"{self._cluster_arn.replace(':cluster/', ':task/')}/{task_id}"
        try:
            secrets = self._env.secrets(container)
        except SecretUnavailable as exc:
            pool.failures_in_row += 1
            pool.next_start_at = time.monotonic() + restart_delay(pool.failures_in_row)
            self._activity.add("error", f"cannot start a worker: {exc}", pool.job)
            return
        agent_uri = self._agent.register(worker_id, arn, in_service=True)
        defined = env_list(container.get("environment"))
        env = self._env.build(pool.job, self._catalog.efs_path(pool.job), defined, secrets, agent_uri=agent_uri)
        log_path = self._env.root / ".taskrunner" / "logs" / pool.job / f"{worker_id}-{task_id[:8]}.log"
        try:
            popen = spawn(command.argv, env, self._env.root, log_path)
        except OSError as exc:
            pool.failures_in_row += 1
            pool.next_start_at = time.monotonic() + restart_delay(pool.failures_in_row)
            self._activity.add("error", f"cannot start a worker: {_cannot_start(command, exc)}", pool.job)
            return
        pool.workers.append(Worker(worker_id, arn, popen, log_path, time.monotonic()))
        self._activity.add("worker", f"{worker_id} started: {command.text}", pool.job, pid=popen.pid)

    def _stop_timeout(self, pool: ServicePool) -> float:
        container = self._definitions.container(pool.task_definition)
        return float(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT_S)

    def protected(self, worker: Worker) -> bool:
        return self._agent.protected(worker.worker_id)

    def snapshot(self) -> list[ServicePool]:
        with self._lock:
            return list(self.pools.values())

    def stop_all(self) -> list[Worker]:
        """SIGTERM every worker (local mode is stopping); the caller waits for them."""
        workers = []
        for pool in self.snapshot():
            pool.desired = 0
            for worker in pool.workers:
                worker.draining_since = worker.draining_since or time.monotonic()
                _signal(worker.popen, signal.SIGTERM)
                workers.append(worker)
        return workers


def wait_all(procs: list[subprocess.Popen[bytes]], timeout_s: float, on_slow: Callable[[], None] | None = None) -> None:
    """Wait for ``procs``; after ``timeout_s``, ``on_slow`` (a second signal), then SIGKILL what is left."""
    deadline = time.monotonic() + timeout_s
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    if on_slow is not None and any(p.poll() is None for p in procs):
        on_slow()
        deadline = time.monotonic() + 3.0
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
    for popen in procs:
        _signal(popen, signal.SIGKILL)
    for popen in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=2)


__all__ = [
    "LocalTask",
    "RunTasks",
    "ServicePool",
    "TaskEnvironment",
    "Worker",
    "WorkerServices",
    "base_environment",
    "spawn",
    "wait_all",
]
