"""jobs/job.yaml's own contracts: the Platform list, its parameters' patterns, the generated slots, the container.

* The Platform list is positional: the root stack's PlatformParameter writes it, job.yaml's Metadata documents
  it, every ``!Select [i, !Ref Platform]`` reads it. One element out of place gives every job another's value.
* Free-text parameters are interpolated into the registry entry's JSON; a '"' or '\\' would corrupt it, so
  each refuses them (CloudFormation matches AllowedPattern against the whole value, as ``re.fullmatch`` does).
* Environment and Secrets are split into container entries by generated slots (tools/job_slots.py), which only
  work for flat objects of plain strings, at most as many as there are slots.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from taskrunner.domain.jobs import JobSpec
from taskrunner.domain.trust import registry_problems
from taskrunner.settings import DispatcherSettings, ScalerSettings
from tests.conftest import ROOT
from tests.policies.cfn import ACCOUNT, REGION, STACK, Stack, nested_stack_name, render_jobs, tool
from tests.policies.stacks import root_stack
from tests.template.conftest import job_logical_id
from tests.template.walk import LAYOUT, platform_index, props

JSON_PARAMETERS = {"Environment", "Secrets", "EventPattern"}


def job_slots() -> ModuleType:
    """tools/job_slots.py: the Environment and Secrets slots it generates into job.yaml."""
    return tool("job_slots")


def nodes(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from nodes(value)


def flat_object(pairs: dict[str, str]) -> str:
    return "{" + ", ".join(f'"{k}": "{v}"' for k, v in pairs.items()) + "}"


# ------------------------------------------------------------------------------------------ the Platform list

# What each documented element must be in the deployed root stack, given the resolved root and the resolved
# environment the functions get (the Lambdas check registry entries against that environment).
PLATFORM_SOURCES = {
    "stack name": lambda root, env: root.stack_name,
    "cluster ARN": lambda root, env: root.attribute("Cluster", "Arn") == env["CLUSTER_ARN"] and env["CLUSTER_ARN"],
    "task subnets (;)": lambda root, env: env["TASK_SUBNETS"].replace(",", ";"),
    "task security groups (;)": lambda root, env: env["TASK_SECURITY_GROUPS"].replace(",", ";"),
    "AssignPublicIp": lambda root, env: env["ASSIGN_PUBLIC_IP"],
    "dispatch queue ARN": lambda root, env: root.attribute("DispatchQueue", "Arn"),
    "dispatch DLQ ARN": lambda root, env: root.attribute("DispatchDeadLetterQueue", "Arn"),
    "EFS file system id": lambda root, env: root.ref("FileSystem"),
    "data bucket": lambda root, env: env["DATA_BUCKET"],
    "log retention days": lambda root, env: root.parameters["LogRetentionDays"],
    "alarm topic ARN": lambda root, env: root.ref("AlarmTopic"),
    "job scheduler role ARN": lambda root, env: env["RETRY_SCHEDULER_ROLE_ARN"],
    "schedule group": lambda root, env: env["SCHEDULE_GROUP"],
    'permissions boundary ARN or "none"': lambda root, env: root.parameters["PermissionsBoundaryArn"] or "none",
    # Where the Scaler publishes each service job's drain signal (its SCALER_STATE_TABLE).
    "scaler state table": lambda root, env: root.ref("ScalerStateTable"),
}
ROOT_VARIANTS = {
    "defaults": {},
    "everything set": {
        "DataBucketName": "existing-uploads",
        "SecurityGroups": "sg-0aaaaaaaaaaaaaaa1,sg-0bbbbbbbbbbbbbbb2",
        "AssignPublicIp": "ENABLED",
        "LogRetentionDays": "90",
        "PermissionsBoundaryArn": f"arn:aws:iam::{ACCOUNT}:policy/job-boundary",
        "OperatorPrincipalArns": f"arn:aws:iam::{ACCOUNT}:role/oncall",
    },
}


@pytest.fixture(params=sorted(ROOT_VARIANTS))
def root_variant(request: pytest.FixtureRequest) -> Stack:
    return root_stack(**ROOT_VARIANTS[request.param])


def platform_value(root: Stack) -> list[str]:
    value: str = root.value(props(root.template, "PlatformParameter")["Value"])
    return value.split(",")


def function_environment(root: Stack, function: str) -> dict[str, str]:
    variables = root.value(props(root.template, function)["Environment"]["Variables"])
    return {name: str(value) for name, value in variables.items()}


def test_metadata_documents_the_platform_elements_every_job_reads(job_template: dict[str, Any]) -> None:
    indexes = {index for node in nodes(job_template["Resources"]) if (index := platform_index(node)) is not None}
    indexes |= {i for node in nodes(job_template["Conditions"]) if (i := platform_index(node)) is not None}

    assert set(LAYOUT) == set(PLATFORM_SOURCES), "a new platform element: say here what the root gives it"
    assert len(LAYOUT) == len(set(LAYOUT))
    # Every element is read (an unread one is dead wiring), and none past the documented end.
    assert indexes == set(range(len(LAYOUT)))


def test_root_platform_parameter_holds_exactly_the_documented_elements_in_order(root_variant: Stack) -> None:
    parameter = props(root_variant.template, "PlatformParameter")
    elements = parameter["Value"]["Fn::Join"]
    values = platform_value(root_variant)
    environment = function_environment(root_variant, "DispatchFunction") | function_environment(
        root_variant, "TrackerFunction"
    )

    assert parameter["Type"] == "StringList"
    assert parameter["Name"] == {"Fn::Sub": "/taskrunner/${AWS::StackName}/platform"}
    assert elements[0] == ","
    assert len(elements[1]) == len(LAYOUT)
    # A ',' inside an element would shift every later one (lists inside an element are ';'-separated).
    assert len(values) == len(LAYOUT), values
    for index, name in enumerate(LAYOUT):
        expected = PLATFORM_SOURCES[name](root_variant, environment)
        assert expected, name
        assert values[index] == expected, f"element {index} ({name})"


def test_sample_jobs_registry_entries_pass_the_lambdas_checks_against_the_root(
    root_variant: Stack, root_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    # End to end: the root's PlatformParameter, resolved, is what each job stack receives; the registry entry it
    # writes must then name only what this stack deployed, by the Dispatcher's and the Scaler's own checks.
    platform = platform_value(root_variant)
    checks = []
    for function, settings in (("DispatchFunction", DispatcherSettings), ("ScalerFunction", ScalerSettings)):
        environment = function_environment(root_variant, function) | {"AWS_REGION": REGION}
        checks.append(settings.from_env(environment).bounds())

    for logical_id in render_jobs().sample_jobs(root_template):
        job = root_variant.nested(logical_id, job_template)
        assert job.value({"Ref": "Platform"}) == platform, logical_id
        spec = JobSpec.parse(job.value(props(job_template, "RegistryEntry")["Value"]))
        for bounds in checks:
            assert registry_problems(spec, bounds) == [], logical_id


# ------------------------------------------------------------------------------------------ parameter patterns


def test_every_string_parameter_is_constrained(job_template: dict[str, Any]) -> None:
    unconstrained = [
        name
        for name, parameter in job_template["Parameters"].items()
        if parameter["Type"] == "String" and "AllowedPattern" not in parameter and "AllowedValues" not in parameter
    ]

    assert unconstrained == []


def _registry_parameters(job_template: dict[str, Any]) -> set[str]:
    """The parameters the registry entry's JSON interpolates, directly or through a variable of its !Sub."""
    text, variables = props(job_template, "RegistryEntry")["Value"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([A-Za-z]+)\}", text)) - set(variables)
    names |= {node["Ref"] for node in nodes(variables) if isinstance(node, dict) and "Ref" in node}
    # Platform's elements are the root stack's own values, not the job author's text.
    return names & set(job_template["Parameters"]) - {"Platform"}


def test_every_free_text_parameter_refuses_quotes_and_backslashes(
    job_template: dict[str, Any], job_parameter_sets: dict[str, dict[str, Any]]
) -> None:
    # Free text: a String without AllowedValues, or a list the registry entry interpolates (its pattern applies
    # to each element). JSON parameters are checked for their own shapes below.
    parameters = job_template["Parameters"]
    interpolated = _registry_parameters(job_template)
    free_text = {
        name
        for name, p in parameters.items()
        if name not in JSON_PARAMETERS
        and "AllowedValues" not in p
        and (p["Type"] == "String" or (p["Type"] == "CommaDelimitedList" and name in interpolated))
    }

    fixed = {n for n, p in parameters.items() if p["Type"] == "Number" or "AllowedValues" in p}

    assert {"JobName", "Image", "LocalCommand", "S3Prefix", "RetryExitCodes", "AllowedEnvOverrides"} <= free_text
    # Whatever the registry entry interpolates is a number, a fixed value, JSON checked below, or free text.
    assert interpolated - JSON_PARAMETERS - fixed <= free_text
    for name in sorted(free_text):
        pattern = parameters[name].get("AllowedPattern")
        assert pattern, f"{name} has no AllowedPattern"
        samples = {str(s[name]) for s in job_parameter_sets.values() if name in s}
        samples |= {str(parameters[name]["Default"])} if "Default" in parameters[name] else set()
        elements = {e for s in samples for e in s.split(",")} if parameters[name]["Type"] != "String" else samples
        valid = sorted(e for e in elements if e) or ["x"]
        for value in valid:
            assert re.fullmatch(pattern, value), f"{name} refuses its own sample {value!r}"
            for bad in ('"', "\\"):
                for spoiled in (bad + value, value + bad, value[:1] + bad + value[1:]):
                    assert not re.fullmatch(pattern, spoiled), f"{name} accepts {spoiled!r}"


def _pattern(job_template: dict[str, Any], name: str) -> str:
    pattern: str = job_template["Parameters"][name]["AllowedPattern"]
    return pattern


def test_environment_pattern_accepts_exactly_the_flat_objects_the_slots_can_hold(job_template: dict[str, Any]) -> None:
    pattern, slots = _pattern(job_template, "Environment"), job_slots().ENV_SLOTS
    full = {f"VAR_{i}": f"value {i}" for i in range(slots)}
    accepted = [
        "{}",
        " { } ",
        '{"A": "x"}',
        '{"A":"x","B_2":"y z"}',
        '{"LOG_LEVEL": "", "URL": "https://example.com/a?b=c&d={e}"}',
        '{"_PRIVATE": "ümlaut: ok; commas, too"}',
        flat_object(full),
    ]
    refused = [
        "",
        "[]",
        '{"A": {"b": "c"}}',  # nested
        '{"A": ["x"]}',
        '{"A": 1}',  # not a string
        '{"A": true}',
        '{"A": "x\\"y"}',  # an escaped quote
        '{"A": "c:\\\\dir"}',  # an escaped backslash
        '{"A": "tab\\t"}',
        '{"A\\"B": "x"}',
        '{"1A": "x"}',  # not a variable name
        '{"A-B": "x"}',
        '{"A": "x",}',
        '{A: "x"}',
        '{"A": "x"} {"B": "y"}',
        '{"A": "x"}, "cluster": "evil"',
        flat_object(full | {"ONE_TOO_MANY": "x"}),  # a variable past the last slot would be dropped
    ]

    for value in accepted:
        assert re.fullmatch(pattern, value), f"refuses {value!r}"
        assert isinstance(json.loads(value), dict)
    for value in refused:
        assert not re.fullmatch(pattern, value), f"accepts {value!r}"


def test_secrets_pattern_accepts_exactly_the_secret_objects_the_slots_can_hold(job_template: dict[str, Any]) -> None:
    pattern, slots = _pattern(job_template, "Secrets"), job_slots().SECRET_SLOTS
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/db-AbCdEf"
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/token"
    full = {f"SECRET_{i}": secret for i in range(slots)}
    accepted = [
        "{}",
        flat_object({"DB": secret}),
        flat_object({"DB": secret, "TOKEN": parameter}),
        flat_object({"GOV": "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/x"}),
        flat_object(full),
    ]
    refused = [
        flat_object({"DB": "plaintext-password"}),  # a value, not a reference
        flat_object({"DB": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/abc"}),
        flat_object({"DB": f"arn:aws:s3:::bucket/{secret}"}),
        '{"DB": {"arn": "' + secret + '"}}',
        '{"DB": "' + secret + '\\"x"}',
        flat_object({"1DB": secret}),
        flat_object(full | {"ONE_TOO_MANY": secret}),
    ]

    for value in accepted:
        assert re.fullmatch(pattern, value), f"refuses {value!r}"
    for value in refused:
        assert not re.fullmatch(pattern, value), f"accepts {value!r}"


def test_event_pattern_parameter_takes_only_an_object(job_template: dict[str, Any]) -> None:
    # It is interpolated into the registry entry unquoted; EventBridge (PutRule) refuses what is not valid JSON.
    pattern = _pattern(job_template, "EventPattern")

    for value in ("", '{"source": ["x"]}', ' {"detail": {"a": [{"prefix": "b\\"c"}]}} '):
        assert re.fullmatch(pattern, value), value
    for value in ('["x"]', '"x"', "1", '{"a": 1}\n{"b": 2}'):
        assert not re.fullmatch(pattern, value), value


# ------------------------------------------------------------------------------------------ generated slots


def test_generated_slots_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "job_slots.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def test_slots_turn_environment_and_secrets_into_exactly_the_jobs_entries(job_sets: dict[str, Stack]) -> None:
    filled = {"environment": 0, "secrets": 0}
    for name, job in job_sets.items():
        (container,) = job.value(props(job.template, "TaskDefinition")["ContainerDefinitions"])
        environment = {
            e["Name"]: e["Value"] for e in container["Environment"] if not e["Name"].startswith("TASKRUNNER_")
        }
        secrets = {s["Name"]: s["ValueFrom"] for s in container.get("Secrets", [])}

        assert environment == json.loads(job.parameters["Environment"]), name
        assert [e["Name"] for e in container["Environment"]].count("TASKRUNNER_JOB") == 1, name
        assert secrets == json.loads(job.parameters["Secrets"]), name
        filled["environment"] = max(filled["environment"], len(environment))
        filled["secrets"] = max(filled["secrets"], len(secrets))

    # Some job fills every slot (the rendered synthetic job).
    assert filled == {"environment": job_slots().ENV_SLOTS, "secrets": job_slots().SECRET_SLOTS}


# ------------------------------------------------------------------------------------------ the container


def test_container_runs_as_the_jobs_own_uid_never_root(
    job_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    (container,) = props(job_template, "TaskDefinition")["ContainerDefinitions"]
    uid = job_template["Parameters"]["PosixUid"]

    assert container["User"] == {"Fn::Sub": "${PosixUid}:${PosixUid}"}
    assert uid["Type"] == "Number"
    assert int(uid["MinValue"]) >= 1
    assert container["ReadonlyRootFilesystem"] is True
    assert "Privileged" not in container
    assert "LinuxParameters" not in container, "capabilities belong to a review, not to a default"
    for name, job in job_sets.items():
        user, group = job.value(container["User"]).split(":")
        assert int(user) >= 1, name
        assert int(group) >= 1, name


# ------------------------------------------------------------------------------------------ the rendered jobs


def test_rendered_jobs_turn_every_condition_both_ways(
    job_template: dict[str, Any], job_parameter_sets: dict[str, dict[str, Any]], root_template: dict[str, Any]
) -> None:
    # The linters see each rendered job with its own values: together they must reach every conditional part.
    tool = render_jobs()
    rendered = tool.job_parameter_sets(root_template, job_template)
    outcomes: dict[str, set[bool]] = {name: set() for name in job_template["Conditions"]}
    for name, parameters in rendered.items():
        job = Stack(
            tool.render(job_template, parameters), name=nested_stack_name(STACK, job_logical_id(name, root_template))
        )
        for condition, value in job.conditions.items():
            outcomes[condition].add(value)

    assert set(rendered) >= {p["JobName"] for p in tool.sample_jobs(root_template).values()} | {"everything"}
    assert {name: values for name, values in outcomes.items() if values != {True, False}} == {}


def test_rendered_job_is_job_yaml_with_defaults_and_a_resolvable_platform(
    job_template: dict[str, Any], root_template: dict[str, Any]
) -> None:
    tool = render_jobs()
    for name, parameters in tool.job_parameter_sets(root_template, job_template).items():
        rendered = tool.render(job_template, parameters)
        platform = rendered["Parameters"]["Platform"]

        assert platform["Type"] == "CommaDelimitedList", name
        assert len(platform["Default"].split(",")) == len(LAYOUT), name
        for parameter, value in parameters.items():
            assert rendered["Parameters"][parameter]["Default"] == value, f"{name}.{parameter}"
        # Nothing else changes: what is scanned is job.yaml.
        assert {k: v for k, v in rendered.items() if k != "Parameters"} == {
            k: v for k, v in job_template.items() if k != "Parameters"
        }, name
        for parameter, declared in job_template["Parameters"].items():
            if parameter != "Platform":
                assert {k: v for k, v in rendered["Parameters"][parameter].items() if k != "Default"} == {
                    k: v for k, v in declared.items() if k != "Default"
                }, f"{name}.{parameter}"
