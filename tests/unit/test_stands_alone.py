"""The repository stands alone: the scenarios its docs use live in it, and nothing points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskrunner.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|/work/shared|DESIGN\.md|ANCHORS\.md")
SCANNED = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "benchmarks").glob("*.py")),
    *sorted((ROOT / "scenarios").iterdir()),
    *sorted((ROOT / "src").rglob("*.py")),
]


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(path):
    hits = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert hits == []


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.json")), ids=lambda p: p.name)
def test_the_in_repo_scenarios_load(path):
    assert load_scenario(path).name == path.stem


def test_the_scenarios_the_docs_name_exist():
    named = {
        m
        for text in (ROOT / "README.md", ROOT / "docs" / "cli.md")
        for m in re.findall(r"scenarios/(\w+)\.json", text.read_text())
    }
    assert named
    assert all((ROOT / "scenarios" / f"{name}.json").is_file() for name in named)
