"""The resolver itself: CloudFormation's intrinsics, parameters and physical ids, on a template of its own.

The template and security tiers judge policies this resolves; a resolver that kept an ``AWS::NoValue``, took the
wrong branch or named a resource otherwise than CloudFormation would make every one of those tests unreliable.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.policies.cfn import ACCOUNT, NO_VALUE, REGION, STACK, Stack, nested_stack_name

NO = {"Ref": "AWS::NoValue"}
TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Mode": {"Type": "String", "Default": "on"},
        "Count": {"Type": "Number", "Default": 0},
        "Names": {"Type": "CommaDelimitedList", "Default": ""},
        "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>"},
        "Platform": {"Type": "AWS::SSM::Parameter::Value<List<String>>", "Default": "/p/platform"},
    },
    "Conditions": {
        "IsOn": {"Fn::Equals": [{"Ref": "Mode"}, "on"]},
        "HasNames": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Names"}]}, ""]}]},
        "Either": {"Fn::Or": [{"Condition": "IsOn"}, {"Condition": "HasNames"}]},
        "Both": {"Fn::And": [{"Condition": "IsOn"}, {"Condition": "HasNames"}]},
    },
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue"},
        "NamedQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-work"}}},
        "OnlyWhenBoth": {"Type": "AWS::SQS::Queue", "Condition": "Both"},
        "Topic": {"Type": "AWS::SNS::Topic"},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"Path": "/jobs/"}},
        "LongRole": {"Type": "AWS::IAM::Role"},
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/app/logs"}},
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Key": {"Type": "AWS::KMS::Key"},
        "Files": {"Type": "AWS::EFS::FileSystem"},
        "Point": {"Type": "AWS::EFS::AccessPoint"},
        "Group": {"Type": "AWS::EC2::SecurityGroup"},
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Family": "app"}},
        "Rule": {"Type": "AWS::Events::Rule", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}.rule"}}},
        "Setting": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": "/p/child", "Value": "a,b,c"}},
        "Child": {
            "Type": "AWS::CloudFormation::Stack",
            "Properties": {"Parameters": {"Platform": {"Ref": "Setting"}, "Names": {"Ref": "Names"}}},
        },
    },
}
CHILD: dict[str, Any] = {
    "Parameters": {
        "Platform": {"Type": "AWS::SSM::Parameter::Value<List<String>>"},
        "Names": {"Type": "CommaDelimitedList"},
    },
    "Resources": {"Role": {"Type": "AWS::IAM::Role"}},
}
PLATFORM = {"/p/platform": "x,y,z"}


def stack(**parameters: Any) -> Stack:
    return Stack(TEMPLATE, {"Subnets": "subnet-1,subnet-2"} | parameters, ssm=PLATFORM)


def test_no_value_leaves_lists_and_maps_and_fn_if_takes_one_branch() -> None:
    on, off = stack(), stack(Mode="off")
    node = {
        "List": [1, {"Fn::If": ["IsOn", 2, NO]}, NO, {"Fn::If": ["IsOn", NO, 3]}],
        "Map": {"Kept": "k", "Gone": NO, "Maybe": {"Fn::If": ["IsOn", "m", NO]}},
        "Nested": {"Fn::If": ["IsOn", {"Deep": NO}, [NO]]},
    }

    assert on.value(node) == {"List": [1, 2], "Map": {"Kept": "k", "Maybe": "m"}, "Nested": {}}
    assert off.value(node) == {"List": [1, 3], "Map": {"Kept": "k"}, "Nested": []}
    assert on.value(NO) is NO_VALUE
    # A policy statement's Condition block is a map, not the Condition function (which takes a condition's name).
    block = {"Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    assert on.value(block) == block
    assert on.value({"Condition": "IsOn"}) is True


def test_conditions_combine_and_read_parameters() -> None:
    assert stack().conditions == {"IsOn": True, "HasNames": False, "Either": True, "Both": False}
    assert stack(Mode="off", Names="a,b").conditions == {"IsOn": False, "HasNames": True, "Either": True, "Both": False}
    assert stack(Names=["a"]).condition("Both") is True
    assert stack(Mode="off").condition("Either") is False


def test_sub_join_split_select_and_pseudo_parameters() -> None:
    s = stack(Names="a,b")

    assert s.value({"Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${AWS::StackName}:${Mode}"}) == (
        f"{REGION}:{ACCOUNT}:{STACK}:on"
    )
    assert (
        s.value({"Fn::Sub": ["${A}-${B}", {"A": {"Ref": "Mode"}, "B": {"Fn::Select": [1, {"Ref": "Names"}]}}]})
        == "on-b"
    )
    assert s.value({"Fn::Sub": "${Role.Arn}|${!Literal}|${Queue}"}) == (
        f"{s.attribute('Role', 'Arn')}|${{Literal}}|{s.ref('Queue')}"
    )
    assert s.value({"Fn::Join": [";", {"Ref": "Names"}]}) == "a;b"
    assert s.value({"Fn::Split": [";", "p;q"]}) == ["p", "q"]
    assert s.value({"Fn::Select": [{"Ref": "Count"}, {"Fn::Split": [",", "first,second"]}]}) == "first"
    assert s.value({"Fn::GetAtt": "Role.Arn"}) == s.value({"Fn::GetAtt": ["Role", "Arn"]})


def test_parameters_are_strings_lists_split_and_what_cloudformation_refuses_is_an_error() -> None:
    s = stack(Count=3, Names=["a", "b"])

    assert s.parameters["Count"] == "3"
    assert s.parameters["Names"] == "a,b"  # as CloudFormation receives a list: comma-separated
    assert s.ref("Names") == ["a", "b"]
    assert s.ref("Subnets") == ["subnet-1", "subnet-2"]
    assert stack().ref("Names") == [""]
    assert s.with_parameters(Mode="off").condition("IsOn") is False
    with pytest.raises(KeyError, match="declares no parameters"):
        stack(Undeclared="x")
    with pytest.raises(KeyError, match="no value for the parameters"):
        Stack(TEMPLATE, {})


def test_an_ssm_typed_parameter_receives_the_value_of_the_parameter_it_names() -> None:
    # jobs/job.yaml's Platform: the stack receives an SSM parameter's name; CloudFormation resolves its value.
    assert stack().parameters["Platform"] == "/p/platform"
    assert stack().ref("Platform") == ["x", "y", "z"]
    assert stack().value({"Fn::Select": [2, {"Ref": "Platform"}]}) == "z"
    with pytest.raises(KeyError, match="names no SSM parameter"):
        stack(Platform="/p/unknown").ref("Platform")


def test_a_nested_stack_is_named_for_its_parent_and_receives_its_blocks_parameters() -> None:
    parent = stack(Names="n1,n2")
    child = parent.nested("Child", CHILD)

    assert re.fullmatch(rf"{STACK}-Child-[0-9A-Z]{{13}}", child.stack_name)
    assert child.stack_name == nested_stack_name(STACK, "Child")
    assert child.parameters == {"Platform": "/p/child", "Names": "n1,n2"}
    # Its SSM-typed parameter names the parent's SSM parameter, and receives that parameter's value.
    assert child.ref("Platform") == ["a", "b", "c"]
    assert child.ref("Names") == ["n1", "n2"]
    # Its generated names start with its own name, not the root's.
    assert child.ref("Role").startswith(f"{child.stack_name}-Role-")
    with pytest.raises(KeyError, match="not a nested stack"):
        parent.nested("Queue", CHILD)


def test_refs_and_attributes_have_the_shapes_aws_gives_each_type() -> None:
    s = stack()
    at = f"{REGION}:{ACCOUNT}"
    queue = s.physical_name("Queue")

    assert re.fullmatch(rf"{STACK}-Queue-[0-9A-Z]{{12}}", queue)
    assert s.ref("Queue") == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}"
    assert s.attribute("Queue", "Arn") == s.arn("Queue") == f"arn:aws:sqs:{at}:{queue}"
    assert s.attribute("Queue", "QueueName") == queue
    assert s.attribute("NamedQueue", "QueueName") == f"{STACK}-work"  # a declared name is the name
    assert s.ref("Topic") == s.arn("Topic") == f"arn:aws:sns:{at}:{s.physical_name('Topic')}"
    assert s.attribute("Role", "Arn") == f"arn:aws:iam::{ACCOUNT}:role/jobs/{s.physical_name('Role')}"
    assert s.attribute("Logs", "Arn") == f"arn:aws:logs:{at}:log-group:/app/logs:*"
    assert s.ref("Bucket") == s.ref("Bucket").lower()
    assert s.attribute("Bucket", "Arn") == f"arn:aws:s3:::{s.ref('Bucket')}"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", s.ref("Key"))
    assert s.attribute("Key", "Arn") == f"arn:aws:kms:{at}:key/{s.ref('Key')}"
    assert re.fullmatch(r"fs-[0-9a-f]{17}", s.ref("Files"))
    assert s.attribute("Files", "Arn") == f"arn:aws:elasticfilesystem:{at}:file-system/{s.ref('Files')}"
    assert s.attribute("Point", "Arn") == f"arn:aws:elasticfilesystem:{at}:access-point/{s.ref('Point')}"
    assert re.fullmatch(r"sg-[0-9a-f]{17}", s.attribute("Group", "GroupId"))
    assert s.ref("Task") == f"arn:aws:ecs:{at}:task-definition/app:1"
    assert s.attribute("Rule", "Arn") == f"arn:aws:events:{at}:rule/{STACK}.rule"
    assert s.ref("Setting") == "/p/child"


def test_generated_names_differ_per_resource_and_stack_and_fit_the_services_limits() -> None:
    s, sibling = stack(), Stack(TEMPLATE, {"Subnets": "subnet-1"}, name=f"{STACK}-dev", ssm=PLATFORM)
    long = Stack(TEMPLATE, {"Subnets": "subnet-1"}, name="a-rather-long-stack-name-ImageWorkerJob-1A2B3C4D5E6F7")

    assert s.physical_name("Queue") != s.physical_name("NamedQueue")
    assert s.ref("Files").removeprefix("fs-") != s.ref("Point").removeprefix("fsap-")
    assert s.physical_name("Role") != sibling.physical_name("Role")
    assert s.physical_name("Role") == stack().physical_name("Role")  # stable: the same stack, the same names
    assert len(long.physical_name("LongRole")) <= 64


def test_what_cloudformation_would_refuse_to_resolve_is_an_error() -> None:
    s = stack()

    with pytest.raises(NotImplementedError, match="Fn::FindInMap"):
        s.value({"Fn::FindInMap": ["M", "k", "v"]})
    with pytest.raises(KeyError, match=r"no value for !GetAtt Topic\.Arn"):
        s.attribute("Topic", "Arn")  # a topic's ARN is its Ref (TopicArn): SNS has no Arn attribute
    with pytest.raises(KeyError, match="no value for !Ref Missing"):
        s.ref("Missing")
    with pytest.raises(KeyError, match="is not created"):
        s.ref("OnlyWhenBoth")
    with pytest.raises(KeyError, match="is not created"):
        s.properties("OnlyWhenBoth")
    assert stack(Names="a").ref("OnlyWhenBoth").endswith(stack(Names="a").physical_name("OnlyWhenBoth"))
