"""``taskrunner validate [TEMPLATE]``: every job block of the template, checked before anything deploys.

The rules live in :mod:`taskrunner.domain.jobcheck` (and, through it, in the registry entry's model the
Lambdas use); this module reads the files and prints one line per problem, naming the job's logical id, its
JobName and the parameter. ``make build``, the template test tier and ``taskrunner local`` run the same check.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_FAILED, EXIT_OK
from taskrunner.domain.jobcheck import (
    Declaration,
    JobBlock,
    Problem,
    check_blocks,
    declarations,
    is_job_template,
    nested_blocks,
)
from taskrunner.local.cfn_yaml import load

DEFAULT_TEMPLATE = Path("template.yaml")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "validate",
        parents=[common],
        help="check every job block of the template (before sam build, deploy or taskrunner local)",
        description="Check every job block (the nested jobs/job.yaml applications) of TEMPLATE with the rules "
        "the Lambdas apply to a registry entry and the constraints CloudFormation applies on deploy: "
        "one line per problem, exit code 1 if there is any.",
    )
    parser.add_argument("template", nargs="?", type=Path, default=DEFAULT_TEMPLATE, metavar="TEMPLATE")
    parser.set_defaults(handler=handle, needs_target=False)


class TemplateUnreadable(Exception):
    """The template (or a job template it names) cannot be read as CloudFormation YAML: one line why."""


def _read(path: Path) -> dict[str, Any]:
    try:
        return load(path)
    except FileNotFoundError:
        raise TemplateUnreadable(f"{path}: no such file") from None
    except OSError as exc:
        raise TemplateUnreadable(f"{path}: {exc.strerror}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise TemplateUnreadable(f"{where}: not YAML: {exc.problem or exc}") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise TemplateUnreadable(f"{path}: {' '.join(str(exc).split())}") from None


def find_problems(template_path: Path) -> tuple[list[JobBlock], list[Problem]]:
    """The template's job blocks and what is wrong with them. Raises TemplateUnreadable."""
    template = _read(template_path)
    base = template_path.parent
    job_templates: dict[Path, dict[str, Declaration] | None] = {}
    checked: list[tuple[JobBlock, dict[str, Declaration]]] = []
    problems: list[Problem] = []
    for block in nested_blocks(template):
        location = (base / block.location).resolve()
        if location not in job_templates:
            try:
                nested = _read(location)
            except TemplateUnreadable as exc:
                problems.append(Problem(block.logical_id, block.job_name, None, str(exc)))
                job_templates[location] = None
                continue
            job_templates[location] = declarations(nested) if is_job_template(nested) else None
        decls = job_templates[location]
        if decls is not None:
            checked.append((block, decls))
    return [block for block, _ in checked], problems + check_blocks(checked)


def problem_lines(template_path: Path) -> list[str]:
    """The lines ``taskrunner validate`` prints for the template's problems (empty when it is clean)."""
    try:
        _, problems = find_problems(template_path)
    except TemplateUnreadable as exc:
        return [str(exc)]
    return [f"{template_path}: {problem.line()}" for problem in problems]


def handle(args: argparse.Namespace, _target: object) -> int:
    path: Path = args.template
    try:
        blocks, problems = find_problems(path)
    except TemplateUnreadable as exc:
        if args.json:
            output.json_line({"template": str(path), "valid": False, "error": str(exc)})
        else:
            output.err(f"taskrunner validate: {exc}")
        return EXIT_FAILED
    if args.json:
        for problem in problems:
            output.json_line({"template": str(path), **problem.as_dict()})
        output.json_line({"template": str(path), "jobs": len(blocks), "problems": len(problems), "valid": not problems})
    elif problems:
        for problem in problems:
            output.err(f"{path}: {problem.line()}")
        output.err(f"{path}: {len(problems)} problem(s) in {len(blocks)} job block(s)")
    else:
        names = ", ".join(block.job_name or block.logical_id for block in blocks)
        print(f"{path}: {len(blocks)} job block(s) valid ({names})")
    return EXIT_FAILED if problems else EXIT_OK
