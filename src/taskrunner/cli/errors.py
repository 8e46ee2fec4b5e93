"""Exit codes and the one expected-failure exception every command raises.

A :class:`CliError` is printed by :func:`taskrunner.cli.main.main` as ``taskrunner COMMAND: message`` on stderr,
one line per problem, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
#: The operation ran and failed (messages not sent, the handler raised, an AWS call was refused, nothing to stop).
EXIT_FAILED = 1
#: Bad input: arguments, files, an unknown job, run or function, an environment override the job refuses.
EXIT_USAGE = 2
#: The target cannot be reached: no local stack, no such stack, no usable credentials or region.
EXIT_TARGET = 3
#: ``taskrunner status`` ran, and something needs attention (a dead letter, an alarm, an invalid registry entry).
EXIT_ATTENTION = 4
#: Ctrl-C.
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: each line printed on stderr, the exit code as given."""

    def __init__(self, message: str | Sequence[str], exit_code: int = EXIT_FAILED) -> None:
        lines = [message] if isinstance(message, str) else list(message)
        # Messages quote AWS errors, which may span lines: one problem is always one line.
        self.lines = [" ".join(line.split()) for line in lines]
        super().__init__("; ".join(self.lines))
        self.exit_code = exit_code
