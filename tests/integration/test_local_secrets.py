"""Local mode reads a task definition's ``secrets`` from the embedded AWS, as ECS does at task start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from taskrunner.local.server import FAKE_CREDENTIALS, embedded_aws
from taskrunner.local.tasks import SecretUnavailable, TaskEnvironment

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with embedded_aws() as url:
        yield url


def environment(endpoint: str, tmp_path: Path) -> TaskEnvironment:
    credentials = {k: v for k, v in FAKE_CREDENTIALS.items() if "REGION" not in k}
    return TaskEnvironment(tmp_path, endpoint, REGION, credentials, {})


def test_secrets_manager_and_ssm_values_become_the_tasks_variables(endpoint: str, tmp_path: Path) -> None:
    sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION)
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION)
    secret = sm.create_secret(Name="report-db", SecretString="s3cr3t")["ARN"]
    ssm.put_parameter(Name="/report/api-key", Value="k3y", Type="SecureString")
    parameter = f"arn:aws:ssm:{REGION}:123456789012:parameter/report/api-key"
    container = {"secrets": [{"name": "DB_PASSWORD", "valueFrom": secret}, {"name": "API_KEY", "valueFrom": parameter}]}

    assert environment(endpoint, tmp_path).secrets(container) == {"DB_PASSWORD": "s3cr3t", "API_KEY": "k3y"}


def test_a_missing_secret_is_a_start_failure_naming_it(endpoint: str, tmp_path: Path) -> None:
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:nope-AbCdEf"
    with pytest.raises(SecretUnavailable, match=r"ResourceInitializationError.*retrieving secret DB_PASSWORD"):
        environment(endpoint, tmp_path).secrets({"secrets": [{"name": "DB_PASSWORD", "valueFrom": missing}]})


def test_a_container_without_secrets_needs_no_call(tmp_path: Path) -> None:
    unreachable = TaskEnvironment(tmp_path, "http://127.0.0.1:1", REGION, {}, {})
    assert unreachable.secrets({"environment": []}) == {}
