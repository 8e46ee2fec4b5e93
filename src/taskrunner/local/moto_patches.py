"""Small, explicit corrections to moto's CloudFormation so the real templates deploy unchanged.

Each patch names the moto behaviour it corrects; real CloudFormation needs none of them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from moto.events.models import Rule


@functools.cache
def apply() -> None:
    _event_pattern_as_string()


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
