"""``taskrunner simulate ...`` and ``taskrunner local ...``: every argument after the name goes to the tool's own
parser, ``-h`` included. Global options given before the name are passed on where the tool has them
(``--json`` to both, ``--stack`` to local mode) and refused where it does not, with why."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from taskrunner.cli.errors import EXIT_FAILED, EXIT_USAGE, CliError

DELEGATES = {
    "simulate": ("taskrunner.sim.cli", "replay a traffic scenario through the scaling policies (see `simulate -h`)"),
    "local": ("taskrunner.local.runner", "run the whole system on this machine against an embedded AWS"),
}
#: Global options each tool takes itself, as it spells them.
PASSED_ON = {"simulate": ("json",), "local": ("json", "stack")}
WHY_NOT = {
    "simulate": "the simulator needs no AWS target",
    "local": "local mode runs its own embedded AWS",
}


def add_parsers(sub: Any) -> None:
    for name, (_, help_text) in DELEGATES.items():
        # No options of their own: every argument after the name goes to the tool's parser, -h included.
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(needs_target=False)


def argv_for(command: str, given: dict[str, Any], extras: list[str]) -> list[str]:
    """The tool's arguments: global options given before the command's name that it takes, then the rest."""
    refused = [f"--{name}" for name in given if name not in PASSED_ON[command]]
    if refused:
        raise CliError(f"{', '.join(refused)} does not apply to `{command}`: {WHY_NOT[command]}", EXIT_USAGE)
    argv: list[str] = []
    for name, value in given.items():
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return argv + extras


def delegate(args: argparse.Namespace, given: dict[str, Any], extras: list[str]) -> int:
    command: str = args.command
    module_name, _ = DELEGATES[command]
    argv = argv_for(command, given, extras)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise CliError(f"`taskrunner {command}` is not part of this installation ({exc})", EXIT_FAILED) from exc
        if exc.name and not exc.name.startswith("taskrunner"):
            raise CliError(f"`taskrunner {command}` needs {exc.name}: install taskrunner[cli]", EXIT_FAILED) from exc
        raise
    entry: Callable[[list[str]], int] = module.main
    return int(entry(argv) or 0)
