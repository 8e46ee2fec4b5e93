"""Resource policies, resolved: each one's statements exactly, and the requests only they admit.

Each policy is resolved for the stack (tests.policies.cfn): who it names, for which resources, on which
conditions. Where a policy's shape decides between principals the security tier does not play (the dead-letter
queues, the tracker's consumers, the key's delegation, every job parameter set's work queue), requests are
decided with IAM's evaluation rules as well (tests.policies.iam). The attacks on these policies (an account's
role, a sibling stack's rule, an operator not named, a mount without an access point ...) are
tests/security/test_resource_policies.py's. moto's CloudFormation drops every one of these policies, so nothing
else checks them before AWS does.

Sibling stacks matter: `taskrunner` and `taskrunner-dev` live in one account (samconfig.toml). Names of the
stack's rules, alarms and schedules start with '<stack>.' or '<stack>/', and stack names cannot contain '.', so
a pattern 'rule/taskrunner.*' admits no rule of taskrunner-dev.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.policies.cfn import ACCOUNT, REGION, Stack
from tests.policies.iam import Request, allowed, on_behalf_of
from tests.policies.stacks import OPERATOR, WITH_OPERATORS, root_stack
from tests.template.walk import as_list, props, resources_of

OTHER_ACCOUNT = "210987654321"
EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/admin"  # any other principal of the account, whatever its own policy allows


def policy_of(stack: Stack, logical_id: str, key: str = "PolicyDocument") -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = stack.properties(logical_id)[key]["Statement"]
    return statements


def from_rule(name: str, account: str = ACCOUNT) -> dict[str, str]:
    """What EventBridge's delivery for a rule of that name carries."""
    return on_behalf_of(f"arn:aws:events:{REGION}:{account}:rule/{name}")


@pytest.fixture(params=["no operators", "operators"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The root stack resolved without and with OperatorPrincipalArns (a wildcard entry and an exact one)."""
    return root_stack(**WITH_OPERATORS) if request.param == "operators" else root_stack()


# ------------------------------------------------------------------------------------------ the dispatch queue


def test_dispatch_queue_policy_is_exactly_its_statements(stack: Stack) -> None:
    policy = policy_of(stack, "DispatchQueuePolicy")
    queues = [stack.attribute("DispatchQueue", "Arn"), stack.attribute("DispatchDeadLetterQueue", "Arn")]
    by_sid = {s["Sid"]: s for s in policy}
    operators = [v for v in stack.parameters["OperatorPrincipalArns"].split(",") if v]
    role = {name: stack.attribute(name, "Arn") for name in resources_of(stack.template, "AWS::IAM::Role")}
    own_rules = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{stack.stack_name}.*"

    assert props(stack.template, "DispatchQueuePolicy")["Queues"] == [
        {"Ref": "DispatchQueue"},
        {"Ref": "DispatchDeadLetterQueue"},
    ]
    assert set(by_sid) == {
        "JobRulesOfThisStack",
        "OnlyTheStacksSenders",
        "OnlyTheStacksDeadLetters",
        "OnlyTheDispatcherConsumes",
        "DenyWithoutTls",
    }
    # The one Allow: EventBridge, for this account's rules named '<stack>.…', to both queues.
    assert [s["Sid"] for s in policy if s["Effect"] == "Allow"] == ["JobRulesOfThisStack"]
    assert by_sid["JobRulesOfThisStack"]["Principal"] == {"Service": EVENTS}
    assert by_sid["JobRulesOfThisStack"]["Resource"] == queues
    assert by_sid["JobRulesOfThisStack"]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": own_rules},
    }
    # The senders, named exactly: besides those rules, the job scheduler role, the Tracker (retries), operators.
    senders = by_sid["OnlyTheStacksSenders"]["Condition"]["ArnNotLike"]
    assert senders["aws:SourceArn"] == own_rules
    assert sorted(senders["aws:PrincipalArn"]) == sorted(
        [role["DispatchSchedulerRole"], role["TrackerFunctionRole"], *operators]
    )
    dead_letterers = by_sid["OnlyTheStacksDeadLetters"]["Condition"]["ArnNotLike"]
    assert dead_letterers["aws:SourceArn"] == own_rules
    assert sorted(dead_letterers["aws:PrincipalArn"]) == sorted(
        [role["DispatchSchedulerRole"], role["DispatchFunctionRole"], role["PlatformSchedulesRole"]]
    )
    assert by_sid["OnlyTheDispatcherConsumes"]["Condition"] == {
        "ArnNotLike": {"aws:PrincipalArn": role["DispatchFunctionRole"]}
    }
    assert by_sid["DenyWithoutTls"]["Resource"] == queues


def test_only_the_stacks_dead_letterers_may_send_to_the_dispatch_dlq(stack: Stack) -> None:
    policy = policy_of(stack, "DispatchQueuePolicy")
    dlq = stack.attribute("DispatchDeadLetterQueue", "Arn")
    role = {name: stack.attribute(name, "Arn") for name in resources_of(stack.template, "AWS::IAM::Role")}

    def send(**request: Any) -> bool:
        return allowed(Request("sqs:SendMessage", dlq, **request), policy)

    # The rules' and schedules' dead letters, and the Dispatcher's permanent failures.
    assert send(service=EVENTS, context=from_rule(f"{stack.stack_name}.thumbnails.s3"))
    for sender in ("DispatchSchedulerRole", "PlatformSchedulesRole", "DispatchFunctionRole"):
        assert send(principal=role[sender]), sender
    assert not send(service=EVENTS, context=from_rule(f"{stack.stack_name}-dev.thumbnails.s3"))
    for other in ("TrackerFunctionRole", "ScalerFunctionRole"):
        assert not send(principal=role[other]), other
    # Operators start runs on the dispatch queue; they have no reason to forge a dead letter.
    assert not send(principal=OPERATOR)
    assert not send(principal=ADMIN)


# ------------------------------------------------------------------------------------------ the tracker queue


def test_only_the_task_state_rule_feeds_the_tracker_and_only_the_tracker_consumes(root: Stack) -> None:
    # A forged state change could mark a run SUCCEEDED: only the stack's own task-state rule may send.
    policy = policy_of(root, "TrackerQueuePolicy")
    queue, dlq = root.attribute("TrackerQueue", "Arn"), root.attribute("TrackerDeadLetterQueue", "Arn")
    role = {name: root.attribute(name, "Arn") for name in resources_of(root.template, "AWS::IAM::Role")}
    state_rule = root.attribute("TaskStateChangeRule", "Arn")
    by_sid = {s["Sid"]: s for s in policy}

    def may(action: str, resource: str, **request: Any) -> bool:
        return allowed(Request(action, resource, **request), policy)

    assert set(by_sid) == {
        "TaskStateChangesOfThisCluster",
        "OnlyTheStateChangeRule",
        "OnlyTheStacksDeadLetters",
        "OnlyTheTrackerConsumes",
        "DenyWithoutTls",
    }
    assert [s["Sid"] for s in policy if s["Effect"] == "Allow"] == ["TaskStateChangesOfThisCluster"]
    # The exact rule ARN, not a name pattern.
    assert by_sid["TaskStateChangesOfThisCluster"]["Condition"] == {"ArnEquals": {"aws:SourceArn": state_rule}}
    for resource in (queue, dlq):
        assert may("sqs:SendMessage", resource, service=EVENTS, context=on_behalf_of(state_rule)), resource
    assert not may("sqs:SendMessage", queue, service=EVENTS, context=from_rule(f"{root.stack_name}.thumbnails.s3"))
    assert not may("sqs:SendMessage", queue, service=EVENTS, context=from_rule(f"{root.stack_name}-dev.task-state"))
    assert not may("sqs:SendMessage", queue, service=EVENTS, context=on_behalf_of(state_rule), secure=False)
    for sender in (ADMIN, OPERATOR, role["TrackerFunctionRole"], role["DispatchFunctionRole"]):
        assert not may("sqs:SendMessage", queue, principal=sender), sender
    # The Tracker dead-letters what it cannot track; nothing else may put a message there.
    assert may("sqs:SendMessage", dlq, principal=role["TrackerFunctionRole"])
    for sender in (ADMIN, role["DispatchFunctionRole"], role["ScalerFunctionRole"]):
        assert not may("sqs:SendMessage", dlq, principal=sender), sender
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert may(action, queue, principal=role["TrackerFunctionRole"]), action
        for other in (ADMIN, role["DispatchFunctionRole"], role["ScalerFunctionRole"]):
            assert not may(action, queue, principal=other), f"{other}: {action}"


def test_the_task_state_rule_is_the_stacks_own_and_targets_the_tracker_queue(root: Stack) -> None:
    rule = root.value(props(root.template, "TaskStateChangeRule"))

    assert rule["Name"] == f"{root.stack_name}.task-state"
    assert rule["EventPattern"]["detail"]["clusterArn"] == [root.attribute("Cluster", "Arn")]
    assert rule["EventPattern"]["account"] == [ACCOUNT]
    assert [t["Arn"] for t in rule["Targets"]] == [root.attribute("TrackerQueue", "Arn")]


# ------------------------------------------------------------------------------------------ alarms: key and topic


def test_alarm_topic_is_encrypted_with_its_own_key_that_cloudwatch_may_use(root: Stack) -> None:
    # CloudWatch alarms cannot publish to a topic encrypted with alias/aws/sns (its key policy cannot admit
    # cloudwatch.amazonaws.com): the topic's key is a customer managed key of the stack.
    topic = props(root.template, "AlarmTopic")
    key = root.value(props(root.template, "AlarmTopicKey"))
    key_arn = root.attribute("AlarmTopicKey", "Arn")
    policy = key["KeyPolicy"]["Statement"]

    def may(action: str, **request: Any) -> bool:
        return allowed(Request(action, key_arn, **request), policy)

    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    assert key["EnableKeyRotation"] is True
    # In a key policy "Resource" is the key itself: "*" is the only form KMS accepts.
    assert [s["Resource"] for s in policy] == ["*"] * len(policy)
    principals = [s["Principal"] for s in policy]
    assert principals == [{"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, {"Service": CLOUDWATCH}]
    from_this_account = {"aws:SourceAccount": ACCOUNT}
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert may(action, service=CLOUDWATCH, context=from_this_account), action
        assert not may(action, service=CLOUDWATCH, context={"aws:SourceAccount": OTHER_ACCOUNT}), action
        assert not may(action, service=CLOUDWATCH), action
    for action in ("kms:Encrypt", "kms:CreateGrant", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"):
        assert not may(action, service=CLOUDWATCH, context=from_this_account), action
    # The account statement delegates to IAM: a principal may use the key exactly as its own policy allows.
    assert may("kms:Decrypt", principal=ADMIN, identity_allows=True)
    assert not may("kms:Decrypt", principal=ADMIN, identity_allows=False)
    assert not may("kms:Decrypt", principal=f"arn:aws:iam::{OTHER_ACCOUNT}:role/admin")


# ------------------------------------------------------------------------------------------ the job's work queue


def test_work_queue_admits_its_producers_or_this_account_and_only_over_tls(job_sets: dict[str, Stack]) -> None:
    checked = {"named producers": 0, "this account": 0}
    for name, job in job_sets.items():
        if not job.condition("HasWorkQueue"):
            continue
        policy = policy_of(job, "WorkQueuePolicy")
        queue, dlq = job.attribute("WorkQueue", "Arn"), job.attribute("WorkDeadLetterQueue", "Arn")
        producers = [p for p in job.parameters["WorkQueueProducers"].split(",") if p]

        def send(principal: str, secure: bool = True, resource: str = queue, policy: list[Any] = policy) -> bool:
            return allowed(Request("sqs:SendMessage", resource, principal=principal, secure=secure), policy)

        assert props(job.template, "WorkQueuePolicy")["Queues"] == [
            {"Ref": "WorkQueue"},
            {"Ref": "WorkDeadLetterQueue"},
        ]
        tls = [s for s in policy if s["Sid"] == "DenyWithoutTls"]
        assert [as_list(s["Resource"]) for s in tls] == [[queue, dlq]], name
        assert [s for s in policy if s["Effect"] == "Allow"] == [], f"{name}: a queue policy need not allow anyone"
        assert not send(f"arn:aws:iam::{OTHER_ACCOUNT}:role/producer"), name
        assert not allowed(Request("sqs:SendMessage", queue, service="sns.amazonaws.com"), policy), name
        if producers:
            checked["named producers"] += 1
            assert send(producers[0].replace("*", "ingest")), name
            assert not send(ADMIN), name
            assert not send(producers[0].replace("*", "ingest"), secure=False), name
        else:
            checked["this account"] += 1
            assert send(ADMIN), name
            assert not send(ADMIN, secure=False), name
        # The job's own workers consume it (their task role allows exactly that queue).
        task_role = job.attribute("TaskRole", "Arn")
        assert allowed(Request("sqs:ReceiveMessage", queue, principal=task_role), policy), name

    assert checked["named producers"] >= 1
    assert checked["this account"] >= 1
