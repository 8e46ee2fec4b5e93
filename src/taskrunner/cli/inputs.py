"""What commands read from the user: ``--env`` pairs, event and messages files, durations and times."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from taskrunner.cli.errors import EXIT_USAGE, CliError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_env(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["K=V", ...]`` → a dict; the value may itself contain "=" and may be empty."""
    env: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--env expects NAME=VALUE, got {pair!r}", EXIT_USAGE)
        env[name] = value
    return env


def read_text(path: str, what: str, stdin: TextIO | None = None) -> str:
    """A file's text, or stdin for "-"."""
    if path == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}", EXIT_USAGE) from exc


def read_event(path: str) -> Any:
    text = read_text(path, "event file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        name = "stdin" if path == "-" else path
        raise CliError(f"{name} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", EXIT_USAGE) from exc


@dataclass(frozen=True)
class Message:
    line: int
    body: str


def read_messages(path: str) -> list[Message]:
    """One message per non-empty line, each valid JSON, all checked before anything is sent."""
    messages: list[Message] = []
    for number, raw in enumerate(read_text(path, "messages file").splitlines(), start=1):
        body = raw.strip()
        if not body:
            continue
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            name = "stdin" if path == "-" else path
            raise CliError(
                f"{name} line {number} is not valid JSON: {exc.msg} (column {exc.colno}); nothing was sent",
                EXIT_USAGE,
            ) from exc
        messages.append(Message(number, body))
    return messages


def duration_s(value: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` → seconds (argparse type: raises ValueError)."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration such as 30s, 15m, 2h or 1d, not {value!r}")
    return float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]


def since_time(value: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``15m``, ``2h``) or a time (``2026-11-26T05:00``, UTC unless it says)."""
    try:
        return (now or datetime.now(UTC)) - timedelta(seconds=duration_s(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"expected a duration (15m, 2h, 1d) or an ISO time (2026-11-26T05:00), not {value!r}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
