"""Resource policies, attacked: who can put a request on the dispatch queue, a state change on the tracker queue,
work on a job's queue, mount the file system, and who can (and cannot) reach the alarm topic.

Each test plays one principal against the policy as deployed. An attacker is given an identity policy that
allows the action (``identity_allows``), as an over-privileged role in the same account would have: only an
explicit Deny in the resource policy stops it.
"""

from __future__ import annotations

import pytest

from tests.security.cfn import ACCOUNT, REGION, STACK, Resolved
from tests.security.conftest import OPERATOR
from tests.security.iam import Decision, Request, evaluate

TLS = {"aws:SecureTransport": "true", "aws:SourceAccount": ACCOUNT}
ATTACKER = f"arn:aws:iam::{ACCOUNT}:role/ci-deployer"  # any role of the account with sqs:SendMessage on *


def policy(stack: Resolved, logical_id: str) -> dict:  # type: ignore[type-arg]
    return stack.resource(logical_id)["Properties"]["PolicyDocument"]


def arn(stack: Resolved, logical_id: str) -> str:
    return str(stack.attribute(logical_id, "Arn"))


def send(stack: Resolved, queue: str, principal: str, **context: str) -> Decision:
    request = Request(principal, "sqs:SendMessage", arn(stack, queue), TLS | context)
    return evaluate(
        request,
        policy(stack, "DispatchQueuePolicy" if "Dispatch" in queue else "TrackerQueuePolicy"),
        identity_allows=principal.startswith("arn:"),
    )


def rule(name: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"


# --------------------------------------------------------------------------- the dispatch queue


def test_a_role_of_the_account_cannot_put_a_request_on_the_dispatch_queue(root: Resolved) -> None:
    assert send(root, "DispatchQueue", ATTACKER) is Decision.DENY


def test_a_rule_of_a_sibling_stack_whose_name_shares_the_prefix_cannot_either(root: Resolved) -> None:
    """`taskrunner-dev-x` matched the old `rule/taskrunner-*`; stack names cannot contain '.', so `taskrunner.*`
    is this stack's alone."""
    for sibling in ("taskrunner-dev.thumbnails.s3", "taskrunner-dev-thumbnails-s3", "taskrunnerx.job.s3"):
        assert send(root, "DispatchQueue", "service:events.amazonaws.com", **{"aws:SourceArn": rule(sibling)}) in {
            Decision.DENY,
            Decision.IMPLICIT,
        }, sibling


def test_the_stacks_own_rules_schedules_and_retries_may_send(root: Resolved) -> None:
    own_rule = {"aws:SourceArn": rule(f"{STACK}.thumbnails.s3")}
    assert send(root, "DispatchQueue", "service:events.amazonaws.com", **own_rule) is Decision.ALLOW
    assert send(root, "DispatchQueue", arn(root, "DispatchSchedulerRole")) is Decision.ALLOW
    assert send(root, "DispatchQueue", arn(root, "TrackerFunctionRole")) is Decision.ALLOW


def test_the_dispatcher_itself_cannot_feed_its_queue(root: Resolved) -> None:
    """A compromised Dispatcher could otherwise turn one request into many: it may only dead-letter."""
    assert send(root, "DispatchQueue", arn(root, "DispatchFunctionRole")) is Decision.DENY
    assert send(root, "DispatchDeadLetterQueue", arn(root, "DispatchFunctionRole")) is Decision.ALLOW


def test_operators_may_start_manual_runs_only_when_named(root: Resolved, root_with_operators: Resolved) -> None:
    assert send(root, "DispatchQueue", OPERATOR) is Decision.DENY
    assert send(root_with_operators, "DispatchQueue", OPERATOR) is Decision.ALLOW
    assert send(root_with_operators, "DispatchQueue", ATTACKER) is Decision.DENY


def test_nobody_but_the_dispatcher_consumes_the_dispatch_queue(root: Resolved) -> None:
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        request = Request(ATTACKER, action, arn(root, "DispatchQueue"), TLS)
        assert evaluate(request, policy(root, "DispatchQueuePolicy"), identity_allows=True) is Decision.DENY
        own = Request(arn(root, "DispatchFunctionRole"), action, arn(root, "DispatchQueue"), TLS)
        assert evaluate(own, policy(root, "DispatchQueuePolicy"), identity_allows=True) is Decision.ALLOW


def test_without_tls_even_the_stacks_own_senders_are_refused(root: Resolved) -> None:
    plain = {"aws:SecureTransport": "false"}
    assert send(root, "DispatchQueue", arn(root, "TrackerFunctionRole"), **plain) is Decision.DENY


# --------------------------------------------------------------------------- the tracker queue


def test_only_the_state_change_rule_puts_state_changes_on_the_tracker_queue(root: Resolved) -> None:
    """A forged "ECS Task State Change" could mark any run SUCCEEDED; only the stack's rule may deliver one."""
    state_rule = {"aws:SourceArn": arn(root, "TaskStateChangeRule")}
    assert send(root, "TrackerQueue", "service:events.amazonaws.com", **state_rule) is Decision.ALLOW
    other_rule = {"aws:SourceArn": rule(f"{STACK}.thumbnails.s3")}
    assert send(root, "TrackerQueue", "service:events.amazonaws.com", **other_rule) is Decision.DENY
    assert send(root, "TrackerQueue", ATTACKER) is Decision.DENY
    assert send(root, "TrackerQueue", arn(root, "DispatchFunctionRole")) is Decision.DENY


# --------------------------------------------------------------------------- work queues


@pytest.mark.parametrize("job", ["image-worker", "transcode"])
def test_a_work_queue_takes_work_only_over_tls_from_this_account(jobs: dict[str, Resolved], job: str) -> None:
    stack = jobs[job]
    queue = arn(stack, "WorkQueue")
    document = policy(stack, "WorkQueuePolicy")
    producer = f"arn:aws:iam::{ACCOUNT}:role/orders-service"
    outsider = "arn:aws:iam::210987654321:role/partner"
    assert evaluate(Request(producer, "sqs:SendMessage", queue, TLS), document, identity_allows=True) is Decision.ALLOW
    assert evaluate(Request(outsider, "sqs:SendMessage", queue, TLS), document, identity_allows=True) is Decision.DENY
    plain = Request(producer, "sqs:SendMessage", queue, {"aws:SecureTransport": "false"})
    assert evaluate(plain, document, identity_allows=True) is Decision.DENY


def test_named_producers_are_the_only_ones(root: Resolved) -> None:
    from tests.security.conftest import job_stack

    stack = job_stack(root, "ImageWorkerJob")
    stack = Resolved(stack.template, stack.parameters | {"WorkQueueProducers": f"arn:aws:iam::{ACCOUNT}:role/orders-*"})
    queue, document = arn(stack, "WorkQueue"), policy(stack, "WorkQueuePolicy")
    named = Request(f"arn:aws:iam::{ACCOUNT}:role/orders-api", "sqs:SendMessage", queue, TLS)
    other = Request(ATTACKER, "sqs:SendMessage", queue, TLS)
    assert evaluate(named, document, identity_allows=True) is Decision.ALLOW
    assert evaluate(other, document, identity_allows=True) is Decision.DENY


# --------------------------------------------------------------------------- the file system


def _mount(root: Resolved, principal: str, access_point: str | None, action: str = "elasticfilesystem:ClientMount"):  # type: ignore[no-untyped-def]
    context = dict(TLS) | ({"elasticfilesystem:AccessPointArn": access_point} if access_point else {})
    document = root.resource("FileSystem")["Properties"]["FileSystemPolicy"]
    resource = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-0123456789abcdef0"
    return evaluate(Request(principal, action, resource, context), document, identity_allows=True)


def test_a_mount_without_an_access_point_is_refused_whatever_the_role(root: Resolved) -> None:
    """Without an access point a client sees every job's folder, as any uid it claims."""
    assert _mount(root, ATTACKER, None) is Decision.DENY
    assert _mount(root, ATTACKER, None, "elasticfilesystem:ClientWrite") is Decision.DENY


def test_root_access_is_refused_even_through_an_access_point(root: Resolved) -> None:
    ap = f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:access-point/fsap-0123456789abcdef0"
    assert _mount(root, ATTACKER, ap, "elasticfilesystem:ClientRootAccess") is Decision.DENY


def test_the_file_system_policy_grants_nobody_anything(root: Resolved) -> None:
    """Access comes only from a principal's own policy (a job's role: its own access point), never from here."""
    document = root.resource("FileSystem")["Properties"]["FileSystemPolicy"]
    assert [s for s in document["Statement"] if s["Effect"] == "Allow"] == []


# --------------------------------------------------------------------------- the alarm topic


def _alarm(name: str) -> dict[str, str]:
    return TLS | {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"}


def test_the_stacks_alarms_can_publish_and_use_the_topic_key(root: Resolved) -> None:
    """Regression: with alias/aws/sns, CloudWatch could not use the key, and every alarm was silent."""
    topic = root.ref("AlarmTopic")
    assert root.resource("AlarmTopic")["Properties"]["KmsMasterKeyId"] == root.ref("AlarmTopicKey")
    publish = Request("service:cloudwatch.amazonaws.com", "sns:Publish", topic, _alarm(f"{STACK}.runs-failed"))
    assert evaluate(publish, policy(root, "AlarmTopicPolicy")) is Decision.ALLOW
    key = arn(root, "AlarmTopicKey")
    key_policy = root.resource("AlarmTopicKey")["Properties"]["KeyPolicy"]
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        use = Request("service:cloudwatch.amazonaws.com", action, key, _alarm(f"{STACK}.runs-failed"))
        assert evaluate(use, key_policy) is Decision.ALLOW, action


def test_other_stacks_alarms_and_plain_http_cannot_publish(root: Resolved) -> None:
    topic = root.ref("AlarmTopic")
    document = policy(root, "AlarmTopicPolicy")
    sibling = Request("service:cloudwatch.amazonaws.com", "sns:Publish", topic, _alarm("taskrunner-dev.runs-failed"))
    assert evaluate(sibling, document) is Decision.IMPLICIT
    plain = Request(ATTACKER, "sns:Publish", topic, {"aws:SecureTransport": "false"})
    assert evaluate(plain, document, identity_allows=True) is Decision.DENY


def test_every_alarm_is_named_for_the_topic_policy_and_notifies_the_topic(root: Resolved) -> None:
    alarms = [
        r for r in root.template["Resources"] if root.template["Resources"][r]["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert alarms
    for logical_id in alarms:
        props = root.resource(logical_id)["Properties"]
        assert props["AlarmName"].startswith(f"{STACK}."), logical_id
        assert props["AlarmActions"] == [root.ref("AlarmTopic")], logical_id
