"""Which stack the CLI acts on, with which credentials: AWS (``--stack/--profile/--region``) or ``--local``.

Every resource is found through the stack's outputs, so a stack name and credentials are all a command needs.
Commands reach AWS only through the adapters this module builds on the target's clients
(``taskrunner.adapters.*``), and botocore's exceptions become one-line :class:`CliError` messages here.

Precedence is the AWS CLI's: an explicit option, then the environment (``AWS_REGION`` before
``AWS_DEFAULT_REGION``; ``AWS_PROFILE``, then the legacy ``AWS_DEFAULT_PROFILE``), then the profile's config.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from taskrunner.adapters.alarms import CloudWatchAlarms
from taskrunner.adapters.clients import error_code, retry_config
from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.identity import caller
from taskrunner.adapters.logs import CloudWatchLogs
from taskrunner.adapters.pauses import SsmPauses, pauses_prefix
from taskrunner.adapters.queues import Queues
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.stacks import StackInfo, StackNotFound, Stacks
from taskrunner.adapters.store import DynamoRunStore
from taskrunner.cli.errors import EXIT_FAILED, EXIT_TARGET, CliError

LOCAL_STATE = Path(".taskrunner") / "local.json"
LOCAL_REGION = "us-east-1"
#: The embedded AWS accepts any credentials; these keep a real profile out of local mode.
LOCAL_CREDENTIAL = "testing"
DEFAULT_STACK = "taskrunner"
NO_REGION = "no AWS region: pass --region, set AWS_REGION, or give the profile a region"

CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    CredentialRetrievalError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)


@dataclass
class Target:
    session: boto3.session.Session
    region: str
    stack: str
    endpoint: str | None = None
    local: bool = False
    #: The profile in use and where it came from ("--profile", "AWS_PROFILE" ...), for messages.
    profile: str | None = None
    profile_source: str = ""
    #: Where local mode keeps its files (``.taskrunner/``): the directory its local.json was found in.
    root: Path = field(default_factory=Path.cwd)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _info: StackInfo | None = field(default=None, repr=False)
    _registry: SsmRegistry | None = field(default=None, repr=False)

    # ------------------------------------------------------------------------------------------------ clients

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(  # type: ignore[call-overload]
                service, region_name=self.region, endpoint_url=self.endpoint, config=retry_config()
            )
        return self._clients[service]

    def where(self) -> str:
        return f"{self.region} at {self.endpoint}" if self.endpoint else self.region

    def describe(self) -> str:
        """The profile and region, for messages about credentials."""
        if self.local:
            return f"local mode, {self.endpoint}"
        profile = f"{self.profile} (from {self.profile_source})" if self.profile else "default"
        return f"profile {profile}, region {self.region}"

    # ------------------------------------------------------------------------------------------------- stack

    def info(self) -> StackInfo:
        """The stack (CloudFormation DescribeStacks), read once."""
        if self._info is None:
            try:
                self._info = Stacks(self.client("cloudformation")).describe(self.stack)
            except StackNotFound as exc:
                raise CliError(f"stack '{self.stack}' not found in {self.where()}", EXIT_TARGET) from exc
        return self._info

    def outputs(self) -> dict[str, str]:
        return self.info().outputs

    def output(self, key: str) -> str:
        outputs = self.outputs()
        if key not in outputs:
            raise CliError(
                f"stack '{self.stack}' has no output '{key}' (status {self.info().status}): is it a taskrunner stack?",
                EXIT_TARGET,
            )
        return outputs[key]

    # ---------------------------------------------------------------------------------------------- adapters

    def stacks(self) -> Stacks:
        return Stacks(self.client("cloudformation"))

    def registry(self) -> SsmRegistry:
        if self._registry is None:
            self._registry = SsmRegistry(self.output("RegistryPrefix"), self.client("ssm"))
        return self._registry

    def pauses(self) -> SsmPauses:
        # max_age 0: an operator who just paused a job sees it paused at once.
        return SsmPauses(pauses_prefix(self.output("RegistryPrefix")), self.client("ssm"), max_age_s=0)

    def store(self) -> DynamoRunStore:
        return DynamoRunStore(self.output("RunsTableName"), self.client("dynamodb"))

    def queues(self) -> Queues:
        return Queues(self.client("sqs"))

    def cluster(self) -> EcsCluster:
        return EcsCluster(self.client("ecs"))

    def logs(self) -> CloudWatchLogs:
        return CloudWatchLogs(self.client("logs"))

    def alarms(self) -> CloudWatchAlarms:
        return CloudWatchAlarms(self.client("cloudwatch"))

    def who(self) -> str:
        """Who is acting, for records: the AWS principal (STS), or the local user in local mode."""
        user = _local_user()
        if self.local:
            return user
        return caller(self.client("sts")) or user

    # ----------------------------------------------------------------------------------------------- invoke

    def handler_env(self) -> dict[str, str]:
        """What an in-process handler needs to reach the same account, region and endpoint as this target.

        Lambda sets ``AWS_REGION`` and passes credentials through the environment; local mode adds the endpoint.
        """
        env: dict[str, str] = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.endpoint:
            env["AWS_ENDPOINT_URL"] = self.endpoint
        if self.local or self.profile:
            credentials = self.session.get_credentials()
            if credentials is None:
                raise NoCredentialsError()
            frozen = credentials.get_frozen_credentials()
            env |= {"AWS_ACCESS_KEY_ID": str(frozen.access_key), "AWS_SECRET_ACCESS_KEY": str(frozen.secret_key)}
            if frozen.token:
                env["AWS_SESSION_TOKEN"] = frozen.token
        return env

    def stale_env(self) -> list[str]:
        """Environment variables that would override :meth:`handler_env`'s credentials if left in place."""
        if not (self.local or self.profile):
            return []
        names = ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"]
        if "AWS_SESSION_TOKEN" not in self.handler_env():
            names.append("AWS_SESSION_TOKEN")
        return names


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def read_local_state(cwd: Path | None = None) -> dict[str, str]:
    path = (cwd or Path.cwd()) / LOCAL_STATE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CliError("no local stack running: start `taskrunner local`", EXIT_TARGET) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read {LOCAL_STATE}: {exc}", EXIT_TARGET) from exc
    if not isinstance(data, dict) or not isinstance(data.get("endpoint"), str):
        raise CliError(f"{LOCAL_STATE} has no 'endpoint': restart `taskrunner local`", EXIT_TARGET)
    return {str(k): str(v) for k, v in data.items() if v is not None}


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value:
            return value, source
    return None, ""


def resolve_target(
    stack: str | None,
    profile: str | None,
    region: str | None,
    local: bool,
    environ: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Target:
    """The stack: the option, then local mode's, then ``TASKRUNNER_STACK``, then "taskrunner"."""
    env = dict(os.environ if environ is None else environ)
    default_stack = env.get("TASKRUNNER_STACK") or DEFAULT_STACK
    if local:
        root = cwd or Path.cwd()
        state = read_local_state(root)
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_CREDENTIAL,
            aws_secret_access_key=LOCAL_CREDENTIAL,
            aws_session_token=LOCAL_CREDENTIAL,
            region_name=region or state.get("region") or LOCAL_REGION,
        )
        return Target(
            session=session,
            region=str(session.region_name),
            stack=stack or state.get("stack") or default_stack,
            endpoint=state["endpoint"],
            local=True,
            root=root,
        )
    name, source = _first((profile, "--profile"), (env.get("AWS_PROFILE"), "AWS_PROFILE"))
    name, source = (name, source) if name else _first((env.get("AWS_DEFAULT_PROFILE"), "AWS_DEFAULT_PROFILE"))
    wanted_region, _ = _first(
        (region, "--region"), (env.get("AWS_REGION"), "AWS_REGION"), (env.get("AWS_DEFAULT_REGION"), "")
    )
    not_found = CliError(f"AWS credentials: profile '{name}' (from {source}) not found in your AWS config", EXIT_TARGET)
    try:
        # Only an explicit --profile is passed as the session's profile: from the environment, botocore reads it
        # itself, which keeps the AWS CLI's order (environment keys before AWS_PROFILE's profile).
        session = boto3.session.Session(profile_name=profile or None, region_name=wanted_region)
        if name and name not in session.available_profiles:
            raise not_found
        resolved_region = session.region_name
    except ProfileNotFound as exc:
        raise not_found from exc
    if not resolved_region:
        raise CliError(NO_REGION, EXIT_TARGET)
    return Target(
        session=session,
        region=resolved_region,
        stack=stack or default_stack,
        profile=name,
        profile_source=source,
    )


@contextmanager
def aws_errors(target: Target) -> Iterator[None]:
    """botocore's exceptions → one-line :class:`CliError` messages that say what to check."""
    try:
        yield
    except CREDENTIAL_ERRORS as exc:
        raise CliError(f"AWS credentials missing or unusable ({target.describe()}): {exc}", EXIT_TARGET) from exc
    except NoRegionError as exc:
        raise CliError(NO_REGION, EXIT_TARGET) from exc
    except EndpointConnectionError as exc:
        if target.local:
            raise CliError(
                f"no local stack answers at {target.endpoint}: start `taskrunner local` (stale {LOCAL_STATE}?)",
                EXIT_TARGET,
            ) from exc
        raise CliError(f"cannot reach AWS: {exc}", EXIT_TARGET) from exc
    except ClientError as exc:
        code = error_code(exc)
        if code in CREDENTIAL_CODES:
            raise CliError(f"AWS credentials rejected ({target.describe()}): {exc}", EXIT_TARGET) from exc
        raise CliError(f"AWS error: {exc}", EXIT_FAILED) from exc
    except GetParameterError as exc:
        # Powertools wraps SSM's errors (the registry and the pauses are SSM parameters) in its own.
        raise CliError(f"cannot read the job registry: {exc}", EXIT_FAILED) from exc
    except BotoCoreError as exc:
        raise CliError(f"AWS error: {exc}", EXIT_FAILED) from exc
