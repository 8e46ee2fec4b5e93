"""Every example of the conformance table, through patterns.matches and patterns.validate_pattern.

``eventbridge_conformance.json`` quotes the EventBridge user guide and event-ruler's README: each case
names the document and section it comes from, so a failure points at the text that says otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskrunner.domain.patterns import matches, validate_pattern

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "eventbridge_conformance.json").read_text())
MATCHING = [case for case in CASES if not case.get("invalid")]
INVALID = [case for case in CASES if case.get("invalid")]
OPERATORS = ("prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr", "$or")


def test_the_table_covers_every_operator_both_ways():
    seen: dict[tuple[str, bool], int] = {}
    for case in MATCHING:
        text = json.dumps(case["pattern"])
        for op in OPERATORS:
            if f'"{op}"' in text:
                seen[op, case["match"]] = seen.get((op, case["match"]), 0) + 1
    missing = [(op, outcome) for op in OPERATORS for outcome in (True, False) if (op, outcome) not in seen]
    assert not missing
    assert len(MATCHING) >= 80
    assert all(case["source"]["url"].startswith("https://") and case["source"]["section"] for case in CASES)


@pytest.mark.parametrize("case", MATCHING, ids=[case["id"] for case in MATCHING])
def test_documented_example(case):
    assert validate_pattern(case["pattern"]) == [], "the documents' patterns are valid"
    assert matches(case["pattern"], case["event"]) is case["match"], case.get("note", case["source"]["section"])


@pytest.mark.parametrize("case", INVALID, ids=[case["id"] for case in INVALID])
def test_documented_invalid_pattern(case):
    problems = validate_pattern(case["pattern"])
    assert any(case["problem"] in problem for problem in problems), problems
    assert matches(case["pattern"], {"source": "aws.ec2", "detail": {}}) is False, "an invalid pattern matches nothing"
