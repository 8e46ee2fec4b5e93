"""Conformance of Python EventBridge-pattern implementations to ``tests/unit/eventbridge_conformance.json``.

Each case of the table (the EventBridge user guide's and event-ruler's README's examples) is run through
every implementation that can be imported:

* ``taskrunner`` - ``taskrunner.domain.patterns`` (``matches``; ``validate_pattern`` for invalid ones);
* ``moto`` - ``moto.events.models.EventPattern`` (``matches_event``), with ``EventPatternParser`` as the
  validator: a dependency of the project already;
* ``localstack`` - ``localstack.services.events.event_rule_engine`` (``EventPatternCompiler`` and
  ``EventRuleEngine``), when ``localstack-core`` is importable. It is not a project dependency; to
  measure it, install it beside the project and put it on the path, e.g.
  ``python -m venv /tmp/ls && /tmp/ls/bin/pip install --no-deps localstack-core`` then
  ``PYTHONPATH=/tmp/ls/lib/python3.13/site-packages .venv/bin/python benchmarks/pattern_conformance.py``
  (its one import beyond the package, botocore, comes from the project's environment).

A match case passes when the implementation returns the table's answer without raising; an invalid case
passes when it refuses the pattern (a problem, or an exception at compile time). Prints one JSON object
per line, ``{"implementation", "cases", "passed", "failed": [ids]}``; ``--out`` also writes them as a
JSON array.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parents[1] / "tests" / "unit" / "eventbridge_conformance.json"

# (pattern, event) -> matched; pattern -> refused
Matcher = Callable[[dict[str, Any], dict[str, Any]], bool]
Refuses = Callable[[Any], bool]


def taskrunner_impl() -> tuple[str, Matcher, Refuses]:
    from taskrunner.domain.patterns import matches, validate_pattern

    return "taskrunner", matches, lambda pattern: bool(validate_pattern(pattern))


def moto_impl() -> tuple[str, Matcher, Refuses]:
    import moto
    from moto.events.models import EventPattern, EventPatternParser

    def match(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
        raw = json.dumps(pattern)
        return bool(EventPattern(raw, EventPatternParser(raw).parse()).matches_event(event))

    def refuses(pattern: Any) -> bool:
        try:
            EventPatternParser(json.dumps(pattern)).parse()
        except Exception:  # any refusal counts
            return True
        return False

    return f"moto {moto.__version__}", match, refuses


def localstack_impl() -> tuple[str, Matcher, Refuses]:
    from importlib.metadata import version

    from localstack.services.events.event_rule_engine import EventPatternCompiler, EventRuleEngine

    engine = EventRuleEngine()

    def match(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
        return bool(engine.evaluate_pattern_on_event(EventPatternCompiler().compile_event_pattern(pattern), event))

    def refuses(pattern: Any) -> bool:
        try:
            EventPatternCompiler().compile_event_pattern(pattern)
        except Exception:  # any refusal counts
            return True
        return False

    return f"localstack-core {version('localstack-core')}", match, refuses


def measure(name: str, match: Matcher, refuses: Refuses, cases: list[dict[str, Any]]) -> dict[str, Any]:
    failed = []
    for case in cases:
        try:
            ok = (
                refuses(case["pattern"])
                if case.get("invalid")
                else match(case["pattern"], case["event"]) is case["match"]
            )
        except Exception:  # a crash on one case fails that case, not the run
            ok = False
        if not ok:
            failed.append(case["id"])
    return {"implementation": name, "cases": len(cases), "passed": len(cases) - len(failed), "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    cases = json.loads(TABLE.read_text())
    results = []
    for load in (taskrunner_impl, moto_impl, localstack_impl):
        try:
            name, match, refuses = load()
        except ImportError as exc:
            results.append({"implementation": load.__name__.removesuffix("_impl"), "unavailable": str(exc)})
            continue
        results.append(measure(name, match, refuses, cases))
    for result in results:
        print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
