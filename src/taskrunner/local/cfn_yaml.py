"""Read CloudFormation YAML (short-form intrinsics such as ``!Ref`` and ``!GetAtt``) into plain JSON form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SHORT_FORMS = [
    *("Base64", "Cidr", "FindInMap", "GetAZs", "ImportValue", "Join", "Select", "Split", "Sub"),
    *("Transform", "If", "Not", "Equals", "And", "Or", "ToJsonString"),
]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags."""


def _construct(tag: str) -> Any:
    def build(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if tag == "Ref":
            return {"Ref": value}
        if tag == "Condition":
            return {"Condition": value}
        if tag == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{tag}": value}

    return build


for _tag in [*_SHORT_FORMS, "Ref", "GetAtt", "Condition"]:
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - CfnLoader derives from SafeLoader
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return data
