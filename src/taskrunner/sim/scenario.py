"""The scenario file of ``taskrunner simulate`` (docs/scenarios.md documents it; samples in scenarios/).

Arrivals are piecewise-constant Poisson rates, plus an optional ``arrivals_csv`` trace of
``t,count`` rows (path relative to the scenario file): ``count`` messages arrive spread uniformly
over ``[t, next t)``; the last row's bucket is as wide as the one before it (1 s if it is alone).
A header row is allowed. Segments and trace add up; arrivals at or after ``duration_s`` are dropped.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from taskrunner.domain.floors import ScheduledFloor, parse_floors


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not match the contract."""


class ArrivalSegment(BaseModel, frozen=True):
    from_s: float = Field(ge=0)
    to_s: float
    rate_per_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to_s < self.from_s:
            raise ValueError(f"to_s ({self.to_s}) is before from_s ({self.from_s})")
        return self


class Processing(BaseModel, frozen=True):
    mean: float = Field(gt=0)
    cv: float = Field(default=0.0, ge=0)


class StartLatency(BaseModel, frozen=True):
    min: float = Field(default=40, ge=0)
    max: float = Field(default=90, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max < self.min:
            raise ValueError(f"start_latency_s.max ({self.max}) is below min ({self.min})")
        return self


class Scenario(BaseModel):
    # Unknown keys (a "description", say) are ignored so newer files still load.
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1)
    duration_s: float = Field(gt=0)
    seed: int
    arrivals: tuple[ArrivalSegment, ...] = ()
    arrivals_csv: str | None = None
    processing_s: Processing
    start_latency_s: StartLatency = StartLatency()
    acceptable_latency_s: float = Field(gt=0)
    max_tasks: int = Field(ge=1)
    messages_per_task: int = Field(default=1, ge=1)
    visibility_timeout_s: float = Field(default=30, gt=0)  # SQS default
    billing_minimum_s: float = Field(default=60, ge=0)  # Fargate per-second billing, 1-minute minimum
    #: taskrunner's scheduled floors (jobs/job.yaml ScheduledFloors, the same text or list), evaluated on the
    #: wall clock: simulated t = 0 is ``clock_start_s`` (epoch seconds; 0 is 1970-01-01T00:00Z, a Thursday).
    scheduled_floors: Annotated[tuple[ScheduledFloor, ...], BeforeValidator(parse_floors)] = ()
    clock_start_s: float = 0.0

    _trace: tuple[tuple[float, int], ...] = PrivateAttr(default=())

    @property
    def trace(self) -> tuple[tuple[float, int], ...]:
        """The ``arrivals_csv`` rows, read when the scenario was loaded."""
        return self._trace

    def with_trace(self, rows: tuple[tuple[float, int], ...]) -> Scenario:
        copy = self.model_copy()
        copy._trace = rows
        return copy


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every failure is a :class:`ScenarioError` with one line."""
    path = Path(path)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
    return parse_scenario(data, base_dir=path.parent, source=str(path))


def parse_scenario(data: Any, base_dir: Path | None = None, source: str = "scenario") -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ScenarioError(f"{source}: {where}: {first['msg']}") from None
    if scenario.arrivals_csv is None:
        return scenario
    csv_path = Path(scenario.arrivals_csv)
    if not csv_path.is_absolute():
        csv_path = (base_dir or Path.cwd()) / csv_path
    return scenario.with_trace(_read_trace(csv_path, source))


def _read_trace(path: Path, source: str) -> tuple[tuple[float, int], ...]:
    rows: list[tuple[float, int]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or not "".join(row).strip():
                    continue
                try:
                    t, count = float(row[0]), int(float(row[1]))
                except (ValueError, IndexError):
                    if lineno == 1:
                        continue  # header
                    raise ScenarioError(f"{source}: {path}:{lineno}: expected 't,count'") from None
                if t < 0 or count < 0 or not math.isfinite(t):
                    raise ScenarioError(f"{source}: {path}:{lineno}: t and count must be >= 0")
                rows.append((t, count))
    except OSError as exc:
        raise ScenarioError(f"{source}: arrivals_csv: cannot read {path}: {exc.strerror}") from None
    rows.sort()
    return tuple(rows)


def generate_arrivals(scenario: Scenario) -> list[float]:
    """Arrival times, sorted; the same for every policy run on this scenario."""
    rng = random.Random(f"{scenario.seed}/arrivals")
    times: list[float] = []
    end = scenario.duration_s
    for seg in scenario.arrivals:
        if seg.rate_per_s <= 0:
            continue
        t = seg.from_s
        stop = min(seg.to_s, end)
        while True:
            t += rng.expovariate(seg.rate_per_s)
            if t >= stop:
                break
            times.append(t)
    trace = scenario.trace
    for i, (t0, count) in enumerate(trace):
        width = _bucket_width(trace, i)
        times.extend(t for t in (t0 + rng.random() * width for _ in range(count)) if t < end)
    times.sort()
    return times


def _bucket_width(trace: tuple[tuple[float, int], ...], i: int) -> float:
    """A row's bucket runs to the next row; the last one is as wide as the one before it."""
    if i + 1 < len(trace):
        width = trace[i + 1][0] - trace[i][0]
    elif i > 0:
        width = trace[i][0] - trace[i - 1][0]
    else:
        width = 1.0
    return max(width, 1e-3)


def generate_processing(scenario: Scenario, n: int) -> list[float]:
    """Lognormal processing times with the scenario's mean and coefficient of variation."""
    rng = random.Random(f"{scenario.seed}/processing")
    mean, cv = scenario.processing_s.mean, scenario.processing_s.cv
    if cv == 0:
        return [mean] * n
    sigma2 = math.log1p(cv * cv)
    mu, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
    return [rng.lognormvariate(mu, sigma) for _ in range(n)]
