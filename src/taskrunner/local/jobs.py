"""The jobs local mode knows: their triggers from the deployed template, their specs from the registry,
and the local command that stands in for each job's image.

The command comes, in order, from ``--command JOB=COMMAND`` and the job's registry entry (the
``LocalCommand`` parameter of its block in template.yaml). A job with neither has its tasks reported
as exiting 0 after a moment, and the view says so.
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskrunner.domain.jobcheck import entry_problems
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec, QueueMode

#: Stand-ins for the sample jobs' images while their template blocks have no LocalCommand.
_PYTHONS = {"python", "python3", f"python3.{sys.version_info.minor}"}


@dataclass(frozen=True)
class TemplateJob:
    """A job block of template.yaml, as the SAM-transformed template holds its parameters."""

    name: str
    schedule: str = ""
    timezone: str = "UTC"
    s3_prefix: str = ""
    s3_suffix: str = ""
    event_pattern: bool = False
    queue_mode: str = "none"
    efs_path: str = ""
    local_command: str = ""

    @property
    def triggers(self) -> list[str]:
        found = []
        if self.schedule:
            found.append(f"schedule {self.schedule}" + (f" {self.timezone}" if self.timezone != "UTC" else ""))
        if self.s3_prefix:
            found.append(f"s3 {self.s3_prefix}*{self.s3_suffix}")
        if self.event_pattern:
            found.append("event pattern")
        if self.queue_mode != "none":
            found.append(f"queue ({self.queue_mode})")
        return found or ["manual only"]


def template_jobs(transformed: dict[str, Any]) -> dict[str, TemplateJob]:
    jobs: dict[str, TemplateJob] = {}
    for resource in transformed.get("Resources", {}).values():
        if resource.get("Type") != "AWS::CloudFormation::Stack":
            continue
        params = resource.get("Properties", {}).get("Parameters", {})
        name = params.get("JobName")
        if not isinstance(name, str):
            continue

        def text(key: str, default: str = "", params: dict[str, Any] = params) -> str:
            value = params.get(key, default)
            return value if isinstance(value, str) else default  # an intrinsic function: not known here

        jobs[name] = TemplateJob(
            name=name,
            schedule=text("ScheduleExpression"),
            timezone=text("ScheduleTimezone", "UTC") or "UTC",
            s3_prefix=text("S3Prefix"),
            s3_suffix=text("S3Suffix"),
            event_pattern=bool(params.get("EventPattern")),
            queue_mode=text("QueueMode", "none") or "none",
            efs_path=text("EfsPath"),
            local_command=text("LocalCommand"),
        )
    return jobs


def command_argv(command: str) -> list[str]:
    """``python examples/x.py`` → argv, with ``python`` meaning this interpreter (its virtual environment)."""
    argv = shlex.split(command)
    if argv and argv[0] in _PYTHONS:
        argv[0] = sys.executable
    return argv


@dataclass(frozen=True)
class LocalCommand:
    argv: list[str]
    source: str  # "--command" or "LocalCommand"

    @property
    def text(self) -> str:
        return shlex.join(["python", *self.argv[1:]] if self.argv[0] == sys.executable else self.argv)


class JobCatalog:
    def __init__(
        self,
        root: Path,
        transformed: dict[str, Any],
        ssm: Any,
        registry_prefix: str,
        overrides: dict[str, str] | None = None,
        max_age_s: float = 3.0,
        on_invalid: Callable[[str, str], object] | None = None,
    ) -> None:
        self.root = root
        self.template = template_jobs(transformed)
        self._ssm = ssm
        self._prefix = registry_prefix.rstrip("/")
        self._overrides = dict(overrides or {})
        self._max_age_s = max_age_s
        self._specs: dict[str, JobSpec] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        #: Told once per problem of an invalid registry entry: (job, one line naming the parameter).
        self._on_invalid = on_invalid
        self._reported: set[tuple[str, str]] = set()

    def specs(self) -> dict[str, JobSpec]:
        """Every valid registry entry, re-read every few seconds (the demo rewrites one)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._max_age_s:
                self._specs = self._read()
                self._read_at = time.monotonic()
            return dict(self._specs)

    def refresh(self) -> None:
        with self._lock:
            self._read_at = float("-inf")

    def _read(self) -> dict[str, JobSpec]:
        found: dict[str, JobSpec] = {}
        pages = self._ssm.get_paginator("get_parameters_by_path").paginate(Path=self._prefix, Recursive=False)
        for page in pages:
            for parameter in page.get("Parameters", []):
                try:
                    spec = JobSpec.parse(parameter["Value"])
                except InvalidJobSpec:
                    # The Lambdas refuse the job (its events are dead-lettered): say why, once, by parameter.
                    self._report_invalid(parameter["Name"].rsplit("/", 1)[-1], parameter["Value"])
                    continue
                found[spec.name] = spec
        return found

    def _report_invalid(self, job: str, value: str) -> None:
        if self._on_invalid is None:
            return
        for parameter, message in entry_problems(value) or [(None, "not a valid registry entry")]:
            line = f"registry entry invalid: {f'{parameter}: ' if parameter else ''}{message}"
            if (job, line) not in self._reported:
                self._reported.add((job, line))
                self._on_invalid(job, line)

    def spec(self, job: str) -> JobSpec | None:
        return self.specs().get(job)

    def names(self) -> list[str]:
        return sorted(set(self.template) | set(self.specs()))

    def queue_jobs(self) -> list[JobSpec]:
        return [s for _, s in sorted(self.specs().items()) if s.queue_mode is not QueueMode.NONE]

    def efs_path(self, job: str) -> str:
        entry = self.template.get(job)
        return entry.efs_path if entry else ""

    def command(self, job: str) -> LocalCommand | None:
        if job in self._overrides:
            return LocalCommand(command_argv(self._overrides[job]), "--command")
        spec = self.spec(job)
        declared = spec.local_command if spec else self.template.get(job, TemplateJob(job)).local_command
        if declared:
            return LocalCommand(command_argv(declared), "LocalCommand")
        return None
