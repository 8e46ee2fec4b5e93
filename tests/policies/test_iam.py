"""The simulator itself: IAM's rules, applied to the forms taskrunner's policies use.

Every policy test of the template and security tiers trusts these rules; a simulator that got one wrong would
pass them all. Each test names the policies that rely on the rule it checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.policies.iam import Decision, Request, allowed, evaluate, identity_decision, on_behalf_of

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "eu-central-1"
EVENTS = "events.amazonaws.com"
CLOUDWATCH = "cloudwatch.amazonaws.com"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/path/r"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/path/r2"
FOREIGN_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/r"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def rule_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:events:{REGION}:{account}:rule/{name}"


def from_rule(name: str, account: str = ACCOUNT) -> dict[str, str]:
    return on_behalf_of(rule_arn(name, account))


def statement(effect: str = "Allow", principal: Any = "*", **elements: Any) -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": "sqs:SendMessage", "Resource": QUEUE} | elements


def send(**request: Any) -> Request:
    return Request("sqs:SendMessage", QUEUE, **request)


# ------------------------------------------------------------------------------------------ deny, allow, accounts


def test_simulator_applies_iams_rules_to_the_forms_these_policies_use() -> None:
    # The dispatch queue's form: EventBridge allowed for some rules, everyone else denied unless named.
    deny_unless = statement(
        "Deny",
        # Two keys in one operator: denied only when both fail to match.
        Condition={"ArnNotLike": {"aws:SourceArn": rule_arn("s.*"), "aws:PrincipalArn": [ROLE, "arn:x"]}},
    )
    allow_events = statement(principal={"Service": EVENTS}, Condition={"ArnLike": {"aws:SourceArn": rule_arn("s.*")}})
    policy = [deny_unless, allow_events]

    assert allowed(send(principal=ROLE), policy)  # no SourceArn: only the role counts
    assert not allowed(send(principal=OTHER_ROLE), policy)
    assert allowed(send(service=EVENTS, context=from_rule("s.job.s3")), policy)
    # ArnLike compares the resource part as a whole: '*' crosses '/' (a rule on a bus named 's.x' would match).
    assert allowed(send(service=EVENTS, context=from_rule("s.x/rule")), policy)
    assert not allowed(send(service=EVENTS, context=from_rule("s-dev.job.s3")), policy)
    assert not allowed(send(service=EVENTS), policy)  # a service needs an Allow
    assert not allowed(send(principal=ROLE, identity_allows=False), policy)
    assert not allowed(send(principal=FOREIGN_ROLE), [])
    null_deny = {"Effect": "Deny", "Principal": "*", "Action": "*", "Condition": {"Null": {"k": "true"}}}
    assert not allowed(send(principal=ROLE), [null_deny])
    assert allowed(send(principal=ROLE, context={"k": "v"}), [null_deny])


def test_an_explicit_deny_wins_over_any_allow() -> None:
    # Every queue's DenyWithoutTls next to its Allow for EventBridge.
    policy = [
        statement(principal={"AWS": ROLE}),
        statement("Deny", Condition={"Bool": {"aws:SecureTransport": "false"}}),
    ]

    assert evaluate(send(principal=ROLE), policy) is Decision.ALLOW
    assert evaluate(send(principal=ROLE, secure=False), policy) is Decision.DENY
    assert evaluate(send(principal=ROLE, secure=False, identity_allows=True), policy) is Decision.DENY


def test_within_the_account_the_resource_policy_or_the_callers_own_policy_allows() -> None:
    # A work queue without named producers: no Allow at all, so only the producers' own policies grant.
    named = [statement(principal={"AWS": ROLE})]

    assert evaluate(send(principal=OTHER_ROLE), []) is Decision.ALLOW
    assert evaluate(send(principal=OTHER_ROLE, identity_allows=False), []) is Decision.IMPLICIT
    # Named directly, the role needs no identity policy of its own.
    assert evaluate(send(principal=ROLE, identity_allows=False), named) is Decision.ALLOW
    # A bucket ARN names no account: it is the caller's.
    bucket = Request("s3:GetObject", "arn:aws:s3:::b/k", principal=ROLE)
    assert evaluate(bucket, []) is Decision.ALLOW


def test_another_accounts_principal_needs_both_policies() -> None:
    named = [statement(principal={"AWS": FOREIGN_ROLE})]

    assert evaluate(send(principal=FOREIGN_ROLE), []) is Decision.IMPLICIT
    assert evaluate(send(principal=FOREIGN_ROLE), named) is Decision.ALLOW
    assert evaluate(send(principal=FOREIGN_ROLE, identity_allows=False), named) is Decision.IMPLICIT


def test_the_account_as_principal_delegates_an_allow_but_denies_everyone_of_it() -> None:
    # The alarm key's AccountAdministersTheKey: the account's principals, as far as their own policies allow.
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    key_policy = [{"Effect": "Allow", "Principal": root, "Action": "kms:*", "Resource": "*"}]
    decrypt = Request("kms:Decrypt", KEY, principal=ROLE)

    assert evaluate(decrypt, key_policy) is Decision.ALLOW
    assert evaluate(Request("kms:Decrypt", KEY, principal=ROLE, identity_allows=False), key_policy) is Decision.IMPLICIT
    assert evaluate(Request("kms:Decrypt", KEY, principal=FOREIGN_ROLE), key_policy) is Decision.IMPLICIT
    # The bare account id is the same principal; in a Deny it stands for every principal of the account.
    deny = [statement("Deny", principal={"AWS": ACCOUNT})]
    assert evaluate(send(principal=ROLE), deny) is Decision.DENY
    assert evaluate(send(principal=FOREIGN_ROLE, identity_allows=True), deny) is Decision.IMPLICIT


def test_a_key_policy_and_a_trust_policy_must_allow_themselves() -> None:
    # An identity policy of the key's own account does not bypass a key policy that names neither it nor the account.
    cloudwatch_only = [
        {"Effect": "Allow", "Principal": {"Service": CLOUDWATCH}, "Action": "kms:GenerateDataKey*", "Resource": "*"}
    ]
    trust = [{"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]

    assert evaluate(Request("kms:Decrypt", KEY, principal=ROLE), cloudwatch_only) is Decision.IMPLICIT
    assert evaluate(Request("kms:GenerateDataKey", KEY, service=CLOUDWATCH), cloudwatch_only) is Decision.ALLOW
    assert evaluate(Request("sts:AssumeRole", ROLE, principal=OTHER_ROLE), trust) is Decision.IMPLICIT
    # A trust policy has no Resource: it is about the role it belongs to.
    assert evaluate(Request("sts:AssumeRole", ROLE, service="scheduler.amazonaws.com"), trust) is Decision.ALLOW


def test_service_principals_and_anonymous_callers_need_an_allow_naming_them() -> None:
    anyone = [statement()]
    events = [statement(principal={"Service": [EVENTS, "scheduler.amazonaws.com"]})]

    assert evaluate(send(service=EVENTS), events) is Decision.ALLOW
    assert evaluate(send(service=CLOUDWATCH), events) is Decision.IMPLICIT
    assert evaluate(send(service=EVENTS), []) is Decision.IMPLICIT
    assert evaluate(send(), []) is Decision.IMPLICIT
    assert evaluate(send(), anyone) is Decision.ALLOW
    assert evaluate(send(service=CLOUDWATCH), [statement(principal={"AWS": "*"})]) is Decision.ALLOW
    # A role is not a service, nor a service a role.
    assert evaluate(send(principal=ROLE, identity_allows=False), events) is Decision.IMPLICIT


# ------------------------------------------------------------------------------------------ the request context


def test_principal_keys_come_from_the_principal_and_source_keys_from_a_service() -> None:
    # OnlyTheStacksSenders and OnlyThisAccount read aws:PrincipalArn and aws:PrincipalAccount: no caller claims them.
    only_this_account = [statement("Deny", Condition={"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}})]

    assert send(principal=ROLE).keys()["aws:principalarn"] == ROLE
    # A service acting for a resource names it and the account that owns it (the one in its ARN).
    assert on_behalf_of(rule_arn("r", OTHER_ACCOUNT)) == {
        "aws:SourceArn": rule_arn("r", OTHER_ACCOUNT),
        "aws:SourceAccount": OTHER_ACCOUNT,
    }
    assert send(principal=ROLE).keys()["aws:principalaccount"] == ACCOUNT
    assert evaluate(send(principal=ROLE), only_this_account) is Decision.ALLOW
    assert evaluate(send(principal=FOREIGN_ROLE), only_this_account) is Decision.DENY
    # A service request has no principal keys: a negated operator on them holds, so the Deny applies.
    assert evaluate(send(service=EVENTS), only_this_account) is Decision.DENY
    for forged in ("aws:PrincipalArn", "aws:principalaccount", "aws:SecureTransport"):
        with pytest.raises(ValueError, match="not from the caller"):
            send(principal=FOREIGN_ROLE, context={forged: ROLE})
    for forged in ("aws:SourceArn", "aws:SourceAccount"):
        with pytest.raises(ValueError, match="only by a service"):
            send(principal=FOREIGN_ROLE, context={forged: rule_arn("s.job.s3")})
    with pytest.raises(ValueError, match="not both"):
        send(principal=ROLE, service=EVENTS)


def test_secure_transport_is_always_in_the_context() -> None:
    # DenyWithoutTls is a positive Bool: were the key absent from a plain request, it would not apply.
    tls = [statement("Deny", Condition={"Bool": {"aws:SecureTransport": False}})]

    assert send(principal=ROLE).keys()["aws:securetransport"] == "true"
    assert evaluate(send(principal=ROLE, secure=False), tls) is Decision.DENY
    assert evaluate(send(service=EVENTS, secure=False), tls) is Decision.DENY
    assert evaluate(send(principal=ROLE), tls) is Decision.ALLOW


def test_conditions_and_across_operators_and_keys_and_or_across_values() -> None:
    # AlarmsOfThisStackPublish: StringEquals SourceAccount and ArnLike SourceArn must both hold.
    both = [
        statement(
            principal={"Service": CLOUDWATCH},
            Condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": [rule_arn("a.*"), rule_arn("b.*")]},
            },
        )
    ]

    assert allowed(send(service=CLOUDWATCH, context=from_rule("a.x")), both)
    assert allowed(send(service=CLOUDWATCH, context=from_rule("b.x")), both)
    assert not allowed(send(service=CLOUDWATCH, context=from_rule("c.x")), both)
    other_account = {"aws:SourceArn": rule_arn("a.x"), "aws:SourceAccount": OTHER_ACCOUNT}
    assert not allowed(send(service=CLOUDWATCH, context=other_account), both)
    assert not allowed(send(service=CLOUDWATCH, context={"aws:SourceAccount": ACCOUNT}), both)
    # Condition key names are case-insensitive; their values are not.
    assert allowed(
        send(service=CLOUDWATCH, context={"AWS:SOURCEARN": rule_arn("a.x"), "aws:sourceaccount": ACCOUNT}), both
    )
    assert not allowed(send(service=CLOUDWATCH, context=from_rule("A.x")), both)


@pytest.mark.parametrize(
    ("operator", "absent", "matching", "other"),
    [
        ("StringEquals", False, True, False),
        ("StringNotEquals", True, False, True),
        ("StringLike", False, True, False),
        ("StringNotLike", True, False, True),
        ("ArnEquals", False, True, False),
        ("ArnNotEquals", True, False, True),
        ("ArnLike", False, True, False),
        ("ArnNotLike", True, False, True),
        ("StringEqualsIfExists", True, True, False),
        ("ArnLikeIfExists", True, True, False),
        ("StringNotEqualsIfExists", True, False, True),
    ],
)
def test_each_operator_on_a_missing_a_matching_and_another_value(
    operator: str, absent: bool, matching: bool, other: bool
) -> None:
    # A negated operator holds on a key the request lacks (OnlyTheDispatcherConsumes denies a service that way);
    # a positive one does not (an Allow on aws:SourceArn admits nothing without it); ...IfExists does.
    policy = [statement(Condition={operator: {"aws:SourceArn": rule_arn("own.job")}})]

    def holds(context: dict[str, str] | None) -> bool:
        return allowed(send(service=EVENTS, context=context or {}), policy)

    assert holds(None) is absent
    assert holds(from_rule("own.job")) is matching
    assert holds(from_rule("other.job")) is other


def test_null_tells_an_absent_key_from_a_present_one() -> None:
    # DenyWithoutAccessPoint: a mount naming no access point.
    absent = [statement("Deny", Condition={"Null": {"elasticfilesystem:AccessPointArn": "true"}})]
    present = [statement(Condition={"Null": {"elasticfilesystem:AccessPointArn": False}})]
    through = {"elasticfilesystem:AccessPointArn": "arn:aws:elasticfilesystem:r:a:access-point/fsap-1"}

    assert evaluate(send(principal=ROLE), absent) is Decision.DENY
    assert evaluate(send(principal=ROLE, context=through), absent) is Decision.ALLOW
    assert evaluate(send(service=EVENTS, context=through), present) is Decision.ALLOW
    assert evaluate(send(service=EVENTS), present) is Decision.IMPLICIT


def test_unknown_operators_principals_and_policy_variables_are_errors() -> None:
    for policy in (
        [statement(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}})],
        [statement(principal={"Federated": "cognito-identity.amazonaws.com"})],
        [statement(principal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/*"})],
        [statement(Resource="arn:aws:sqs:*:*:${aws:username}")],
        [{"Effect": "Allow", "NotPrincipal": {"AWS": ROLE}, "Action": "*", "Resource": "*"}],
        [{"Effect": "Allow", "Action": "*", "Resource": "*"}],  # a resource policy names its principal
        [statement(Effect="allow")],
    ):
        with pytest.raises((NotImplementedError, ValueError)):
            evaluate(send(principal=ROLE), policy)


# ------------------------------------------------------------------------------------------ wildcards


def test_arn_like_and_arn_equals_match_each_of_the_six_parts() -> None:
    # TaskStateChangesOfThisCluster uses ArnEquals, JobRulesOfThisStack ArnLike: IAM treats them alike, so an ARN
    # with a wildcard is a pattern under either. A '*' stays within its part, except in the last (the resource).
    for operator in ("ArnEquals", "ArnLike"):
        policy = [statement(Condition={operator: {"aws:PrincipalArn": "arn:aws:iam::*:role/ops-?/*"}})]
        assert allowed(send(principal=f"arn:aws:iam::{ACCOUNT}:role/ops-1/x/y", identity_allows=False), policy)
        assert not allowed(send(principal=f"arn:aws:iam::{ACCOUNT}:role/ops-12/x", identity_allows=False), policy)
        assert not allowed(send(principal=f"arn:aws:iam::{ACCOUNT}:user/ops-1/x", identity_allows=False), policy)
    spanning = [statement(Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:*"}})]
    assert not allowed(send(principal=ROLE, identity_allows=False), spanning)
    # A value that is no ARN matches no ARN pattern.
    not_an_arn = [statement(principal={"Service": EVENTS}, Condition={"ArnLike": {"aws:SourceArn": "arn:*:*:*:*:*"}})]
    assert not allowed(send(service=EVENTS, context={"aws:SourceArn": "rule/x"}), not_an_arn)


def test_string_like_wildcards_are_star_and_question_mark_only() -> None:
    # The job role's s3:prefix and kms:ViaService conditions: '*' spans anything, '?' one character.
    policy = [statement(principal={"Service": EVENTS}, Condition={"StringLike": {"s3:prefix": "in/[a]?/*"}})]

    assert allowed(send(service=EVENTS, context={"s3:prefix": "in/[a]1/x:y/z"}), policy)
    assert not allowed(send(service=EVENTS, context={"s3:prefix": "in/a1/x"}), policy)  # no character classes
    assert not allowed(send(service=EVENTS, context={"s3:prefix": "in/[a]12/x"}), policy)


def test_actions_match_case_insensitively_with_wildcards() -> None:
    # DenyWithoutTls denies sqs:*; the alarm key allows kms:GenerateDataKey*.
    policy = [statement(principal={"Service": EVENTS}, Action=["sqs:Send*", "SQS:receivemessage"])]

    for action in ("sqs:SendMessage", "sqs:sendmessagebatch", "sqs:ReceiveMessage"):
        assert allowed(Request(action, QUEUE, service=EVENTS), policy), action
    for action in ("sqs:DeleteMessage", "sns:SendMessage", "sqs:Send"):
        assert allowed(Request(action, QUEUE, service=EVENTS), policy) is (action == "sqs:Send"), action


def test_resources_match_within_their_parts_and_a_trailing_star_runs_on() -> None:
    # A job role's own prefix (bucket/prefix*), its log group (...:log-group:name:*), its cluster's tasks.
    def reads(resource: str, pattern: str) -> bool:
        grant = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": pattern}]}
        return identity_decision(Request("s3:GetObject", resource, principal=ROLE), [grant]) is Decision.ALLOW

    assert reads("arn:aws:s3:::bucket/in/a/b.jpg", "arn:aws:s3:::bucket/in/*")
    assert not reads("arn:aws:s3:::bucket/out/b.jpg", "arn:aws:s3:::bucket/in/*")
    assert reads("arn:aws:logs:r:a:log-group:/jobs/x:log-stream:s", "arn:aws:logs:r:a:log-group:/jobs/x:*")
    assert not reads("arn:aws:logs:r:a:log-group:/jobs/xy:log-stream:s", "arn:aws:logs:r:a:log-group:/jobs/x:*")
    assert reads("arn:aws:sqs:eu-west-1:a:q", "arn:aws:sqs:*")  # a '*' ending a part runs past colons
    assert reads("arn:aws:sqs:eu-west-1:a:q", "arn:aws:sqs:eu-*-1:a:q")
    assert not reads("arn:aws:sqs:eu:west-1:a:q", "arn:aws:sqs:eu*1:a:q")  # ... one inside a part does not
    assert reads("arn:aws:s3:::bucket/k", "*")
    assert reads("arn:aws:s3:::bucket/k", "arn:aws:s3:::bucket/?")
    assert not reads("arn:aws:s3:::bucket/kk", "arn:aws:s3:::bucket/?")


def test_not_action_and_not_resource_apply_to_everything_else() -> None:
    grant = {
        "Statement": [
            {"Effect": "Allow", "NotAction": "sqs:Delete*", "Resource": QUEUE},
            {"Effect": "Deny", "Action": "sqs:*", "NotResource": [QUEUE]},
        ]
    }

    def decide(action: str, resource: str = QUEUE) -> Decision:
        return identity_decision(Request(action, resource, principal=ROLE), [grant])

    assert decide("sqs:SendMessage") is Decision.ALLOW
    assert decide("sqs:DeleteMessage") is Decision.IMPLICIT
    assert decide("sqs:SendMessage", QUEUE + "2") is Decision.DENY
    with pytest.raises(ValueError, match="not both"):
        identity_decision(send(principal=ROLE), [{"Statement": {"Effect": "Allow", "Action": "*", "NotAction": "x"}}])


# ------------------------------------------------------------------------------------------ identity policies


def test_identity_policies_union_their_allows_and_a_deny_in_any_wins() -> None:
    allow = {"Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE}}
    passing = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::{ACCOUNT}:role/stack/jobs/*",
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            }
        ]
    }
    deny = {"Statement": [{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}]}
    job_role = f"arn:aws:iam::{ACCOUNT}:role/stack/jobs/task"
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}

    assert identity_decision(send(principal=ROLE), [passing, allow]) is Decision.ALLOW
    assert identity_decision(send(principal=ROLE), [passing]) is Decision.IMPLICIT
    assert identity_decision(send(principal=ROLE), [allow, deny]) is Decision.DENY
    assert (
        identity_decision(Request("iam:PassRole", job_role, principal=ROLE, context=to_ecs), [passing])
        is Decision.ALLOW
    )
    assert identity_decision(Request("iam:PassRole", job_role, principal=ROLE), [passing]) is Decision.IMPLICIT
    with pytest.raises(ValueError, match="names no Principal"):
        identity_decision(send(principal=ROLE), [{"Statement": [statement()]}])
    with pytest.raises(ValueError, match="without Resource"):
        identity_decision(send(principal=ROLE), [{"Statement": [{"Effect": "Allow", "Action": "*"}]}])


def test_for_all_values_is_its_operator_on_a_present_key_and_vacuously_true_on_an_absent_one() -> None:
    grant = {
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["drain/a"]}},
    }
    policy = {"Statement": [grant]}

    def get(**context: str) -> Decision:
        return identity_decision(Request("dynamodb:GetItem", "arn:t", principal=ROLE, context=context), [policy])

    assert get(**{"dynamodb:LeadingKeys": "drain/a"}) is Decision.ALLOW
    assert get(**{"dynamodb:LeadingKeys": "drain/b"}) is not Decision.ALLOW
    assert get() is Decision.ALLOW  # IAM's vacuous truth: why such a grant must name an action that always has a key
