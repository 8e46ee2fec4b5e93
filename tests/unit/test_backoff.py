"""The one back-off rule, and that nothing else in the code computes one of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskrunner.domain.backoff import backoff_s

SRC = Path(__file__).resolve().parents[2] / "src" / "taskrunner"


@pytest.mark.parametrize(("failures", "expected"), [(1, 10), (2, 20), (3, 40), (6, 320), (7, 360), (60, 360)])
def test_doubles_from_the_base_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff_s(failures, 10, 360) == expected


def test_zero_or_negative_failures_wait_the_base() -> None:
    assert backoff_s(0, 10, 360) == backoff_s(-3, 10, 360) == 10


def test_equal_jitter_waits_between_half_and_all_of_it() -> None:
    assert backoff_s(3, 10, 360, jitter=lambda: 0.0) == 20
    assert backoff_s(3, 10, 360, jitter=lambda: 1.0) == 40


def test_an_absurd_failure_count_neither_overflows_nor_exceeds_the_cap() -> None:
    assert backoff_s(10**6, 1, 900) == 900


def test_no_other_module_computes_an_exponential_back_off() -> None:
    """Six places once computed their own (Dispatcher, Tracker, worker, CLI, local mode): one rule now."""
    exponential = re.compile(r"\*\s*2(\.0)?\s*\*\*|\b1\s*<<")  # "x * 2 ** n", "1 << n"
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        if path.name != "backoff.py" and "sim" not in path.parts  # the simulator models other policies' rules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if exponential.search(line.split("#", 1)[0])
    ]
    assert offenders == []
