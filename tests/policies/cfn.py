"""Resolve a template as CloudFormation would for one set of parameter values, with realistic physical ids.

Policies are judged as AWS holds them, not as the template writes them: conditions evaluated, ``AWS::NoValue``
gone, and every ``Ref`` and ``Fn::GetAtt`` of a resource the name, id or ARN CloudFormation would give it (a
declared name property, else ``<stack>-<LogicalId>-<suffix>``), so a resolved policy can be matched against the
ARNs of other resources and of other stacks. A nested stack is named ``<parent>-<LogicalId>-<suffix>``, receives
the parameters its block passes, and an SSM-typed parameter (jobs/job.yaml's
``Platform: AWS::SSM::Parameter::Value<List<String>>``) receives the value of the SSM parameter it names.

What CloudFormation would refuse is an error here too, never a guess: an intrinsic, attribute or resource type
this does not model, a parameter the template does not declare or a required one not given, a ``Ref`` to a
resource whose condition is false, an SSM-typed parameter naming no known SSM parameter.

https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference.html
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from functools import cache
from types import ModuleType
from typing import Any

from tests.conftest import ROOT


@cache
def tool(name: str) -> ModuleType:
    """A script of tools/ that writes or renders the templates, as a module (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def render_jobs() -> ModuleType:
    """tools/render_jobs.py: the sample platform and job parameter sets the linters scan."""
    return tool("render_jobs")


# The account, region and root stack name of the linters' rendered jobs: resolved ARNs and the sample platform
# (render_jobs.SAMPLE_PLATFORM) then name the same account, region and stack.
REGION: str = render_jobs().REGION
ACCOUNT: str = render_jobs().ACCOUNT
STACK: str = render_jobs().STACK
PARTITION = "aws"

SSM_TYPE_PREFIX = "AWS::SSM::Parameter::Value<"


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


#: What ``!Ref AWS::NoValue`` resolves to: dropped from the list or map it stands in.
NO_VALUE: Any = _NoValue()

# The property that names a resource, where the template may set it; without it CloudFormation generates a name.
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
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::KMS::Alias": "AliasName",
}
# Generated names longer than the service allows are shortened in their '<stack>-<LogicalId>' part.
_NAME_LIMITS = {"AWS::IAM::Role": 64, "AWS::S3::Bucket": 63, "AWS::SQS::Queue": 80, "AWS::Lambda::Function": 64}
# The types whose Ref is their name (every other type's Ref is modelled below, or an error).
_REF_IS_NAME = frozenset(
    {
        "AWS::ECS::Cluster",
        "AWS::SSM::Parameter",
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::Scheduler::ScheduleGroup",
        "AWS::Scheduler::Schedule",
        "AWS::IAM::Role",
        "AWS::Logs::LogGroup",
        "AWS::Events::Rule",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Lambda::Function",
        "AWS::KMS::Alias",
    }
)
_SUFFIX_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _digits(seed: str, length: int, alphabet: str = "0123456789abcdef") -> str:
    """Stable pseudo-random characters: the same resource of the same stack always gets the same id."""
    digest = hashlib.sha256(seed.encode()).digest() * 2
    return "".join(alphabet[b % len(alphabet)] for b in digest)[:length]


def nested_stack_name(parent: str, logical_id: str) -> str:
    """What CloudFormation names the stack an ``AWS::CloudFormation::Stack`` resource creates."""
    return f"{parent}-{logical_id}-{_digits(parent + logical_id, 13, _SUFFIX_ALPHABET)}"


def _parameter_value(value: Any) -> str:
    # CloudFormation parameters are strings; a list parameter is given comma-separated.
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _is_list_type(parameter_type: str) -> bool:
    return parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<")


class Stack:
    """One template deployed as one stack: ``value(node)`` is what CloudFormation would make of ``node``.

    ``parameters`` are the values the stack receives, as strings (defaults filled in); ``ssm`` holds the SSM
    parameters (name → value) that SSM-typed parameters may name.
    """

    def __init__(
        self,
        template: dict[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        name: str = STACK,
        ssm: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.stack_name = name
        self.ssm = dict(ssm or {})
        declared = template.get("Parameters", {})
        given = dict(parameters or {})
        if unknown := sorted(set(given) - set(declared)):
            raise KeyError(f"{name}: the template declares no parameters {unknown}")
        self.parameters = {n: _parameter_value(p["Default"]) for n, p in declared.items() if "Default" in p}
        self.parameters |= {n: _parameter_value(v) for n, v in given.items()}
        if missing := sorted(set(declared) - set(self.parameters)):
            raise KeyError(f"{name}: no value for the parameters {missing}")
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::StackName": name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._conditions: dict[str, bool] = {}

    def with_parameters(self, **changes: Any) -> Stack:
        """The same stack updated with other parameter values."""
        return Stack(self.template, self.parameters | changes, name=self.stack_name, ssm=self.ssm)

    # ------------------------------------------------------------------ conditions and resources

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    @property
    def conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.template.get("Conditions", {})}

    def exists(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def _resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        if not self.exists(logical_id):
            raise KeyError(f"{self.stack_name}: {logical_id} is not created (its condition {resource['Condition']})")
        return resource

    def properties(self, logical_id: str) -> dict[str, Any]:
        """A resource's properties as CloudFormation creates it (those set to ``AWS::NoValue`` absent)."""
        properties: dict[str, Any] = self.value(self._resource(logical_id).get("Properties", {}))
        return properties

    def nested(self, logical_id: str, template: dict[str, Any]) -> Stack:
        """The stack an ``AWS::CloudFormation::Stack`` resource of this one creates from ``template``."""
        if self._resource(logical_id)["Type"] != "AWS::CloudFormation::Stack":
            raise KeyError(f"{logical_id} is not a nested stack")
        ssm = {
            self.ref(other): self.properties(other)["Value"]
            for other, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::SSM::Parameter" and self.exists(other)
        }
        parameters = self.properties(logical_id).get("Parameters", {})
        return Stack(template, parameters, name=nested_stack_name(self.stack_name, logical_id), ssm=self.ssm | ssm)

    # ------------------------------------------------------------------ intrinsics

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self.value(item) for item in node) if value is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Ref":
                return self.ref(argument)
            # A policy statement's Condition is a map; the Condition function takes a condition's name.
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        values = {key: self.value(item) for key, item in node.items()}
        return {key: value for key, value in values.items() if value is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        match name:
            case "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            case "Fn::Equals":
                return str(self.value(arg[0])) == str(self.value(arg[1]))
            case "Fn::Not":
                return not self.value(arg[0])
            case "Fn::And":
                return all(self.value(a) for a in arg)
            case "Fn::Or":
                return any(self.value(a) for a in arg)
            case "Fn::Join":
                return arg[0].join(str(v) for v in self.value(arg[1]))
            case "Fn::Split":
                return str(self.value(arg[1])).split(arg[0])
            case "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            case "Fn::Sub":
                return self.sub(arg)
            case "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical_id, attribute)
        raise NotImplementedError(f"intrinsic {name} is not resolved here")

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.value(node) for name, node in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the literal ${Literal}
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        declared = self.template.get("Parameters", {})
        if name in declared:
            return self._parameter(name, declared[name]["Type"])
        if name in self.template["Resources"]:
            return self._resource_ref(name)
        raise KeyError(f"{self.stack_name}: no value for !Ref {name}")

    def _parameter(self, name: str, parameter_type: str) -> Any:
        raw = self.parameters[name]
        if parameter_type.startswith(SSM_TYPE_PREFIX):
            # The stack receives an SSM parameter's name; CloudFormation resolves it to the parameter's value.
            if raw not in self.ssm:
                raise KeyError(f"{self.stack_name}: {name} names no SSM parameter known here ({raw!r})")
            raw, parameter_type = self.ssm[raw], parameter_type.removeprefix(SSM_TYPE_PREFIX).removesuffix(">")
        return raw.split(",") if _is_list_type(parameter_type) else raw

    # ------------------------------------------------------------------ physical ids

    def physical_name(self, logical_id: str) -> str:
        """The declared name, else the one CloudFormation generates: '<stack>-<LogicalId>-<suffix>'."""
        resource = self._resource(logical_id)
        prop = _NAME_PROPERTIES.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            return str(self.value(resource["Properties"][prop]))
        suffix = _digits(self.stack_name + logical_id, 12, _SUFFIX_ALPHABET)
        prefix = f"{self.stack_name}-{logical_id}"
        limit = _NAME_LIMITS.get(resource["Type"])
        if limit is not None:
            prefix = prefix[: limit - len(suffix) - 1]
        name = f"{prefix}-{suffix}"
        return name.lower() if resource["Type"] == "AWS::S3::Bucket" else name

    def _id(self, logical_id: str, prefix: str) -> str:
        return f"{prefix}-{_digits(self.stack_name + logical_id, 17)}"

    def _resource_ref(self, logical_id: str) -> str:
        kind = self._resource(logical_id)["Type"]
        if kind in _REF_IS_NAME:
            return self.physical_name(logical_id)
        key_id = _digits(self.stack_name + logical_id, 32)
        refs: dict[str, Callable[[], str]] = {
            "AWS::SQS::Queue": lambda: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.physical_name(logical_id)}",
            "AWS::SNS::Topic": lambda: f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{self.physical_name(logical_id)}",
            "AWS::ECS::TaskDefinition": lambda: (
                f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT}:task-definition/{self.physical_name(logical_id)}:1"
            ),
            "AWS::EFS::FileSystem": lambda: self._id(logical_id, "fs"),
            "AWS::EFS::AccessPoint": lambda: self._id(logical_id, "fsap"),
            "AWS::EC2::SecurityGroup": lambda: self._id(logical_id, "sg"),
            "AWS::KMS::Key": lambda: "-".join((key_id[:8], key_id[8:12], key_id[12:16], key_id[16:20], key_id[20:])),
        }
        if kind not in refs:
            raise KeyError(f"{self.stack_name}: !Ref {logical_id} of a {kind} is not modelled")
        return refs[kind]()

    def attribute(self, logical_id: str, attribute: str) -> str:
        resource = self._resource(logical_id)
        kind = resource["Type"]
        at = f"{REGION}:{ACCOUNT}"

        def name() -> str:
            return self.physical_name(logical_id)

        def ref() -> str:
            return str(self._resource_ref(logical_id))

        attributes: dict[tuple[str, str], Callable[[], str]] = {
            ("AWS::SQS::Queue", "Arn"): lambda: f"arn:{PARTITION}:sqs:{at}:{name()}",
            ("AWS::SQS::Queue", "QueueName"): name,
            ("AWS::SQS::Queue", "QueueUrl"): ref,
            ("AWS::SNS::Topic", "TopicArn"): ref,
            ("AWS::SNS::Topic", "TopicName"): name,
            ("AWS::IAM::Role", "Arn"): lambda: (
                f"arn:{PARTITION}:iam::{ACCOUNT}:role{self.value(resource['Properties'].get('Path', '/'))}{name()}"
            ),
            ("AWS::Events::Rule", "Arn"): lambda: f"arn:{PARTITION}:events:{at}:rule/{name()}",
            # A log group's ARN as GetAtt gives it ends in ':*' (its streams).
            ("AWS::Logs::LogGroup", "Arn"): lambda: f"arn:{PARTITION}:logs:{at}:log-group:{name()}:*",
            ("AWS::Lambda::Function", "Arn"): lambda: f"arn:{PARTITION}:lambda:{at}:function:{name()}",
            ("AWS::ECS::Cluster", "Arn"): lambda: f"arn:{PARTITION}:ecs:{at}:cluster/{name()}",
            ("AWS::ECS::Service", "Name"): name,
            ("AWS::DynamoDB::Table", "Arn"): lambda: f"arn:{PARTITION}:dynamodb:{at}:table/{name()}",
            ("AWS::KMS::Key", "Arn"): lambda: f"arn:{PARTITION}:kms:{at}:key/{ref()}",
            ("AWS::KMS::Key", "KeyId"): ref,
            ("AWS::S3::Bucket", "Arn"): lambda: f"arn:{PARTITION}:s3:::{name()}",
            ("AWS::EFS::FileSystem", "Arn"): lambda: f"arn:{PARTITION}:elasticfilesystem:{at}:file-system/{ref()}",
            ("AWS::EFS::FileSystem", "FileSystemId"): ref,
            ("AWS::EFS::AccessPoint", "Arn"): lambda: f"arn:{PARTITION}:elasticfilesystem:{at}:access-point/{ref()}",
            ("AWS::EFS::AccessPoint", "AccessPointId"): ref,
            ("AWS::EC2::SecurityGroup", "GroupId"): ref,
        }
        if (kind, attribute) not in attributes:
            raise KeyError(f"{self.stack_name}: no value for !GetAtt {logical_id}.{attribute} ({kind})")
        return attributes[kind, attribute]()

    def arn(self, logical_id: str) -> str:
        """A resource's ARN, by whichever of Ref and GetAtt gives it for its type."""
        kind = self._resource(logical_id)["Type"]
        if kind in ("AWS::SNS::Topic", "AWS::ECS::TaskDefinition"):
            return str(self._resource_ref(logical_id))
        return self.attribute(logical_id, "Arn")
