"""EventBridge event-pattern matching, so a bare event can be routed to the jobs whose rule would match it.

Covers the documented content filters: exact values, ``prefix``, ``suffix``, ``anything-but``,
``numeric``, ``exists``, ``equals-ignore-case`` and ``wildcard``, nested objects, and arrays in the
event (a field matches if any element matches). ``$or`` is supported at any level.
"""

from __future__ import annotations

import re
from typing import Any

_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """True when ``event`` matches the EventBridge ``pattern``."""
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
            continue
        present = isinstance(event, dict) and key in event
        value = event.get(key) if isinstance(event, dict) else None
        if isinstance(expected, dict):
            if not present or not isinstance(value, dict) or not matches(expected, value):
                return False
        elif not _field_matches(expected, present, value):
            return False
    return True


def _field_matches(filters: list[Any], present: bool, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    for flt in filters:
        if isinstance(flt, dict) and "exists" in flt:
            if flt["exists"] == present:
                return True
            continue
        if present and any(_value_matches(flt, v) for v in values):
            return True
    return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    # EventBridge: "*" is the only special character ("\\*" is a literal star).
    parts = re.split(r"(?<!\\)\*", pattern)
    return re.compile(".*".join(re.escape(p.replace("\\*", "*")) for p in parts), re.DOTALL)


def _affix(value: Any, arg: Any, *, prefix: bool) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(arg, dict) and "equals-ignore-case" in arg:
        value, arg = value.lower(), str(arg["equals-ignore-case"]).lower()
    if not isinstance(arg, str):
        return False
    return bool(value.startswith(arg) if prefix else value.endswith(arg))


def _value_matches(flt: Any, value: Any) -> bool:
    if not isinstance(flt, dict):
        # JSON values: true is not 1 (Python's True == 1 is)
        return bool(flt == value) and isinstance(flt, bool) == isinstance(value, bool)
    (op, arg), *_ = flt.items()
    if op == "prefix":
        return _affix(value, arg, prefix=True)
    if op == "suffix":
        return _affix(value, arg, prefix=False)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if op == "wildcard":
        return isinstance(value, str) and _wildcard(str(arg)).fullmatch(value) is not None
    if op == "anything-but":
        if isinstance(arg, dict):
            return not _value_matches(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return value not in excluded
    if op == "numeric":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        pairs = list(zip(arg[::2], arg[1::2], strict=True))
        return all(_NUMERIC_OPS[o](value, bound) for o, bound in pairs)
    return False
