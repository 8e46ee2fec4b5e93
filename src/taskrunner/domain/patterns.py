"""EventBridge event patterns: one matcher, one validator, both with the semantics of AWS's event-ruler.

The Dispatcher routes bare events with :func:`matches` and re-checks event-triggered requests against
their job's pattern, so a divergence from EventBridge is either a job that silently never runs or an
event that runs a job its rule would not have delivered. The behaviour follows the EventBridge user
guide (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html and the pages
it links) and, where the guide is silent, event-ruler (https://github.com/aws/event-ruler), the
library EventBridge's matching is published as. ``tests/unit/eventbridge_conformance.json`` holds the
documents' examples; ``benchmarks/pattern_conformance.py`` runs them through every implementation.

Why not a library: on that table (137 match cases, 33 invalid patterns) this module passes 170 of
170, moto's ``EventPattern`` (moto 5.2.5, already a dependency) 129 and LocalStack's
``EventRuleEngine`` (localstack-core 2026.3.0) 150. Both take ``1`` for ``true``; moto does not
descend into arrays of objects at all and accepts 29 of the 33 invalid patterns; LocalStack does
descend but without array consistency (it matches ``firstName`` and ``lastName`` from different
employees), its ``*`` needs at least one character and ``\\*`` is not a literal star. Array
consistency is what the Dispatcher's re-check relies on, so the matcher is ours (``event-ruler`` on
PyPI has no distribution this platform can install).

Semantics worth knowing (each has a test):

* A field matches if any of its values matches any value in the event; arrays in the event are
  flattened, and a nested pattern is matched against each object of an array of objects, all of its
  fields against the same object (event-ruler's "array consistency").
* JSON types are distinct: ``true`` is not ``1`` and ``"1"`` is not ``1``. Numbers are compared as
  IEEE-754 doubles when the value is exactly one (event-ruler's ``ComparableNumber``), so ``300``
  matches ``300.0``; a number no double holds exactly (``2**53 + 1``) only equals itself and never
  satisfies ``numeric``.
* ``exists`` looks at leaves: ``null`` exists, an object or an empty array does not. Inside an array
  of objects, ``{"exists": false}`` is judged in the element the other fields matched in when one of
  them sorts before it (event-ruler walks fields in name order), otherwise across the whole array.
* An exact string that is an IP address matches the same address in any spelling, as in event-ruler.
* Invalid patterns (see :func:`validate_pattern`) match nothing: EventBridge refuses to create such
  a rule, so no event could arrive through it.

Not followed: event-ruler's flattening of dotted keys (``{"a.b": [1]}`` matching ``{"a": {"b": 1}}``,
which its README says not to rely on) and its undocumented ``exactly`` operator (an unknown operator
here). Cost is linear in pattern x event size: no pattern is expanded into its ``$or`` combinations
(only ``$or`` groups that name the same field as their siblings are distributed, bounded by
EventBridge's 1000-combination limit), wildcards are matched with ``str.find`` (no regex, no
backtracking), and recursion follows the pattern's depth, never the event's.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

__all__ = ["matches", "validate_pattern"]

#: EventBridge refuses patterns whose ``$or`` expand to more rules than this (PutRule, TestEventPattern).
MAX_COMBINATIONS = 1000

_OPERATORS = ("prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr")
# event-ruler's RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP: none may name a field inside ``$or``.
_RESERVED_IN_OR = frozenset(
    [
        *_OPERATORS,
        *("exactly", "=", "<", "<=", ">", ">=", "regex", "not-wildcard", "not-equals-ignore-case"),
        *("date-after", "date-on-or-after", "date-before", "date-on-or-before", "in-date-range"),
        *("ip-address-in-range", "ip-address-not-in-range"),
    ]
)
# event-ruler only hands strings that look like addresses to InetAddress (which would resolve hostnames).
_IPV4 = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_IPV6 = re.compile(r"[0-9a-fA-F:]*:[0-9a-fA-F:]*")
_AFFIXES = "prefix, suffix, equals-ignore-case, wildcard"
_MISSING: Any = object()
_EMPTY: dict[str, Any] = {}

Test = Callable[[Any], bool]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


# --------------------------------------------------------------------------- public entry points


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """True when ``event`` matches the EventBridge ``pattern`` (an invalid pattern matches nothing)."""
    compiled = _compiled(pattern)
    if compiled is None or not isinstance(event, dict):
        return False
    raws: list[Any] = [_MISSING] * (compiled.depth + 1)
    return _match_object(compiled.root, event, raws, {})


def validate_pattern(pattern: object) -> list[str]:
    """Every reason EventBridge's PutRule would refuse ``pattern``, one readable line each (none: valid)."""
    return _Compiler().compile(pattern).problems


# --------------------------------------------------------------------------- compiled form


@dataclass(eq=False)
class _Leaf:
    path: tuple[str, ...]
    tests: list[Test] = field(default_factory=list)
    #: ``{"exists": false}`` is one of the field's values.
    absent_ok: bool = False
    #: 0: absence is judged in the object at hand; d: across everything under the field at depth d.
    anchor: int = 0


@dataclass(eq=False)
class _Group:
    """One ``$or``: the object matches if any alternative does."""

    alternatives: list[_Obj]


@dataclass(eq=False)
class _Obj:
    #: Fields and ``$or`` groups in document order (a later field overrides an earlier one of the same name).
    items: list[tuple[str, _Obj | _Leaf] | _Group] = field(default_factory=list)
    depth: int = 0
    path: tuple[str, ...] = ()

    def fields(self) -> Iterator[tuple[str, _Obj | _Leaf]]:
        return (item for item in self.items if not isinstance(item, _Group))

    def groups(self) -> Iterator[_Group]:
        return (item for item in self.items if isinstance(item, _Group))


@dataclass
class _Compiled:
    root: _Obj
    problems: list[str]
    depth: int = 0


@lru_cache(maxsize=512)
def _compiled_from_key(key: str) -> _Compiled | None:
    result = _Compiler().compile(json.loads(key))
    return None if result.problems else result


def _compiled(pattern: object) -> _Compiled | None:
    # Patterns are small and reused for every event: compile once, keyed by their JSON (key order
    # included: of two leaves with one name the later wins).
    try:
        key = json.dumps(pattern, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        result = _Compiler().compile(pattern)
        return None if result.problems else result
    return _compiled_from_key(key)


# --------------------------------------------------------------------------- compiler and validator


class _Compiler:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def compile(self, pattern: object) -> _Compiled:
        if not isinstance(pattern, dict):
            self.problems.append(f"a pattern must be a JSON object, got {_json_type(pattern)}")
            return _Compiled(_Obj(), self.problems)
        try:
            root = self._object(pattern, (), "", in_or=False)
        except RecursionError:
            self.problems.append("the pattern nests too deeply")
            return _Compiled(_Obj(), self.problems)
        if not self.problems and _combinations(root) > MAX_COMBINATIONS:
            self.problems.append(f"$or expands to over {MAX_COMBINATIONS} rule combinations, EventBridge's limit")
        if self.problems:
            return _Compiled(root, self.problems)
        root = _normalise(root)
        depth = _place(root, 0, ())
        _anchor_absences(root)
        return _Compiled(root, self.problems, depth)

    def _problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where or 'pattern'}: {what}")

    def _object(self, pattern: dict[Any, Any], path: tuple[str, ...], where: str, *, in_or: bool) -> _Obj:
        node = _Obj(path=path)
        if not pattern:
            self._problem(where, "an empty object is not a pattern (EventBridge refuses it)")
        for key, value in pattern.items():
            here = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str):
                self._problem(where, f"field names must be strings, got {_json_type(key)}")
                continue
            if key == "$or" and _is_or_relationship(value):
                alternatives = [self._object(alt, path, f"{here}[{i}]", in_or=True) for i, alt in enumerate(value)]
                node.items.append(_Group(alternatives))
                continue
            if key == "$or" and isinstance(value, list):
                # event-ruler reads an "$or" that is not an Or (fewer than two objects, operator names
                # inside) as a field called "$or": accept that only if it is a valid field.
                trial = _Compiler()
                leaf = trial._leaf(value, (*path, key), here)
                if trial.problems:
                    self._problem(here, _why_not_or(value))
                    continue
                node.items.append((key, leaf))
                continue
            if in_or and key in _RESERVED_IN_OR:
                self._problem(here, f"'{key}' is an operator, so it cannot name a field inside $or")
                continue
            if isinstance(value, dict):
                node.items.append((key, self._object(value, (*path, key), here, in_or=in_or)))
            elif isinstance(value, list):
                node.items.append((key, self._leaf(value, (*path, key), here)))
            else:
                self._problem(here, f"a pattern's values must be arrays (or objects to nest), got {_json_type(value)}")
        return node

    def _leaf(self, values: list[Any], path: tuple[str, ...], where: str) -> _Leaf:
        leaf = _Leaf(path=path)
        if not values:
            self._problem(where, "an empty array matches nothing (EventBridge refuses it)")
        for value in values:
            if isinstance(value, dict):
                test = self._operator(value, where)
                if test is _absent:
                    leaf.absent_ok = True
                elif test is not None:
                    leaf.tests.append(test)
            elif value is None or isinstance(value, str | bool | int | float):
                if isinstance(value, float) and not math.isfinite(value):
                    self._problem(where, f"{value} is not a JSON number")
                    continue
                leaf.tests.append(_exact(value))
            else:
                self._problem(
                    where, f"values must be strings, numbers, true, false, null or an operator, got {_json_type(value)}"
                )
        return leaf

    def _operator(self, expression: dict[Any, Any], where: str) -> Test | None:
        if len(expression) != 1:
            names = ", ".join(map(str, expression)) or "none"
            self._problem(where, f"an operator object holds exactly one operator, got {len(expression)} ({names})")
            return None
        ((op, arg),) = expression.items()
        match op:
            case "prefix" | "suffix":
                return self._affix(op, arg, where)
            case "equals-ignore-case":
                if not isinstance(arg, str):
                    self._problem(where, f"equals-ignore-case needs a string, got {_json_type(arg)}")
                    return None
                return _ignore_case_test(arg, "equals")
            case "wildcard":
                segments = self._wildcard(arg, where, "wildcard")
                return None if segments is None else _wildcard_test(segments)
            case "anything-but":
                return self._anything_but(arg, where)
            case "numeric":
                return self._numeric(arg, where)
            case "exists":
                if not isinstance(arg, bool):
                    self._problem(where, f"exists needs true or false, got {_json(arg)}")
                    return None
                return _present if arg else _absent
            case "cidr":
                network = self._cidr(arg, where)
                return None if network is None else _cidr_test(network)
        self._problem(where, f"unknown operator {_json(op)} (EventBridge knows {', '.join(_OPERATORS)})")
        return None

    def _affix(self, op: str, arg: Any, where: str) -> Test | None:
        if isinstance(arg, dict) and list(arg) == ["equals-ignore-case"] and isinstance(arg["equals-ignore-case"], str):
            return _ignore_case_test(arg["equals-ignore-case"], op)
        if isinstance(arg, dict):
            self._problem(where, f'{op} takes a string or {{"equals-ignore-case": string}}, got {_json(arg)}')
            return None
        if not isinstance(arg, str):
            self._problem(where, f"{op} needs a string, got {_json_type(arg)}")
            return None
        if op == "prefix":
            return lambda v: isinstance(v, str) and v.startswith(arg)
        return lambda v: isinstance(v, str) and v.endswith(arg)

    def _wildcard(self, arg: Any, where: str, op: str) -> list[str] | None:
        if not isinstance(arg, str):
            self._problem(where, f"{op} needs a string, got {_json_type(arg)}")
            return None
        segments: list[str] = []
        current: list[str] = []
        i = 0
        while i < len(arg):
            char = arg[i]
            if char == "*":
                if i + 1 < len(arg) and arg[i + 1] == "*":
                    self._problem(where, f"{op} {json.dumps(arg)} has consecutive '*' at position {i}")
                    return None
                segments.append("".join(current))
                current = []
            elif char == "\\":
                if i + 1 < len(arg) and arg[i + 1] in "*\\":
                    current.append(arg[i + 1])
                    i += 1
                else:
                    self._problem(where, f"{op} {json.dumps(arg)}: '\\' may only escape '*' or '\\' (position {i})")
                    return None
            else:
                current.append(char)
            i += 1
        segments.append("".join(current))
        return segments

    def _anything_but(self, arg: Any, where: str) -> Test | None:
        if isinstance(arg, dict):
            if len(arg) != 1:
                self._problem(where, f"anything-but takes one of {_AFFIXES}; got {_json(arg)}")
                return None
            ((inner, value),) = arg.items()
            if inner not in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
                self._problem(where, f"anything-but cannot apply {_json(inner)} (only {_AFFIXES})")
                return None
            values = value if isinstance(value, list) else [value]
            if not values:
                self._problem(where, f"anything-but {inner} needs at least one string")
                return None
            tests: list[Test] = []
            for one in values:
                if not isinstance(one, str):
                    self._problem(where, f"anything-but {inner} needs strings, got {_json_type(one)}")
                    return None
                if inner in ("prefix", "suffix") and not one:
                    self._problem(where, f"anything-but {inner} must not be empty")
                    return None
                if inner == "wildcard":
                    segments = self._wildcard(one, where, "anything-but wildcard")
                    if segments is None:
                        return None
                    tests.append(_wildcard_test(segments))
                elif inner == "equals-ignore-case":
                    tests.append(_ignore_case_test(one, "equals"))
                else:
                    tests.append(self._affix(inner, one, where) or _never)
            return lambda v: not (isinstance(v, str) and any(t(v) for t in tests))
        values = arg if isinstance(arg, list) else [arg]
        if not values:
            self._problem(where, "anything-but needs at least one value")
            return None
        if any(not (isinstance(v, str) or _is_number(v)) for v in values):
            bad = next(v for v in values if not (isinstance(v, str) or _is_number(v)))
            self._problem(where, f"anything-but takes strings or numbers, not {_json(bad)}")
            return None
        if all(isinstance(v, str) for v in values):
            excluded = frozenset(values)
            return lambda v: not (isinstance(v, str) and v in excluded)
        if not all(_is_number(v) for v in values):
            self._problem(where, "anything-but values must be all strings or all numbers, not both")
            return None
        numbers = set()
        for number in values:
            comparable = _comparable(number)
            if comparable is None:
                self._problem(where, f"anything-but {number} is not a number EventBridge can compare")
                return None
            numbers.add(comparable)
        return lambda v: not (_is_number(v) and _comparable(v) in numbers)

    def _numeric(self, arg: Any, where: str) -> Test | None:
        shape = 'numeric needs an operator and a number, e.g. [">", 0] or [">=", 0, "<", 10]'
        if not isinstance(arg, list) or len(arg) not in (2, 4):
            self._problem(where, shape)
            return None
        ops: list[tuple[str, float]] = []
        for op, bound in zip(arg[::2], arg[1::2], strict=True):
            if not isinstance(op, str) or not _is_number(bound):
                self._problem(where, shape)
                return None
            if op not in ("=", "<", "<=", ">", ">="):
                self._problem(where, f"numeric has no operator {json.dumps(op)} (use =, <, <=, >, >=)")
                return None
            comparable = _comparable(bound)
            if comparable is None:
                self._problem(where, f"numeric bound {bound} is not a number EventBridge can compare")
                return None
            ops.append((op, comparable))
        if len(ops) == 2:
            (low_op, low), (high_op, high) = ops
            if low_op not in (">", ">=") or high_op not in ("<", "<="):
                self._problem(where, "a numeric range is a lower bound (> or >=) followed by an upper bound (< or <=)")
                return None
            if not low < high:
                self._problem(
                    where, f"numeric range is empty: the lower bound {low} is not below the upper bound {high}"
                )
                return None
        checks = [_NUMERIC[op](bound) for op, bound in ops]

        def numeric(v: Any) -> bool:
            number = _comparable(v) if _is_number(v) else None
            return number is not None and all(check(number) for check in checks)

        return numeric

    def _cidr(self, arg: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        if not isinstance(arg, str):
            self._problem(where, f"cidr needs a string, got {_json_type(arg)}")
            return None
        address, slash, bits = arg.partition("/")
        ip = _ip_literal(address) if slash and "/" not in bits else None
        problem = None
        if not slash or "/" in bits:
            problem = "needs exactly one '/'"
        elif not bits.isdigit():
            problem = "the prefix length after '/' must be a whole number"
        elif ip is None:
            problem = f"{json.dumps(address)} is not an IPv4 or IPv6 address"
        elif int(bits) >= (32 if ip.version == 4 else 128):
            # event-ruler's limit: a /32 (or IPv6 /128) is one address, written as a plain string value.
            problem = f"an IPv{ip.version} prefix length must be below {32 if ip.version == 4 else 128}"
        if problem or ip is None:
            self._problem(where, f"malformed cidr {json.dumps(arg)}: {problem}")
            return None
        return ipaddress.ip_network(f"{ip}/{int(bits)}", strict=False)


def _is_or_relationship(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(alt, dict) and alt for alt in value)
        and not any(_names_reserved(alt) for alt in value)
    )


def _names_reserved(pattern: dict[Any, Any]) -> bool:
    stack = [pattern]
    while stack:
        for key, value in stack.pop().items():
            if key in _RESERVED_IN_OR:
                return True
            if isinstance(value, dict):
                stack.append(value)
            elif key == "$or" and isinstance(value, list):
                stack.extend(alt for alt in value if isinstance(alt, dict))
    return False


def _why_not_or(value: list[Any]) -> str:
    if not all(isinstance(alt, dict) for alt in value):
        return "$or takes an array of objects, one per alternative"
    if len(value) < 2:
        return "$or needs at least two alternatives"
    if not all(value):
        return "an $or alternative must not be an empty object"
    return "operator names (prefix, numeric, ...) cannot name fields inside $or"


def _combinations(node: _Obj) -> int:
    """How many rules EventBridge expands the pattern into (it refuses more than MAX_COMBINATIONS)."""
    total = 1
    for item in node.items:
        if isinstance(item, _Group):
            total *= sum(_combinations(alt) for alt in item.alternatives)
        elif isinstance(item[1], _Obj):
            total *= _combinations(item[1])
        total = min(total, MAX_COMBINATIONS + 1)
    return total


# --------------------------------------------------------------------------- $or that names a sibling's field


def _kinds(node: _Obj) -> set[tuple[str, str]]:
    """(kind, name) of every field the node can contribute at its own level, through its $or too."""
    kinds = {("object" if isinstance(child, _Obj) else "leaf", key) for key, child in node.fields()}
    for group in node.groups():
        kinds |= _group_kinds(group)
    return kinds


def _group_kinds(group: _Group) -> set[tuple[str, str]]:
    return set().union(*(_kinds(alt) for alt in group.alternatives))


def _normalise(node: _Obj) -> _Obj:
    """Distribute each ``$or`` that names a field its siblings also name.

    event-ruler expands ``$or`` into separate rules, so ``{"a": {...}, "$or": [{"a": {...}}, ...]}``
    needs both objects matched in the same element of an array ``a`` (and the later of two leaves
    with one name wins). Evaluating the group lazily would let them pick different elements, so such
    a group is multiplied out into merged alternatives; every other group stays lazy.
    """
    node = _canonical(node)
    own = {("object" if isinstance(child, _Obj) else "leaf", key) for key, child in node.fields()}
    groups = list(node.groups())
    for group in groups:
        others = set().union(own, *(_group_kinds(g) for g in groups if g is not group))
        if _group_kinds(group) & others:
            alternatives = []
            for alt in group.alternatives:
                spliced: list[tuple[str, _Obj | _Leaf] | _Group] = []
                for item in node.items:
                    spliced.extend(alt.items if item is group else [item])
                # Each alternative gets its own copy: where an absence is judged depends on its siblings.
                alternatives.append(_normalise(_Obj(copy.deepcopy(spliced), path=node.path)))
            return _Obj([_Group(alternatives)], path=node.path)
    for i, item in enumerate(node.items):
        if isinstance(item, _Group):
            node.items[i] = _Group([_normalise(alt) for alt in item.alternatives])
        elif isinstance(item[1], _Obj):
            node.items[i] = (item[0], _normalise(item[1]))
    return node


def _canonical(node: _Obj) -> _Obj:
    """Merge repeated object fields and keep only the last of repeated leaves, in document order."""
    items: list[tuple[str, _Obj | _Leaf] | _Group] = []
    objects: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for item in node.items:
        if isinstance(item, _Group):
            items.append(item)
            continue
        key, child = item
        if isinstance(child, _Obj):
            if key in objects:
                merged = items[objects[key]]
                assert not isinstance(merged, _Group)
                assert isinstance(merged[1], _Obj)
                items[objects[key]] = (key, _canonical(_Obj([*merged[1].items, *child.items], path=child.path)))
                continue
            objects[key] = len(items)
        elif key in leaves:
            items[leaves[key]] = (key, child)
            continue
        else:
            leaves[key] = len(items)
        items.append(item)
    return _Obj(items, path=node.path)


def _place(node: _Obj, depth: int, path: tuple[str, ...]) -> int:
    """Set depths and paths after normalising; returns the deepest object depth."""
    node.depth, node.path = depth, path
    deepest = depth
    for item in node.items:
        if isinstance(item, _Group):
            deepest = max([deepest, *(_place(alt, depth, path) for alt in item.alternatives)])
        elif isinstance(item[1], _Obj):
            deepest = max(deepest, _place(item[1], depth + 1, (*path, item[0])))
        else:
            item[1].path = (*path, item[0])
    return deepest


# --------------------------------------------------------------------------- exists:false inside arrays


@dataclass
class _Seen:
    leaf: _Leaf
    scopes: list[_Obj]  # the object reached by each key step on the way, outermost first
    alternatives: frozenset[int]  # ids of the $or alternatives on the way


def _anchor_absences(root: _Obj) -> None:
    """Where each ``{"exists": false}`` is judged, as event-ruler does.

    event-ruler walks a rule's fields in name order; choosing a value inside an array of objects pins
    that array to one element for the fields after it. An absent field is looked for only in the
    pinned element, or in every element of an array nothing pinned yet. The anchor is the outermost
    object level not pinned by a certain value field (not under another alternative, not itself
    allowed to be absent) whose name sorts before the absent one.
    """
    seen: list[_Seen] = []

    def walk(node: _Obj, scopes: list[_Obj], alternatives: frozenset[int]) -> None:
        for item in node.items:
            if isinstance(item, _Group):
                for alt in item.alternatives:
                    walk(alt, scopes, alternatives | {id(alt)})
            elif isinstance(item[1], _Obj):
                walk(item[1], [*scopes, item[1]], alternatives)
            else:
                seen.append(_Seen(item[1], scopes, alternatives))

    walk(root, [], frozenset())
    pinners = [s for s in seen if s.leaf.tests and not s.leaf.absent_ok]
    for absent in (s for s in seen if s.leaf.absent_ok):
        name = _sort_key(absent.leaf.path)
        absent.leaf.anchor = 0
        for depth, scope in enumerate(absent.scopes, start=1):
            pinned = any(
                any(s is scope for s in pinner.scopes)
                and pinner.alternatives <= absent.alternatives
                and _sort_key(pinner.leaf.path) < name
                for pinner in pinners
            )
            if not pinned:
                absent.leaf.anchor = depth
                break


def _sort_key(path: tuple[str, ...]) -> bytes:
    # Java sorts strings by UTF-16 code unit; big-endian UTF-16 bytes sort the same way.
    return ".".join(path).encode("utf-16-be", "surrogatepass")


# --------------------------------------------------------------------------- matching


def _match_object(node: _Obj, obj: dict[str, Any], raws: list[Any], cache: dict[tuple[int, int], bool]) -> bool:
    for item in node.items:
        if isinstance(item, _Group):
            if not any(_match_object(alt, obj, raws, cache) for alt in item.alternatives):
                return False
            continue
        key, child = item
        value = obj.get(key, _MISSING)
        if isinstance(child, _Leaf):
            if not _match_leaf(child, value, raws, cache):
                return False
            continue
        raws[child.depth] = value
        candidates = _objects(value)
        if not candidates:
            # No object there: its value fields fail and its absent fields hold, as for an empty object.
            candidates = [_EMPTY]
        if not any(_match_object(child, candidate, raws, cache) for candidate in candidates):
            return False
    return True


def _match_leaf(leaf: _Leaf, value: Any, raws: list[Any], cache: dict[tuple[int, int], bool]) -> bool:
    values = _leaves(value)
    for test in leaf.tests:
        if any(test(v) for v in values):
            return True
    if not leaf.absent_ok:
        return False
    if not leaf.anchor:
        return not values
    raw = raws[leaf.anchor]
    if not isinstance(raw, dict | list):
        return True
    key = (id(leaf), id(raw))
    if key not in cache:
        cache[key] = not _any_leaf_below(raw, leaf.path[leaf.anchor :])
    return cache[key]


def _any_leaf_below(value: Any, path: tuple[str, ...]) -> bool:
    frontier = [value]
    for key in path:
        frontier = [obj[key] for node in frontier for obj in _objects(node) if key in obj]
    return any(_leaves(node) for node in frontier)


def _leaves(value: Any) -> list[Any]:
    """The event's values at a field: arrays flattened, objects left out (they are not leaves)."""
    if value is _MISSING:
        return []
    return [element for element in _flattened(value) if not isinstance(element, dict)]


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects at a field: the value itself, or each object of an array (nested arrays flattened)."""
    return [element for element in _flattened(value) if isinstance(element, dict)]


def _flattened(value: Any) -> list[Any]:
    """The value itself, or (for an array) its elements, nested arrays flattened in order, without recursion."""
    if not isinstance(value, list):
        return [value]
    found, stack = [], [iter(value)]
    while stack:
        for element in stack[-1]:
            if isinstance(element, list):
                stack.append(iter(element))
                break
            found.append(element)
        else:
            stack.pop()
    return found


# --------------------------------------------------------------------------- value tests


def _absent(value: Any) -> bool:
    """Marks ``{"exists": false}`` while compiling; absence is judged by the field, not a value."""
    raise AssertionError("exists:false is not a value test")


def _present(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(number: int | float) -> float | None:
    """The double EventBridge compares, or None when no double holds the number exactly."""
    if isinstance(number, float):
        return number if math.isfinite(number) else None
    if -(2**53) <= number <= 2**53:
        return float(number)
    # event-ruler keeps a number only if its decimal value equals the double's shortest form.
    try:
        as_float = float(number)
    except OverflowError:
        return None
    return as_float if Decimal(repr(as_float)) == number else None


_NUMERIC: dict[str, Callable[[float], Test]] = {
    "=": lambda b: lambda v: v == b,
    "<": lambda b: lambda v: v < b,
    "<=": lambda b: lambda v: v <= b,
    ">": lambda b: lambda v: v > b,
    ">=": lambda b: lambda v: v >= b,
}


def _exact(expected: str | int | float | bool | None) -> Test:
    if expected is None:
        return lambda v: v is None
    if isinstance(expected, bool):
        return lambda v: isinstance(v, bool) and v is expected
    if isinstance(expected, str):
        ip = _ip_literal(expected)
        if ip is not None:
            return lambda v: isinstance(v, str) and _ip_literal(v) == ip
        return lambda v: isinstance(v, str) and v == expected
    # Python compares int and float exactly, which is EventBridge's double comparison for numbers
    # doubles hold exactly, and a plain equality of the written number for the others.
    return lambda v: _is_number(v) and v == expected


def _ip_literal(text: str) -> IP | None:
    if not (_IPV4.fullmatch(text) or _IPV6.fullmatch(text)):
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # Java's InetAddress reads ::ffff:a.b.c.d as the IPv4 address
    return ip


def _cidr_test(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Test:
    def in_network(value: Any) -> bool:
        ip = _ip_literal(value) if isinstance(value, str) else None
        return ip is not None and ip.version == network.version and ip in network

    return in_network


def _wildcard_test(segments: list[str]) -> Test:
    """``*`` matches any run of characters; matched greedily with str.find, linear in the value."""
    if len(segments) == 1:
        literal = segments[0]
        return lambda v: isinstance(v, str) and v == literal
    first, *middle, last = segments

    def wildcard(value: Any) -> bool:
        if not isinstance(value, str) or not value.startswith(first):
            return False
        end = len(value) - len(last)
        if end < len(first) or not value.endswith(last):
            return False
        position = len(first)
        for segment in middle:
            found = value.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True

    return wildcard


def _ignore_case_test(expected: str, how: str) -> Test:
    """event-ruler's equals-ignore-case: each character of the pattern matches its lower or upper case.

    Not str.casefold: "ß" matches "ß" or "SS" (its upper case) but not "ss", as in event-ruler.
    """
    units = [(c.lower(), c.upper()) for c in expected]
    if how == "suffix":
        units = [(lower[::-1], upper[::-1]) for lower, upper in reversed(units)]

    def ends(value: str) -> set[int]:
        positions = {0}
        for lower, upper in units:
            positions = {p + len(option) for p in positions for option in {lower, upper} if value.startswith(option, p)}
            if not positions:
                break
        return positions

    if how == "equals":
        return lambda v: isinstance(v, str) and len(v) in ends(v)
    if how == "prefix":
        return lambda v: isinstance(v, str) and bool(ends(v))
    return lambda v: isinstance(v, str) and bool(ends(v[::-1]))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _json(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
