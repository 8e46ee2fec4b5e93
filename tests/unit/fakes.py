"""In-memory fakes of the domain's ports (``taskrunner.domain.ports``), plus builders for specs and events.

The fakes keep the semantics the domain relies on, so a test that passes here means something:

* :class:`FakeRunStore` makes the same conditional writes as the DynamoDB store, and classifies a claim with
  the same domain rule (``domain.dispatch.classify_claim``): a first attempt's claim creates the run, or takes
  over a CLAIMED run whose lease has expired; a retry's claim (attempt n > 1) takes the run over from RETRYING
  (or from its own expired claim); otherwise it reports BUSY (live lease of the same attempt) or DUPLICATE.
  Updates only move a run forward, ordered by (attempt, state), and say whether they applied; ``release``
  fails unless the run is still CLAIMED. tests/integration/test_run_store_contract.py holds both stores to it.
* :class:`Faults` and :class:`Faulty` make any fake's calls fail, before or after they take effect.
* :class:`FakeCluster` records every call, honours ``clientToken`` as ECS does, lists tasks by family and
  by ``startedBy``, and checks each RunTask request against ECS's documented limits (an invalid request
  is a bug in the domain, reported as :class:`InvalidRunTaskRequest`, not a launch failure).
"""

from __future__ import annotations

import copy
import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskrunner.domain.dispatch import TAKEN, classify_claim
from taskrunner.domain.errors import UnknownJob
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec
from taskrunner.domain.ports import Claim, LaunchResult, Retry
from taskrunner.domain.runs import ACTIVE_STATUSES, ATTEMPT_FIELDS, Run, RunStatus, as_item
from taskrunner.domain.triggers import DispatchRequest, Trigger
from taskrunner.domain.trust import StackBounds

ACCOUNT = "123456789012"
REGION = "us-east-1"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/taskrunner"
DATA_BUCKET = "taskrunner-example-data"
#: 2026-11-26T05:00:00Z, the sample schedule tick.
T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC).timestamp()


# --------------------------------------------------------------------------- builders


STACK = StackBounds(
    name="taskrunner",
    account=ACCOUNT,
    region=REGION,
    cluster_arn=CLUSTER_ARN,
    data_bucket=DATA_BUCKET,
    subnets=frozenset({"subnet-aaa", "subnet-bbb"}),
    security_groups=frozenset({"sg-111"}),
)
#: The function environment a deployment of :data:`STACK` gives the Dispatcher and the Scaler.
STACK_ENV = {
    "STACK_NAME": STACK.name,
    "AWS_REGION": REGION,
    "CLUSTER_ARN": CLUSTER_ARN,
    "DATA_BUCKET": DATA_BUCKET,
    "TASK_SUBNETS": "subnet-aaa,subnet-bbb",
    "TASK_SECURITY_GROUPS": "sg-111",
    "ASSIGN_PUBLIC_IP": "DISABLED",
}
#: The sample jobs' triggers, so each sample request is one its job may make.
TRIGGERS: dict[str, dict[str, Any]] = {
    "nightly-report": {"schedule": "cron(0 6 * * ? *)"},
    "thumbnails": {"s3_bucket": DATA_BUCKET, "s3_prefix": "uploads/images/"},
    "order-audit": {"event_pattern": {"source": ["com.example.orders"]}},
}


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """A registry entry (the JSON object jobs/job.yaml writes), minimal but valid, for the stack :data:`STACK`."""
    name = overrides.get("name", "nightly-report")
    base: dict[str, Any] = {
        "name": name,
        "cluster": CLUSTER_ARN,
        "task_definition": f"taskrunner-{name}",
        "container": "job",
        "subnets": "subnet-aaa,subnet-bbb",
        "security_groups": "sg-111",
    }
    return base | TRIGGERS.get(name, {}) | overrides


def job_spec(**overrides: Any) -> JobSpec:
    return JobSpec.parse(spec_dict(**overrides))


def eventbridge_event(
    *,
    source: str = "com.example.orders",
    detail_type: str = "OrderPlaced",
    detail: Any = None,
    event_id: str = "5f1e9c3a-8b7d-4c2e-a1f0-3d2b1c0e9f8a",
    time: str = "2026-11-26T10:05:00Z",
    resources: list[str] | None = None,
) -> dict[str, Any]:
    """A bare EventBridge event, as a rule delivers it (``<aws.events.event.json>``)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": time,
        "region": REGION,
        "resources": resources if resources is not None else [],
        "detail": detail if detail is not None else {"order_id": "o-1042", "total": 1250.0, "currency": "EUR"},
    }


def s3_event(
    key: str = "uploads/images/cat.jpg",
    *,
    bucket: str = DATA_BUCKET,
    sequencer: str = "00617F08299329D189",
    size: int = 5,
    event_id: str = "17793124-05d4-b198-2fde-7ededc63b103",
) -> dict[str, Any]:
    """An S3 "Object Created" event delivered by EventBridge."""
    return eventbridge_event(
        source="aws.s3",
        detail_type="Object Created",
        event_id=event_id,
        time="2026-11-26T10:00:00Z",
        resources=[f"arn:aws:s3:::{bucket}"],
        detail={
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": sequencer},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "203.0.113.15",
            "reason": "PutObject",
        },
    )


def schedule_request(job: str = "nightly-report", scheduled_at: float = T0) -> DispatchRequest:
    return DispatchRequest(job=job, trigger=Trigger.SCHEDULE, scheduled_at=datetime.fromtimestamp(scheduled_at, UTC))


def manual_request(
    job: str = "nightly-report", request_id: str = "c0ffee00-1234-4bcd-9f00-000000000001", **env: str
) -> DispatchRequest:
    return DispatchRequest.model_validate({"job": job, "trigger": "manual", "request_id": request_id, "env": env})


def s3_request(key: str = "uploads/images/cat.jpg", *, job: str = "thumbnails", **event: Any) -> DispatchRequest:
    return DispatchRequest.model_validate({"job": job, "trigger": "s3", "event": s3_event(key, **event)})


def event_request(*, job: str = "order-audit", **event: Any) -> DispatchRequest:
    return DispatchRequest.model_validate({"job": job, "trigger": "event", "event": eventbridge_event(**event)})


def retry_of(request: DispatchRequest, run_id: str, attempt: int) -> DispatchRequest:
    """The Tracker's retry: the original request again, naming the run it continues and the attempt."""
    body = json.loads(request.model_dump_json(by_alias=True, exclude_defaults=True))
    return DispatchRequest.model_validate(body | {"run_id": run_id, "attempt": attempt})


def make_run(
    request: DispatchRequest,
    run_id: str = "0123456789abcdef0123456789",
    *,
    attempt: int = 1,
    status: RunStatus = RunStatus.CLAIMED,
    **fields: Any,
) -> Run:
    stamp = datetime.fromtimestamp(T0, UTC)
    return Run(
        run_id=run_id,
        job=request.job,
        trigger=request.trigger,
        idempotency_key=f"{request.job}|test",
        status=status,
        attempt=attempt,
        created_at=stamp,
        updated_at=stamp,
        request=request.model_dump_json(by_alias=True, exclude={"run_id", "attempt"}, exclude_defaults=True),
        **fields,
    )


class FakeClock:
    """A settable clock (epoch seconds), passed as the Dispatcher's ``clock``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------- Registry


class FakeRegistry:
    """Job specs by name. Raw entries are validated on read, like the SSM registry."""

    def __init__(self, *specs: JobSpec, raw: dict[str, Any] | None = None) -> None:
        self.entries: dict[str, Any] = {spec.name: spec for spec in specs} | dict(raw or {})
        self.reads: list[str] = []

    def add(self, spec: JobSpec) -> None:
        self.entries[spec.name] = spec

    def get(self, job: str) -> JobSpec:
        self.reads.append(job)
        if job not in self.entries:
            raise UnknownJob(job)
        entry = self.entries[job]
        return entry if isinstance(entry, JobSpec) else JobSpec.parse(entry)

    def all(self) -> list[JobSpec]:
        """Every valid entry; an invalid one is left out, as the SSM registry does."""
        specs = []
        for name in self.entries:
            try:
                specs.append(self.get(name))
            except InvalidJobSpec:
                continue
        return specs

    def invalid(self) -> dict[str, str]:
        found = {}
        for name in self.entries:
            try:
                self.get(name)
            except InvalidJobSpec as exc:
                found[name] = str(exc)
        return found


class FakePauses:
    def __init__(self, *paused: str) -> None:
        self.jobs: dict[str, str] = dict.fromkeys(paused, "paused")

    def paused(self) -> frozenset[str]:
        return frozenset(self.jobs)

    def reasons(self) -> dict[str, str]:
        return dict(self.jobs)

    def set_paused(self, job: str, paused: bool, reason: str = "") -> None:
        if paused:
            self.jobs[job] = reason or "paused"
        else:
            self.jobs.pop(job, None)


# --------------------------------------------------------------------------- fault injection


@dataclass
class Faults:
    """Planned failures of port calls, by method name, each taken by the next call of that method.

    ``when`` says where the call fails: ``before`` it takes effect (the request never arrived), ``after`` (it took
    effect, and the caller sees an error: a timeout after DynamoDB wrote, a 5xx after ECS launched), or ``instead``
    (the call returns ``outcome``, or ``outcome(*args)`` if it is callable, without reaching the fake: a RunTask
    answered with ``failures[]``).
    """

    planned: dict[str, deque[tuple[str, Any]]] = field(default_factory=dict)
    #: (method, when) of every fault that fired, in order.
    fired: list[tuple[str, str]] = field(default_factory=list)

    def arm(self, method: str, outcome: Any, when: str = "before") -> None:
        assert when in {"before", "after", "instead"}, when
        self.planned.setdefault(method, deque()).append((when, outcome))

    def take(self, method: str) -> tuple[str, Any] | None:
        queue = self.planned.get(method)
        if not queue:
            return None
        planned = queue.popleft()
        self.fired.append((method, planned[0]))
        return planned

    def clear(self) -> None:
        self.planned.clear()


class Faulty:
    """A fake behind a fault-injecting wrapper: every public method of the port can fail as :class:`Faults` plans.

    Attributes that are not methods (the fake's recorded state) pass through, so a test inspects the fake as usual.
    """

    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            planned = self._faults.take(name)
            if planned is None:
                return attr(*args, **kwargs)
            when, outcome = planned
            if when == "instead":  # an answer, or a function of the call's arguments that gives one
                return outcome(*args, **kwargs) if callable(outcome) else outcome
            if when == "before":
                raise outcome
            attr(*args, **kwargs)
            raise outcome

        return call


# --------------------------------------------------------------------------- RunStore


class ConditionFailed(Exception):
    """A conditional write was refused (DynamoDB's ConditionalCheckFailedException)."""


class SimulatedCrash(BaseException):
    """The Lambda died here. BaseException, so no ``except Exception`` in the code under test swallows it."""


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _newest(runs: list[Run], limit: int) -> list[Run]:
    return sorted(runs, key=lambda r: r.created_at, reverse=True)[:limit]


class FakeRunStore:
    """The runs table, as items keyed by run id, written only with the DynamoDB store's conditions.

    Items carry ``status_rank`` = ``status.order(attempt)``, so updates are forward-only across attempts.
    """

    def __init__(self, clock: Any = None) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        #: (operation, run_id, status or None, applied) for every call, in order.
        self.calls: list[tuple[str, str, RunStatus | None, bool]] = []
        #: Raised (once) by the next ``update``: the Lambda dies after RunTask, before the record write.
        self.crash_on_next_update: BaseException | None = None
        self._clock = clock

    # The port -----------------------------------------------------------------

    def claim(self, run: Run, now: float) -> Claim:
        """Attempt 1 creates the run; attempt n > 1 takes it over from RETRYING (what the Tracker leaves).

        What the claim meets is classified by the domain's one rule (``classify_claim``), as the DynamoDB store's.
        """
        existing = self.get(run.run_id)
        kind = classify_claim(existing, run, now)
        if kind not in TAKEN:
            self.calls.append(("claim", run.run_id, run.status, False))
            return Claim(kind, existing)
        if run.attempt == 1:  # a put: the whole item, as DynamoDB's PutItem replaces it
            self.items[run.run_id] = as_item(run) | {
                "status_rank": run.status.order(run.attempt),
                "lease_until": run.lease_until or now,
                "attempts": {str(run.attempt): {"status": run.status.value}},
            }
            if existing is not None and existing.redrives:  # the attempt's re-drive count carries over
                self.items[run.run_id]["redrives"] = existing.redrives
        else:
            raw = self.items[run.run_id]
            raw |= {
                "status": RunStatus.CLAIMED.value,
                "lease_until": run.lease_until or now,
                "status_rank": RunStatus.CLAIMED.order(run.attempt),
                "updated_at": run.updated_at.isoformat(),
            }
            raw.setdefault("attempts", {}).setdefault(str(run.attempt), {"status": RunStatus.CLAIMED.value})
        self.calls.append(("claim", run.run_id, run.status, True))
        return Claim(kind, existing)

    def update(self, run_id: str, status: RunStatus, attempt: int, **fields: Any) -> bool:
        if self.crash_on_next_update is not None:
            crash, self.crash_on_next_update = self.crash_on_next_update, None
            raise crash
        item = self.items.get(run_id)
        # Forward only, and never creates a run: a late or repeated update is refused without a write.
        if item is None or item["status_rank"] >= status.order(attempt):
            self.calls.append(("update", run_id, status, False))
            return False
        plain = {k: _plain(v) for k, v in fields.items()}
        item.update({k: v for k, v in plain.items() if v is not None})
        for name in [k for k, v in plain.items() if v is None]:
            item.pop(name, None)  # given as None: the run's top level no longer shows the last attempt's value
        record = item.setdefault("attempts", {}).setdefault(str(attempt), {})
        record.update({k: v for k, v in plain.items() if v is not None and k in ATTEMPT_FIELDS})
        for name in [k for k, v in plain.items() if v is None and k in ATTEMPT_FIELDS]:
            record.pop(name, None)  # and neither does the attempt's own record
        record["status"] = status.value
        item |= {
            "status": status.value,
            "attempt": attempt,
            "status_rank": status.order(attempt),
            "updated_at": datetime.fromtimestamp(self._clock() if self._clock else T0, UTC).isoformat(),
        }
        if status is not RunStatus.CLAIMED:
            item.pop("lease_until", None)
        self.calls.append(("update", run_id, status, True))
        return True

    def redriven(self, run: Run, now: float) -> bool:
        item = self.items.get(run.run_id)
        current = (item or {}).get("redrives", 0)
        if (
            item is None
            or item["status"] != run.status.value
            or item["attempt"] != run.attempt
            or current != run.redrives
        ):
            self.calls.append(("redriven", run.run_id, run.status, False))
            return False
        item |= {"redrives": current + 1, "updated_at": datetime.fromtimestamp(now, UTC).isoformat(), "retry_due": now}
        self.calls.append(("redriven", run.run_id, run.status, True))
        return True

    def abandon(self, run: Run, reason: str) -> bool:
        return self.update(run.run_id, RunStatus.LAUNCH_FAILED, run.attempt, reason=reason)

    def release(self, run_id: str) -> None:
        item = self.items.get(run_id)
        if item is None or item["status"] != RunStatus.CLAIMED.value:
            self.calls.append(("release", run_id, None, False))
            raise ConditionFailed(f"release {run_id}: not CLAIMED")
        item["lease_until"] = 0
        item["updated_at"] = datetime.fromtimestamp(self._clock() if self._clock else T0, UTC).isoformat()
        self.calls.append(("release", run_id, None, True))

    def get(self, run_id: str) -> Run | None:
        item = self.items.get(run_id)
        return None if item is None else Run.model_validate(item)

    def active(self) -> list[Run]:
        """Every run reconciliation owns, as the store's by-status index serves them (all pages)."""
        wanted = {status.value for status in ACTIVE_STATUSES}
        return [Run.model_validate(i) for i in self.items.values() if i["status"] in wanted]

    def history(self, job: str, limit: int = 50, status: RunStatus | None = None) -> list[Run]:
        runs = [Run.model_validate(i) for i in self.items.values() if i["job"] == job]
        return _newest([r for r in runs if status is None or r.status is status], limit)

    def recent(self, status: RunStatus, since: datetime | None = None, limit: int = 1000) -> list[Run]:
        """The store's by-status index: runs in ``status`` created at or after ``since``."""
        runs = [Run.model_validate(i) for i in self.items.values() if i["status"] == status.value]
        return _newest([r for r in runs if since is None or r.created_at >= since], limit)

    def newest(self, jobs: Iterable[str], limit: int = 50, status: RunStatus | None = None) -> list[Run]:
        return _newest([run for job in jobs for run in self.history(job, limit, status)], limit)

    # Inspection ---------------------------------------------------------------

    def status(self, run_id: str) -> RunStatus | None:
        run = self.get(run_id)
        return None if run is None else run.status

    def seed(self, run: Run, **extra: Any) -> None:
        """Put a run in the table as it stands, without conditions (history left by earlier invocations)."""
        self.items[run.run_id] = as_item(run) | {"status_rank": run.status.order(run.attempt)} | extra


@dataclass
class FakeRetryScheduler:
    """Records the retries the Tracker schedules (the real one sends a delayed message)."""

    scheduled: list[Retry] = field(default_factory=list)

    def schedule(self, retry: Retry) -> None:
        self.scheduled.append(retry)


# --------------------------------------------------------------------------- Cluster


class InvalidRunTaskRequest(AssertionError):
    """The domain built a RunTask request that ECS would reject for its shape, not for a runtime reason."""


CLIENT_TOKEN = re.compile(r"^[\x21-\x7e]{1,64}$")  # ECS: up to 64 characters in the range 33-126
STARTED_BY = re.compile(r"^[A-Za-z0-9_/-]{1,128}$")
MAX_OVERRIDES_CHARS = 8192  # "A total of 8192 characters are allowed for overrides", JSON included
REQUIRED_KEYS = ("cluster", "taskDefinition", "count", "networkConfiguration", "clientToken", "startedBy")


def check_run_task_request(request: dict[str, Any]) -> None:
    """ECS's documented limits on a RunTask request; raises :class:`InvalidRunTaskRequest`."""
    missing = [k for k in REQUIRED_KEYS if k not in request]
    if missing:
        raise InvalidRunTaskRequest(f"missing {missing}")
    if not CLIENT_TOKEN.match(request["clientToken"]):
        raise InvalidRunTaskRequest(f"clientToken {request['clientToken']!r} is not 1-64 ASCII characters 33-126")
    if not STARTED_BY.match(request["startedBy"]):
        raise InvalidRunTaskRequest(f"startedBy {request['startedBy']!r} is not 1-128 of [A-Za-z0-9_/-]")
    if not 1 <= request["count"] <= 10:
        raise InvalidRunTaskRequest(f"count {request['count']} outside 1-10")
    overrides = json.dumps(request.get("overrides", {}), separators=(",", ":"))
    if len(overrides) > MAX_OVERRIDES_CHARS:
        raise InvalidRunTaskRequest(f"overrides are {len(overrides)} characters, over {MAX_OVERRIDES_CHARS}")
    if "capacityProviderStrategy" in request and "launchType" in request:
        raise InvalidRunTaskRequest("capacityProviderStrategy and launchType are mutually exclusive")


def family_from(task_definition: str) -> str:
    return task_definition.rsplit("/", 1)[-1].split(":", 1)[0]


@dataclass
class FakeTask:
    arn: str
    cluster: str
    family: str
    started_by: str | None
    client_token: str | None = None
    capacity_provider: str | None = None
    desired_status: str = "RUNNING"
    last_status: str = "PROVISIONING"
    stop_code: str | None = None
    stopped_reason: str | None = None
    exit_code: int | None = None
    group: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def describe(self) -> dict[str, Any]:
        """The task as DescribeTasks (or an "ECS Task State Change" detail) shows it."""
        container: dict[str, Any] = {"name": "job", "lastStatus": self.last_status}
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        described: dict[str, Any] = {
            "taskArn": self.arn,
            "clusterArn": self.cluster,
            "lastStatus": self.last_status,
            "desiredStatus": self.desired_status,
            "startedBy": self.started_by or "",
            "group": self.group or f"family:{self.family}",
            "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{self.family}:1",
            "containers": [container],
            "overrides": self.overrides,
        }
        if self.capacity_provider:
            described["capacityProviderName"] = self.capacity_provider
        if self.stop_code:
            described["stopCode"] = self.stop_code
        if self.stopped_reason:
            described["stoppedReason"] = self.stopped_reason
        for key, stamp in (("startedAt", self.started_at), ("stoppedAt", self.stopped_at)):
            if stamp is not None:
                described[key] = stamp.isoformat()
        return described


@dataclass
class FakeCluster:
    """ECS: RunTask results are scripted (a LaunchResult, or an exception to raise) and otherwise launch a task."""

    tasks: list[FakeTask] = field(default_factory=list)
    #: Every RunTask request, deep-copied, in order.
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: (task ARN, reason) of every StopTask.
    stopped: list[tuple[str, str]] = field(default_factory=list)
    #: Every call in order: ("run_task", clientToken), ("stop_task", ARN), ("active_tasks", family),
    #: ("tasks_started_by", startedBy), ("describe_tasks", cluster).
    calls: list[tuple[str, str]] = field(default_factory=list)
    validate: bool = True
    _script: deque[LaunchResult | BaseException] = field(default_factory=deque)
    _by_token: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _serial: int = 0

    def script(self, *outcomes: LaunchResult | BaseException) -> None:
        """The next RunTask calls return (or raise) these, in order; after them, RunTask launches."""
        self._script.extend(outcomes)

    def add_task(
        self,
        *,
        family: str,
        cluster: str = CLUSTER_ARN,
        started_by: str | None = None,
        desired: str = "RUNNING",
        last_status: str = "RUNNING",
    ) -> str:
        """A task that is already there (started by an earlier run, or by someone else)."""
        arn = self._new_arn(cluster)
        self.tasks.append(FakeTask(arn, cluster, family, started_by, desired_status=desired, last_status=last_status))
        return arn

    def task(self, arn: str) -> FakeTask:
        (found,) = [t for t in self.tasks if t.arn == arn]
        return found

    def finish(self, arn: str, *, exit_code: int | None = 0, stop_code: str = "EssentialContainerExited") -> FakeTask:
        """The task stops by itself (its container exited)."""
        task = self.task(arn)
        task.desired_status = task.last_status = "STOPPED"
        task.exit_code, task.stop_code = exit_code, stop_code
        return task

    def mutating_calls(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] in {"run_task", "stop_task"}]

    # The port -----------------------------------------------------------------

    def run_task(self, request: dict[str, Any]) -> LaunchResult:
        self.requests.append(copy.deepcopy(request))
        self.calls.append(("run_task", str(request.get("clientToken"))))
        if self.validate:
            check_run_task_request(request)
        if self._script:
            outcome = self._script.popleft()
            if isinstance(outcome, BaseException):
                raise outcome
            for arn in outcome.task_arns:
                self._record(arn, request)
            return outcome
        token = (request["cluster"], request["clientToken"])
        if token in self._by_token:  # ECS answers a repeated clientToken with the tasks it already started
            return LaunchResult(task_arns=list(self._by_token[token]))
        arns = [self._new_arn(request["cluster"]) for _ in range(int(request.get("count", 1)))]
        for arn in arns:
            self._record(arn, request)
        self._by_token[token] = arns
        return LaunchResult(task_arns=arns)

    def active_tasks(self, cluster: str, family: str) -> list[str]:
        self.calls.append(("active_tasks", family))
        return [
            t.arn for t in self.tasks if t.cluster == cluster and t.family == family and t.desired_status == "RUNNING"
        ]

    def tasks_started_by(self, cluster: str, started_by: str) -> list[str]:
        self.calls.append(("tasks_started_by", started_by))
        return [t.arn for t in self.tasks if t.cluster == cluster and t.started_by == started_by]

    def stop_task(self, cluster: str, task_arn: str, reason: str) -> None:
        self.calls.append(("stop_task", task_arn))
        self.stopped.append((task_arn, reason))
        for task in self.tasks:
            if task.arn == task_arn and task.cluster == cluster:
                task.desired_status = task.last_status = "STOPPED"
                task.stop_code, task.stopped_reason = "UserInitiated", reason[:255]

    def describe_tasks(self, cluster: str, task_arns: list[str]) -> dict[str, dict[str, Any]]:
        assert len(task_arns) <= 100, "DescribeTasks takes at most 100 tasks"
        self.calls.append(("describe_tasks", cluster))
        wanted = set(task_arns)
        return {t.arn: t.describe() for t in self.tasks if t.cluster == cluster and t.arn in wanted}

    # Helpers ------------------------------------------------------------------

    @property
    def launched(self) -> list[FakeTask]:
        """Tasks started through RunTask (not seeded with ``add_task``)."""
        return [t for t in self.tasks if t.client_token is not None]

    def _record(self, arn: str, request: dict[str, Any]) -> None:
        strategy = request.get("capacityProviderStrategy") or [{}]
        self.tasks.append(
            FakeTask(
                arn,
                request["cluster"],
                family_from(request["taskDefinition"]),
                request.get("startedBy"),
                client_token=request.get("clientToken"),
                capacity_provider=strategy[0].get("capacityProvider"),
                group=request.get("group"),
                overrides=copy.deepcopy(request.get("overrides", {})),
            )
        )

    def _new_arn(self, cluster: str) -> str:
        self._serial += 1
        return f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster.rsplit('/', 1)[-1]}/{self._serial:032x}"


# --------------------------------------------------------------------------- handlers


#: The dispatch queue's ARN in records built by :func:`sqs_record`.
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskrunner-DispatchQueue-EXAMPLE"


@dataclass
class FakeMessages:
    """The handlers' SQS port: what was dead-lettered (with its reason) and which back-offs were asked for."""

    dead: list[tuple[str, str]] = field(default_factory=list)
    backoffs: list[int] = field(default_factory=list)

    def dead_letter(self, queue_url: str, body: str, reason: str, source: dict[str, str]) -> None:
        assert reason, "a dead letter always carries its reason"
        self.dead.append((body, reason))

    def retry_after(self, queue_url: str, receipt_handle: str, delay_s: int) -> None:
        self.backoffs.append(delay_s)


def sqs_record(body: str, index: int = 0, queue_arn: str = QUEUE_ARN) -> dict[str, Any]:
    """One record of an SQS batch, shaped as Lambda's SQS poller delivers it."""
    return {
        "messageId": f"m-{index}",
        "receiptHandle": f"r-{index}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@dataclass
class DispatcherWorld:
    """The Dispatcher's handler service on fakes, and the fakes to look at."""

    service: Any
    cluster: FakeCluster
    store: FakeRunStore
    messages: FakeMessages
    pauses: FakePauses


def dispatcher_handler_service(
    registry: FakeRegistry, clock: FakeClock | None = None, **stack_env: str
) -> DispatcherWorld:
    """What ``taskrunner.handlers.dispatcher.service()`` builds on AWS, on fakes (the stack :data:`STACK`, or
    with ``stack_env`` its environment changed: another account's cluster, region or bucket)."""
    from taskrunner.domain.dispatch import Dispatcher
    from taskrunner.handlers import dispatcher
    from taskrunner.settings import DispatcherSettings

    env = {"RUNS_TABLE": "runs", "REGISTRY_PREFIX": "/taskrunner/taskrunner/jobs", "DISPATCH_DLQ_URL": "dlq"}
    settings = DispatcherSettings.from_env(env | {"RUN_HISTORY_DAYS": "30"} | STACK_ENV | stack_env)
    clock = clock or FakeClock()
    cluster, store, messages, pauses = FakeCluster(), FakeRunStore(clock=clock), FakeMessages(), FakePauses()
    core = Dispatcher(registry, store, cluster, stack=settings.bounds(), clock=clock, pauses=pauses)
    return DispatcherWorld(dispatcher.Service(settings, registry, core, messages), cluster, store, messages, pauses)


@dataclass
class TrackerWorld:
    service: Any
    cluster: FakeCluster
    store: FakeRunStore
    messages: FakeMessages
    retries: FakeRetryScheduler


def tracker_handler_service(
    registry: FakeRegistry,
    *,
    accept_direct_events: bool = False,
    store: FakeRunStore | None = None,
    cluster: FakeCluster | None = None,
    clock: FakeClock | None = None,
    cluster_arn: str = CLUSTER_ARN,
) -> TrackerWorld:
    """What ``taskrunner.handlers.tracker.service()`` builds on AWS, on fakes."""
    from taskrunner.domain.tracking import Reconciler, Tracker
    from taskrunner.handlers import tracker
    from taskrunner.settings import TrackerSettings

    settings = TrackerSettings.from_env(
        {
            "STACK_NAME": STACK.name,
            "RUNS_TABLE": "runs",
            "REGISTRY_PREFIX": "/taskrunner/taskrunner/jobs",
            "RUN_HISTORY_DAYS": "30",
            "CLUSTER_ARN": cluster_arn,
            "DISPATCH_QUEUE_URL": "dispatch",
            "DISPATCH_QUEUE_ARN": QUEUE_ARN,
            "TRACKER_DLQ_URL": "tracker-dlq",
            "RETRY_SCHEDULER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/retry",
            "SCHEDULE_GROUP": STACK.name,
            "TRACKER_ACCEPT_DIRECT_EVENTS": str(accept_direct_events).lower(),
        }
    )
    clock = clock or FakeClock()
    store = store or FakeRunStore(clock=clock)
    cluster = cluster or FakeCluster()
    messages, retries = FakeMessages(), FakeRetryScheduler()
    core = Tracker(registry, store, retries, stack_name=STACK.name, clock=clock)
    reconciler = Reconciler(registry, store, cluster, core, retries, clock=clock)
    return TrackerWorld(tracker.Service(settings, store, core, reconciler, messages), cluster, store, messages, retries)
