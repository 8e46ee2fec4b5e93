"""Resource properties that moto's CloudFormation skips or drops (DESIGN.md, "Machine notes").

The integration tier deploys the template into moto, which silently ignores bucket policies, EFS file
system policies, DynamoDB TTL and point-in-time recovery, capacity providers and schedules: a typo in
any of them would pass there. These tests read the templates CloudFormation receives instead.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskrunner.domain.jobs import JobSpec, QueueMode
from taskrunner.settings import DispatcherSettings
from tests.conftest import ROOT

NO_VALUE = {"Ref": "AWS::NoValue"}
APPLICATION = "AWS::Serverless::Application"
JOB_LOCATION = "jobs/job.yaml"
DISPATCHER = "DispatchFunction"
DISPATCHER_HANDLER = "taskrunner.handlers.dispatcher.handler"

STACK_NAME = "taskrunner"
PSEUDO_PARAMETERS = {
    "AWS::Region": "eu-central-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": f"{STACK_NAME}-ReportJob-1A2B3C4D",
    "AWS::URLSuffix": "amazonaws.com",
}
# What the root stack passes a job, with representative deployed values.
WIRING_VALUES = {
    "StackPrefix": STACK_NAME,
    "ClusterArn": f"arn:aws:ecs:eu-central-1:123456789012:cluster/{STACK_NAME}-Cluster-a1b2c3",
    "Subnets": "subnet-0aaa1111,subnet-0bbb2222",
    "SecurityGroups": "sg-0task0000,sg-0extra000",
    "AssignPublicIp": "DISABLED",
    "DispatchQueueArn": f"arn:aws:sqs:eu-central-1:123456789012:{STACK_NAME}-DispatchQueue-x1",
    "DispatchDeadLetterQueueArn": f"arn:aws:sqs:eu-central-1:123456789012:{STACK_NAME}-DispatchDeadLetterQueue-x2",
    "ExecutionRoleArn": f"arn:aws:iam::123456789012:role/{STACK_NAME}/{STACK_NAME}-TaskExecutionRole-x3",
    "FileSystemId": "fs-0123456789abcdef0",
    "DataBucket": f"{STACK_NAME}-databucket-x4",
    "LogRetentionDays": "30",
    "AlarmTopicArn": "arn:aws:sns:eu-central-1:123456789012:taskrunner-AlarmTopic-x5",
}
# Parameter sets the sample jobs do not cover: queue workers, a public IP, retried exit codes.
EXTRA_JOB_PARAMETERS = {
    "service-worker": {
        "JobName": "resize-worker",
        "Image": "public.ecr.aws/docker/library/python:3.13-slim",
        "QueueMode": "service",
        "MinTasks": "1",
        "MaxTasks": "50",
        "MessagesPerTask": "4",
        "Capacity": "FARGATE_SPOT",
        "RetryExitCodes": "3,75",
        "MaxAttempts": "4",
        "AssignPublicIp": "ENABLED",
        "Environment": '{"LOG_LEVEL": "debug"}',
    },
    "per-message": {
        "JobName": "transcode",
        "Image": "public.ecr.aws/docker/library/python:3.13-slim",
        "QueueMode": "per-message",
        "MaxConcurrency": "8",
        "LocalCommand": "python -c pass",
    },
}


# ------------------------------------------------------------------------------------------ helpers


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id].get("Properties", {})
    return properties


def ref_name(node: Any) -> str | None:
    """X for ``!Ref X`` or ``!GetAtt X.<attr>``."""
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return str(node["Fn::GetAtt"][0])
    return None


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def is_false(value: Any) -> bool:
    return value is False or str(value).lower() == "false"


def is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def sample_jobs(root_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]["Parameters"]
        for logical_id, resource in resources_of(root_template, APPLICATION).items()
        if resource["Properties"].get("Location") == JOB_LOCATION
    }


class Evaluator:
    """Evaluates the intrinsics jobs/job.yaml uses, for one set of parameter values (strings, as CloudFormation)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.template = template
        self.parameters = parameters
        self.conditions: dict[str, bool] = {}
        for name, body in template.get("Conditions", {}).items():  # a condition may name an earlier one
            self.conditions[name] = bool(self.value(body))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self.value(item) for item in node) if value != NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not self._intrinsic(next(iter(node))):
            return {key: self.value(item) for key, item in node.items() if self.value(item) != NO_VALUE}
        (function, argument), *_ = node.items()
        handlers: dict[str, Callable[[Any], Any]] = {
            "Ref": self.ref,
            "Fn::GetAtt": lambda arg: f"{arg[0]}.{arg[1]}-value",
            "Fn::If": lambda arg: self.value(arg[1] if self.conditions[arg[0]] else arg[2]),
            "Fn::Equals": lambda arg: str(self.value(arg[0])) == str(self.value(arg[1])),
            "Fn::Not": lambda arg: not self.value(arg[0]),
            "Fn::And": lambda arg: all(self.value(a) for a in arg),
            "Fn::Or": lambda arg: any(self.value(a) for a in arg),
            "Condition": lambda arg: self.conditions[arg],
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
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            declared = self.template["Parameters"].get(name, {})
            raw = self.parameters[name]
            return raw.split(",") if declared.get("Type") == "CommaDelimitedList" else raw
        if name in self.template["Resources"]:
            return f"{name}-id"
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
            if "." in name:
                return str(self.value({"Fn::GetAtt": name.split(".", 1)}))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def job_parameters(job_template: dict[str, Any], passed: dict[str, Any]) -> dict[str, str]:
    """The parameter values one job stack receives: its template's defaults, then what the root passes."""
    values = {name: str(p["Default"]) for name, p in job_template["Parameters"].items() if "Default" in p}
    for name, value in passed.items():
        if not isinstance(value, dict):
            values[name] = str(value)
        else:  # an intrinsic: the wiring value, or (an image URI built with !Sub) a representative string
            values[name] = WIRING_VALUES.get(name, f"123456789012.dkr.ecr.eu-central-1.amazonaws.com/{name.lower()}:1")
    for name, value in WIRING_VALUES.items():
        values.setdefault(name, value)
    return values


def parameter_sets(root_template: dict[str, Any], job_template: dict[str, Any]) -> Iterator[tuple[str, dict]]:
    for logical_id, passed in sample_jobs(root_template).items():
        yield logical_id, job_parameters(job_template, passed)
    for label, passed in EXTRA_JOB_PARAMETERS.items():
        yield label, job_parameters(job_template, passed)


@pytest.fixture
def job_sets(root_template: dict[str, Any], job_template: dict[str, Any]) -> dict[str, Evaluator]:
    return {label: Evaluator(job_template, values) for label, values in parameter_sets(root_template, job_template)}


# ------------------------------------------------------------------------------------------ S3


def test_data_bucket_sends_events_to_eventbridge(transformed_template: dict[str, Any]) -> None:
    bucket = props(transformed_template, "DataBucket")

    assert is_true(bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"])


def test_data_bucket_is_encrypted_and_private(transformed_template: dict[str, Any]) -> None:
    bucket = props(transformed_template, "DataBucket")
    rules = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    public_access = bucket["PublicAccessBlockConfiguration"]

    assert rules
    for rule in rules:
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms", "aws:kms:dsse")
    for setting in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert is_true(public_access.get(setting)), setting


def test_data_bucket_policy_denies_plain_http(transformed_template: dict[str, Any]) -> None:
    policies = [
        policy["Properties"]
        for policy in resources_of(transformed_template, "AWS::S3::BucketPolicy").values()
        if ref_name(policy["Properties"]["Bucket"]) == "DataBucket"
    ]

    assert len(policies) == 1
    tls = [
        s
        for s in statements(policies[0]["PolicyDocument"])
        if s["Effect"] == "Deny" and is_false(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport"))
    ]
    assert tls, "no statement denies aws:SecureTransport=false"
    statement = tls[0]
    assert statement["Principal"] in ("*", {"AWS": "*"})
    assert "s3:*" in as_list(statement["Action"])
    covered = {json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"])}
    assert json.dumps({"Fn::GetAtt": ["DataBucket", "Arn"]}, sort_keys=True) in covered
    assert json.dumps({"Fn::Sub": "${DataBucket.Arn}/*"}, sort_keys=True) in covered


def test_bucket_policy_exists_exactly_when_the_bucket_does(transformed_template: dict[str, Any]) -> None:
    bucket = transformed_template["Resources"]["DataBucket"]
    policies = resources_of(transformed_template, "AWS::S3::BucketPolicy").values()

    assert all(policy.get("Condition") == bucket.get("Condition") for policy in policies)


# ------------------------------------------------------------------------------------------ EFS


def test_file_system_is_encrypted_and_requires_tls_and_mount_targets(transformed_template: dict[str, Any]) -> None:
    file_system = props(transformed_template, "FileSystem")
    policy = statements(file_system["FileSystemPolicy"])

    assert is_true(file_system["Encrypted"])
    assert any(
        s["Effect"] == "Deny" and is_false(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport"))
        for s in policy
    ), "no statement denies aws:SecureTransport=false"
    mounts = [s for s in policy if s["Effect"] == "Allow" and "elasticfilesystem:ClientMount" in as_list(s["Action"])]
    assert mounts
    for statement in mounts:
        condition = statement.get("Condition", {}).get("Bool", {})
        assert is_true(condition.get("elasticfilesystem:AccessedViaMountTarget")), statement
        assert statement["Principal"] not in ("*", {"AWS": "*"}), statement


def test_job_volume_mounts_its_own_access_point_with_tls_and_iam(job_template: dict[str, Any]) -> None:
    task = props(job_template, "TaskDefinition")
    volumes_if = task["Volumes"]["Fn::If"]
    volumes = volumes_if[1]

    assert volumes_if[0] == "HasEfs"
    assert volumes_if[2] == NO_VALUE
    assert len(volumes) == 1
    efs = volumes[0]["EFSVolumeConfiguration"]
    assert efs["FilesystemId"] == {"Ref": "FileSystemId"}
    assert efs["TransitEncryption"] == "ENABLED"
    assert efs["AuthorizationConfig"] == {"AccessPointId": {"Ref": "AccessPoint"}, "IAM": "ENABLED"}
    mounted = task["ContainerDefinitions"][0]["MountPoints"]["Fn::If"][1]
    assert [m["SourceVolume"] for m in mounted] == [volumes[0]["Name"]]


def test_job_access_point_is_its_own_directory_as_a_non_root_user(job_template: dict[str, Any]) -> None:
    access_point = props(job_template, "AccessPoint")

    assert job_template["Resources"]["AccessPoint"].get("Condition") == "HasEfs"
    assert access_point["FileSystemId"] == {"Ref": "FileSystemId"}
    assert access_point["RootDirectory"]["Path"]["Fn::Sub"].startswith("/jobs/${JobName}")
    assert access_point["PosixUser"]["Uid"] != "0"


# ------------------------------------------------------------------------------------------ DynamoDB


def test_runs_table_keeps_history_recoverable_and_expiring(transformed_template: dict[str, Any]) -> None:
    table = props(transformed_template, "RunsTable")

    assert is_true(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
    # taskrunner.adapters.store writes expires_at on finished runs.
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert is_true(table["SSESpecification"]["SSEEnabled"])


def test_runs_table_has_the_by_job_index_the_store_queries(transformed_template: dict[str, Any]) -> None:
    table = props(transformed_template, "RunsTable")
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}

    assert table["KeySchema"] == [{"AttributeName": "run_id", "KeyType": "HASH"}]
    assert indexes["by-job"]["KeySchema"] == [
        {"AttributeName": "job", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert attributes == {"run_id": "S", "job": "S", "created_at": "S", "status": "S"}


# ------------------------------------------------------------------------------------------ ECS


def test_cluster_has_container_insights_and_both_fargate_capacity_providers(
    transformed_template: dict[str, Any],
) -> None:
    (cluster,) = resources_of(transformed_template, "AWS::ECS::Cluster").values()
    settings = {s["Name"]: s["Value"] for s in cluster["Properties"]["ClusterSettings"]}

    assert settings["containerInsights"] in ("enabled", "enhanced")
    assert set(cluster["Properties"]["CapacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}


def test_worker_service_starts_empty_on_capacity_providers_with_circuit_breaker(job_template: dict[str, Any]) -> None:
    resource = job_template["Resources"]["Service"]
    service = resource["Properties"]

    assert resource["Condition"] == "IsService"
    # The Scaler owns the desired count; a non-zero value here would fight it on every deploy.
    assert service["DesiredCount"] == 0
    assert service["CapacityProviderStrategy"]
    assert "LaunchType" not in service, "a launch type and a capacity provider strategy are mutually exclusive"
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert is_true(breaker["Enable"])
    assert service["TaskDefinition"] == {"Ref": "TaskDefinition"}


def test_worker_service_uses_spot_exactly_when_the_job_asks(job_sets: dict[str, Evaluator]) -> None:
    for label, job in job_sets.items():
        strategy = job.value(job.template["Resources"]["Service"]["Properties"]["CapacityProviderStrategy"])
        providers = [s["CapacityProvider"] for s in strategy]
        if job.parameters["Capacity"] == "FARGATE":
            assert providers == ["FARGATE"], label
        else:
            assert "FARGATE_SPOT" in providers, label


# ------------------------------------------------------------------------------------------ SQS


def _queue_checks(template: dict[str, Any]) -> list[str]:
    queues = resources_of(template, "AWS::SQS::Queue")
    dead_letter_queues = {
        ref_name(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for queue in queues.values()
        if "RedrivePolicy" in queue.get("Properties", {})
    }
    problems = []
    for logical_id, queue in queues.items():
        properties = queue.get("Properties", {})
        if not (is_true(properties.get("SqsManagedSseEnabled")) or properties.get("KmsMasterKeyId")):
            problems.append(f"{logical_id}: not encrypted at rest")
        if logical_id not in dead_letter_queues and "RedrivePolicy" not in properties:
            problems.append(f"{logical_id}: no dead-letter queue")
    return problems


def test_every_queue_is_encrypted_and_every_work_queue_has_a_dlq(
    transformed_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    assert resources_of(transformed_template, "AWS::SQS::Queue")
    assert _queue_checks(transformed_template) + _queue_checks(job_template) == []


def test_sqs_fed_functions_cannot_outlive_the_visibility_timeout(transformed_template: dict[str, Any]) -> None:
    # AWS: set the source queue's visibility timeout to at least six times the function timeout.
    mappings = resources_of(transformed_template, "AWS::Lambda::EventSourceMapping").values()
    sqs_mappings = [
        m
        for m in mappings
        if ref_name(m["Properties"]["EventSourceArn"]) in resources_of(transformed_template, "AWS::SQS::Queue")
    ]

    assert sqs_mappings
    for mapping in sqs_mappings:
        queue = props(transformed_template, ref_name(mapping["Properties"]["EventSourceArn"]) or "")
        function = props(transformed_template, ref_name(mapping["Properties"]["FunctionName"]) or "")
        assert int(queue.get("VisibilityTimeout", 30)) >= 6 * int(function.get("Timeout", 3)), mapping


def test_dispatch_queue_outlasts_six_dispatcher_timeouts(
    root_template: dict[str, Any], transformed_template: dict[str, Any]
) -> None:
    function = props(root_template, DISPATCHER)
    timeout = function.get("Timeout", root_template.get("Globals", {}).get("Function", {}).get("Timeout", 3))
    (queue,) = [ref_name(e["Properties"]["Queue"]) or "" for e in function["Events"].values() if e["Type"] == "SQS"]

    assert int(props(transformed_template, queue)["VisibilityTimeout"]) >= 6 * int(timeout)
    assert int(props(transformed_template, DISPATCHER)["Timeout"]) == int(timeout)


# ------------------------------------------------------------------------------------------ Lambda


def test_dispatcher_runtime_architecture_and_handler(transformed_template: dict[str, Any]) -> None:
    function = props(transformed_template, DISPATCHER)

    assert transformed_template["Resources"][DISPATCHER]["Type"] == "AWS::Lambda::Function"
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == DISPATCHER_HANDLER
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_dispatcher_consumes_the_dispatch_queue_in_bounded_partial_batches(
    transformed_template: dict[str, Any],
) -> None:
    (mapping,) = [
        m["Properties"]
        for m in resources_of(transformed_template, "AWS::Lambda::EventSourceMapping").values()
        if ref_name(m["Properties"]["FunctionName"]) == DISPATCHER
    ]
    concurrency = mapping["ScalingConfig"]["MaximumConcurrency"]

    assert ref_name(mapping["EventSourceArn"]) == "DispatchQueue"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= int(mapping["BatchSize"]) <= 10
    if isinstance(concurrency, dict):
        # SQS event sources accept a MaximumConcurrency of 2 to 1000.
        parameter = transformed_template["Parameters"][concurrency["Ref"]]
        assert 2 <= int(parameter["MinValue"]) <= int(parameter["Default"]) <= int(parameter["MaxValue"]) <= 1000
    else:
        assert 2 <= int(concurrency) <= 1000


def test_dispatcher_environment_satisfies_its_settings(transformed_template: dict[str, Any]) -> None:
    required = {field.alias for field in DispatcherSettings.model_fields.values() if field.is_required()}
    provided = set(props(transformed_template, DISPATCHER)["Environment"]["Variables"])

    assert required <= provided


def test_every_handler_resolves_to_a_callable(transformed_template: dict[str, Any]) -> None:
    functions = resources_of(transformed_template, "AWS::Lambda::Function")

    assert functions
    for logical_id, function in functions.items():
        module_name, _, attribute = function["Properties"]["Handler"].rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute, None)
        assert callable(handler), f"{logical_id}: {function['Properties']['Handler']}"
        assert (ROOT / "src" / module_name.replace(".", "/")).with_suffix(".py").is_file(), logical_id


def test_every_function_logs_to_a_log_group_with_retention(transformed_template: dict[str, Any]) -> None:
    # Without LoggingConfig.LogGroup, Lambda creates /aws/lambda/<name> itself, kept forever.
    groups = resources_of(transformed_template, "AWS::Logs::LogGroup")

    for logical_id, function in resources_of(transformed_template, "AWS::Lambda::Function").items():
        group = ref_name(function["Properties"].get("LoggingConfig", {}).get("LogGroup"))
        assert group in groups, f"{logical_id} logs to a group the stack does not own"


# ------------------------------------------------------------------------------------------ logs and network


def test_every_log_group_expires(transformed_template: dict[str, Any], job_template: dict[str, Any]) -> None:
    groups = resources_of(transformed_template, "AWS::Logs::LogGroup") | resources_of(
        job_template, "AWS::Logs::LogGroup"
    )

    assert groups
    assert [logical_id for logical_id, group in groups.items() if "RetentionInDays" not in group["Properties"]] == []


def test_job_containers_log_to_the_jobs_own_group(job_template: dict[str, Any]) -> None:
    for container in props(job_template, "TaskDefinition")["ContainerDefinitions"]:
        options = container["LogConfiguration"]["Options"]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
        assert options["awslogs-group"] == {"Ref": "LogGroup"}


def test_tasks_get_no_public_ip_by_default(
    transformed_template: dict[str, Any], root_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    job_parameter = job_template["Parameters"]["AssignPublicIp"]

    assert transformed_template["Parameters"]["AssignPublicIp"]["Default"] == "DISABLED"
    assert job_parameter.get("Default", "DISABLED") == "DISABLED"
    for logical_id, passed in sample_jobs(root_template).items():
        assert passed["AssignPublicIp"] == {"Ref": "AssignPublicIp"}, logical_id
    network = props(job_template, "Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == {"Ref": "AssignPublicIp"}


# ------------------------------------------------------------------------------------------ job triggers


def test_schedule_input_carries_the_scheduled_time_and_the_job(job_sets: dict[str, Evaluator]) -> None:
    target = job_sets["ReportJob"].template["Resources"]["Schedule"]["Properties"]["Target"]

    assert "<aws.scheduler.scheduled-time>" in target["Input"]["Fn::Sub"]
    for label, job in job_sets.items():
        message = json.loads(job.value(target["Input"]))
        assert message["job"] == job.parameters["JobName"], label
        assert message["scheduled_at"] == "<aws.scheduler.scheduled-time>", label


def test_schedules_are_exact_and_retry_until_their_deadline(job_template: dict[str, Any]) -> None:
    schedule = props(job_template, "Schedule")

    assert job_template["Resources"]["Schedule"]["Condition"] == "HasSchedule"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    assert schedule["Target"]["RoleArn"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}


def test_upload_rule_matches_object_created_under_the_jobs_prefix_and_suffix(job_template: dict[str, Any]) -> None:
    rule = job_template["Resources"]["UploadRule"]
    pattern = rule["Properties"]["EventPattern"]

    assert rule["Condition"] == "HasS3Trigger"
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "DataBucket"}]
    (key_filter,) = pattern["detail"]["object"]["key"]
    assert key_filter == {"wildcard": {"Fn::Sub": "${S3Prefix}*${S3Suffix}"}}


def test_pattern_rule_uses_the_jobs_event_pattern(job_template: dict[str, Any], root_template: dict) -> None:
    rule = job_template["Resources"]["PatternRule"]
    patterns = [p["EventPattern"] for p in sample_jobs(root_template).values() if "EventPattern" in p]

    assert rule["Condition"] == "HasEventPattern"
    assert rule["Properties"]["EventPattern"] == {"Ref": "EventPattern"}
    assert patterns
    for pattern in patterns:
        assert isinstance(json.loads(pattern), dict)


def _targets(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, rule in resources_of(template, "AWS::Events::Rule").items():
        for target in rule["Properties"]["Targets"]:
            yield logical_id, target
    for logical_id, schedule in resources_of(template, "AWS::Scheduler::Schedule").items():
        yield logical_id, schedule["Properties"]["Target"]


def test_every_trigger_targets_the_dispatch_queue_with_a_dead_letter_queue(job_template: dict[str, Any]) -> None:
    targets = list(_targets(job_template))

    assert {logical_id for logical_id, _ in targets} >= {"Schedule", "UploadRule", "PatternRule"}
    for logical_id, target in targets:
        assert target["Arn"] == {"Ref": "DispatchQueueArn"}, logical_id
        assert target["DeadLetterConfig"] == {"Arn": {"Ref": "DispatchDeadLetterQueueArn"}}, logical_id
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, logical_id


def test_root_stack_rule_targets_have_dead_letter_queues(transformed_template: dict[str, Any]) -> None:
    missing = [logical_id for logical_id, target in _targets(transformed_template) if "DeadLetterConfig" not in target]

    assert missing == []


def test_rule_inputs_are_json_once_eventbridge_fills_them(job_sets: dict[str, Evaluator]) -> None:
    for label, job in job_sets.items():
        for rule_id, trigger in (("UploadRule", "s3"), ("PatternRule", "event")):
            (target,) = job.template["Resources"][rule_id]["Properties"]["Targets"]
            text = job.value(target["InputTransformer"]["InputTemplate"])
            message = json.loads(text.replace("<aws.events.event.json>", '{"detail": {}}'))
            assert message == {"job": job.parameters["JobName"], "trigger": trigger, "event": {"detail": {}}}, label


def test_rule_names_are_admitted_by_the_dispatch_queue_policy(
    transformed_template: dict[str, Any], job_sets: dict[str, Evaluator]
) -> None:
    # EventBridge delivers to the queue and its DLQ only as the queue policy allows: by rule ARN.
    policy = props(transformed_template, "DispatchQueuePolicy")
    allowed = [
        s["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
        for s in statements(policy["PolicyDocument"])
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}
    ]
    stack_pseudo = {**PSEUDO_PARAMETERS, "AWS::StackName": STACK_NAME}
    patterns = [re.sub(r"\$\{([^}]+)\}", lambda m: stack_pseudo[m.group(1)], arn) for arn in allowed]

    assert patterns
    for label, job in job_sets.items():
        for rule_id in ("UploadRule", "PatternRule"):
            name = job.value(job.template["Resources"][rule_id]["Properties"]["Name"])
            arn = f"arn:aws:events:{stack_pseudo['AWS::Region']}:{stack_pseudo['AWS::AccountId']}:rule/{name}"
            assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns), f"{label}: {arn}"


# ------------------------------------------------------------------------------------------ registry entry


def test_registry_entry_is_a_valid_job_spec_for_every_parameter_set(job_sets: dict[str, Evaluator]) -> None:
    value = job_sets["ReportJob"].template["Resources"]["RegistryEntry"]["Properties"]["Value"]

    assert "Fn::Sub" in value
    for label, job in job_sets.items():
        text = job.value(value)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{label}: registry entry is not JSON ({exc}): {text}")
        spec = JobSpec.parse(text)
        parameters = job.parameters
        family = job.value(job.template["Resources"]["TaskDefinition"]["Properties"]["Family"])
        assert spec.name == parameters["JobName"], label
        assert spec.task_definition == family, label
        assert (
            spec.container
            == job.template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Name"]
        )
        assert spec.cluster == parameters["ClusterArn"], label
        assert spec.subnets == parameters["Subnets"].split(","), label
        assert spec.assign_public_ip is (parameters["AssignPublicIp"] == "ENABLED"), label
        assert spec.capacity.value == parameters["Capacity"], label
        assert spec.s3_prefix == parameters["S3Prefix"], label
        assert spec.s3_bucket == (parameters["DataBucket"] if parameters["S3Prefix"] else None), label
        assert spec.event_pattern == (json.loads(parameters["EventPattern"]) if parameters["EventPattern"] else None)
        assert spec.environment == json.loads(parameters["Environment"]), label
        assert spec.queue_mode.value == parameters["QueueMode"], label
        assert (spec.queue_url is not None) is (spec.queue_mode is not QueueMode.NONE), label
        assert spec.retry.max_attempts == int(parameters["MaxAttempts"]), label
        assert raw["scaling"]["max_tasks"] == int(parameters["MaxTasks"]), label


def test_registry_entry_lives_where_the_functions_read_it(
    transformed_template: dict[str, Any], job_sets: dict[str, Evaluator]
) -> None:
    prefix = props(transformed_template, DISPATCHER)["Environment"]["Variables"]["REGISTRY_PREFIX"]["Fn::Sub"]
    expected = prefix.replace("${AWS::StackName}", STACK_NAME)

    for label, job in job_sets.items():
        name = job.value(job.template["Resources"]["RegistryEntry"]["Properties"]["Name"])
        assert name == f"{expected}/{job.parameters['JobName']}", label


# ------------------------------------------------------------------------------------------ sample jobs


def test_template_declares_a_scheduled_an_upload_and_an_event_job(root_template: dict[str, Any]) -> None:
    samples = sample_jobs(root_template)

    assert len(samples) >= 3
    assert any(p.get("ScheduleExpression") for p in samples.values())
    assert any(p.get("S3Prefix") for p in samples.values())
    assert any(p.get("EventPattern") for p in samples.values())
    assert (ROOT / JOB_LOCATION).is_file()


def test_every_job_passes_identical_platform_wiring(root_template: dict[str, Any], job_template: dict) -> None:
    # Wiring is every parameter the job template cannot default, besides the job's own name and image.
    # (AlarmTopicArn defaults to "no alarm" for stacks outside this platform, but the platform always passes it.)
    wiring = {name for name, p in job_template["Parameters"].items() if "Default" not in p} - {"JobName", "Image"}
    wiring |= {"AlarmTopicArn"}
    samples = sample_jobs(root_template)

    assert wiring == set(WIRING_VALUES), "new wiring parameter: give it a representative value in WIRING_VALUES"
    first = next(iter(samples.values()))
    for logical_id, passed in samples.items():
        assert {k: passed[k] for k in wiring if k in passed} == {k: first[k] for k in wiring}, logical_id


def test_every_job_passes_only_parameters_the_job_template_declares(
    root_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    declared = set(job_template["Parameters"])
    required = {name for name, p in job_template["Parameters"].items() if "Default" not in p}

    for logical_id, passed in sample_jobs(root_template).items():
        assert set(passed) <= declared, f"{logical_id}: {set(passed) - declared}"
        assert required <= set(passed), f"{logical_id} misses {required - set(passed)}"


def test_sample_jobs_satisfy_the_job_templates_parameter_constraints(
    root_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    for logical_id, passed in sample_jobs(root_template).items():
        for name, value in passed.items():
            if isinstance(value, dict):
                continue
            declared = job_template["Parameters"][name]
            if "AllowedValues" in declared:
                assert str(value) in [str(v) for v in declared["AllowedValues"]], f"{logical_id}.{name}"
            if "AllowedPattern" in declared:
                assert re.fullmatch(declared["AllowedPattern"], str(value)), f"{logical_id}.{name}"
            if "MinValue" in declared:
                assert float(value) >= float(declared["MinValue"]), f"{logical_id}.{name}"
            if "MaxValue" in declared:
                assert float(value) <= float(declared["MaxValue"]), f"{logical_id}.{name}"
