"""Deploy the real template.yaml, nested job stacks included, into the embedded AWS (a moto server).

What ``sam build && sam deploy`` does, without Docker or a network: package each function's
``CodeUri`` as a zip and each nested application's ``Location`` as an S3 object, transform the SAM
template with aws-sam-translator (the library ``sam`` itself uses), then create the stack through
CloudFormation. moto skips or drops a few resources and properties (docs/local-mode.md says which); local
mode plays those parts itself.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from taskrunner.local.cfn_yaml import load

ARTIFACT_BUCKET = "taskrunner-local-artifacts"
REGION = "us-east-1"


class _NoManagedPolicies(ManagedPolicyLoader):  # type: ignore[misc]
    """The templates name managed policies by ARN only, so no IAM lookup is needed."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


@dataclass
class Deployment:
    stack_name: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    transformed: dict[str, Any]
    #: Function logical id → its transformed resource (handler, environment, event sources).
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)


def zip_dir(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def package(template: dict[str, Any], base: Path, s3: Any, bucket: str = ARTIFACT_BUCKET) -> dict[str, Any]:
    """Upload code and nested templates to S3 and point the template at them, as ``sam package`` does."""
    packaged = copy.deepcopy(template)
    s3.create_bucket(Bucket=bucket)
    code_uri = packaged.get("Globals", {}).get("Function", {}).get("CodeUri")
    uploaded: dict[str, str] = {}
    for logical_id, resource in packaged["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            uri = props.get("CodeUri", code_uri)
            if uri not in uploaded:
                key = f"code/{Path(uri).name or 'src'}.zip"
                s3.put_object(Bucket=bucket, Key=key, Body=zip_dir(base / uri))
                uploaded[uri] = key
            props["CodeUri"] = f"s3://{bucket}/{uploaded[uri]}"
        elif resource["Type"] == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            # CloudFormation passes a nested stack's parameters as strings: `RetryExitCodes: 75` is "75".
            props["Parameters"] = {k: _as_parameter(v) for k, v in (props.get("Parameters") or {}).items()}
            location = base / props["Location"]
            key = f"templates/{logical_id}/{location.name}"
            body = json.dumps(load(location))
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
            props["Location"] = f"https://s3.amazonaws.com/{bucket}/{key}"
    packaged.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    return packaged


def _as_parameter(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def sam_transform(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    transformed: dict[str, Any] = transform(template, parameters, _NoManagedPolicies())
    return transformed


def deploy(
    endpoint_url: str,
    template_path: Path,
    stack_name: str,
    parameters: dict[str, str],
) -> Deployment:
    session = boto3.session.Session(region_name=REGION)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    cfn = session.client("cloudformation", endpoint_url=endpoint_url)
    template = load(template_path)
    transformed = sam_transform(package(template, template_path.parent, s3), parameters)
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(transformed),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    cfn.get_waiter("stack_create_complete").wait(StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    functions = {
        logical_id: resource
        for logical_id, resource in transformed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    return Deployment(stack_name, outputs, parameters, transformed, functions)


def network(endpoint_url: str) -> dict[str, str]:
    """A VPC with two subnets in the embedded AWS: the parameters a real deployment takes from the user."""
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint_url)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = []
    for i, az in enumerate("ab"):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
        subnets.append(subnet["Subnet"]["SubnetId"])
    return {"VpcId": vpc, "Subnets": ",".join(subnets)}
