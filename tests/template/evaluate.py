"""Resolve a template for one set of parameter values, as CloudFormation would, with realistic physical ids.

Refs and attributes of resources resolve to the names and ARNs CloudFormation would give them (a declared name
property, else ``<stack>-<LogicalId>-<suffix>``), so resolved policies can be matched against the ARNs of
other resources, and resolved registry entries checked by the Lambdas' own validation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

from taskrunner.local.cfn_yaml import load
from tests.conftest import ROOT
from tests.template.walk import NO_VALUE, platform_index


@cache
def render_jobs() -> ModuleType:
    """tools/render_jobs.py: the sample platform and job parameter sets the linters scan, reused here."""
    spec = importlib.util.spec_from_file_location("render_jobs", ROOT / "tools" / "render_jobs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_jobs", module)
    spec.loader.exec_module(module)
    return module


REGION: str = render_jobs().REGION
ACCOUNT: str = render_jobs().ACCOUNT
STACK: str = render_jobs().STACK
#: The elements of a job stack's Platform list, in order, as jobs/job.yaml's Metadata documents them.
LAYOUT: list[str] = render_jobs().platform_layout(load(ROOT / "jobs" / "job.yaml"))


def platform_element(node: Any) -> str | None:
    """The documented Platform element a job stack's value is (``!Select [i, !Ref Platform]``), or None."""
    index = platform_index(node)
    return LAYOUT[index] if index is not None else None


# The property that names a resource, where the template may set it.
_NAME_PROPERTIES = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::Rule": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::ECS::Service": "ServiceName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::ECS::TaskDefinition": "Family",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SSM::Parameter": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}


def _digits(seed: str, length: int, alphabet: str = "0123456789abcdef") -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest)[:length]


def is_list_type(parameter_type: str) -> bool:
    return parameter_type == "CommaDelimitedList" or "List<" in parameter_type


class Evaluator:
    """Evaluates the intrinsics the templates use, for one set of parameter values (strings, as CloudFormation)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any], *, stack_name: str = STACK) -> None:
        self.template = template
        declared = template.get("Parameters", {})
        self.parameters = {name: str(p["Default"]) for name, p in declared.items() if "Default" in p}
        self.parameters |= {name: str(value) for name, value in parameters.items()}
        self.stack_name = stack_name
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._conditions: dict[str, bool] = {}

    # ------------------------------------------------------------------ intrinsics

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    @property
    def conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.template.get("Conditions", {})}

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self.value(item) for item in node) if value != NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not self._intrinsic(next(iter(node))):
            values = {key: self.value(item) for key, item in node.items()}
            return {key: value for key, value in values.items() if value != NO_VALUE}
        (function, argument), *_ = node.items()
        if function == "Ref" and argument == "AWS::NoValue":
            return NO_VALUE
        handlers: dict[str, Callable[[Any], Any]] = {
            "Ref": self.ref,
            "Fn::GetAtt": lambda arg: self.attribute(arg[0], arg[1]),
            "Fn::If": lambda arg: self.value(arg[1] if self.condition(arg[0]) else arg[2]),
            "Fn::Equals": lambda arg: str(self.value(arg[0])) == str(self.value(arg[1])),
            "Fn::Not": lambda arg: not self.value(arg[0]),
            "Fn::And": lambda arg: all(self.value(a) for a in arg),
            "Fn::Or": lambda arg: any(self.value(a) for a in arg),
            "Condition": self.condition,
            "Fn::Join": lambda arg: arg[0].join(str(v) for v in self.value(arg[1])),
            "Fn::Split": lambda arg: str(self.value(arg[1])).split(arg[0]),
            "Fn::Select": lambda arg: self.value(arg[1])[int(arg[0])],
            "Fn::Sub": self.sub,
        }
        return handlers[function](argument)

    @staticmethod
    def _intrinsic(key: str) -> bool:
        return key in ("Ref", "Condition") or key.startswith("Fn::")

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        declared = self.template.get("Parameters", {})
        if name in declared:
            if name not in self.parameters:
                raise KeyError(f"no value for !Ref {name}")
            raw = self.parameters[name]
            return raw.split(",") if is_list_type(declared[name]["Type"]) else raw
        if name in self.template["Resources"]:
            return self.resource_ref(name)
        raise KeyError(f"no value for !Ref {name}")

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.value(node) for name, node in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # ------------------------------------------------------------------ physical ids

    def _resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource

    def physical_name(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        prop = _NAME_PROPERTIES.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            return str(self.value(resource["Properties"][prop]))
        suffix = _digits(self.stack_name + logical_id, 12, "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")
        name = f"{self.stack_name}-{logical_id}-{suffix}"
        return name.lower() if resource["Type"] == "AWS::S3::Bucket" else name

    def resource_ref(self, logical_id: str) -> str:
        kind = self._resource(logical_id)["Type"]
        seed = self.stack_name + logical_id
        refs: dict[str, Callable[[], str]] = {
            "AWS::SQS::Queue": lambda: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical_name(logical_id)}",
            "AWS::SNS::Topic": lambda: self.attribute(logical_id, "Arn"),
            "AWS::ECS::TaskDefinition": lambda: (
                f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{self.physical_name(logical_id)}:1"
            ),
            "AWS::EFS::FileSystem": lambda: f"fs-{_digits(seed, 17)}",
            "AWS::EFS::AccessPoint": lambda: f"fsap-{_digits(seed, 17)}",
            "AWS::EC2::SecurityGroup": lambda: f"sg-{_digits(seed, 17)}",
            "AWS::KMS::Key": lambda: f"{_digits(seed, 8)}-{_digits(seed + '1', 4)}-{_digits(seed + '2', 4)}",
        }
        return refs.get(kind, lambda: self.physical_name(logical_id))()

    def attribute(self, logical_id: str, attribute: str) -> str:
        resource = self._resource(logical_id)
        kind, name = resource["Type"], self.physical_name(logical_id)
        region_account = f"{REGION}:{ACCOUNT}"
        arns: dict[str, Callable[[], str]] = {
            "AWS::SQS::Queue": lambda: f"arn:aws:sqs:{region_account}:{name}",
            "AWS::SNS::Topic": lambda: f"arn:aws:sns:{region_account}:{name}",
            "AWS::IAM::Role": lambda: (
                f"arn:aws:iam::{ACCOUNT}:role{self.value(resource['Properties'].get('Path', '/'))}{name}"
            ),
            "AWS::Events::Rule": lambda: f"arn:aws:events:{region_account}:rule/{name}",
            "AWS::Logs::LogGroup": lambda: f"arn:aws:logs:{region_account}:log-group:{name}:*",
            "AWS::Lambda::Function": lambda: f"arn:aws:lambda:{region_account}:function:{name}",
            "AWS::ECS::Cluster": lambda: f"arn:aws:ecs:{region_account}:cluster/{name}",
            "AWS::DynamoDB::Table": lambda: f"arn:aws:dynamodb:{region_account}:table/{name}",
            "AWS::KMS::Key": lambda: f"arn:aws:kms:{region_account}:key/{self.resource_ref(logical_id)}",
            "AWS::S3::Bucket": lambda: f"arn:aws:s3:::{name}",
            "AWS::EFS::AccessPoint": lambda: (
                f"arn:aws:elasticfilesystem:{region_account}:access-point/{self.resource_ref(logical_id)}"
            ),
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]()
        if (kind, attribute) in {("AWS::SQS::Queue", "QueueName"), ("AWS::ECS::Service", "Name")}:
            return name
        if (kind, attribute) == ("AWS::EC2::SecurityGroup", "GroupId"):
            return self.resource_ref(logical_id)
        raise KeyError(f"no value for !GetAtt {logical_id}.{attribute} ({kind})")
