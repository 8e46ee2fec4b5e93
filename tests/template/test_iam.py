"""Least privilege, checked statement by statement (DESIGN.md, "Conventions").

Identity policies come from the *transformed* template.yaml, so the roles SAM generates for the
functions are included, and from jobs/job.yaml as written. ``Fn::If`` is expanded both ways: a
statement that only exists for some jobs must still be least-privilege for those jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

NO_VALUE = {"Ref": "AWS::NoValue"}
IAM_ROLE = "AWS::IAM::Role"
STANDALONE_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")

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

# SAM attaches these AWS-managed policies by ARN: basic logging for every function, X-Ray for
# `Tracing: Active` (SAM chooses AWSXrayWriteOnlyAccess), SQS polling for an SQS event source.
LAMBDA_BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY_WRITE = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
SQS_POLLER = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
MANAGED_POLICY_ARNS = frozenset({LAMBDA_BASIC, XRAY_WRITE, SQS_POLLER})

ECS_TASKS = "ecs-tasks.amazonaws.com"
SCHEDULER = "scheduler.amazonaws.com"
JOB_ROLE_PATH = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}/jobs/*"
TASK_DEFINITION_FAMILIES = (
    "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-definition/${AWS::StackName}-"
)
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
EXACT_MATCH_OPERATORS = ("ArnEquals", "StringEquals")
JOB_TASK_ROLE_SERVICES = frozenset({"s3", "elasticfilesystem", "sqs", "ecs"})


# ------------------------------------------------------------------------------------------ walker


def branches(node: Any, when: frozenset[tuple[str, bool]] = frozenset()) -> Iterator[tuple[Any, frozenset]]:
    """Every value ``node`` can take, with the conditions that select it; ``AWS::NoValue`` yields nothing."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        condition, if_true, if_false = node["Fn::If"]
        yield from branches(if_true, when | {(condition, True)})
        yield from branches(if_false, when | {(condition, False)})
    elif node != NO_VALUE:
        yield node, when


def items(node: Any, when: frozenset[tuple[str, bool]] = frozenset()) -> Iterator[tuple[Any, frozenset]]:
    """The elements of a list that may itself, or in any element, be an ``Fn::If``."""
    for value, branch_when in branches(node, when):
        for element in value if isinstance(value, list) else [value]:
            yield from branches(element, branch_when)


@dataclass(frozen=True)
class Grant:
    """One policy statement, who holds it, and under which template conditions it exists."""

    owner: str
    statement: dict[str, Any]
    when: frozenset[tuple[str, bool]]

    @property
    def actions(self) -> list[str]:
        return [action.lower() for action, _ in items(self.statement.get("Action", []))]

    @property
    def resources(self) -> list[Any]:
        return [resource for resource, _ in items(self.statement.get("Resource", []))]

    @property
    def allows(self) -> bool:
        return self.statement.get("Effect") == "Allow"

    def condition(self, key: str, operators: tuple[str, ...] = EXACT_MATCH_OPERATORS) -> Any:
        for operator in operators:
            block = self.statement.get("Condition", {}).get(operator, {})
            if key in block:
                return block[key]
        return None

    def __str__(self) -> str:
        return f"{self.owner}: {self.statement.get('Sid', '')} {self.actions}"


def _document_statements(owner: str, document: Any, when: frozenset) -> Iterator[Grant]:
    for doc, _ in branches(document, when):
        for statement, statement_when in items(doc.get("Statement", [])):
            yield Grant(owner, statement, statement_when)


def _resource_when(resource: dict[str, Any]) -> frozenset[tuple[str, bool]]:
    return frozenset({(resource["Condition"], True)}) if "Condition" in resource else frozenset()


def identity_grants(template: dict[str, Any]) -> Iterator[Grant]:
    """(role logical id, statement) for every identity-policy statement: inline, standalone, SAM-made."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        when = _resource_when(resource)
        if resource["Type"] == IAM_ROLE:
            for policy, policy_when in items(props.get("Policies", []), when):
                yield from _document_statements(logical_id, policy["PolicyDocument"], policy_when)
        elif resource["Type"] in STANDALONE_POLICIES:
            roles = [role["Ref"] for role, _ in items(props.get("Roles", [])) if "Ref" in role] or [logical_id]
            for role in roles:
                yield from _document_statements(role, props["PolicyDocument"], when)


def trust_grants(template: dict[str, Any]) -> Iterator[Grant]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == IAM_ROLE:
            document = resource["Properties"]["AssumeRolePolicyDocument"]
            yield from _document_statements(logical_id, document, _resource_when(resource))


def managed_policy_arns(template: dict[str, Any]) -> dict[str, set[Any]]:
    attached: dict[str, set[Any]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == IAM_ROLE:
            arns = resource["Properties"].get("ManagedPolicyArns", [])
            attached[logical_id] = {_hashable(arn) for arn, _ in items(arns)}
    return attached


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str) else repr(value)


def sub_text(node: Any) -> str | None:
    """The template string of an ``Fn::Sub`` (either form), or the string itself."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Sub" in node:
        value = node["Fn::Sub"]
        return value if isinstance(value, str) else value[0]
    return None


def wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def is_resource_of_type(node: Any, template: dict[str, Any], resource_type: str) -> bool:
    """``!Ref X`` or ``!GetAtt X.Arn`` where X is a resource of the given type in the template."""
    if not isinstance(node, dict):
        return False
    if "Ref" in node:
        name = node["Ref"]
    elif "Fn::GetAtt" in node:
        name, attribute = node["Fn::GetAtt"]
        if attribute != "Arn":
            return False
    else:
        return False
    return template["Resources"].get(name, {}).get("Type") == resource_type


def names_cluster(value: Any, template: dict[str, Any]) -> bool:
    """The root stack names its own cluster; a job stack the ClusterArn the root passes it."""
    if value == {"Ref": "ClusterArn"} and "ClusterArn" in template.get("Parameters", {}):
        return True
    return is_resource_of_type(value, template, "AWS::ECS::Cluster")


def job_task_role_grants(job_template: dict[str, Any]) -> list[Grant]:
    return [grant for grant in identity_grants(job_template) if grant.owner == "TaskRole"]


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
    conditions = {name for grant in job_task_role_grants(job_template) for name, _ in grant.when}

    assert {"HasS3Trigger", "HasEfs", "HasWorkQueue"} <= conditions


def test_transformed_template_includes_the_roles_sam_generates(transformed_template: dict[str, Any]) -> None:
    functions = [r for r in transformed_template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    owners = {grant.owner for grant in identity_grants(transformed_template)}

    assert functions
    for function in functions:
        role = function["Properties"]["Role"]
        assert is_resource_of_type(role, transformed_template, IAM_ROLE), role
        assert role["Fn::GetAtt"][0] in owners


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


def test_every_statement_names_its_resources(grants: list[Grant]) -> None:
    assert [str(grant) for grant in grants if not grant.resources] == []


# ------------------------------------------------------------------------------------------ managed policies


def test_only_sams_aws_managed_policies_are_attached(transformed_template: dict[str, Any]) -> None:
    resources = transformed_template["Resources"]
    function_roles = {
        r["Properties"]["Role"]["Fn::GetAtt"][0]: logical_id
        for logical_id, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function"
    }
    sqs_fed = {
        r["Properties"]["FunctionName"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and is_resource_of_type(r["Properties"]["EventSourceArn"], transformed_template, "AWS::SQS::Queue")
    }

    expected = {
        role: (
            {LAMBDA_BASIC, XRAY_WRITE} | ({SQS_POLLER} if function_roles[role] in sqs_fed else set())
            if role in function_roles
            else set()
        )
        for role in managed_policy_arns(transformed_template)
    }

    assert managed_policy_arns(transformed_template) == expected
    assert set().union(*expected.values()) == MANAGED_POLICY_ARNS


def test_job_task_role_takes_managed_policies_only_when_the_job_asks(
    job_template: dict[str, Any], root_template: dict[str, Any]
) -> None:
    task_role = job_template["Resources"]["TaskRole"]["Properties"]
    samples = [r for r in root_template["Resources"].values() if r["Type"] == "AWS::Serverless::Application"]

    assert task_role["ManagedPolicyArns"] == {"Fn::If": ["HasManagedPolicies", {"Ref": "ManagedPolicyArns"}, NO_VALUE]}
    assert job_template["Parameters"]["ManagedPolicyArns"]["Default"] == ""
    assert [s for s in samples if "ManagedPolicyArns" in s["Properties"]["Parameters"]] == []
    for role_id, arns in managed_policy_arns(job_template).items():
        assert role_id == "TaskRole" or arns == set()


# ------------------------------------------------------------------------------------------ iam:PassRole


def test_pass_role_only_for_own_execution_and_job_roles_to_ecs_tasks(transformed_template: dict[str, Any]) -> None:
    passing = [grant for grant in identity_grants(transformed_template) if "iam:passrole" in grant.actions]
    allowed = [{"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}, {"Fn::Sub": JOB_ROLE_PATH}]
    # The one other role passed: the Tracker hands its own scheduler role to EventBridge Scheduler for late retries.
    retry_role = [{"Fn::GetAtt": ["RetrySchedulerRole", "Arn"]}]

    assert passing, "the Dispatcher must be able to pass job roles"
    for grant in passing:
        assert grant.actions == ["iam:passrole"], f"{grant}: PassRole shares its statement"
        if grant.resources == retry_role:
            assert grant.condition("iam:PassedToService", ("StringEquals",)) in (SCHEDULER, [SCHEDULER]), grant
            continue
        assert all(resource in allowed for resource in grant.resources), grant.resources
        assert grant.condition("iam:PassedToService", ("StringEquals",)) in (ECS_TASKS, [ECS_TASKS]), grant


def test_the_passable_execution_role_is_the_stacks_ecs_task_execution_role(
    transformed_template: dict[str, Any],
) -> None:
    role = transformed_template["Resources"]["TaskExecutionRole"]
    principals = [
        g.statement["Principal"] for g in trust_grants(transformed_template) if g.owner == "TaskExecutionRole"
    ]

    assert role["Type"] == IAM_ROLE
    assert principals == [{"Service": ECS_TASKS}]


def test_job_stacks_neither_pass_roles_nor_launch_tasks(job_template: dict[str, Any]) -> None:
    # Launching is the Dispatcher's job; a job's own roles could otherwise escalate to any job role.
    launching = {"iam:passrole", "ecs:runtask", "ecs:starttask"}

    assert [str(g) for g in identity_grants(job_template) if launching & set(g.actions)] == []


def test_only_the_job_task_role_lives_under_the_passable_path(
    job_template: dict[str, Any], root_template: dict[str, Any]
) -> None:
    paths = {
        logical_id: resource["Properties"].get("Path")
        for logical_id, resource in job_template["Resources"].items()
        if resource["Type"] == IAM_ROLE
    }
    samples = [r for r in root_template["Resources"].values() if r["Type"] == "AWS::Serverless::Application"]

    assert paths.pop("TaskRole") == {"Fn::Sub": "/${StackPrefix}/jobs/"}
    assert all("/jobs/" not in (sub_text(path) or "") for path in paths.values()), paths
    # The Dispatcher's PassRole names role/${AWS::StackName}/jobs/*: each job must live there.
    for sample in samples:
        assert sample["Properties"]["Parameters"]["StackPrefix"] == {"Ref": "AWS::StackName"}


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


# ------------------------------------------------------------------------------------------ the job task role


def test_job_task_role_uses_only_its_own_services_without_wildcards(job_template: dict[str, Any]) -> None:
    grants = job_task_role_grants(job_template)
    services = {action.split(":", 1)[0] for grant in grants for action in grant.actions}

    assert grants
    assert services <= JOB_TASK_ROLE_SERVICES
    assert [str(g) for g in grants if any("*" in action for action in g.actions)] == []
    assert [str(g) for g in grants if not g.allows] == []


def test_job_task_role_cannot_write_or_delete_objects(job_template: dict[str, Any]) -> None:
    s3_actions = {a for g in job_task_role_grants(job_template) for a in g.actions if a.startswith("s3:")}

    assert s3_actions <= {"s3:getobject", "s3:getobjectversion", "s3:listbucket"}


def test_job_task_role_reads_objects_only_under_its_own_prefix(job_template: dict[str, Any]) -> None:
    reading = [
        g for g in job_task_role_grants(job_template) if {"s3:getobject", "s3:getobjectversion"} & set(g.actions)
    ]

    assert reading
    for grant in reading:
        assert grant.resources == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}/${S3Prefix}*"}], grant
        # Without an S3 trigger the prefix is empty and "${DataBucket}/*" would be the whole bucket.
        assert ("HasS3Trigger", True) in grant.when, grant


def test_job_task_role_lists_only_its_own_prefix(job_template: dict[str, Any]) -> None:
    listing = [g for g in job_task_role_grants(job_template) if "s3:listbucket" in g.actions]

    assert listing
    for grant in listing:
        assert grant.actions == ["s3:listbucket"], grant
        assert grant.resources == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}"}], grant
        prefix = grant.condition("s3:prefix", ("StringLike", "StringEquals"))
        assert prefix in ({"Fn::Sub": "${S3Prefix}*"}, {"Ref": "S3Prefix"}), grant
        assert ("HasS3Trigger", True) in grant.when, grant


def test_job_task_role_mounts_only_through_its_own_access_point(job_template: dict[str, Any]) -> None:
    mounting = [
        g for g in job_task_role_grants(job_template) if any(a.startswith("elasticfilesystem:") for a in g.actions)
    ]

    assert mounting
    for grant in mounting:
        assert set(grant.actions) <= {"elasticfilesystem:clientmount", "elasticfilesystem:clientwrite"}, grant
        assert [sub_text(r) for r in grant.resources] == [
            "arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:file-system/${FileSystemId}"
        ], grant
        access_point = sub_text(grant.condition("elasticfilesystem:AccessPointArn", ("StringEquals", "ArnEquals")))
        assert access_point == (
            "arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:access-point/${AccessPoint}"
        ), grant
        assert job_template["Resources"]["AccessPoint"]["Type"] == "AWS::EFS::AccessPoint"
        assert ("HasEfs", True) in grant.when, grant


def test_job_task_role_reaches_only_its_own_work_queue(job_template: dict[str, Any]) -> None:
    queueing = [g for g in job_task_role_grants(job_template) if any(a.startswith("sqs:") for a in g.actions)]

    assert queueing
    for grant in queueing:
        assert grant.resources == [{"Fn::GetAtt": ["WorkQueue", "Arn"]}], grant
        assert ("HasWorkQueue", True) in grant.when, grant


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

    assert {ECS_TASKS, SCHEDULER} <= trusted


def test_no_role_trusts_any_principal(template: dict[str, Any]) -> None:
    assert [g.owner for g in trust_grants(template) if g.statement.get("Principal") in ("*", {"AWS": "*"})] == []


RESOURCE_POLICIES = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::EFS::FileSystem": "FileSystemPolicy",
}


def test_resource_policies_allow_only_named_actions_to_named_principals(template: dict[str, Any]) -> None:
    # Deny statements (TLS-only and the like) may use wildcards: they can only take access away.
    problems = []
    for logical_id, resource in template["Resources"].items():
        key = RESOURCE_POLICIES.get(resource["Type"])
        if key is None or key not in resource.get("Properties", {}):
            continue
        for grant in _document_statements(logical_id, resource["Properties"][key], frozenset()):
            if not grant.allows:
                continue
            if any(wildcard_action(action) for action in grant.actions):
                problems.append(f"{grant}: wildcard action")
            principal = grant.statement.get("Principal")
            if principal in ("*", {"AWS": "*"}) and "Condition" not in grant.statement:
                problems.append(f"{grant}: any principal, unconditionally")

    assert problems == []
