"""IAM policy evaluation for the requests an attacker (or the stack itself) would make.

Implements the parts of AWS's evaluation logic our policies rely on
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an explicit Deny
wins; otherwise an Allow in the resource policy (or, for a principal of the same account, in its identity
policy) allows; otherwise the request is implicitly denied. Conditions: the String*, Arn*, Bool and Null
operators, each key ANDed, each value ORed, and a negated operator (``...Not...``) true when the key is absent
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"  # an explicit Deny matched
    IMPLICIT = "implicit-deny"  # nothing allowed it


@dataclass(frozen=True)
class Request:
    #: An IAM principal ARN, ``service:<name>`` for an AWS service principal, or ``*`` for anyone.
    principal: str
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str | None:
        if name == "aws:PrincipalArn" and self.principal.startswith("arn:"):
            return self.principal
        if name == "aws:PrincipalAccount" and self.principal.startswith("arn:"):
            return self.principal.split(":")[4]
        return self.context.get(name)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if request.principal.startswith("service:"):
        return request.principal.removeprefix("service:") in _as_list(principal.get("Service", []))
    for arn in _as_list(principal.get("AWS", [])):
        account_root = arn.endswith(":root") and request.principal.split(":")[4:5] == arn.split(":")[4:5]
        if arn == "*" or arn == request.principal or account_root:
            return True
    return False


_POSITIVE = {
    "StringEquals": lambda want, got: got == want,
    "StringLike": _like,
    "ArnEquals": lambda want, got: got == want,
    "ArnLike": _like,
    "Bool": lambda want, got: str(got).lower() == str(want).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, request: Request) -> bool:
    got = request.key(key)
    values = [str(v) for v in _as_list(wanted)]
    if operator == "Null":
        return (got is None) == (values[0].lower() == "true")
    if operator in _NEGATED:
        if got is None:
            return True
        test = _POSITIVE[_NEGATED[operator]]
        return not any(test(v, got) for v in values)
    if operator in _POSITIVE:
        return got is not None and any(_POSITIVE[operator](v, got) for v in values)
    raise ValueError(f"condition operator {operator} is not simulated")


def statement_matches(statement: dict[str, Any], request: Request, *, resource_policy: bool) -> bool:
    if resource_policy and not _principal_matches(statement.get("Principal"), request):
        return False
    actions = [a.lower() for a in _as_list(statement.get("Action", []))]
    if not any(_like(a, request.action.lower()) for a in actions):
        return False
    resources = _as_list(statement.get("Resource", "*"))
    if not any(_like(str(r), request.resource) for r in resources):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, request):
                return False
    return True


def evaluate(
    request: Request,
    resource_policy: dict[str, Any] | None,
    *,
    identity_allows: bool = False,
) -> Decision:
    """The decision for ``request`` against a resource policy (``identity_allows``: the caller's own IAM policy
    grants the action, as an attacker's admin-ish role would)."""
    statements = _as_list((resource_policy or {}).get("Statement", []))
    matched = [s for s in statements if statement_matches(s, request, resource_policy=True)]
    if any(s.get("Effect") == "Deny" for s in matched):
        return Decision.DENY
    if identity_allows or any(s.get("Effect") == "Allow" for s in matched):
        return Decision.ALLOW
    return Decision.IMPLICIT


def identity_decision(request: Request, policies: list[dict[str, Any]]) -> Decision:
    """The decision of a role's own policies (no resource policy) for ``request``."""
    statements = [s for p in policies for s in _as_list(p.get("Statement", []))]
    matched = [s for s in statements if statement_matches(s, request, resource_policy=False)]
    if any(s.get("Effect") == "Deny" for s in matched):
        return Decision.DENY
    if any(s.get("Effect") == "Allow" for s in matched):
        return Decision.ALLOW
    return Decision.IMPLICIT
