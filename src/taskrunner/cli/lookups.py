"""Finding what the user named: a job (with "did you mean"), a run by its id or a short prefix of it."""

from __future__ import annotations

import difflib
import re

from taskrunner.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError
from taskrunner.cli.target import Target
from taskrunner.domain.errors import UnknownJob
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec
from taskrunner.domain.runs import RUN_ID_LENGTH, Run

RUN_ID = re.compile(rf"^[0-9a-f]{{{RUN_ID_LENGTH}}}$")
#: A short run id, as the runs table shows on a terminal (8 characters); 6 is the least that is looked up.
RUN_PREFIX = re.compile(rf"^[0-9a-f]{{6,{RUN_ID_LENGTH - 1}}}$")
SHORT_ID = 8
#: How many of each job's newest runs a short id is looked for among.
PREFIX_SEARCH = 500


def job_names(target: Target) -> list[str]:
    """Every job in the registry, valid or not (an invalid entry is still a job the user may name)."""
    registry = target.registry()
    return sorted({spec.name for spec in registry.all()} | set(registry.invalid()))


def did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f": did you mean {' or '.join(close)}?" if close else ""


def unknown_job(target: Target, job: str) -> CliError:
    return CliError(f"unknown job '{job}' in stack '{target.stack}'{did_you_mean(job, job_names(target))}", EXIT_USAGE)


def job_spec(target: Target, job: str) -> JobSpec:
    """The job's registry entry; an unknown job exits 2 with the closest names, an invalid entry exits 1."""
    try:
        return target.registry().get(job)
    except UnknownJob as exc:
        raise unknown_job(target, job) from exc
    except InvalidJobSpec as exc:
        raise CliError(f"job '{job}' has an invalid registry entry: {exc}", EXIT_FAILED) from exc


def _by_prefix(target: Target, prefix: str) -> Run | None:
    matches = [run for run in target.store().newest(job_names(target), PREFIX_SEARCH) if run.run_id.startswith(prefix)]
    unique = {run.run_id: run for run in matches}
    if len(unique) > 1:
        listed = ", ".join(sorted(unique)[:5])
        raise CliError(f"run id '{prefix}' is ambiguous: {listed}; give more characters", EXIT_USAGE)
    return next(iter(unique.values()), None)


def find_run(target: Target, ref: str) -> Run:
    """A run by its full id, or by a prefix of at least 6 characters among each job's newest runs."""
    ref = ref.strip().lower()
    run = None
    if RUN_ID.match(ref):
        run = target.store().get(ref)
    elif RUN_PREFIX.match(ref):
        run = _by_prefix(target, ref)
    if run is None:
        raise CliError(f"no run '{ref}' in stack '{target.stack}'", EXIT_USAGE)
    return run


def run_or_job(target: Target, ref: str) -> Run | JobSpec:
    """What a RUN_ID|JOB argument names: a run id first (exact), then a job, then a short run id."""
    if RUN_ID.match(ref) and (run := target.store().get(ref)) is not None:
        return run
    try:
        return target.registry().get(ref)
    except UnknownJob:
        pass
    except InvalidJobSpec as exc:
        raise CliError(f"job '{ref}' has an invalid registry entry: {exc}", EXIT_FAILED) from exc
    if RUN_PREFIX.match(ref) and (run := _by_prefix(target, ref)) is not None:
        return run
    if RUN_ID.match(ref) or RUN_PREFIX.match(ref):
        raise CliError(f"no run or job '{ref}' in stack '{target.stack}'", EXIT_USAGE)
    raise unknown_job(target, ref)
