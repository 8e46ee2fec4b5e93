"""Least privilege, checked statement by statement.

Identity policies come from the *transformed* template.yaml (what CloudFormation receives: the function roles are
explicit there, so SAM generates none) and from jobs/job.yaml as written. ``Fn::If`` is expanded both ways: a
statement that only exists for some jobs must still be least-privilege for those jobs. Where a job's grant
depends on its parameters (its image, its secrets), it is resolved for every job parameter set as well.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from taskrunner.adapters.retries import DispatchRetries
from taskrunner.domain.ports import Retry
from tests.policies.cfn import ACCOUNT, REGION, Stack, render_jobs
from tests.policies.iam import Request, allowed, on_behalf_of
from tests.template.walk import (
    IAM_ROLE,
    LAYOUT,
    NO_VALUE,
    Grant,
    as_list,
    document_statements,
    identity_grants,
    is_resource_of_type,
    items,
    managed_policy_arns,
    platform_element,
    ref_name,
    resources_of,
    sub_text,
    sub_variables,
    trust_grants,
    wildcard_action,
)

# Actions whose only resource is "*": the Service Authorization Reference lists no resource type for
# them (https://docs.aws.amazon.com/service-authorization/latest/reference/), so "*" is not a shortcut.
NO_RESOURCE_LEVEL_ACTIONS = frozenset(
    {
        "ecr:getauthorizationtoken",  # the registry token is account-wide ("Amazon ECR" page, no resource types)
        "xray:puttracesegments",  # X-Ray write APIs have no resource types ("AWS X-Ray" page)
        "xray:puttelemetryrecords",
        "xray:getsamplingrules",
        "xray:getsamplingtargets",
        "cloudwatch:putmetricdata",  # scoped by the cloudwatch:namespace condition key, not by a resource
    }
)
# What the templates grant on "*" today: traces (Tracing: Active) and, for private-ECR images, the token.
STAR_GRANTS = frozenset({"xray:puttracesegments", "xray:puttelemetryrecords", "ecr:getauthorizationtoken"})

ECS_TASKS = "ecs-tasks.amazonaws.com"
SCHEDULER = "scheduler.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
JOB_ROLE_PATH = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}/jobs/*"
TASK_DEFINITION_FAMILIES = (
    "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/${AWS::StackName}-"
)
SCHEDULES_OF_THE_GROUP = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${AWS::StackName}/*"
# ecs actions on existing tasks and services: each must name the cluster in a condition.
CLUSTER_SCOPED_ACTIONS = frozenset(
    {
        "ecs:stoptask",
        "ecs:updateservice",
        "ecs:describetasks",
        "ecs:listtasks",
        "ecs:describeservices",
        "ecs:gettaskprotection",
        "ecs:updatetaskprotection",
    }
)
# What an SQS event source mapping does with its function's role; only the queue's own consumer may.
SQS_CONSUME = frozenset({"sqs:receivemessage", "sqs:deletemessage", "sqs:changemessagevisibility"})
JOB_TASK_ROLE_SERVICES = frozenset({"s3", "elasticfilesystem", "sqs", "ecs", "dynamodb"})  # dynamodb: the drain signal
JOB_EXECUTION_ROLE_SERVICES = frozenset({"logs", "ecr", "secretsmanager", "ssm", "kms"})


def names_cluster(value: Any, template: dict[str, Any]) -> bool:
    """The root stack names its own cluster; a job stack the cluster ARN of its Platform list."""
    if "Platform" in template.get("Parameters", {}) and platform_element(value) == "cluster ARN":
        return True
    return is_resource_of_type(value, template, "AWS::ECS::Cluster")


def job_role_grants(job_template: dict[str, Any], role: str) -> list[Grant]:
    return [grant for grant in identity_grants(job_template) if grant.owner == role]


def resolved_grants(job: Stack, role: str) -> list[dict[str, Any]]:
    """The statements of one job role as CloudFormation creates them for that job."""
    # A job that reaches none of its own resources gets a role without policies.
    policies = job.properties(role).get("Policies", [])
    statements = [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]
    # One action may be written without a list; the checks below read every statement's actions as a list.
    return [s | {"Action": as_list(s["Action"])} for s in statements]


def function_roles(transformed: dict[str, Any]) -> dict[str, str]:
    """Lambda function logical id → the logical id of its role."""
    return {
        logical_id: str(ref_name(function["Properties"]["Role"]))
        for logical_id, function in resources_of(transformed, "AWS::Lambda::Function").items()
    }


def event_source_queues(transformed: dict[str, Any], function: str) -> list[Any]:
    return [
        mapping["Properties"]["EventSourceArn"]
        for mapping in resources_of(transformed, "AWS::Lambda::EventSourceMapping").values()
        if ref_name(mapping["Properties"]["FunctionName"]) == function
    ]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(params=["template.yaml", "jobs/job.yaml"])
def template(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each template as CloudFormation receives it: the root transformed, the job stack as written."""
    if request.param == "template.yaml":
        return request.getfixturevalue("transformed_template")
    return request.getfixturevalue("job_template")


@pytest.fixture
def grants(template: dict[str, Any]) -> list[Grant]:
    return list(identity_grants(template))


# ------------------------------------------------------------------------------------------ the walker itself


def test_walker_reads_every_role_with_inline_policies(template: dict[str, Any], grants: list[Grant]) -> None:
    roles_with_policies = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == IAM_ROLE and resource["Properties"].get("Policies")
    }

    assert roles_with_policies
    assert {grant.owner for grant in grants} >= roles_with_policies


def test_walker_takes_both_branches_of_conditional_statements(job_template: dict[str, Any]) -> None:
    task = {name for grant in job_role_grants(job_template, "TaskRole") for name, _ in grant.when}
    execution = {name for grant in job_role_grants(job_template, "ExecutionRole") for name, _ in grant.when}

    assert {"HasS3Trigger", "HasEfs", "HasWorkQueue", "IsService"} <= task
    assert {"IsPrivateEcr", "HasSecrets", "HasSecretsKeys"} <= execution


def test_every_function_role_is_an_explicit_role_the_walker_reads(
    transformed_template: dict[str, Any], root_template: dict[str, Any]
) -> None:
    # A function without `Role` gets a role SAM generates (with AWS managed policies); every function names one
    # of the template's own roles instead, and declares no SAM `Policies` that SAM would turn into statements.
    owners = {grant.owner for grant in identity_grants(transformed_template)}
    roles = function_roles(transformed_template)

    assert set(roles) == {"DispatchFunction", "ScalerFunction", "TrackerFunction"}
    for function, role in roles.items():
        assert root_template["Resources"][role]["Type"] == IAM_ROLE, function
        assert "Policies" not in root_template["Resources"][function]["Properties"], function
        assert role in owners, function
    assert len(set(roles.values())) == len(roles), "functions share a role"


# ------------------------------------------------------------------------------------------ every role


def test_no_identity_statement_allows_every_action_of_a_service(grants: list[Grant]) -> None:
    wildcards = [str(grant) for grant in grants if any(wildcard_action(a) for a in grant.actions)]

    assert wildcards == []


def test_no_identity_statement_allows_by_exclusion(grants: list[Grant]) -> None:
    # Allow + NotAction / NotResource grants everything not listed: a wildcard in disguise.
    exclusions = [str(g) for g in grants if g.allows and ({"NotAction", "NotResource"} & set(g.statement))]

    assert exclusions == []


def test_resource_star_only_for_actions_without_resource_level_permissions(grants: list[Grant]) -> None:
    too_broad = [
        str(grant) for grant in grants if "*" in grant.resources and not set(grant.actions) <= NO_RESOURCE_LEVEL_ACTIONS
    ]

    assert too_broad == []


def test_resource_star_is_granted_only_for_traces_and_the_ecr_token(
    transformed_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    on_star = {
        action
        for template in (transformed_template, job_template)
        for grant in identity_grants(template)
        if "*" in grant.resources
        for action in grant.actions
    }
    token = [g for g in identity_grants(job_template) if "ecr:getauthorizationtoken" in g.actions]

    assert on_star == STAR_GRANTS
    # The registry token only for jobs that pull from private ECR (a public image needs no credentials).
    assert token
    assert all(("IsPrivateEcr", True) in g.when and g.actions == ["ecr:getauthorizationtoken"] for g in token)


def test_every_statement_names_its_resources(grants: list[Grant]) -> None:
    assert [str(grant) for grant in grants if not grant.resources] == []


# ------------------------------------------------------------------------------------------ managed policies


def test_no_root_role_has_a_managed_policy(transformed_template: dict[str, Any]) -> None:
    # AWSLambdaSQSQueueExecutionRole, which SAM attaches to the role it generates for an SQS-fed function, lets
    # it receive and delete messages of every queue in the account; the explicit roles carry inline policies only.
    attached = managed_policy_arns(transformed_template)

    assert set(function_roles(transformed_template).values()) <= set(attached)
    assert {role: arns for role, arns in attached.items() if arns} == {}


def test_job_task_role_takes_managed_policies_only_when_the_job_asks(
    job_template: dict[str, Any], root_template: dict[str, Any]
) -> None:
    task_role = job_template["Resources"]["TaskRole"]["Properties"]
    samples = render_jobs().sample_jobs(root_template)

    assert task_role["ManagedPolicyArns"] == {"Fn::If": ["HasManagedPolicies", {"Ref": "ManagedPolicyArns"}, NO_VALUE]}
    assert job_template["Parameters"]["ManagedPolicyArns"]["Default"] == ""
    assert [s for s in samples.values() if "ManagedPolicyArns" in s] == []
    for role_id, arns in managed_policy_arns(job_template).items():
        assert role_id == "TaskRole" or arns == set(), role_id


def test_job_roles_are_bounded_by_the_platforms_permissions_boundary(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    # The boundary bounds ManagedPolicyArns too: a job cannot widen its task role past what the platform allows.
    roles = resources_of(job_template, IAM_ROLE)

    assert set(roles) == {"TaskRole", "ExecutionRole"}
    for logical_id, role in roles.items():
        boundary = role["Properties"]["PermissionsBoundary"]
        condition, if_set, otherwise = boundary["Fn::If"]
        assert condition == "HasBoundary", logical_id
        assert platform_element(if_set) == 'permissions boundary ARN or "none"', logical_id
        assert otherwise == NO_VALUE, logical_id
    for name, job in job_sets.items():
        expected = job.value({"Fn::Select": [LAYOUT.index('permissions boundary ARN or "none"'), {"Ref": "Platform"}]})
        for logical_id in roles:
            properties = job.value(job.template["Resources"][logical_id]["Properties"])
            assert properties.get("PermissionsBoundary", "none") == expected, f"{name}.{logical_id}"


# ------------------------------------------------------------------------------------------ iam:PassRole


def test_pass_role_only_for_job_roles_to_ecs_tasks(transformed_template: dict[str, Any]) -> None:
    passing = [grant for grant in identity_grants(transformed_template) if "iam:passrole" in grant.actions]
    # Each job's task and execution roles live under the job path; no shared execution role is passed any more.
    job_roles = [{"Fn::Sub": JOB_ROLE_PATH}]
    # The one other role passed: the Tracker hands the job scheduler role to EventBridge Scheduler for late retries.
    retry_role = [{"Fn::GetAtt": ["DispatchSchedulerRole", "Arn"]}]

    assert passing, "the Dispatcher must be able to pass job roles"
    for grant in passing:
        assert grant.actions == ["iam:passrole"], f"{grant}: PassRole shares its statement"
        if grant.resources == retry_role:
            assert grant.owner == "TrackerFunctionRole", grant
            assert grant.condition("iam:PassedToService", ("StringEquals",)) in (SCHEDULER, [SCHEDULER]), grant
            continue
        assert grant.resources == job_roles, grant
        assert grant.condition("iam:PassedToService", ("StringEquals",)) in (ECS_TASKS, [ECS_TASKS]), grant


def test_each_job_has_its_own_execution_role_and_the_root_none(
    transformed_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    task_definition = job_template["Resources"]["TaskDefinition"]["Properties"]
    execution_trust = [g for g in trust_grants(job_template) if g.owner == "ExecutionRole"]
    root_trusting_tasks = [
        g.owner
        for g in trust_grants(transformed_template)
        if ECS_TASKS in [p for p, _ in items(g.statement["Principal"].get("Service", []))]
    ]

    assert task_definition["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}
    assert task_definition["TaskRoleArn"] == {"Fn::GetAtt": ["TaskRole", "Arn"]}
    assert [g.statement["Principal"] for g in execution_trust] == [{"Service": ECS_TASKS}]
    assert [g.statement["Action"] for g in execution_trust] == ["sts:AssumeRole"]
    # A role of the root stack that ECS tasks may assume would be shared by every job.
    assert root_trusting_tasks == []


def test_job_stacks_neither_pass_roles_nor_launch_tasks(job_template: dict[str, Any]) -> None:
    # Launching is the Dispatcher's job; a job's own roles could otherwise escalate to any job role.
    launching = {"iam:passrole", "ecs:runtask", "ecs:starttask"}

    assert [str(g) for g in identity_grants(job_template) if launching & set(g.actions)] == []


def test_only_job_roles_live_under_the_passable_path(
    root: Stack, job_sets: dict[str, Stack], job_template: dict[str, Any]
) -> None:
    (dispatcher_pass,) = [
        g for g in identity_grants(root.template) if g.owner == "DispatchFunctionRole" and "iam:passrole" in g.actions
    ]
    (passable,) = [root.value(resource) for resource in dispatcher_pass.resources]
    root_roles = {logical_id: root.attribute(logical_id, "Arn") for logical_id in resources_of(root.template, IAM_ROLE)}

    # The Dispatcher passes a job's task and execution roles with its task definition: both must be passable.
    for logical_id in ("TaskRole", "ExecutionRole"):
        path = job_template["Resources"][logical_id]["Properties"]["Path"]
        assert sub_text(path) == "/${StackPrefix}/jobs/", logical_id
        assert platform_element(sub_variables(path)["StackPrefix"]) == "stack name", logical_id
    for name, job in job_sets.items():
        for logical_id in ("TaskRole", "ExecutionRole"):
            arn = job.attribute(logical_id, "Arn")
            assert fnmatchcase(arn, passable), f"{name}.{logical_id}: {arn} is not under {passable}"
    # No role of the platform itself may be passed to a task.
    assert {logical_id: arn for logical_id, arn in root_roles.items() if fnmatchcase(arn, passable)} == {}


# ------------------------------------------------------------------------------------------ ecs


def test_run_task_only_on_own_task_definitions_on_own_cluster(transformed_template: dict[str, Any]) -> None:
    running = [grant for grant in identity_grants(transformed_template) if "ecs:runtask" in grant.actions]

    assert running, "the Dispatcher must be able to run tasks"
    for grant in running:
        assert grant.resources, grant
        for resource in grant.resources:
            text = sub_text(resource) or ""
            assert text.startswith(TASK_DEFINITION_FAMILIES), f"{grant}: {resource}"
        assert names_cluster(grant.condition("ecs:cluster"), transformed_template), grant


def test_task_and_service_actions_are_conditioned_on_the_cluster(template: dict[str, Any], grants: list[Grant]) -> None:
    unscoped = [
        str(grant)
        for grant in grants
        if set(grant.actions) & CLUSTER_SCOPED_ACTIONS and not names_cluster(grant.condition("ecs:cluster"), template)
    ]

    assert unscoped == []


# ------------------------------------------------------------------------------------------ queues and schedules


def test_each_function_consumes_only_its_own_queue(transformed_template: dict[str, Any]) -> None:
    consuming = [g for g in identity_grants(transformed_template) if SQS_CONSUME & set(g.actions)]

    for function, role in function_roles(transformed_template).items():
        own = event_source_queues(transformed_template, function)
        mine = [g for g in consuming if g.owner == role]
        assert [r for g in mine for r in g.resources if r not in own] == [], f"{function} consumes another queue"
        # ... and may consume its own: an event source mapping polls with the function's role.
        for queue in own:
            granted = {a for g in mine if queue in g.resources for a in g.actions}
            assert granted >= SQS_CONSUME | {"sqs:getqueueattributes"}, f"{function}: {queue}"
    # No other role of the platform consumes any queue.
    assert {g.owner for g in consuming} <= set(function_roles(transformed_template).values())


def test_scheduler_roles_trust_only_schedules_of_the_stacks_group(root: Stack) -> None:
    trusting = [
        g
        for g in trust_grants(root.template)
        if SCHEDULER in [p for p, _ in items(g.statement["Principal"].get("Service", []))]
    ]

    assert {g.owner for g in trusting} == {"DispatchSchedulerRole", "PlatformSchedulesRole"}
    for grant in trusting:
        assert grant.statement["Principal"] == {"Service": SCHEDULER}, grant
        assert grant.condition("aws:SourceArn", ("ArnLike",)) == {"Fn::Sub": SCHEDULES_OF_THE_GROUP}, grant
        trust = root.value(root.template["Resources"][grant.owner]["Properties"]["AssumeRolePolicyDocument"])

        def assume(schedule: str, account: str = ACCOUNT, trust: dict[str, Any] = trust) -> bool:
            schedule_arn = f"arn:aws:scheduler:{REGION}:{account}:schedule/{schedule}"
            request = Request("sts:AssumeRole", "*", service=SCHEDULER, context=on_behalf_of(schedule_arn))
            return allowed(request, trust["Statement"])

        assert assume(f"{root.stack_name}/job.nightly-report"), grant
        assert assume(f"{root.stack_name}/retry.0123abcd.2"), grant
        assert not assume(f"{root.stack_name}-dev/job.nightly-report"), f"{grant}: a sibling stack's"
        assert not assume("default/job.nightly-report"), f"{grant}: the default group's"
        assert not assume(f"{root.stack_name}/job.x", account="210987654321"), f"{grant}: another account's"


def test_every_schedule_runs_in_the_stacks_group_with_a_role_that_trusts_it(
    root: Stack, job_sets: dict[str, Stack]
) -> None:
    group = root.value(root.template["Resources"]["ScheduleGroup"]["Properties"]["Name"])
    trusts = {
        logical_id: root.value(resource["Properties"]["AssumeRolePolicyDocument"])["Statement"]
        for logical_id, resource in resources_of(root.template, IAM_ROLE).items()
    }
    role_by_arn = {root.attribute(logical_id, "Arn"): logical_id for logical_id in trusts}
    schedules = [
        (f"root.{logical_id}", root.value(schedule["Properties"]), root)
        for logical_id, schedule in resources_of(root.template, "AWS::Scheduler::Schedule").items()
    ]
    schedules += [
        (f"{name}.Schedule", job.value(job.template["Resources"]["Schedule"]["Properties"]), job)
        for name, job in job_sets.items()
        if job.condition("HasSchedule")
    ]
    # A job's schedule role is the platform's job scheduler role (element 11 of its Platform list).
    job_scheduler_role = render_jobs().SAMPLE_PLATFORM["job scheduler role ARN"]
    role_by_arn[job_scheduler_role] = "DispatchSchedulerRole"

    assert group == root.stack_name
    assert {label for label, _, _ in schedules} >= {"root.ScalerFunctionEveryMinute", "root.TrackerFunctionReconcile"}
    assert any(label.endswith(".Schedule") for label, _, _ in schedules)
    for label, schedule, stack in schedules:
        assert schedule["GroupName"] == group, label
        arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{schedule['GroupName']}/{schedule['Name']}"
        role = role_by_arn[schedule["Target"]["RoleArn"]]
        request = Request("sts:AssumeRole", "*", service=SCHEDULER, context=on_behalf_of(arn))
        assert allowed(request, trusts[role]), f"{label}: {role} does not trust {arn}"
        if stack is not root:
            # Job ticks are 'job.<name>': a name no retry ('retry.…') and no platform schedule can take.
            assert schedule["Name"] == f"job.{stack.parameters['JobName']}", label


def test_tracker_creates_only_retry_schedules_in_the_stacks_group(root: Stack) -> None:
    creating = [g for g in identity_grants(root.template) if any(a.startswith("scheduler:") for a in g.actions)]
    environment = root.value(root.template["Resources"]["TrackerFunction"]["Properties"]["Environment"]["Variables"])
    calls: list[dict[str, Any]] = []

    class RecordingScheduler:
        def create_schedule(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    retries = DispatchRetries(
        environment["DISPATCH_QUEUE_URL"],
        environment["DISPATCH_QUEUE_ARN"],
        environment["RETRY_SCHEDULER_ROLE_ARN"],
        schedule_group=environment["SCHEDULE_GROUP"],
        sqs=object(),  # type: ignore[arg-type]
        scheduler=RecordingScheduler(),  # type: ignore[arg-type]
    )
    retries.schedule(Retry(run_id="0123456789abcdef0123", attempt=2, delay_s=3600, body={"job": "nightly-report"}))

    assert [(g.owner, g.actions) for g in creating] == [("TrackerFunctionRole", ["scheduler:createschedule"])]
    (pattern,) = [root.value(resource) for resource in creating[0].resources]
    assert pattern == f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{root.stack_name}/retry.*"
    (call,) = calls
    created = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{call['GroupName']}/{call['Name']}"
    # What the Tracker's code creates is what its role allows; a job's tick or a platform schedule is not.
    assert fnmatchcase(created, pattern), created
    assert call["Target"]["RoleArn"] == root.attribute("DispatchSchedulerRole", "Arn")
    for other in ("job.nightly-report", "ScalerFunctionEveryMinute", "TrackerFunctionReconcile"):
        assert not fnmatchcase(f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{root.stack_name}/{other}", pattern)


# ------------------------------------------------------------------------------------------ the job task role


def test_job_task_role_uses_only_its_own_services_without_wildcards(job_template: dict[str, Any]) -> None:
    grants = job_role_grants(job_template, "TaskRole")
    services = {action.split(":", 1)[0] for grant in grants for action in grant.actions}

    assert grants
    assert services <= JOB_TASK_ROLE_SERVICES
    assert [str(g) for g in grants if any("*" in action for action in g.actions)] == []
    assert [str(g) for g in grants if not g.allows] == []


def test_job_task_role_cannot_write_or_delete_objects(job_template: dict[str, Any]) -> None:
    s3_actions = {a for g in job_role_grants(job_template, "TaskRole") for a in g.actions if a.startswith("s3:")}

    assert s3_actions <= {"s3:getobject", "s3:getobjectversion", "s3:listbucket"}


def test_job_task_role_reads_objects_only_under_its_own_prefix(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    reading = [
        g for g in job_role_grants(job_template, "TaskRole") if {"s3:getobject", "s3:getobjectversion"} & set(g.actions)
    ]

    assert reading
    for grant in reading:
        (resource,) = grant.resources
        assert sub_text(resource) == "arn:${AWS::Partition}:s3:::${Bucket}/${S3Prefix}*", grant
        assert platform_element(sub_variables(resource)["Bucket"]) == "data bucket", grant
        # Without an S3 trigger the prefix is empty and "<bucket>/*" would be the whole bucket.
        assert ("HasS3Trigger", True) in grant.when, grant
    for name, job in job_sets.items():
        bucket, prefix = render_jobs().SAMPLE_PLATFORM["data bucket"], job.parameters["S3Prefix"]
        resolved = [s["Resource"] for s in resolved_grants(job, "TaskRole") if "s3:GetObject" in s["Action"]]
        assert resolved == ([f"arn:aws:s3:::{bucket}/{prefix}*"] if prefix else []), name


def test_job_task_role_lists_only_its_own_prefix(job_template: dict[str, Any]) -> None:
    listing = [g for g in job_role_grants(job_template, "TaskRole") if "s3:listbucket" in g.actions]

    assert listing
    for grant in listing:
        assert grant.actions == ["s3:listbucket"], grant
        (resource,) = grant.resources
        assert sub_text(resource) == "arn:${AWS::Partition}:s3:::${Bucket}", grant
        assert platform_element(sub_variables(resource)["Bucket"]) == "data bucket", grant
        prefix = grant.condition("s3:prefix", ("StringLike", "StringEquals"))
        assert prefix in ({"Fn::Sub": "${S3Prefix}*"}, {"Ref": "S3Prefix"}), grant
        assert ("HasS3Trigger", True) in grant.when, grant


def test_job_task_role_mounts_only_through_its_own_access_point(job_template: dict[str, Any]) -> None:
    mounting = [
        g
        for g in job_role_grants(job_template, "TaskRole")
        if any(a.startswith("elasticfilesystem:") for a in g.actions)
    ]

    assert mounting
    for grant in mounting:
        assert set(grant.actions) <= {"elasticfilesystem:clientmount", "elasticfilesystem:clientwrite"}, grant
        (resource,) = grant.resources
        assert sub_text(resource) == (
            "arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:file-system/${FileSystemId}"
        ), grant
        assert platform_element(sub_variables(resource)["FileSystemId"]) == "EFS file system id", grant
        access_point = sub_text(grant.condition("elasticfilesystem:AccessPointArn", ("StringEquals", "ArnEquals")))
        assert access_point == (
            "arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:access-point/${AccessPoint}"
        ), grant
        assert job_template["Resources"]["AccessPoint"]["Type"] == "AWS::EFS::AccessPoint"
        assert ("HasEfs", True) in grant.when, grant


def test_job_task_role_reaches_only_its_own_work_queue(job_template: dict[str, Any]) -> None:
    queueing = [g for g in job_role_grants(job_template, "TaskRole") if any(a.startswith("sqs:") for a in g.actions)]

    assert queueing
    for grant in queueing:
        assert grant.resources == [{"Fn::GetAtt": ["WorkQueue", "Arn"]}], grant
        assert ("HasWorkQueue", True) in grant.when, grant


def test_task_protection_only_for_a_service_and_only_on_the_jobs_own_tasks(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    # A worker protects its own task from scale-in while it holds a message. Tasks of every job share the
    # cluster, so the grant is limited to tasks carrying this job's tag, which its service propagates.
    protection = {"ecs:gettaskprotection", "ecs:updatetaskprotection"}
    protecting = [g for g in job_role_grants(job_template, "TaskRole") if protection & set(g.actions)]
    service = job_template["Resources"]["Service"]["Properties"]

    assert protecting
    for grant in protecting:
        assert set(grant.actions) == protection, grant
        assert ("IsService", True) in grant.when, grant
        assert grant.condition("aws:ResourceTag/taskrunner:job", ("StringEquals",)) == {"Ref": "JobName"}, grant
        assert platform_element(grant.condition("ecs:cluster", ("ArnEquals",))) == "cluster ARN", grant
    assert {"Key": "taskrunner:job", "Value": {"Ref": "JobName"}} in service["Tags"]
    assert service["PropagateTags"] == "SERVICE"
    for name, job in job_sets.items():
        resolved = [s for s in resolved_grants(job, "TaskRole") if "ecs:UpdateTaskProtection" in s["Action"]]
        assert bool(resolved) is (job.parameters["QueueMode"] == "service"), name
        cluster_arn = render_jobs().SAMPLE_PLATFORM["cluster ARN"]
        for statement in resolved:
            assert statement["Resource"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster_arn.split('/')[1]}/*"
            assert statement["Condition"]["StringEquals"] == {"aws:ResourceTag/taskrunner:job": name}


# ------------------------------------------------------------------------------------------ the job execution role


def test_job_execution_role_uses_only_logs_ecr_and_its_secrets(job_template: dict[str, Any]) -> None:
    grants = job_role_grants(job_template, "ExecutionRole")
    services = {action.split(":", 1)[0] for grant in grants for action in grant.actions}

    assert grants
    assert services <= JOB_EXECUTION_ROLE_SERVICES
    assert [str(g) for g in grants if not g.allows] == []


def test_job_execution_role_writes_only_its_own_log_group(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    logging = [
        g for g in job_role_grants(job_template, "ExecutionRole") if any(a.startswith("logs:") for a in g.actions)
    ]

    assert len(logging) == 1
    assert set(logging[0].actions) == {"logs:createlogstream", "logs:putlogevents"}
    assert [sub_text(r) for r in logging[0].resources] == ["${LogGroup.Arn}"]
    assert logging[0].when == frozenset()
    for name, job in job_sets.items():
        (statement,) = [s for s in resolved_grants(job, "ExecutionRole") if s["Sid"] == "WriteOwnLogs"]
        assert statement["Resource"] == job.attribute("LogGroup", "Arn"), name


def _repository(image: str) -> str | None:
    """The repository of a private ECR image (registry/repo[:tag][@digest]), None for any other registry."""
    if ".dkr.ecr." not in image:
        return None
    path = image.split(".amazonaws.com/", 1)[1]
    return path.split("@", 1)[0].split(":", 1)[0]


def test_job_execution_role_pulls_only_its_own_private_ecr_repository(job_sets: dict[str, Stack]) -> None:
    repositories = {}
    for name, job in job_sets.items():
        statements = resolved_grants(job, "ExecutionRole")
        ecr = [s for s in statements if any(a.startswith("ecr:") for a in s["Action"])]
        pulls = [s for s in ecr if s["Sid"] == "PullOwnImage"]
        repository = _repository(job.parameters["Image"])
        repositories[name] = repository
        if repository is None:
            # A public image needs no credentials: no ECR statement at all.
            assert ecr == [], name
            continue
        (pull,) = pulls
        assert pull["Resource"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}", name
        assert set(pull["Action"]) == {
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
        }
        assert {s["Sid"] for s in ecr} == {"PullOwnImage", "EcrToken"}, name

    # The parameter sets cover a public image, a tag, a digest and a repository with a namespace.
    assert None in repositories.values()
    assert {"team/everything", "pinned", "taskrunner-example-worker"} <= set(repositories.values())


def test_job_execution_role_reads_only_the_secrets_the_job_names(job_sets: dict[str, Stack]) -> None:
    with_secrets = 0
    for name, job in job_sets.items():
        secrets = json.loads(job.parameters["Secrets"])
        reading = [
            s
            for s in resolved_grants(job, "ExecutionRole")
            if {"secretsmanager:GetSecretValue", "ssm:GetParameters"} & set(s["Action"])
        ]
        if not secrets:
            assert reading == [], name
            continue
        with_secrets += 1
        (statement,) = reading
        assert set(statement["Action"]) == {"secretsmanager:GetSecretValue", "ssm:GetParameters"}, name
        assert sorted(statement["Resource"]) == sorted(secrets.values()), name

    assert with_secrets >= 2


def test_job_execution_role_decrypts_only_the_jobs_keys_through_secrets_services(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    decrypting = [g for g in job_role_grants(job_template, "ExecutionRole") if "kms:decrypt" in g.actions]

    assert len(decrypting) == 1
    assert decrypting[0].actions == ["kms:decrypt"]
    assert decrypting[0].resources == [{"Ref": "SecretsKmsKeyArns"}]
    assert ("HasSecretsKeys", True) in decrypting[0].when
    for name, job in job_sets.items():
        keys = [k for k in job.parameters["SecretsKmsKeyArns"].split(",") if k]
        resolved = [s for s in resolved_grants(job, "ExecutionRole") if "kms:Decrypt" in s["Action"]]
        if not keys:
            assert resolved == [], name
            continue
        (statement,) = resolved
        assert statement["Resource"] == keys, name
        # Only as Secrets Manager or SSM decrypt a secret for ECS: the role cannot decrypt anything else with them.
        assert statement["Condition"] == {
            "StringLike": {"kms:ViaService": [f"secretsmanager.{REGION}.amazonaws.com", f"ssm.{REGION}.amazonaws.com"]}
        }, name


# ------------------------------------------------------------------------------------------ trust and resource policies


@pytest.mark.parametrize("service", [ECS_TASKS, SCHEDULER])
def test_service_principals_are_confined_to_this_account(template: dict[str, Any], service: str) -> None:
    trusting = [
        grant
        for grant in trust_grants(template)
        if service in [p for p, _ in items(grant.statement.get("Principal", {}).get("Service", []))]
    ]

    for grant in trusting:
        source_account = grant.condition("aws:SourceAccount", ("StringEquals",))
        assert source_account == {"Ref": "AWS::AccountId"}, f"{grant.owner} trusts {service} from any account"


def test_service_principals_are_trusted_somewhere(transformed_template: dict[str, Any], job_template: dict) -> None:
    trusted = {
        principal
        for template in (transformed_template, job_template)
        for grant in trust_grants(template)
        for principal, _ in items(grant.statement.get("Principal", {}).get("Service", []))
    }

    assert {ECS_TASKS, SCHEDULER, LAMBDA} <= trusted


def test_no_role_trusts_any_principal(template: dict[str, Any]) -> None:
    assert [g.owner for g in trust_grants(template) if g.statement.get("Principal") in ("*", {"AWS": "*"})] == []


RESOURCE_POLICIES = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::EFS::FileSystem": "FileSystemPolicy",
    # KMS key policies are checked in test_resource_policies: their administration statement is kms:* for the
    # account (the default key policy, which delegates to IAM), and "*" there is the key itself.
}


def test_resource_policies_allow_only_named_actions_to_named_principals(template: dict[str, Any]) -> None:
    # Deny statements (TLS-only and the like) may use wildcards: they can only take access away.
    problems = []
    covered = set()
    for logical_id, resource in template["Resources"].items():
        key = RESOURCE_POLICIES.get(resource["Type"])
        if key is None or key not in resource.get("Properties", {}):
            continue
        covered.add(resource["Type"])
        for grant in document_statements(logical_id, resource["Properties"][key]):
            if not grant.allows:
                continue
            if any(wildcard_action(action) for action in grant.actions):
                problems.append(f"{grant}: wildcard action")
            principal = grant.statement.get("Principal")
            if principal in ("*", {"AWS": "*"}) and "Condition" not in grant.statement:
                problems.append(f"{grant}: any principal, unconditionally")

    assert covered
    assert problems == []
