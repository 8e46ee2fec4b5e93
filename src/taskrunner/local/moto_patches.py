"""Small, explicit corrections to moto's CloudFormation so the real templates deploy unchanged.

Each patch names the moto behaviour it corrects; real CloudFormation needs none of them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from moto.cloudformation import parsing
from moto.events.models import EventPattern, Rule

from taskrunner.domain.patterns import matches


@functools.cache
def apply() -> None:
    _event_pattern_as_string()
    _no_value_leaves_lists()
    _event_patterns_match_as_eventbridge()


def _no_value_leaves_lists() -> None:
    """moto resolves ``AWS::NoValue`` to ``None`` and keeps it in a list (``[{...}, None]``); CloudFormation
    removes the element. jobs/job.yaml's environment and secrets slots rely on that removal."""
    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, list):
            cleaned = [clean_json(value, resources_map) for value in resource_json]
            return [c for v, c in zip(resource_json, cleaned, strict=True) if not (c is None and isinstance(v, dict))]
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json


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
