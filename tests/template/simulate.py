"""Decide a request against resolved resource policies, with IAM's evaluation rules for what the templates use.

Enough of IAM's policy evaluation logic to ask "may this principal do this here?" of a resolved queue, topic,
key, file-system or trust policy, within one account:

* an explicit Deny in the resource policy wins; otherwise an Allow there allows;
* otherwise an IAM principal of the resource's account is allowed when its own identity policy allows
  (``identity_allows``); a service principal or another account's principal is not (only an Allow here grants it);
* the account as principal (``arn:aws:iam::<account>:root``) stands for its principals whose identity policies
  allow the request;
* condition operators are ANDed, and so are the keys within one operator; the values of one key are ORed;
* a negated operator (``StringNotEquals``, ``ArnNotLike`` ...) on a key the request lacks is true, a positive
  one false; ``Null: true`` means the key is absent;
* ``ArnLike`` compares the six colon-separated parts of an ARN one by one, with ``*`` and ``?`` in each.

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html and
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from tests.template.walk import as_list


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    #: An IAM principal's ARN (a role's ARN, which is what aws:PrincipalArn holds for its sessions) ...
    principal: str | None = None
    #: ... or a service principal such as events.amazonaws.com.
    service: str | None = None
    #: Further condition keys: aws:SourceArn, aws:SourceAccount, elasticfilesystem:AccessPointArn ...
    context: dict[str, str] = field(default_factory=dict)
    secure: bool = True
    #: Whether the caller's own identity policy allows the request (IAM principals of the account only).
    identity_allows: bool = True

    def keys(self) -> dict[str, str]:
        keys = {"aws:SecureTransport": str(self.secure).lower(), **self.context}
        if self.principal:
            keys["aws:PrincipalArn"] = self.principal
            keys["aws:PrincipalAccount"] = self.principal.split(":")[4]
        return keys


def _arn_like(value: str, pattern: str) -> bool:
    value_parts, pattern_parts = value.split(":", 5), pattern.split(":", 5)
    return len(value_parts) == len(pattern_parts) and all(
        fnmatchcase(v, p) for v, p in zip(value_parts, pattern_parts, strict=True)
    )


_POSITIVE = {
    "StringEquals": lambda value, wanted: value == wanted,
    "StringLike": fnmatchcase,
    "ArnEquals": lambda value, wanted: value == wanted,
    "ArnLike": _arn_like,
    "Bool": lambda value, wanted: value.lower() == str(wanted).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, keys: dict[str, str]) -> bool:
    values = [str(v) for v in as_list(wanted)]
    if operator == "Null":
        return (key not in keys) is (values[0].lower() == "true")
    if operator in _NEGATED:
        if key not in keys:
            return True
        return not any(_POSITIVE[_NEGATED[operator]](keys[key], v) for v in values)
    if operator not in _POSITIVE:
        raise NotImplementedError(f"condition operator {operator}")
    return key in keys and any(_POSITIVE[operator](keys[key], v) for v in values)


def _principal_matches(principal: Any, request: Request) -> bool:
    if principal in ("*", {"AWS": "*"}):
        return True
    if not isinstance(principal, dict):
        raise NotImplementedError(f"principal {principal}")
    if request.service is not None:
        return request.service in as_list(principal.get("Service", []))
    caller_account = request.principal.split(":")[4] if request.principal else None
    for arn in as_list(principal.get("AWS", [])):
        if arn == request.principal:
            return True
        # The account as principal delegates to the account's identity policies: it names a caller of that
        # account only where the caller's own policy allows the request.
        if arn.endswith(":root") and arn.split(":")[4] == caller_account and request.identity_allows:
            return True
    return False


def matches(statement: dict[str, Any], request: Request) -> bool:
    """Whether the statement applies to the request (principal, action, resource and every condition)."""
    if "Principal" in statement and not _principal_matches(statement["Principal"], request):
        return False
    if not any(fnmatchcase(request.action.lower(), a.lower()) for a in as_list(statement["Action"])):
        return False
    if not any(fnmatchcase(request.resource, r) for r in as_list(statement.get("Resource", "*"))):
        return False
    keys = request.keys()
    return all(
        _condition_holds(operator, key, wanted, keys)
        for operator, block in statement.get("Condition", {}).items()
        for key, wanted in block.items()
    )


def decide(policy_statements: Iterable[dict[str, Any]], request: Request) -> str:
    """'allowed' or 'denied' (explicitly or for want of an Allow)."""
    applying = [s for s in policy_statements if matches(s, request)]
    if any(s["Effect"] == "Deny" for s in applying):
        return "denied"
    if any(s["Effect"] == "Allow" for s in applying):
        return "allowed"
    # Without an Allow here, only the caller's own identity policy can allow, and only within the resource's account.
    resource_account = request.resource.split(":")[4] if request.resource.count(":") >= 5 else ""
    same_account = request.principal is not None and request.principal.split(":")[4] in (resource_account, "")
    if same_account and request.identity_allows:
        return "allowed"
    return "denied"


def allowed(policy_statements: Iterable[dict[str, Any]], request: Request) -> bool:
    return decide(policy_statements, request) == "allowed"
