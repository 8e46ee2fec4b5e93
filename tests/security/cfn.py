"""The deployed shape of the templates, concrete: every intrinsic resolved to the ARN CloudFormation would give it.

The security tier plays requests against resource policies, so it needs the policies as AWS holds them — real
ARNs, conditions evaluated, ``AWS::NoValue`` gone — not as the template writes them. This resolver covers the
intrinsics our templates use; a name it does not know is an error, never a silent guess.
"""

from __future__ import annotations

import re
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "taskrunner"
NO_VALUE = object()

PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::URLSuffix": "amazonaws.com",
}


class Resolved:
    """One template with its parameters: ``value(node)`` is what CloudFormation would make of ``node``."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any], stack: str = STACK) -> None:
        self.template = template
        self.stack = stack
        declared = template.get("Parameters", {})
        self.parameters: dict[str, Any] = {n: p["Default"] for n, p in declared.items() if "Default" in p}
        self.parameters |= parameters
        for name, spec in declared.items():
            raw = self.parameters.get(name)
            if isinstance(raw, str) and ("List" in spec.get("Type", "") or spec.get("Type") == "CommaDelimitedList"):
                self.parameters[name] = raw.split(",") if raw else [""]
        self.conditions: dict[str, bool] = {}
        for name, body in template.get("Conditions", {}).items():
            self.conditions[name] = bool(self.value(body))

    def resource(self, logical_id: str) -> dict[str, Any]:
        """A resource with its properties resolved (None when its condition is false)."""
        resource = self.template["Resources"][logical_id]
        return {"Type": resource["Type"], "Properties": self.value(resource.get("Properties", {}))}

    def exists(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.conditions[condition]

    # ------------------------------------------------------------------ intrinsics

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, argument), *_ = node.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.conditions[argument]
            if key.startswith("Fn::"):
                return self._function(key, argument)
        return {k: v for k, v in ((k, self.value(item)) for k, item in node.items()) if v is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        match name:
            case "Fn::If":
                return self.value(arg[1] if self.conditions[arg[0]] else arg[2])
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
                return self.value(arg[1])[int(arg[0])]
            case "Fn::Sub":
                return self.sub(arg)
            case "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical_id, attribute)
        raise KeyError(f"intrinsic {name} is not resolved here")

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.value(node) for name, node in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return self.stack if name == "AWS::StackName" else PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.template["Resources"].get(name)
        if resource is None:
            raise KeyError(f"no value for !Ref {name}")
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self._physical(name)}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{self._physical(name)}"
        if kind == "AWS::SSM::Parameter":
            return self.value(props["Name"])
        if kind == "AWS::Scheduler::ScheduleGroup":
            return self.value(props["Name"])
        if kind == "AWS::KMS::Key":
            return "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
        if kind == "AWS::S3::Bucket":
            return self._physical(name).lower()
        if kind == "AWS::EFS::FileSystem":
            return "fs-0123456789abcdef0"
        if kind == "AWS::EFS::AccessPoint":
            return "fsap-0123456789abcdef0"
        if kind == "AWS::EC2::SecurityGroup":
            return "sg-0123456789abcdef0"
        if kind == "AWS::Logs::LogGroup" and "LogGroupName" in props:
            return self.value(props["LogGroupName"])
        return self._physical(name)

    def _physical(self, logical_id: str) -> str:
        return f"{self.stack}-{logical_id}-ABCDEF123456"

    def attribute(self, logical_id: str, attribute: str) -> Any:
        resource = self.template["Resources"][logical_id]
        kind = resource["Type"]
        props = resource.get("Properties", {})
        physical = self._physical(logical_id)
        arns = {
            "AWS::IAM::Role": lambda: f"arn:aws:iam::{ACCOUNT}:role{self.value(props.get('Path', '/'))}{physical}",
            "AWS::SQS::Queue": lambda: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical}",
            "AWS::Events::Rule": lambda: f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.value(props['Name'])}",
            "AWS::Lambda::Function": lambda: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::ECS::Cluster": lambda: f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{physical}",
            "AWS::DynamoDB::Table": lambda: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::Logs::LogGroup": lambda: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{self.ref(logical_id)}:*",
            "AWS::KMS::Key": lambda: f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{self.ref(logical_id)}",
            "AWS::S3::Bucket": lambda: f"arn:aws:s3:::{physical.lower()}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]()
        if attribute == "QueueName":
            return physical
        if attribute == "GroupId":
            return self.ref(logical_id)
        if attribute == "Name":
            return self.value(props.get("ServiceName")) if "ServiceName" in props else physical
        raise KeyError(f"no value for !GetAtt {logical_id}.{attribute}")
