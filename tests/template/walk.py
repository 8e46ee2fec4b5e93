"""Walk templates as written: every value a property can take under ``Fn::If``, and every policy statement.

The walker does not evaluate anything: it yields each branch of an ``Fn::If`` with the conditions that select
it, so a statement that exists only for some jobs is checked too. ``tests.policies.cfn.Stack`` resolves a template
for one parameter set instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.policies.cfn import render_jobs
from tests.policies.stacks import job_template

NO_VALUE = {"Ref": "AWS::NoValue"}
IAM_ROLE = "AWS::IAM::Role"
STANDALONE_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
EXACT_MATCH_OPERATORS = ("ArnEquals", "StringEquals")

When = frozenset[tuple[str, bool]]


def branches(node: Any, when: When = frozenset()) -> Iterator[tuple[Any, When]]:
    """Every value ``node`` can take, with the conditions that select it; ``AWS::NoValue`` yields nothing."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        condition, if_true, if_false = node["Fn::If"]
        yield from branches(if_true, when | {(condition, True)})
        yield from branches(if_false, when | {(condition, False)})
    elif node != NO_VALUE:
        yield node, when


def items(node: Any, when: When = frozenset()) -> Iterator[tuple[Any, When]]:
    """The elements of a list that may itself, or in any element, be an ``Fn::If``."""
    for value, branch_when in branches(node, when):
        for element in value if isinstance(value, list) else [value]:
            yield from branches(element, branch_when)


@dataclass(frozen=True)
class Grant:
    """One policy statement, who holds it, and under which template conditions it exists."""

    owner: str
    statement: dict[str, Any]
    when: When

    @property
    def actions(self) -> list[str]:
        return [action.lower() for action, _ in items(self.statement.get("Action", []))]

    @property
    def resources(self) -> list[Any]:
        return [resource for resource, _ in items(self.statement.get("Resource", []))]

    @property
    def allows(self) -> bool:
        return self.statement.get("Effect") == "Allow"

    @property
    def sid(self) -> str:
        return str(self.statement.get("Sid", ""))

    def condition(self, key: str, operators: tuple[str, ...] = EXACT_MATCH_OPERATORS) -> Any:
        for operator in operators:
            block = self.statement.get("Condition", {}).get(operator, {})
            if key in block:
                return block[key]
        return None

    def __str__(self) -> str:
        return f"{self.owner}: {self.sid} {self.actions}"


def document_statements(owner: str, document: Any, when: When = frozenset()) -> Iterator[Grant]:
    for doc, doc_when in branches(document, when):
        for statement, statement_when in items(doc.get("Statement", []), doc_when):
            yield Grant(owner, statement, statement_when)


def resource_when(resource: dict[str, Any]) -> When:
    return frozenset({(resource["Condition"], True)}) if "Condition" in resource else frozenset()


def identity_grants(template: dict[str, Any]) -> Iterator[Grant]:
    """(role logical id, statement) for every identity-policy statement: inline and standalone."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        when = resource_when(resource)
        if resource["Type"] == IAM_ROLE:
            for policy, policy_when in items(props.get("Policies", []), when):
                yield from document_statements(logical_id, policy["PolicyDocument"], policy_when)
        elif resource["Type"] in STANDALONE_POLICIES:
            roles = [role["Ref"] for role, _ in items(props.get("Roles", [])) if "Ref" in role] or [logical_id]
            for role in roles:
                yield from document_statements(role, props["PolicyDocument"], when)


def trust_grants(template: dict[str, Any]) -> Iterator[Grant]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == IAM_ROLE:
            document = resource["Properties"]["AssumeRolePolicyDocument"]
            yield from document_statements(logical_id, document, resource_when(resource))


def managed_policy_arns(template: dict[str, Any]) -> dict[str, set[Any]]:
    """Role logical id → the managed policies it may have attached (every branch)."""
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


def sub_variables(node: Any) -> dict[str, Any]:
    """The variable map of a two-argument ``Fn::Sub`` (empty for the one-argument form)."""
    if isinstance(node, dict) and isinstance(node.get("Fn::Sub"), list):
        variables: dict[str, Any] = node["Fn::Sub"][1]
        return variables
    return {}


def wildcard_action(action: str) -> bool:
    return action == "*" or action.endswith(":*")


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id].get("Properties", {})
    return properties


def ref_name(node: Any) -> str | None:
    """X for ``!Ref X`` or ``!GetAtt X.<attr>``."""
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return str(node["Fn::GetAtt"][0])
    return None


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


def platform_index(node: Any) -> int | None:
    """i for ``!Select [i, !Ref Platform]``: the job stack's view of one platform element."""
    if isinstance(node, dict) and set(node) == {"Fn::Select"}:
        index, source = node["Fn::Select"]
        if source == {"Ref": "Platform"}:
            return int(index)
    return None


#: The elements of a job stack's Platform list, in order, as jobs/job.yaml's Metadata documents them.
LAYOUT: list[str] = render_jobs().platform_layout(job_template())


def platform_element(node: Any) -> str | None:
    """The documented Platform element a job stack's value is (``!Select [i, !Ref Platform]``), or None."""
    index = platform_index(node)
    return LAYOUT[index] if index is not None else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def is_false(value: Any) -> bool:
    return value is False or str(value).lower() == "false"


def is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
