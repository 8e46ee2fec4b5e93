"""JobSpec: the registry entry jobs/job.yaml writes, validated once, readable when it is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from taskrunner.domain.jobs import Capacity, InvalidJobSpec, JobSpec, Overlap, QueueMode
from tests.unit.fakes import CLUSTER_ARN, DATA_BUCKET, spec_dict

ROOT = Path(__file__).resolve().parents[2]


class _AnyTagLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping each tagged node's plain value (``!Sub [t, vars]`` → ``[t, vars]``)."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)
    return loader.construct_mapping(node, deep=True)


_AnyTagLoader.add_multi_constructor("!", _untagged)


def registry_entry(**params: Any) -> str:
    """The RegistryEntry value jobs/job.yaml renders for these stack parameters (defaults for the rest).

    The ``!If`` helper variables are resolved the way the template's conditions would resolve them.
    """
    template = yaml.load((ROOT / "jobs" / "job.yaml").read_text(), Loader=_AnyTagLoader)
    body, _helpers = template["Resources"]["RegistryEntry"]["Properties"]["Value"]
    values: dict[str, Any] = {name: p.get("Default", "") for name, p in template["Parameters"].items()}
    values |= {
        "JobName": "thumbnails",
        "StackPrefix": "taskrunner",
        "ClusterArn": CLUSTER_ARN,
        "Subnets": "subnet-aaa,subnet-bbb",
        "SecurityGroups": "sg-111",
        "AssignPublicIp": "DISABLED",
        "DataBucket": DATA_BUCKET,
    }
    values |= params
    values |= {
        "PublicIp": values["AssignPublicIp"],
        "ExitCodes": ",".join(str(c) for c in values["RetryExitCodes"] or []),
        "AllowedOverrides": ",".join(values["AllowedEnvOverrides"] or []),
        "S3Bucket": values["DataBucket"] if values["S3Prefix"] else "",
        "Pattern": values["EventPattern"] or "null",
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/work" if values["QueueMode"] != "none" else "",
        "ServiceName": "taskrunner-thumbnails-workers" if values["QueueMode"] == "service" else "",
    }
    return re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: str(values[m.group(1)]), body)


# --------------------------------------------------------------------------- the registry JSON shape


def test_registry_entry_with_template_defaults_parses():
    """GIVEN the entry job.yaml writes with every optional parameter at its default
    WHEN it is parsed
    THEN CSV strings become lists and the CloudFormation "unset" zeros become None."""
    spec = JobSpec.parse(registry_entry())

    assert spec.name == "thumbnails"
    assert spec.cluster == CLUSTER_ARN
    assert spec.task_definition == "taskrunner-thumbnails"
    assert spec.subnets == ["subnet-aaa", "subnet-bbb"]
    assert spec.security_groups == ["sg-111"]
    assert spec.assign_public_ip is False
    assert spec.capacity is Capacity.FARGATE
    assert spec.overlap is Overlap.ALLOW
    assert spec.starting_deadline_s is None
    assert spec.max_concurrency is None
    assert spec.timeout_s is None
    assert spec.retry.max_attempts == 1
    assert spec.retry.retry_exit_codes == []
    assert spec.s3_bucket is None
    assert spec.event_pattern is None
    assert spec.environment == {}
    assert spec.queue_mode is QueueMode.NONE
    assert spec.queue_url is None
    assert spec.service is None


def test_registry_entry_with_every_feature_parses():
    pattern = {"source": ["com.example.orders"], "detail-type": ["OrderPlaced"]}
    spec = JobSpec.parse(
        registry_entry(
            AssignPublicIp="ENABLED",
            Capacity="FARGATE_SPOT_WITH_FALLBACK",
            OverlapPolicy="Forbid",
            StartingDeadlineSeconds=300,
            MaxConcurrency=4,
            TimeoutSeconds=3600,
            MaxAttempts=3,
            RetryExitCodes=["2", "75"],
            S3Prefix="uploads/images/",
            S3Suffix=".jpg",
            EventPattern=json.dumps(pattern),
            Environment='{"LOG_LEVEL": "debug"}',
            QueueMode="service",
            MinTasks=1,
            MaxTasks=50,
        )
    )

    assert spec.assign_public_ip is True
    assert spec.capacity is Capacity.SPOT_WITH_FALLBACK
    assert spec.overlap is Overlap.FORBID
    assert (spec.starting_deadline_s, spec.max_concurrency, spec.timeout_s) == (300, 4, 3600)
    assert spec.retry.max_attempts == 3
    assert spec.retry.retry_exit_codes == [2, 75]
    assert (spec.s3_bucket, spec.s3_prefix, spec.s3_suffix) == (DATA_BUCKET, "uploads/images/", ".jpg")
    assert spec.event_pattern == pattern
    assert spec.environment == {"LOG_LEVEL": "debug"}
    assert spec.queue_mode is QueueMode.SERVICE
    assert spec.queue_url is not None
    assert spec.service == "taskrunner-thumbnails-workers"
    assert (spec.scaling.min_tasks, spec.scaling.max_tasks) == (1, 50)


@pytest.mark.parametrize("form", ["str", "bytes", "dict"])
def test_parse_accepts_str_bytes_and_dict(form):
    raw = spec_dict()
    given: Any = {"str": json.dumps(raw), "bytes": json.dumps(raw).encode(), "dict": raw}[form]
    assert JobSpec.parse(given).name == "nightly-report"


def test_csv_lists_are_trimmed_and_empty_items_dropped():
    spec = JobSpec.parse(spec_dict(subnets=" subnet-a , ,subnet-b,", security_groups=""))
    assert spec.subnets == ["subnet-a", "subnet-b"]
    assert spec.security_groups == []


def test_lists_may_also_arrive_as_json_arrays():
    spec = JobSpec.parse(spec_dict(subnets=["subnet-a"], retry={"retry_exit_codes": [1, 2]}))
    assert spec.subnets == ["subnet-a"]
    assert spec.retry.retry_exit_codes == [1, 2]


@pytest.mark.parametrize("codes", ["1, 2,3", "1,2,3,", ["1", "2", "3"]])
def test_exit_codes_from_csv(codes):
    assert JobSpec.parse(spec_dict(retry={"retry_exit_codes": codes})).retry.retry_exit_codes == [1, 2, 3]


@pytest.mark.parametrize("unset", [0, "0", "", None])
@pytest.mark.parametrize("field", ["starting_deadline_s", "timeout_s", "max_concurrency"])
def test_zero_or_blank_means_not_set(field, unset):
    assert getattr(JobSpec.parse(spec_dict(**{field: unset})), field) is None


@pytest.mark.parametrize("field", ["starting_deadline_s", "timeout_s", "max_concurrency"])
def test_negative_numbers_are_rejected(field):
    with pytest.raises(InvalidJobSpec, match=field):
        JobSpec.parse(spec_dict(**{field: -5}))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('{"source": ["aws.s3"]}', {"source": ["aws.s3"]}),
        ({"source": ["aws.s3"]}, {"source": ["aws.s3"]}),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_event_pattern_as_string_object_or_null(given, expected):
    assert JobSpec.parse(spec_dict(event_pattern=given)).event_pattern == expected


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", '"a string"'])
def test_event_pattern_that_is_not_a_json_object_is_rejected(bad):
    with pytest.raises(InvalidJobSpec, match="event_pattern"):
        JobSpec.parse(spec_dict(event_pattern=bad))


@pytest.mark.parametrize("field", ["queue_url", "service", "s3_bucket"])
def test_empty_strings_become_none(field):
    assert getattr(JobSpec.parse(spec_dict(**{field: ""})), field) is None


def test_spec_is_frozen():
    spec = JobSpec.parse(spec_dict())
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("name", ["a", "thumbnails", "job-2", "a" * 40])
def test_valid_names(name):
    assert JobSpec.parse(spec_dict(name=name)).name == name


@pytest.mark.parametrize("name", ["", "Thumbnails", "2fast", "-job", "job_name", "job.name", "a" * 41, "jöb"])
def test_bad_names_are_rejected_with_the_rule(name):
    with pytest.raises(InvalidJobSpec, match="job name must be 1-40 lowercase"):
        JobSpec.parse(spec_dict(name=name))


def test_min_tasks_above_max_tasks_is_rejected():
    with pytest.raises(InvalidJobSpec, match=r"min_tasks \(7\) must not exceed max_tasks \(3\)"):
        JobSpec.parse(spec_dict(scaling={"min_tasks": 7, "max_tasks": 3}))


def test_service_mode_without_a_service_is_rejected():
    with pytest.raises(InvalidJobSpec, match="queue_mode service needs a service name"):
        JobSpec.parse(spec_dict(queue_mode="service", queue_url="https://sqs/q", service=""))


@pytest.mark.parametrize("mode", ["service", "per-message"])
def test_queue_mode_without_a_queue_is_rejected(mode):
    with pytest.raises(InvalidJobSpec, match="needs a queue_url"):
        JobSpec.parse(spec_dict(queue_mode=mode, queue_url="", service="svc"))


def test_per_message_mode_needs_no_service():
    spec = JobSpec.parse(spec_dict(queue_mode="per-message", queue_url="https://sqs/q"))
    assert spec.service is None


def test_no_subnets_is_rejected():
    with pytest.raises(InvalidJobSpec, match="subnets"):
        JobSpec.parse(spec_dict(subnets=""))


@pytest.mark.parametrize(
    ("field", "value"),
    [("capacity", "EC2"), ("overlap", "Sometimes"), ("queue_mode", "batch"), ("assign_public_ip", "maybe")],
)
def test_unknown_enum_values_are_rejected(field, value):
    with pytest.raises(InvalidJobSpec, match=field):
        JobSpec.parse(spec_dict(**{field: value}))


def test_unknown_fields_are_rejected():
    """A typo in job.yaml (``timeout`` for ``timeout_s``) must not be silently ignored."""
    with pytest.raises(InvalidJobSpec, match="timeout"):
        JobSpec.parse(spec_dict(timeout=30))


@pytest.mark.parametrize("missing", ["name", "cluster", "task_definition", "container", "subnets"])
def test_required_fields(missing):
    raw = spec_dict()
    del raw[missing]
    with pytest.raises(InvalidJobSpec, match=missing):
        JobSpec.parse(raw)


@pytest.mark.parametrize(
    "retry",
    [{"max_attempts": 0}, {"max_attempts": 11}, {"backoff_base_s": 0}, {"retry_exit_codes": "1,x"}, {"retries": 3}],
)
def test_bad_retry_policy_is_rejected(retry):
    with pytest.raises(InvalidJobSpec, match="retry"):
        JobSpec.parse(spec_dict(retry=retry))


@pytest.mark.parametrize("element", [None, [1], {"code": 1}])
def test_exit_code_of_the_wrong_type_is_an_invalid_spec_not_a_crash(element):
    """GIVEN a registry entry whose retry_exit_codes holds a non-number (a hand-edited SSM parameter)
    WHEN it is parsed
    THEN the error is InvalidJobSpec, which the registry skips and the handler dead-letters, not a TypeError."""
    with pytest.raises(InvalidJobSpec, match="retry_exit_codes"):
        JobSpec.parse(spec_dict(retry={"retry_exit_codes": [1, element]}))


@pytest.mark.parametrize("raw", ["", "not json", "[]", "null", b"\xff\xfe", '{"name": "a"'])
def test_parse_of_garbage_raises_invalid_job_spec(raw):
    with pytest.raises(InvalidJobSpec):
        JobSpec.parse(raw)


def test_invalid_job_spec_message_is_readable():
    """The message names each bad field and says what is wrong with it, on a few lines."""
    with pytest.raises(InvalidJobSpec) as caught:
        JobSpec.parse(spec_dict(name="Bad_Name", capacity="EC2"))
    message = str(caught.value)
    assert "name" in message
    assert "job name must be 1-40 lowercase letters" in message
    assert "capacity" in message
    assert "FARGATE" in message  # the allowed values
    assert "2 validation errors" in message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value.__cause__, ValidationError)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"source": "aws.s3"}', "source: a pattern's values must be arrays"),
        ({"detail": {"total": [{"numeric": [">"]}]}}, "detail.total: numeric needs an operator and a number"),
        ({"source": [{"contains": "s3"}]}, 'source: unknown operator "contains"'),
        ({}, "pattern: an empty object is not a pattern"),
        ("{not json", "event_pattern is not JSON"),
    ],
)
def test_event_pattern_eventbridge_would_refuse_is_rejected_with_the_reason(bad, reason):
    with pytest.raises(InvalidJobSpec, match="event_pattern") as refused:
        JobSpec.parse(spec_dict(event_pattern=bad))
    assert reason in str(refused.value)


def test_every_problem_of_an_event_pattern_is_named():
    with pytest.raises(InvalidJobSpec) as refused:
        JobSpec.parse(spec_dict(event_pattern={"source": "x", "detail": {"ip": [{"cidr": "10.0.0.0"}]}}))
    assert "source: a pattern's values must be arrays" in str(refused.value)
    assert 'detail.ip: malformed cidr "10.0.0.0"' in str(refused.value)
