"""The embedded EventBridge's rules match with patterns.matches, not moto's own matcher."""

from __future__ import annotations

import json

import pytest
from moto.events.models import EventPattern

from taskrunner.local import moto_patches


@pytest.fixture
def patched(monkeypatch):
    # apply() patches moto for the whole process; keep this test's patch to this test.
    monkeypatch.setattr(EventPattern, "matches_event", EventPattern.matches_event)
    moto_patches._event_patterns_match_as_eventbridge()


def rule(pattern: dict | None) -> EventPattern:
    return EventPattern.load(json.dumps(pattern) if pattern is not None else None)


def test_a_rule_matches_arrays_of_objects_as_eventbridge_does(patched):
    pattern = {"detail": {"containers": {"exitCode": [{"anything-but": 0}]}}}
    assert rule(pattern).matches_event({"detail": {"containers": [{"exitCode": 1}]}}) is True
    assert rule(pattern).matches_event({"detail": {"containers": [{"exitCode": 0}]}}) is False


def test_true_is_not_one(patched):
    assert rule({"detail": {"flag": [True]}}).matches_event({"detail": {"flag": 1}}) is False


def test_a_rule_without_a_pattern_still_matches_everything(patched):
    assert rule(None).matches_event({"source": "anything"}) is True
