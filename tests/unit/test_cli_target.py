"""Which account, region and profile the CLI uses: the AWS CLI's order (option > environment > config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskrunner.cli.errors import EXIT_TARGET, CliError
from taskrunner.cli.target import NO_REGION, resolve_target

AWS_VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "TASKRUNNER_STACK",
)


@pytest.fixture(autouse=True)
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS config of our own: profile ops in eu-west-1, profile noregion without one, default in us-west-2."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    config.write_text(
        "[default]\nregion = us-west-2\n"
        "[profile ops]\nregion = eu-west-1\naws_access_key_id = AKIAOPS\naws_secret_access_key = s\n"
        "[profile noregion]\naws_access_key_id = AKIANO\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return config


def test_aws_region_is_honoured_over_aws_default_region_and_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")

    assert resolve_target(None, None, None, False).region == "eu-central-1"


def test_aws_default_region_is_honoured_over_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")

    assert resolve_target(None, None, None, False).region == "ap-south-1"


def test_the_region_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")

    assert resolve_target(None, None, "sa-east-1", False).region == "sa-east-1"


def test_aws_profile_is_honoured_with_its_region_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "ops")

    target = resolve_target(None, None, None, False)

    assert target.region == "eu-west-1"
    assert target.profile == "ops"
    assert "ops (from AWS_PROFILE)" in target.describe()
    credentials = target.session.get_credentials()
    assert credentials is not None
    assert credentials.access_key == "AKIAOPS"


def test_the_profile_option_wins_over_aws_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "noregion")

    target = resolve_target(None, "ops", None, False)

    assert target.region == "eu-west-1"
    assert "ops (from --profile)" in target.describe()


def test_environment_keys_win_over_aws_profile_as_in_the_aws_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "ops")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")

    credentials = resolve_target(None, None, None, False).session.get_credentials()

    assert credentials is not None
    assert credentials.access_key == "AKIAENV"


@pytest.mark.parametrize(("variable", "option"), [("AWS_PROFILE", None), (None, "nope")])
def test_a_missing_profile_is_named_with_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, option: str | None
) -> None:
    if variable:
        monkeypatch.setenv(variable, "nope")

    with pytest.raises(CliError) as raised:
        resolve_target(None, option, None, False)

    assert raised.value.exit_code == EXIT_TARGET
    source = variable or "--profile"
    assert str(raised.value) == f"AWS credentials: profile 'nope' (from {source}) not found in your AWS config"


def test_no_region_anywhere_says_how_to_give_one(aws_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_config.write_text("[profile noregion]\naws_access_key_id = A\naws_secret_access_key = s\n")

    with pytest.raises(CliError) as raised:
        resolve_target(None, "noregion", None, False)

    assert str(raised.value) == NO_REGION
    assert raised.value.exit_code == EXIT_TARGET


def test_the_stack_comes_from_the_option_then_taskrunner_stack_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_target(None, None, None, False).stack == "taskrunner"
    monkeypatch.setenv("TASKRUNNER_STACK", "from-env")
    assert resolve_target(None, None, None, False).stack == "from-env"
    assert resolve_target("explicit", None, None, False).stack == "explicit"


def test_local_mode_uses_local_json_and_never_a_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "ops")
    state = tmp_path / ".taskrunner" / "local.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"endpoint": "http://127.0.0.1:5999", "stack": "dev", "region": "eu-north-1"}))

    target = resolve_target(None, None, None, True, cwd=tmp_path)

    assert (target.endpoint, target.stack, target.region, target.root) == (
        "http://127.0.0.1:5999",
        "dev",
        "eu-north-1",
        tmp_path,
    )
    credentials = target.session.get_credentials()
    assert credentials is not None
    assert credentials.access_key == "testing"
