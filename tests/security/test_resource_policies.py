"""Resource policies, attacked: who can put a request on the dispatch queue, a state change on the tracker queue,
work on a job's queue, mount the file system, and who can (and cannot) reach the alarm topic.

Each test plays one principal against the policy as deployed. An attacker's role is given an identity policy
that allows the action (``Request.identity_allows``, the default), as an over-privileged role in the same account
would have: only an explicit Deny in the resource policy stops it.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.policies.cfn import ACCOUNT, REGION, STACK, Stack
from tests.policies.iam import Decision, Request, evaluate, on_behalf_of
from tests.policies.stacks import ONCALL, OPERATOR

EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
ATTACKER = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"  # any role of the account with sqs:SendMessage on *
OTHER_ACCOUNT = "210987654321"
SQS_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")


def policy(stack: Stack, logical_id: str) -> dict[str, Any]:
    document: dict[str, Any] = stack.properties(logical_id)["PolicyDocument"]
    return document


def rule(name: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"


def send(
    stack: Stack,
    queue: str,
    principal: str | None = None,
    *,
    rule_arn: str | None = None,
    service: str | None = None,
    secure: bool = True,
) -> Decision:
    """A message for one of the root's queues: from a role, or from EventBridge (delivering for a rule)."""
    source = on_behalf_of(rule_arn) if rule_arn else {}
    service = EVENTS if rule_arn else service
    request = Request(
        "sqs:SendMessage", stack.arn(queue), principal=principal, service=service, context=source, secure=secure
    )
    return evaluate(request, policy(stack, "DispatchQueuePolicy" if "Dispatch" in queue else "TrackerQueuePolicy"))


# --------------------------------------------------------------------------- the dispatch queue


def test_a_role_of_the_account_cannot_put_a_request_on_the_dispatch_queue(
    root: Stack, root_with_operators: Stack
) -> None:
    # Nor any role of the stack but its senders, nor another account's: whatever their own policies allow.
    for stack in (root, root_with_operators):
        assert send(stack, "DispatchQueue", ATTACKER) is Decision.DENY
        for other in ("ScalerFunctionRole", "PlatformSchedulesRole"):
            assert send(stack, "DispatchQueue", stack.arn(other)) is Decision.DENY, other
        assert send(stack, "DispatchQueue", f"arn:aws:iam::{OTHER_ACCOUNT}:role/oncall") is Decision.DENY


def test_a_rule_of_a_sibling_stack_whose_name_shares_the_prefix_cannot_either(root: Stack) -> None:
    """`taskrunner-dev-x` matched the old `rule/taskrunner-*`; stack names cannot contain '.', so `taskrunner.*`
    is this stack's alone."""
    siblings = (
        "taskrunner-dev.thumbnails.s3",
        "taskrunner-dev-thumbnails-s3",
        "taskrunnerx.job.s3",
        "taskrunnerX.a.s3",
    )
    for sibling in siblings:
        assert send(root, "DispatchQueue", rule_arn=rule(sibling)) in {Decision.DENY, Decision.IMPLICIT}, sibling
    # Nor a rule of this stack's name in another account, nor a delivery that names no rule.
    foreign = f"arn:aws:events:{REGION}:{OTHER_ACCOUNT}:rule/{STACK}.thumbnails.s3"
    assert send(root, "DispatchQueue", rule_arn=foreign) is Decision.DENY
    assert send(root, "DispatchQueue", service=EVENTS) is Decision.DENY


def test_the_stacks_own_rules_schedules_and_retries_may_send(root: Stack, root_with_operators: Stack) -> None:
    for stack in (root, root_with_operators):
        # Every job rule is '<stack>.<job>.<kind>'.
        for own in (f"{STACK}.thumbnails.s3", f"{STACK}.order-audit.event"):
            assert send(stack, "DispatchQueue", rule_arn=rule(own)) is Decision.ALLOW, own
        assert send(stack, "DispatchQueue", stack.arn("DispatchSchedulerRole")) is Decision.ALLOW
        assert send(stack, "DispatchQueue", stack.arn("TrackerFunctionRole")) is Decision.ALLOW


def test_the_dispatcher_itself_cannot_feed_its_queue(root: Stack) -> None:
    """A compromised Dispatcher could otherwise turn one request into many: it may only dead-letter."""
    assert send(root, "DispatchQueue", root.arn("DispatchFunctionRole")) is Decision.DENY
    assert send(root, "DispatchDeadLetterQueue", root.arn("DispatchFunctionRole")) is Decision.ALLOW


def test_operators_may_start_manual_runs_only_when_named(root: Stack, root_with_operators: Stack) -> None:
    assert send(root, "DispatchQueue", OPERATOR) is Decision.DENY
    assert send(root, "DispatchQueue", ONCALL) is Decision.DENY
    # Exactly as listed: what the wildcard entry matches, the exact entry, and nobody whose name merely extends it.
    assert send(root_with_operators, "DispatchQueue", OPERATOR) is Decision.ALLOW
    assert send(root_with_operators, "DispatchQueue", ONCALL) is Decision.ALLOW
    assert send(root_with_operators, "DispatchQueue", f"{ONCALL}-extended") is Decision.DENY
    assert send(root_with_operators, "DispatchQueue", ATTACKER) is Decision.DENY


def test_nobody_but_the_dispatcher_consumes_the_dispatch_queue(root: Stack, root_with_operators: Stack) -> None:
    for stack, action in itertools.product((root, root_with_operators), SQS_CONSUME):
        document, queue = policy(stack, "DispatchQueuePolicy"), stack.arn("DispatchQueue")
        for other in (
            ATTACKER,
            OPERATOR,
            *map(stack.arn, ("TrackerFunctionRole", "ScalerFunctionRole", "DispatchSchedulerRole")),
        ):
            assert evaluate(Request(action, queue, principal=other), document) is Decision.DENY, f"{other}: {action}"
        own = stack.arn("DispatchFunctionRole")
        assert evaluate(Request(action, queue, principal=own), document) is Decision.ALLOW, action
        assert evaluate(Request(action, queue, principal=own, secure=False), document) is Decision.DENY, action


def test_without_tls_even_the_stacks_own_senders_are_refused(root: Stack) -> None:
    assert send(root, "DispatchQueue", root.arn("TrackerFunctionRole"), secure=False) is Decision.DENY


# --------------------------------------------------------------------------- the tracker queue


def test_only_the_state_change_rule_puts_state_changes_on_the_tracker_queue(root: Stack) -> None:
    """A forged "ECS Task State Change" could mark any run SUCCEEDED; only the stack's rule may deliver one."""
    assert send(root, "TrackerQueue", rule_arn=root.arn("TaskStateChangeRule")) is Decision.ALLOW
    assert send(root, "TrackerQueue", rule_arn=rule(f"{STACK}.thumbnails.s3")) is Decision.DENY
    assert send(root, "TrackerQueue", ATTACKER) is Decision.DENY
    assert send(root, "TrackerQueue", root.arn("DispatchFunctionRole")) is Decision.DENY


# --------------------------------------------------------------------------- work queues


@pytest.mark.parametrize("job", ["image-worker", "transcode"])
def test_a_work_queue_takes_work_only_over_tls_from_this_account(jobs: dict[str, Stack], job: str) -> None:
    stack = jobs[job]
    queue = stack.arn("WorkQueue")
    document = policy(stack, "WorkQueuePolicy")
    producer = f"arn:aws:iam::{ACCOUNT}:role/orders-service"
    outsider = "arn:aws:iam::210987654321:role/partner"
    assert evaluate(Request("sqs:SendMessage", queue, principal=producer), document) is Decision.ALLOW
    assert evaluate(Request("sqs:SendMessage", queue, principal=outsider), document) is Decision.DENY
    plain = Request("sqs:SendMessage", queue, principal=producer, secure=False)
    assert evaluate(plain, document) is Decision.DENY


def test_named_producers_are_the_only_ones(jobs: dict[str, Stack]) -> None:
    stack = jobs["image-worker"].with_parameters(WorkQueueProducers=f"arn:aws:iam::{ACCOUNT}:role/orders-*")
    queue, document = stack.arn("WorkQueue"), policy(stack, "WorkQueuePolicy")
    named = Request("sqs:SendMessage", queue, principal=f"arn:aws:iam::{ACCOUNT}:role/orders-api")
    other = Request("sqs:SendMessage", queue, principal=ATTACKER)
    assert evaluate(named, document) is Decision.ALLOW
    assert evaluate(other, document) is Decision.DENY


# --------------------------------------------------------------------------- the file system


MOUNT = ("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")


def _mount(
    root: Stack,
    principal: str | None,
    access_point: str | None,
    action: str = "elasticfilesystem:ClientMount",
    *,
    secure: bool = True,
    identity_allows: bool = True,
) -> Decision:
    """A client of a mount target (IAM authorization on), through an access point or not."""
    context = {"elasticfilesystem:AccessedViaMountTarget": "true"}
    context |= {"elasticfilesystem:AccessPointArn": access_point} if access_point else {}
    request = Request(
        action,
        root.arn("FileSystem"),
        principal=principal,
        context=context,
        secure=secure,
        identity_allows=identity_allows,
    )
    return evaluate(request, root.properties("FileSystem")["FileSystemPolicy"])


def test_a_mount_without_an_access_point_is_refused_whatever_the_role(root: Stack, jobs: dict[str, Stack]) -> None:
    """Without an access point a client sees every job's folder, as any uid it claims."""
    report = jobs["nightly-report"]
    for action in MOUNT:
        assert _mount(root, ATTACKER, None, action) is Decision.DENY, action
        assert _mount(root, report.arn("TaskRole"), None, action) is Decision.DENY, f"{action}: a job's own role"
        # What a job's role does instead: through an access point (its own policy says which), over TLS.
        assert _mount(root, report.arn("TaskRole"), report.arn("AccessPoint"), action) is Decision.ALLOW, action
        plain = _mount(root, report.arn("TaskRole"), report.arn("AccessPoint"), action, secure=False)
        assert plain is Decision.DENY, f"{action} without TLS"


def test_root_access_is_refused_even_through_an_access_point(root: Stack, jobs: dict[str, Stack]) -> None:
    access_point = jobs["nightly-report"].arn("AccessPoint")
    for through in (access_point, None):
        assert _mount(root, ATTACKER, through, "elasticfilesystem:ClientRootAccess") is Decision.DENY, through


def test_the_file_system_policy_grants_nobody_anything(root: Stack, jobs: dict[str, Stack]) -> None:
    """Access comes only from a principal's own policy (a job's role: its own access point), never from here."""
    access_point = jobs["nightly-report"].arn("AccessPoint")
    for action in MOUNT:
        # A role of the account whose own policy grants no mount, another account's role, an anonymous client.
        assert _mount(root, ATTACKER, access_point, action, identity_allows=False) is Decision.IMPLICIT, action
        foreign = f"arn:aws:iam::{OTHER_ACCOUNT}:role/partner"
        assert _mount(root, foreign, access_point, action) is Decision.IMPLICIT, f"{action}: another account"
        assert _mount(root, None, access_point, action) is Decision.IMPLICIT, f"{action}: anonymous"


# --------------------------------------------------------------------------- the alarm topic


def _alarm(action: str, resource: str, name: str, account: str = ACCOUNT, secure: bool = True) -> Request:
    """CloudWatch acting for an alarm (of this account, unless said)."""
    source = on_behalf_of(f"arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}")
    return Request(action, resource, service=CLOUDWATCH, context=source, secure=secure)


def test_the_stacks_alarms_can_publish_and_use_the_topic_key(root: Stack) -> None:
    """Regression: with alias/aws/sns, CloudWatch could not use the key, and every alarm was silent."""
    topic = root.arn("AlarmTopic")
    assert root.properties("AlarmTopic")["KmsMasterKeyId"] == root.ref("AlarmTopicKey")
    for alarm in (f"{STACK}.runs-failed", f"{STACK}.image-worker.work-dlq"):  # the root's and a job's
        assert evaluate(_alarm("sns:Publish", topic, alarm), policy(root, "AlarmTopicPolicy")) is Decision.ALLOW
    key_policy = root.properties("AlarmTopicKey")["KeyPolicy"]
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        use = _alarm(action, root.arn("AlarmTopicKey"), f"{STACK}.runs-failed")
        assert evaluate(use, key_policy) is Decision.ALLOW, action


def test_other_stacks_alarms_and_plain_http_cannot_publish(root: Stack) -> None:
    topic = root.arn("AlarmTopic")
    document = policy(root, "AlarmTopicPolicy")
    assert root.properties("AlarmTopicPolicy")["Topics"] == [topic]  # the policy played here is the topic's own
    for sibling in ("taskrunner-dev.runs-failed", "runs-failed"):  # a sibling stack's, or a name of no stack
        assert evaluate(_alarm("sns:Publish", topic, sibling), document) is Decision.IMPLICIT, sibling
    assert evaluate(_alarm("sns:Publish", topic, f"{STACK}.runs-failed", OTHER_ACCOUNT), document) is Decision.IMPLICIT
    assert evaluate(_alarm("sns:Publish", topic, f"{STACK}.runs-failed", secure=False), document) is Decision.DENY
    plain = Request("sns:Publish", topic, principal=ATTACKER, secure=False)
    assert evaluate(plain, document) is Decision.DENY


def test_every_alarm_is_named_for_the_topic_policy_and_notifies_the_topic(root: Stack) -> None:
    alarms = [
        r for r in root.template["Resources"] if root.template["Resources"][r]["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert alarms
    for logical_id in alarms:
        props = root.properties(logical_id)
        assert props["AlarmName"].startswith(f"{STACK}."), logical_id
        assert props["AlarmActions"] == [root.ref("AlarmTopic")], logical_id
