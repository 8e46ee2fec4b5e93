"""IAM's policy evaluation, for the requests the stack itself and an attacker would make.

Enough of IAM's evaluation logic to ask "may this principal do this here?" of a resolved resource policy (queue,
topic, key, file system, trust policy) or of a role's own identity policies:

* an explicit Deny wins; otherwise an Allow allows; otherwise the request is implicitly denied;
* a resource policy names its principals: an IAM principal's ARN, a service principal, ``*``; the account
  (``arn:aws:iam::<account>:root`` or ``<account>``) stands for those of its principals whose own identity policy
  allows the request (``Request.identity_allows``), in an Allow; in a Deny, for every one of them;
* within the resource's account an Allow in either the resource policy or the caller's identity policy allows,
  except for KMS keys and role trust policies, which must allow themselves (at least by naming the account);
  another account's principal needs both; a service principal or an anonymous caller only the resource policy;
* ``aws:PrincipalArn`` and ``aws:PrincipalAccount`` come from the principal and ``aws:SecureTransport`` from the
  connection, never from the caller; ``aws:SourceArn`` and ``aws:SourceAccount`` only a service calling on a
  resource's behalf carries;
* condition operators are ANDed, and so are the keys within one operator; the values of one key are ORed; key
  names are case-insensitive; a negated operator (``StringNotEquals``, ``ArnNotLike`` ...) on a key the request
  lacks holds, a positive one does not, an ``...IfExists`` one does; ``Null: true`` holds when the key is absent;
* ``ForAllValues:<operator>`` on a key the request carries (each request key has one value here, such as the
  one ``dynamodb:LeadingKeys`` of a GetItem) is that operator; on a key the request lacks it holds (every one
  of no values matches: IAM's own, and famous, vacuous truth);
* ``*`` and ``?`` are the only wildcards (no character classes): ``StringLike`` matches the whole string,
  ``ArnLike`` and ``ArnEquals`` (which are the same operator) each of an ARN's six colon-separated parts, an
  Action case-insensitively, a Resource within its colon-separated parts except that a ``*`` ending a part
  may match past colons;
* ``NotAction`` and ``NotResource`` apply to every action or resource they do not name.

What this does not model (a ``NotPrincipal``, a policy variable, an operator not listed) is an error, never a
guess. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html,
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"  # an explicit Deny applies
    IMPLICIT = "implicit-deny"  # nothing allows it


# Keys IAM sets itself, from the authenticated principal and the connection.
_DERIVED_KEYS = frozenset({"aws:principalarn", "aws:principalaccount", "aws:securetransport"})
# Keys present only when a service calls on behalf of a resource (a rule delivering, an alarm publishing).
_SERVICE_KEYS = frozenset({"aws:sourcearn", "aws:sourceaccount"})


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    #: An IAM principal's ARN (a role's ARN, which is what aws:PrincipalArn holds for its sessions) ...
    principal: str | None = None
    #: ... or a service principal such as events.amazonaws.com; neither is an anonymous caller.
    service: str | None = None
    #: Further condition keys: aws:SourceArn, aws:SourceAccount, elasticfilesystem:AccessPointArn ...
    context: Mapping[str, str] = field(default_factory=dict)
    secure: bool = True
    #: Whether the caller's own identity policy allows the request (an IAM principal; an attacker's admin-ish role).
    identity_allows: bool = True

    def __post_init__(self) -> None:
        if self.principal is not None and self.service is not None:
            raise ValueError("a request comes from an IAM principal or a service principal, not both")
        names = {name.lower() for name in self.context}
        if forged := names & _DERIVED_KEYS:
            raise ValueError(f"{sorted(forged)} come from the principal and the connection, not from the caller")
        if self.service is None and (forged := names & _SERVICE_KEYS):
            raise ValueError(f"{sorted(forged)} are set only by a service calling on a resource's behalf")

    @property
    def account(self) -> str | None:
        return self.principal.split(":")[4] if self.principal else None

    def keys(self) -> dict[str, str]:
        """The request context, by lower-cased key name (IAM's key names are case-insensitive)."""
        keys = {name.lower(): value for name, value in self.context.items()}
        keys["aws:securetransport"] = str(self.secure).lower()
        if self.principal:
            keys["aws:principalarn"] = self.principal
            keys["aws:principalaccount"] = str(self.account)
        return keys


def on_behalf_of(source_arn: str) -> dict[str, str]:
    """The keys a service's request carries when it acts for a resource (a rule delivering, an alarm publishing,
    a schedule assuming its role): that resource's ARN and the account in it, which owns it."""
    return {"aws:SourceArn": source_arn, "aws:SourceAccount": source_arn.split(":")[4]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """A policy document's statements (``Statement`` may be one statement); a list of statements as it is."""
    if policy is None:
        return []
    if isinstance(policy, Mapping):
        return as_list(policy.get("Statement", []))
    return list(policy)


# ------------------------------------------------------------------------------------------ wildcards


def _pattern(pattern: str, star: str, question: str) -> str:
    if "${" in pattern:
        raise NotImplementedError(f"policy variables are not simulated: {pattern}")
    return "".join(star if c == "*" else question if c == "?" else re.escape(c) for c in pattern)


def _string_like(value: str, pattern: str, flags: int = 0) -> bool:
    return re.fullmatch(_pattern(pattern, ".*", "."), value, flags | re.DOTALL) is not None


def _arn_like(value: str, pattern: str) -> bool:
    values, patterns = value.split(":", 5), pattern.split(":", 5)
    return len(values) == len(patterns) == 6 and all(map(_string_like, values, patterns))


def _action_matches(action: str, pattern: str) -> bool:
    return _string_like(action, pattern, re.IGNORECASE)


def _resource_matches(resource: str, pattern: str) -> bool:
    # Within a colon-separated part, except that a '*' ending a part may run on past colons.
    parts = pattern.split(":")
    regex = ":".join(
        _pattern(p[:-1], "[^:]*", "[^:]") + ".*" if p.endswith("*") else _pattern(p, "[^:]*", "[^:]") for p in parts
    )
    return re.fullmatch(regex, resource, re.DOTALL) is not None


# ------------------------------------------------------------------------------------------ conditions


def _equals(value: str, wanted: str) -> bool:
    return value == wanted


def _bool(value: str, wanted: str) -> bool:
    return value.lower() == wanted.lower()


_OPERATORS = {
    "StringEquals": _equals,
    "StringLike": _string_like,
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "Bool": _bool,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _condition_holds(operator: str, key: str, wanted: Any, keys: Mapping[str, str]) -> bool:
    values = [_condition_value(v) for v in as_list(wanted)]
    present = key.lower() in keys
    if operator.startswith("ForAllValues:"):
        return not present or _condition_holds(operator.removeprefix("ForAllValues:"), key, wanted, keys)
    if operator == "Null":
        (absent,) = values
        return (not present) is (absent.lower() == "true")
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS and base not in _NEGATED:
        raise NotImplementedError(f"condition operator {operator} is not simulated")
    if not present:
        return base in _NEGATED or operator.endswith("IfExists")
    value = keys[key.lower()]
    if base in _NEGATED:
        return not any(_OPERATORS[_NEGATED[base]](value, v) for v in values)
    return any(_OPERATORS[base](value, v) for v in values)


# ------------------------------------------------------------------------------------------ statements


class _Named(Enum):
    """How a resource policy's Principal names the caller."""

    DIRECTLY = "directly"  # its ARN, its service, or '*'
    BY_ACCOUNT = "by account"  # its account: whatever the account's own policies allow it


def _principal_names(principal: Any, request: Request) -> _Named | None:
    if principal == "*":
        return _Named.DIRECTLY
    if not isinstance(principal, Mapping) or set(principal) - {"AWS", "Service"}:
        raise NotImplementedError(f"principal {principal} is not simulated")
    aws = [str(arn) for arn in as_list(principal.get("AWS", []))]
    if "*" in aws:
        return _Named.DIRECTLY
    if request.service is not None:
        return _Named.DIRECTLY if request.service in as_list(principal.get("Service", [])) else None
    named = None
    for arn in aws:
        if "*" in arn or "?" in arn:
            raise ValueError(f"IAM refuses a wildcard in a principal ARN: {arn}")
        if request.principal is None:
            continue
        if arn == request.principal:
            return _Named.DIRECTLY
        account = arn if arn.isdigit() else arn.split(":")[4] if arn.endswith(":root") else None
        if account == request.account:
            named = _Named.BY_ACCOUNT
    return named


def _element_matches(statement: Mapping[str, Any], element: str, value: str, match: Any, default: bool) -> bool:
    """Action/NotAction or Resource/NotResource: whether ``value`` is one the statement applies to."""
    negated = f"Not{element}"
    if element in statement and negated in statement:
        raise ValueError(f"a statement has {element} or {negated}, not both: {statement}")
    if element in statement:
        return any(match(value, str(p)) for p in as_list(statement[element]))
    if negated in statement:
        return not any(match(value, str(p)) for p in as_list(statement[negated]))
    if default:
        return True
    raise ValueError(f"a statement without {element} or {negated}: {statement}")


def _applies(statement: Mapping[str, Any], request: Request, *, resource_policy: bool) -> _Named | None:
    """How the statement names the caller, where it applies to the request (principal, action, resource, conditions)."""
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise ValueError(f"a statement's Effect is Allow or Deny: {statement}")
    if "NotPrincipal" in statement:
        raise NotImplementedError("NotPrincipal is not simulated")
    if resource_policy:
        if "Principal" not in statement:
            raise ValueError(f"a resource policy's statement names its Principal: {statement}")
        named = _principal_names(statement["Principal"], request)
        if named is None:
            return None
    else:
        if "Principal" in statement:
            raise ValueError(f"an identity policy's statement names no Principal: {statement}")
        named = _Named.DIRECTLY
    if not _element_matches(statement, "Action", request.action, _action_matches, default=False):
        return None
    # A trust policy has no Resource: it is the role's own.
    if not _element_matches(statement, "Resource", request.resource, _resource_matches, default=resource_policy):
        return None
    keys = request.keys()
    for operator, block in statement.get("Condition", {}).items():
        for key, wanted in block.items():
            if not _condition_holds(operator, key, wanted, keys):
                return None
    return named


def _must_grant_itself(action: str) -> bool:
    # A KMS key's policy and a role's trust policy are not bypassed by an identity policy of the same account.
    return action.lower().startswith(("kms:", "sts:assumerole"))


def _resource_account(resource: str) -> str:
    """The account in a resource's ARN; '' where the ARN has none (an S3 bucket) or it is not an ARN."""
    parts = resource.split(":", 5)
    return parts[4] if len(parts) == 6 else ""


# ------------------------------------------------------------------------------------------ decisions


def evaluate(request: Request, resource_policy: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> Decision:
    """The decision for ``request`` against a resource policy (a document, or its statements) and the caller's
    own identity policy (``Request.identity_allows``)."""
    applying = [
        (statement, named)
        for statement in statements(resource_policy)
        if (named := _applies(statement, request, resource_policy=True)) is not None
    ]
    if any(statement["Effect"] == "Deny" for statement, _ in applying):
        return Decision.DENY
    allowed_as = {named for statement, named in applying if statement["Effect"] == "Allow"}
    if request.principal is None:  # a service principal, or an anonymous caller: only the resource policy grants
        return Decision.ALLOW if _Named.DIRECTLY in allowed_as else Decision.IMPLICIT
    if _resource_account(request.resource) not in ("", request.account):  # another account: both must allow
        return Decision.ALLOW if allowed_as and request.identity_allows else Decision.IMPLICIT
    if _Named.DIRECTLY in allowed_as:
        return Decision.ALLOW
    if request.identity_allows and (_Named.BY_ACCOUNT in allowed_as or not _must_grant_itself(request.action)):
        return Decision.ALLOW
    return Decision.IMPLICIT


def allowed(request: Request, resource_policy: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> bool:
    return evaluate(request, resource_policy) is Decision.ALLOW


def identity_decision(request: Request, policies: Iterable[Mapping[str, Any]]) -> Decision:
    """The decision of a principal's own identity policies (documents) for ``request``, no resource policy."""
    applying = [
        statement
        for policy in policies
        for statement in statements(policy)
        if _applies(statement, request, resource_policy=False) is not None
    ]
    if any(statement["Effect"] == "Deny" for statement in applying):
        return Decision.DENY
    if any(statement["Effect"] == "Allow" for statement in applying):
        return Decision.ALLOW
    return Decision.IMPLICIT
