"""Checks of the job blocks in template.yaml, before anything is deployed: ``taskrunner validate``.

A job block is a nested application (``AWS::Serverless::Application`` with a local ``Location``, or an
``AWS::CloudFormation::Stack`` with a local ``TemplateURL``) whose template declares ``JobName``: jobs/job.yaml.
Each block is checked in two layers, so that what deploys is what the Lambdas will accept:

1. **CloudFormation's own constraints**, as jobs/job.yaml declares them (required parameters, unknown names,
   ``AllowedValues``, ``AllowedPattern``, ``MinValue``/``MaxValue``, ``Number``): what the deploy would refuse,
   said before the deploy and naming the job.
2. **The registry entry's rules**: the block's parameters are assembled into the entry jobs/job.yaml writes and
   validated by :class:`~taskrunner.domain.jobs.JobSpec`, the model every Lambda reads the entry with. Cron /
   rate / at expressions, time zones, the starting deadline, exit codes, the EventBridge pattern: each rule has
   its one home there (or in :mod:`taskrunner.domain.cron` / :mod:`taskrunner.domain.patterns`).

Then what only the whole template knows: job names (and EFS folders) are unique across blocks, and a few
Fargate facts jobs/job.yaml cannot express (the CPU/memory combinations).

Pure: the caller loads the YAML (CloudFormation tags as ``{"Ref": ...}`` / ``{"Fn::...": ...}``).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from taskrunner.domain.jobs import JobSpec

JOB_RESOURCE_TYPES = {"AWS::Serverless::Application": "Location", "AWS::CloudFormation::Stack": "TemplateURL"}

#: Registry entry field (a pydantic error location prefix) → the job.yaml parameter it comes from.
FIELD_PARAMETERS: dict[tuple[str, ...], str] = {
    ("name",): "JobName",
    ("capacity",): "Capacity",
    ("schedule",): "ScheduleExpression",
    ("schedule_timezone",): "ScheduleTimezone",
    ("overlap",): "OverlapPolicy",
    ("starting_deadline_s",): "StartingDeadlineSeconds",
    ("max_concurrency",): "MaxConcurrency",
    ("timeout_s",): "TimeoutSeconds",
    ("retry", "max_attempts"): "MaxAttempts",
    ("retry", "retry_exit_codes"): "RetryExitCodes",
    ("retry", "backoff_base_s"): "RetryBackoffSeconds",
    ("retry", "backoff_max_s"): "RetryBackoffMaxSeconds",
    ("s3_prefix",): "S3Prefix",
    ("s3_suffix",): "S3Suffix",
    ("event_pattern",): "EventPattern",
    ("environment",): "Environment",
    ("secrets",): "Secrets",
    ("allowed_env_overrides",): "AllowedEnvOverrides",
    ("local_command",): "LocalCommand",
    ("queue_mode",): "QueueMode",
    ("scaling", "min_tasks"): "MinTasks",
    ("scaling", "max_tasks"): "MaxTasks",
    ("scaling", "acceptable_latency_s"): "AcceptableLatencySeconds",
    ("scaling", "msg_processing_s"): "MessageProcessingSeconds",
    ("scaling", "messages_per_task"): "MessagesPerTask",
    ("scaling", "scale_in_window_s"): "ScaleInWindowSeconds",
    ("scaling", "idle_before_zero_s"): "IdleBeforeZeroSeconds",
    ("scaling",): "MinTasks",  # the scaling model's own rule: min_tasks <= max_tasks
}
_JSON_OBJECTS = ("environment", "secrets")

#: EventBridge Scheduler's MaximumEventAgeInSeconds range: jobs/job.yaml sets it from StartingDeadlineSeconds,
#: so a deadline outside it fails the deploy (admission itself takes any positive deadline).
DEADLINE_RANGE = (60, 86_400)

#: Fargate's CPU units → the memory (MiB) it allows: (lowest, highest, step).
FARGATE_MEMORY = {
    256: [(512, 512, 1), (1024, 2048, 1024)],
    512: [(1024, 4096, 1024)],
    1024: [(2048, 8192, 1024)],
    2048: [(4096, 16384, 1024)],
    4096: [(8192, 30720, 1024)],
    8192: [(16384, 61440, 4096)],
    16384: [(32768, 122880, 8192)],
}

# What stands in for the platform's values (the SSM platform parameter) in the assembled registry entry.
_PLATFORM_STAND_INS: dict[str, Any] = {
    "cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/validate",
    "container": "job",
    "subnets": "subnet-validate",
    "security_groups": "",
    "assign_public_ip": "DISABLED",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one job block: the line ``taskrunner validate`` prints."""

    logical_id: str
    job: str | None
    parameter: str | None
    message: str

    def line(self) -> str:
        who = f"{self.logical_id} ({self.job})" if self.job else self.logical_id
        return f"{who} {self.parameter}: {self.message}" if self.parameter else f"{who}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"logical_id": self.logical_id, "job": self.job, "parameter": self.parameter, "message": self.message}


@dataclass(frozen=True)
class Declaration:
    """A parameter as jobs/job.yaml declares it (the constraints CloudFormation enforces)."""

    name: str
    type: str
    default: str | None
    allowed_values: tuple[str, ...] = ()
    allowed_pattern: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    constraint: str | None = None

    @classmethod
    def of(cls, name: str, raw: Mapping[str, Any]) -> Declaration:
        default = raw.get("Default")
        return cls(
            name=name,
            type=str(raw.get("Type", "String")),
            default=None if default is None else _scalar_text(default),
            allowed_values=tuple(_scalar_text(v) for v in raw.get("AllowedValues", [])),
            allowed_pattern=raw.get("AllowedPattern"),
            min_value=_number_or_none(raw.get("MinValue")),
            max_value=_number_or_none(raw.get("MaxValue")),
            constraint=raw.get("ConstraintDescription"),
        )

    @property
    def is_list(self) -> bool:
        return self.type == "CommaDelimitedList" or self.type.startswith("List<")

    @property
    def is_number(self) -> bool:
        return self.type == "Number"


@dataclass(frozen=True)
class JobBlock:
    logical_id: str
    #: The nested template's path, as the block writes it (relative to the root template).
    location: str
    parameters: Mapping[str, Any]

    @property
    def job_name(self) -> str | None:
        name = self.parameters.get("JobName")
        return name if isinstance(name, str) else None


class _Unresolved:
    """A value CloudFormation computes at deploy time (``!Ref``, ``!Sub`` …): present, but not checkable here."""

    def __repr__(self) -> str:
        return "<intrinsic>"


UNRESOLVED = _Unresolved()


def _scalar_text(value: Any) -> str:
    """A YAML scalar as CloudFormation passes it to a nested stack: ``75`` → ``"75"``, ``true`` → ``"true"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _number_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = str(next(iter(value)))
    return key == "Ref" or key.startswith("Fn::")


def declarations(job_template: Mapping[str, Any]) -> dict[str, Declaration]:
    raw = job_template.get("Parameters") or {}
    return {name: Declaration.of(name, spec) for name, spec in raw.items() if isinstance(spec, dict)}


def is_job_template(template: Mapping[str, Any]) -> bool:
    return "JobName" in (template.get("Parameters") or {})


def nested_blocks(template: Mapping[str, Any]) -> list[JobBlock]:
    """Every nested stack of ``template`` whose template is a local file (a candidate job block)."""
    found = []
    resources = template.get("Resources") or {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        key = JOB_RESOURCE_TYPES.get(str(resource.get("Type")))
        props = resource.get("Properties") or {}
        location = props.get(key) if key and isinstance(props, dict) else None
        if isinstance(location, str) and not location.startswith(("https://", "http://", "s3://")):
            params = props.get("Parameters") or {}
            found.append(JobBlock(str(logical_id), location, params if isinstance(params, dict) else {}))
    return found


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice the user most likely meant: the same word in another case, else the closest spelling."""
    options = list(choices)
    for option in options:
        if option.lower() == word.lower():
            return option
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    hint = suggest(word, choices)
    return f" (did you mean {hint}?)" if hint else ""


# -------------------------------------------------------------------------------------------- one block


class _BlockCheck:
    def __init__(self, block: JobBlock, decls: Mapping[str, Declaration]) -> None:
        self.block = block
        self.decls = decls
        self.problems: list[Problem] = []
        #: Parameter → its value as text (YAML scalars stringified), or UNRESOLVED.
        self.values: dict[str, str | _Unresolved] = {}

    def problem(self, parameter: str | None, message: str) -> None:
        if parameter is not None and any(p.parameter == parameter for p in self.problems):
            return  # one line per parameter: the first thing wrong with it
        self.problems.append(Problem(self.block.logical_id, self.block.job_name, parameter, message))

    def run(self) -> list[Problem]:
        self._names_and_values()
        for name, value in self.values.items():
            if isinstance(value, str) and name in self.decls:
                self._constraints(self.decls[name], value)
        self._fargate_size()
        self._starting_deadline()
        self._suffix_needs_prefix()
        self._local_command()
        self._registry_entry()
        return self.problems

    def _names_and_values(self) -> None:
        for key, value in self.block.parameters.items():
            name = str(key)
            if name not in self.decls:
                self.problem(name, f"unknown parameter{_did_you_mean(name, self.decls)}")
            elif _is_intrinsic(value):
                self.values[name] = UNRESOLVED
            elif isinstance(value, (str, int, float, bool)):
                self.values[name] = _scalar_text(value)
            elif (
                isinstance(value, list)
                and self.decls[name].is_list
                and all(isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in value)
            ):
                # CloudFormation wants one comma-separated string; the intent of a YAML list is plain.
                self.problem(name, f"write a comma-separated string ({','.join(map(_scalar_text, value))}), not a list")
            else:
                self.problem(name, f"must be a single value, not a YAML {type(value).__name__}")
        for name, decl in self.decls.items():
            if decl.default is None and name not in self.block.parameters:
                self.problem(name, "is required")

    def _constraints(self, decl: Declaration, value: str) -> None:
        items = value.split(",") if decl.is_list else [value]
        why = f" ({decl.constraint.rstrip('.')})" if decl.constraint else ""
        for item in items:
            if decl.is_number:
                number = _number(item.strip())
                if number is None:
                    self.problem(decl.name, f"{item!r} is not a number")
                    return
                if decl.min_value is not None and number < decl.min_value:
                    self.problem(decl.name, f"{item} is below the minimum {_scalar_text(decl.min_value)}{why}")
                    return
                if decl.max_value is not None and number > decl.max_value:
                    self.problem(decl.name, f"{item} is above the maximum {_scalar_text(decl.max_value)}{why}")
                    return
            if decl.allowed_values and item not in decl.allowed_values:
                allowed = ", ".join(decl.allowed_values)
                self.problem(decl.name, f"{item!r} is not one of {allowed}{_did_you_mean(item, decl.allowed_values)}")
                return
            if decl.allowed_pattern is not None and not _full_match(decl.allowed_pattern, item):
                # The constraint's own words when job.yaml has them; the pattern is for machines.
                expected = f"expected {decl.constraint.rstrip('.')}" if decl.constraint else None
                self.problem(decl.name, f"{item!r}: {expected or f'does not match {decl.allowed_pattern}'}")
                return

    def _text(self, name: str) -> str | None:
        """The parameter's value (its default when the block leaves it out); None when not known here."""
        value = self.values.get(name)
        if value is None:
            decl = self.decls.get(name)
            return decl.default if decl else None
        return value if isinstance(value, str) else None

    def _fargate_size(self) -> None:
        cpu, memory = _number(self._text("Cpu") or ""), _number(self._text("Memory") or "")
        if cpu is None or memory is None or self._has_problem("Cpu", "Memory"):
            return
        ranges = FARGATE_MEMORY.get(int(cpu))
        if ranges is None:
            return  # AllowedValues said it
        if not any(low <= memory <= high and (memory - low) % step == 0 for low, high, step in ranges):
            allowed = "; ".join(f"{lo}" if lo == hi else f"{lo}-{hi} in steps of {st}" for lo, hi, st in ranges)
            self.problem("Memory", f"{_scalar_text(memory)} MiB is not a Fargate size for Cpu {int(cpu)} ({allowed})")

    def _starting_deadline(self) -> None:
        deadline = _number(self._text("StartingDeadlineSeconds") or "")
        low, high = DEADLINE_RANGE
        if deadline and not self._has_problem("StartingDeadlineSeconds") and not low <= deadline <= high:
            self.problem(
                "StartingDeadlineSeconds",
                f"a starting deadline is 0 (none) or {low}-{high} seconds (Scheduler's event age), not {deadline:g}",
            )

    def _suffix_needs_prefix(self) -> None:
        # jobs/job.yaml turns the S3 trigger on with S3Prefix only: a suffix alone would silently do nothing.
        if self._text("S3Suffix") and not self._text("S3Prefix") and self._known("S3Prefix"):
            self.problem("S3Suffix", "S3Suffix without S3Prefix: the S3 trigger is on only with a prefix")

    def _local_command(self) -> None:
        command = self._text("LocalCommand")
        if command:
            try:
                shlex.split(command)
            except ValueError as exc:
                self.problem("LocalCommand", f"{command!r} is not a command line: {exc}")

    def _has_problem(self, *names: str) -> bool:
        return any(p.parameter in names for p in self.problems)

    def _registry_entry(self) -> None:
        """Validate the entry jobs/job.yaml would write from these parameters, as the Lambdas will."""
        entry = self._entry()
        try:
            JobSpec.model_validate(entry)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                parameter = _parameter_of(tuple(str(part) for part in error["loc"]), error["msg"])
                message = _message(error["msg"])
                if parameter and message.startswith(f"{parameter} "):
                    message = message.removeprefix(f"{parameter} ")
                self.problem(parameter, message)

    def _entry(self) -> dict[str, Any]:
        def text(name: str) -> str:
            return self._text(name) or ""

        def number(name: str) -> int | float | None:
            return _number(text(name))

        entry: dict[str, Any] = dict(_PLATFORM_STAND_INS)
        name = self._text("JobName")
        entry["name"] = name if name is not None else "unresolved"
        entry["task_definition"] = f"validate-{entry['name']}"
        plain = {
            "capacity": "Capacity",
            "schedule": "ScheduleExpression",
            "schedule_timezone": "ScheduleTimezone",
            "overlap": "OverlapPolicy",
            "s3_prefix": "S3Prefix",
            "s3_suffix": "S3Suffix",
            "event_pattern": "EventPattern",
            "allowed_env_overrides": "AllowedEnvOverrides",
            "local_command": "LocalCommand",
            "queue_mode": "QueueMode",
        }
        for field, parameter in plain.items():
            if self._known(parameter):
                entry[field] = text(parameter)
        numbers = {"starting_deadline_s": "StartingDeadlineSeconds", "max_concurrency": "MaxConcurrency"}
        numbers |= {"timeout_s": "TimeoutSeconds"}
        entry |= {field: number(p) for field, p in numbers.items() if self._known(p) and number(p) is not None}
        retry: dict[str, Any] = {}
        for field, parameter in [
            ("max_attempts", "MaxAttempts"),
            ("backoff_base_s", "RetryBackoffSeconds"),
            ("backoff_max_s", "RetryBackoffMaxSeconds"),
        ]:
            if self._known(parameter) and number(parameter) is not None:
                retry[field] = number(parameter)
        if self._known("RetryExitCodes"):
            retry["retry_exit_codes"] = text("RetryExitCodes")
        entry["retry"] = retry
        scaling_fields = [(key[1], p) for key, p in FIELD_PARAMETERS.items() if key[0] == "scaling" and len(key) == 2]
        entry["scaling"] = {
            field: number(parameter)
            for field, parameter in scaling_fields
            if self._known(parameter) and number(parameter) is not None
        }
        for field, parameter in (("environment", "Environment"), ("secrets", "Secrets")):
            if self._known(parameter) and text(parameter).strip():
                try:
                    entry[field] = json.loads(text(parameter))
                except ValueError as exc:
                    self.problem(parameter, f"is not JSON: {exc}")
        if entry.get("s3_prefix"):
            entry["s3_bucket"] = "validate-bucket"
        if entry.get("queue_mode", "none") != "none":
            entry["queue_url"] = "https://sqs.us-east-1.amazonaws.com/123456789012/validate"
            entry["service"] = "validate-workers" if entry["queue_mode"] == "service" else ""
        return entry

    def _known(self, parameter: str) -> bool:
        """Whether the parameter's value is known and not already reported (one line per parameter)."""
        return not isinstance(self.values.get(parameter), _Unresolved) and not self._has_problem(parameter)


def _full_match(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value, flags=re.DOTALL) is not None
    except re.error:
        return True  # a pattern Python cannot read is CloudFormation's to apply


def _parameter_of(loc: tuple[str, ...], message: str) -> str | None:
    for length in range(len(loc), 0, -1):
        if loc[:length] in FIELD_PARAMETERS:
            return FIELD_PARAMETERS[loc[:length]]
    # A rule of the whole entry: the parameter its message names first.
    named = [(message.find(key[0]), p) for key, p in FIELD_PARAMETERS.items() if len(key) == 1 and "_" in key[0]]
    found = sorted((at, parameter) for at, parameter in named if at >= 0)
    return found[0][1] if found else None


def _message(msg: str) -> str:
    """pydantic's message, in the block's words: entry field names become the parameters they come from."""
    text = msg.removeprefix("Value error, ")
    for key, parameter in FIELD_PARAMETERS.items():
        if "_" in key[-1]:
            text = re.sub(rf"\b{re.escape(key[-1])}\b", parameter, text)
    return text


def entry_problems(raw: str | bytes | Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """What is wrong with a registry entry, as (parameter of jobs/job.yaml, message) pairs: one per problem.

    The entry's own model decides (:class:`JobSpec`); this only says it in the block's words, so an entry that
    changed after deploy (by hand, or a demo) is reported as ``ScheduleTimezone: unknown time zone …``.
    """
    try:
        if isinstance(raw, Mapping):
            JobSpec.model_validate(dict(raw))
        else:
            JobSpec.model_validate_json(raw)
    except ValidationError as exc:
        found: list[tuple[str | None, str]] = []
        for error in exc.errors(include_url=False):
            parameter = _parameter_of(tuple(str(part) for part in error["loc"]), error["msg"])
            message = _message(error["msg"])
            if parameter and message.startswith(f"{parameter} "):
                message = message.removeprefix(f"{parameter} ")
            found.append((parameter, " ".join(message.split())))
        return found
    return []


# -------------------------------------------------------------------------------------------- every block


def check_block(block: JobBlock, decls: Mapping[str, Declaration]) -> list[Problem]:
    return _BlockCheck(block, decls).run()


def check_blocks(blocks: Iterable[tuple[JobBlock, Mapping[str, Declaration]]]) -> list[Problem]:
    """Every block on its own, then what must hold across blocks: unique job names and EFS folders."""
    problems: list[Problem] = []
    first_of: dict[tuple[str, str], str] = {}
    for block, decls in blocks:
        problems += check_block(block, decls)
        for parameter in ("JobName", "EfsPath"):
            value = block.parameters.get(parameter)
            if not isinstance(value, str) or not value:
                continue
            earlier = first_of.setdefault((parameter, value), block.logical_id)
            if earlier != block.logical_id:
                what = "job names are unique in a stack" if parameter == "JobName" else "each job's folder is its own"
                problems.append(
                    Problem(block.logical_id, block.job_name, parameter, f"{value!r} is also {earlier}'s: {what}")
                )
    return problems
