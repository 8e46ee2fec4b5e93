"""Small, explicit corrections to moto's CloudFormation so the real templates deploy unchanged.

Each patch names the moto behaviour it corrects; real CloudFormation needs none of them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from moto.cloudformation import parsing
from moto.events.models import Rule


@functools.cache
def apply() -> None:
    _event_pattern_as_string()
    _no_value_leaves_lists()


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
