"""Resource properties that moto's CloudFormation skips or drops (README, "Local mode ... does not emulate").

The integration tier deploys the template into moto, which silently ignores bucket policies, EFS file
system policies, DynamoDB TTL and point-in-time recovery, capacity providers and schedules: a typo in
any of them would pass there. These tests read the templates CloudFormation receives instead, and resolve
jobs/job.yaml for every job parameter set (tests.template.conftest).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from taskrunner.domain.jobs import JobSpec, QueueMode
from taskrunner.settings import DispatcherSettings, ScalerSettings, TrackerSettings
from tests.conftest import ROOT
from tests.policies.cfn import REGION, Stack, render_jobs
from tests.policies.iam import Request, allowed, on_behalf_of
from tests.template.walk import (
    LAYOUT,
    NO_VALUE,
    as_list,
    is_false,
    is_true,
    platform_element,
    props,
    ref_name,
    resources_of,
    statements,
)

JOB_LOCATION = "jobs/job.yaml"
DISPATCHER = "DispatchFunction"
DISPATCHER_HANDLER = "taskrunner.handlers.dispatcher.handler"
SETTINGS = {
    "DispatchFunction": DispatcherSettings,
    "ScalerFunction": ScalerSettings,
    "TrackerFunction": TrackerSettings,
}
# Set by the Lambda runtime in every function's environment (and reserved: a template may not set them).
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
LAMBDA_RUNTIME_VARIABLES = frozenset(
    {
        *("_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV"),
        *("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"),
        *("AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME"),
        *("AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
        *("AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"),
    }
)
PLATFORM = render_jobs().SAMPLE_PLATFORM


def platform_of(job: Stack, element: str) -> str:
    """One element of the Platform list this job stack received."""
    value: str = job.value({"Fn::Select": [LAYOUT.index(element), {"Ref": "Platform"}]})
    return value


def sample_jobs(root_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = render_jobs().sample_jobs(root_template)
    return samples


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
    # The policy grants nothing: a mount is allowed only by the principal's own policy (a job's role: its own
    # access point); an Allow for the account here would let any role of the account mount any access point.
    assert [s for s in policy if s["Effect"] == "Allow"] == []


def test_job_volume_mounts_its_own_access_point_with_tls_and_iam(job_template: dict[str, Any]) -> None:
    task = props(job_template, "TaskDefinition")
    volumes_if = task["Volumes"]["Fn::If"]
    volumes = volumes_if[1]

    assert volumes_if[0] == "HasEfs"
    assert volumes_if[2] == NO_VALUE
    assert len(volumes) == 1
    efs = volumes[0]["EFSVolumeConfiguration"]
    assert platform_element(efs["FilesystemId"]) == "EFS file system id"
    assert efs["TransitEncryption"] == "ENABLED"
    assert efs["AuthorizationConfig"] == {"AccessPointId": {"Ref": "AccessPoint"}, "IAM": "ENABLED"}
    mounted = task["ContainerDefinitions"][0]["MountPoints"]["Fn::If"][1]
    assert [m["SourceVolume"] for m in mounted] == [volumes[0]["Name"]]


def test_job_access_point_is_its_own_directory_as_a_non_root_user(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    access_point = props(job_template, "AccessPoint")
    uid = job_template["Parameters"]["PosixUid"]

    assert job_template["Resources"]["AccessPoint"].get("Condition") == "HasEfs"
    assert platform_element(access_point["FileSystemId"]) == "EFS file system id"
    assert access_point["RootDirectory"]["Path"]["Fn::Sub"].startswith("/jobs/${JobName}")
    # The access point enforces the job's own uid and gid, which job.yaml refuses to be root.
    assert access_point["PosixUser"] == {"Uid": {"Ref": "PosixUid"}, "Gid": {"Ref": "PosixUid"}}
    assert uid["Type"] == "Number"
    assert int(uid["MinValue"]) >= 1
    assert int(uid["Default"]) >= 1
    creation = access_point["RootDirectory"]["CreationInfo"]
    assert (creation["OwnerUid"], creation["OwnerGid"]) == ({"Ref": "PosixUid"}, {"Ref": "PosixUid"})
    for name, job in job_sets.items():
        if job.condition("HasEfs"):
            assert int(job.value(access_point["PosixUser"]["Uid"])) >= 1, name


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


def test_worker_service_leaves_its_count_to_the_scaler_on_capacity_providers_with_circuit_breaker(
    job_template: dict[str, Any],
) -> None:
    resource = job_template["Resources"]["Service"]
    service = resource["Properties"]

    assert resource["Condition"] == "IsService"
    # The Scaler owns the desired count. Any DesiredCount here (even 0) is re-applied by every deploy that
    # updates the service, resetting its workers; without one CloudFormation creates the service with 0 tasks
    # (for a capacity provider strategy) and keeps the current count on updates.
    assert "DesiredCount" not in service
    assert service["CapacityProviderStrategy"]
    assert "LaunchType" not in service, "a launch type and a capacity provider strategy are mutually exclusive"
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert is_true(breaker["Enable"])
    assert service["TaskDefinition"] == {"Ref": "TaskDefinition"}


def test_worker_service_uses_spot_exactly_when_the_job_asks(job_sets: dict[str, Stack]) -> None:
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


@pytest.mark.parametrize("function", sorted(SETTINGS))
def test_every_function_environment_satisfies_its_settings(root: Stack, function: str) -> None:
    settings = SETTINGS[function]
    required = {field.alias for field in settings.model_fields.values() if field.is_required()}
    environment = root.value(props(root.template, function)["Environment"]["Variables"])

    # What the runtime sets is not the template's to provide (Lambda refuses a template that sets it).
    assert required - LAMBDA_RUNTIME_VARIABLES <= set(environment), function
    assert set(environment) & LAMBDA_RUNTIME_VARIABLES == set(), function
    # The values the stack gives resolve to settings the handler accepts (an ARN where it wants one ...).
    settings.from_env({**{k: str(v) for k, v in environment.items()}, "AWS_REGION": REGION})


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
    # A public IP is the platform's choice alone: jobs take it from the Platform list and cannot set their own.
    network = props(job_template, "Service")["NetworkConfiguration"]["AwsvpcConfiguration"]

    assert transformed_template["Parameters"]["AssignPublicIp"]["Default"] == "DISABLED"
    assert "AssignPublicIp" not in job_template["Parameters"]
    for logical_id, passed in sample_jobs(root_template).items():
        assert "AssignPublicIp" not in passed, logical_id
    assert platform_element(network["AssignPublicIp"]) == "AssignPublicIp"
    assert platform_element(network["Subnets"]["Fn::Split"][1]) == "task subnets (;)"
    assert platform_element(network["SecurityGroups"]["Fn::Split"][1]) == "task security groups (;)"


# ------------------------------------------------------------------------------------------ job triggers


def test_schedule_input_carries_the_scheduled_time_and_the_job(job_sets: dict[str, Stack]) -> None:
    target = job_sets["nightly-report"].template["Resources"]["Schedule"]["Properties"]["Target"]

    assert "<aws.scheduler.scheduled-time>" in target["Input"]["Fn::Sub"]
    for label, job in job_sets.items():
        message = json.loads(job.value(target["Input"]))
        assert message["job"] == job.parameters["JobName"], label
        assert message["scheduled_at"] == "<aws.scheduler.scheduled-time>", label


def test_schedules_are_exact_and_retry_until_their_deadline(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    schedule = props(job_template, "Schedule")
    retry = schedule["Target"]["RetryPolicy"]

    assert job_template["Resources"]["Schedule"]["Condition"] == "HasSchedule"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    # In the stack's own group, delivered with the platform's job scheduler role (which trusts only that group).
    assert platform_element(schedule["Target"]["RoleArn"]) == "job scheduler role ARN"
    assert platform_element(schedule["GroupName"]) == "schedule group"
    assert schedule["Name"] == {"Fn::Sub": "job.${JobName}"}
    assert retry["MaximumEventAgeInSeconds"] == {
        "Fn::If": ["HasStartingDeadline", {"Ref": "StartingDeadlineSeconds"}, 86400]
    }
    for name, job in job_sets.items():
        if job.condition("HasSchedule"):
            age = int(job.value(retry["MaximumEventAgeInSeconds"]))
            deadline = int(job.parameters["StartingDeadlineSeconds"])
            assert age == (deadline or 86400), name
            assert 60 <= age <= 86400, f"{name}: EventBridge Scheduler accepts a maximum event age of 60-86400 s"


def test_upload_rule_matches_object_created_under_the_jobs_prefix_and_suffix(job_template: dict[str, Any]) -> None:
    rule = job_template["Resources"]["UploadRule"]
    pattern = rule["Properties"]["EventPattern"]

    assert rule["Condition"] == "HasS3Trigger"
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    (bucket,) = pattern["detail"]["bucket"]["name"]
    assert platform_element(bucket) == "data bucket"
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
        assert platform_element(target["Arn"]) == "dispatch queue ARN", logical_id
        assert platform_element(target["DeadLetterConfig"]["Arn"]) == "dispatch DLQ ARN", logical_id
        assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1, logical_id


def test_root_stack_rule_targets_have_dead_letter_queues(transformed_template: dict[str, Any]) -> None:
    missing = [logical_id for logical_id, target in _targets(transformed_template) if "DeadLetterConfig" not in target]

    assert missing == []


def test_rule_inputs_are_json_once_eventbridge_fills_them(job_sets: dict[str, Stack]) -> None:
    for label, job in job_sets.items():
        for rule_id, trigger in (("UploadRule", "s3"), ("PatternRule", "event")):
            (target,) = job.template["Resources"][rule_id]["Properties"]["Targets"]
            text = job.value(target["InputTransformer"]["InputTemplate"])
            message = json.loads(text.replace("<aws.events.event.json>", '{"detail": {}}'))
            assert message == {"job": job.parameters["JobName"], "trigger": trigger, "event": {"detail": {}}}, label


def test_rule_names_are_admitted_by_the_dispatch_queue_policy(root: Stack, job_sets: dict[str, Stack]) -> None:
    # EventBridge delivers to the queue and its DLQ only as the queue policy allows: by rule ARN.
    policy = root.value(props(root.template, "DispatchQueuePolicy")["PolicyDocument"])["Statement"]
    queues = [root.attribute("DispatchQueue", "Arn"), root.attribute("DispatchDeadLetterQueue", "Arn")]
    checked = 0

    for label, job in job_sets.items():
        for rule_id in ("UploadRule", "PatternRule"):
            if not job.condition(job.template["Resources"][rule_id]["Condition"]):
                continue
            arn = job.attribute(rule_id, "Arn")
            for queue in queues:
                request = Request("sqs:SendMessage", queue, service="events.amazonaws.com", context=on_behalf_of(arn))
                assert allowed(request, policy), f"{label}: {arn} may not send to {queue}"
            checked += 1

    assert checked >= 3


# ------------------------------------------------------------------------------------------ registry entry


def test_registry_entry_is_a_valid_job_spec_for_every_parameter_set(job_sets: dict[str, Stack]) -> None:
    value = job_sets["nightly-report"].template["Resources"]["RegistryEntry"]["Properties"]["Value"]

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
        assert spec.cluster == platform_of(job, "cluster ARN"), label
        assert spec.subnets == platform_of(job, "task subnets (;)").split(";"), label
        assert spec.security_groups == platform_of(job, "task security groups (;)").split(";"), label
        assert spec.assign_public_ip is (platform_of(job, "AssignPublicIp") == "ENABLED"), label
        assert spec.capacity.value == parameters["Capacity"], label
        assert spec.s3_prefix == parameters["S3Prefix"], label
        assert spec.s3_bucket == (platform_of(job, "data bucket") if parameters["S3Prefix"] else None), label
        assert spec.event_pattern == (json.loads(parameters["EventPattern"]) if parameters["EventPattern"] else None)
        assert spec.environment == json.loads(parameters["Environment"]), label
        assert spec.secrets == sorted(json.loads(parameters["Secrets"])), label
        assert spec.allowed_env_overrides == [v for v in parameters["AllowedEnvOverrides"].split(",") if v], label
        assert spec.queue_mode.value == parameters["QueueMode"], label
        assert (spec.queue_url is not None) is (spec.queue_mode is not QueueMode.NONE), label
        assert spec.retry.max_attempts == int(parameters["MaxAttempts"]), label
        assert raw["scaling"]["max_tasks"] == int(parameters["MaxTasks"]), label


def test_registry_entry_lives_where_the_functions_read_it(
    transformed_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    prefix = props(transformed_template, DISPATCHER)["Environment"]["Variables"]["REGISTRY_PREFIX"]["Fn::Sub"]
    # A job's StackPrefix (Platform element 0) is the root stack's name.
    expected = prefix.replace("${AWS::StackName}", PLATFORM["stack name"])

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
    # Wiring is every parameter the job template cannot default, besides the job's own name and image: one
    # Platform list, resolved by CloudFormation from the root stack's PlatformParameter (an SSM StringList).
    wiring = {name for name, p in job_template["Parameters"].items() if "Default" not in p} - {"JobName", "Image"}
    platform = job_template["Parameters"]["Platform"]

    assert wiring == {"Platform"}
    assert platform["Type"] == "AWS::SSM::Parameter::Value<List<String>>"
    assert root_template["Resources"]["PlatformParameter"]["Type"] == "AWS::SSM::Parameter"
    assert root_template["Resources"]["PlatformParameter"]["Properties"]["Type"] == "StringList"
    for logical_id, passed in sample_jobs(root_template).items():
        assert passed["Platform"] == {"Ref": "PlatformParameter"}, logical_id


def test_every_job_passes_only_parameters_the_job_template_declares(
    root_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    declared = set(job_template["Parameters"])
    required = {name for name, p in job_template["Parameters"].items() if "Default" not in p}

    for logical_id, passed in sample_jobs(root_template).items():
        assert set(passed) <= declared, f"{logical_id}: {set(passed) - declared}"
        assert required <= set(passed), f"{logical_id} misses {required - set(passed)}"


def test_every_job_parameter_set_satisfies_the_job_templates_parameter_constraints(
    job_template: dict[str, Any], job_parameter_sets: dict[str, dict[str, Any]]
) -> None:
    # The sample jobs, the rendered synthetic job and the tests' own sets are all jobs CloudFormation would accept.
    for label, passed in job_parameter_sets.items():
        for name, value in passed.items():
            declared = job_template["Parameters"][name]
            if "AllowedValues" in declared:
                assert str(value) in [str(v) for v in declared["AllowedValues"]], f"{label}.{name}"
            if "AllowedPattern" in declared:
                # A list's pattern applies to each of its values.
                values = str(value).split(",") if declared["Type"] == "CommaDelimitedList" else [str(value)]
                for item in values:
                    assert re.fullmatch(declared["AllowedPattern"], item), f"{label}.{name}: {item!r}"
            if "MinValue" in declared:
                assert float(value) >= float(declared["MinValue"]), f"{label}.{name}"
            if "MaxValue" in declared:
                assert float(value) <= float(declared["MaxValue"]), f"{label}.{name}"
