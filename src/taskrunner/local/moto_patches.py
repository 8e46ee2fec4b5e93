"""Small, explicit corrections to moto's CloudFormation so the real templates deploy unchanged.

Each patch names the moto behaviour it corrects; real CloudFormation needs none of them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from moto.events.models import EventPattern, Rule

from taskrunner.domain.patterns import matches


@functools.cache
def apply() -> None:
    _event_pattern_as_string()
    _event_patterns_match_as_eventbridge()


def _event_pattern_as_string() -> None:
    """moto JSON-encodes ``AWS::Events::Rule.EventPattern`` even when the template gives a JSON string
    (CloudFormation accepts both); decode a string first so it is not encoded twice."""
    original = Rule.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create(cls: type[Rule], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Rule:
        pattern = cloudformation_json.get("Properties", {}).get("EventPattern")
        if isinstance(pattern, str):
            cloudformation_json["Properties"]["EventPattern"] = json.loads(pattern)
        return original(cls, resource_name, cloudformation_json, *args, **kwargs)  # type: ignore[no-any-return]

    Rule.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]


def _event_patterns_match_as_eventbridge() -> None:
    """moto's ``EventPattern.matches_event`` takes ``1`` for ``true`` and never descends into arrays of
    objects (129 of the 170 cases of ``benchmarks/pattern_conformance.py``); a rule of the embedded
    EventBridge decides with the Dispatcher's matcher instead, so it fires locally when it would on AWS.
    A rule without a pattern (a schedule) still matches every event, as in moto."""

    def matches_event(self: EventPattern, event: Any) -> bool:
        pattern = self.get_pattern()
        return not pattern or matches(pattern, event)

    EventPattern.matches_event = matches_event  # type: ignore[method-assign]
