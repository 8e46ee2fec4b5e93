"""What the ``taskrunner`` commands share: the AWS target, stack outputs, error translation, input files, sending.

Every expected failure becomes a :class:`CliError` with a one-line message and an exit code; ``cli.main``
prints it on stderr. Nothing here prints a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
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

from taskrunner.adapters.clients import error_code, retry_config
from taskrunner.domain.runs import Run, RunStatus

EXIT_OK = 0
#: The operation ran and failed (messages not sent, the handler raised, an AWS call was refused).
EXIT_FAILED = 1
#: Bad input: arguments, files, unknown job or function.
EXIT_USAGE = 2
#: The target cannot be reached: no local stack, no such stack, no usable credentials or region.
EXIT_TARGET = 3

LOCAL_STATE = Path(".taskrunner") / "local.json"
LOCAL_REGION = "us-east-1"
#: The embedded AWS accepts any credentials; these keep a real profile out of local mode.
LOCAL_CREDENTIAL = "testing"
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


class CliError(Exception):
    """An expected failure: printed as one line on stderr, exit code as given."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


# ---------------------------------------------------------------------------------------------------------- target


@dataclass
class Target:
    """Where the commands act: a boto3 session, its region, an optional endpoint (local mode), a stack name."""

    session: boto3.session.Session
    region: str
    stack: str
    profile: str | None = None
    endpoint: str | None = None
    local: bool = False
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    _outputs: dict[str, str] | None = field(default=None, repr=False)
    _status: str = field(default="", repr=False)

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
        return f"profile {self.profile or os.environ.get('AWS_PROFILE') or 'default'}, region {self.region}"

    def outputs(self) -> dict[str, str]:
        """The stack's outputs (CloudFormation DescribeStacks), read once."""
        if self._outputs is None:
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"]
            except ClientError as exc:
                if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                    raise CliError(f"stack '{self.stack}' not found in {self.where()}", EXIT_TARGET) from exc
                raise
            if not stacks:
                raise CliError(f"stack '{self.stack}' not found in {self.where()}", EXIT_TARGET)
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
            self._status = str(stacks[0].get("StackStatus", ""))
        return self._outputs

    def output(self, key: str) -> str:
        outputs = self.outputs()
        if key not in outputs:
            raise CliError(
                f"stack '{self.stack}' has no output '{key}' (status {self._status}): is it a taskrunner stack?",
                EXIT_TARGET,
            )
        return outputs[key]

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


def resolve_target(stack: str | None, profile: str | None, region: str | None, local: bool) -> Target:
    """The explicit option, then local mode's stack, then ``TASKRUNNER_STACK``, then "taskrunner"."""
    default_stack = os.environ.get("TASKRUNNER_STACK") or "taskrunner"
    if local:
        state = read_local_state()
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
        )
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise CliError(f"AWS credentials: profile '{profile}' not found in your AWS config", EXIT_TARGET) from exc
    if not session.region_name:
        raise CliError(NO_REGION, EXIT_TARGET)
    return Target(session=session, region=session.region_name, stack=stack or default_stack, profile=profile)


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
    except BotoCoreError as exc:
        raise CliError(f"AWS error: {exc}", EXIT_FAILED) from exc


# ----------------------------------------------------------------------------------------------------------- input


def parse_env(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["K=V", ...]`` → a dict; the value may itself contain "=" and may be empty."""
    env: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--env expects NAME=VALUE, got {pair!r}", EXIT_USAGE)
        env[name] = value
    return env


def read_text(path: str, what: str, stdin: TextIO | None = None) -> str:
    """A file's text, or stdin for "-"."""
    if path == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}", EXIT_USAGE) from exc


def read_event(path: str) -> Any:
    text = read_text(path, "event file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        name = "stdin" if path == "-" else path
        raise CliError(f"{name} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", EXIT_USAGE) from exc


@dataclass(frozen=True)
class Message:
    line: int
    body: str


def read_messages(path: str) -> list[Message]:
    """One message per non-empty line, each valid JSON, all checked before anything is sent."""
    messages: list[Message] = []
    for number, raw in enumerate(read_text(path, "messages file").splitlines(), start=1):
        body = raw.strip()
        if not body:
            continue
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            name = "stdin" if path == "-" else path
            raise CliError(
                f"{name} line {number} is not valid JSON: {exc.msg} (column {exc.colno}); nothing was sent",
                EXIT_USAGE,
            ) from exc
        messages.append(Message(number, body))
    return messages


# ---------------------------------------------------------------------------------------------------------- submit

BATCH_ENTRIES = 10
#: SendMessageBatch's limit on the sum of a batch's bodies.
BATCH_BYTES = 256 * 1024
RETRY_ROUNDS = 5
#: A whole batch refused for its content: its messages fail, the others still go.
CONTENT_ERRORS = frozenset(
    {
        "AWS.SimpleQueueService.BatchRequestTooLong",
        "BatchRequestTooLong",
        "InvalidMessageContents",
        "InvalidParameterValue",
        "MessageTooLong",
    }
)
MISSING_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


@dataclass
class SendResult:
    sent: int = 0
    #: (line, reason) of every message that was not sent.
    failed: list[tuple[int, str]] = field(default_factory=list)


def batches(messages: Sequence[Message]) -> Iterator[list[Message]]:
    """At most 10 messages and 256 KiB per batch; an oversized message goes alone (and SQS says why)."""
    batch: list[Message] = []
    size = 0
    for message in messages:
        length = len(message.body.encode())
        if batch and (len(batch) == BATCH_ENTRIES or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += length
    if batch:
        yield batch


def send_messages(
    sqs: Any,
    queue_url: str,
    messages: Sequence[Message],
    advance: Callable[[int], None] = lambda n: None,
    sleep: Callable[[float], None] = time.sleep,
    backoff_s: float = 0.2,
) -> SendResult:
    """SendMessageBatch in rounds: entries SQS failed on its side are sent again (up to 5 more rounds,
    backing off between rounds); entries failed as the sender's fault are reported, never retried."""
    result = SendResult()
    pending = list(messages)
    for round_no in range(RETRY_ROUNDS + 1):
        if round_no:
            sleep(min(backoff_s * 2 ** (round_no - 1), 2.0))
        retry: list[Message] = []
        for batch in batches(pending):
            by_id = {str(m.line): m for m in batch}
            try:
                response = sqs.send_message_batch(
                    QueueUrl=queue_url, Entries=[{"Id": str(m.line), "MessageBody": m.body} for m in batch]
                )
            except ClientError as exc:
                code = error_code(exc)
                if code in CONTENT_ERRORS:
                    result.failed += [(m.line, f"{code}: {exc}") for m in batch]
                    advance(len(batch))
                    continue
                done = f"{result.sent} of {len(messages)} sent before the error"
                if code in MISSING_QUEUE:
                    raise CliError(f"queue not found: {queue_url} ({done})", EXIT_FAILED) from exc
                raise CliError(f"SendMessageBatch failed: {exc} ({done})", EXIT_FAILED) from exc
            successful = response.get("Successful", [])
            result.sent += len(successful)
            finished = len(successful)
            for failure in response.get("Failed", []):
                message = by_id[failure["Id"]]
                reason = f"{failure.get('Code', 'Failed')}: {failure.get('Message', '')}".rstrip(": ")
                if failure.get("SenderFault"):
                    result.failed.append((message.line, reason))
                    finished += 1
                elif round_no == RETRY_ROUNDS:
                    result.failed.append((message.line, f"{reason} (after {RETRY_ROUNDS} retries)"))
                    finished += 1
                else:
                    retry.append(message)
            advance(finished)
        if not retry:
            break
        pending = retry
    result.failed.sort()
    return result


# ------------------------------------------------------------------------------------------------------------ runs

_ser = TypeSerializer()
_de = TypeDeserializer()


def _run(item: dict[str, Any]) -> Run:
    return Run.model_validate({k: _de.deserialize(v) for k, v in item.items()})


def query_runs(db: Any, table: str, job: str, limit: int, status: RunStatus | None = None) -> list[Run]:
    """A job's newest runs through the ``by-job`` index, filtered by status, paging until ``limit`` match."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": "by-job",
        "KeyConditionExpression": "job = :job",
        "ExpressionAttributeValues": {":job": _ser.serialize(job)},
        "ScanIndexForward": False,
    }
    if status is not None:
        kwargs["FilterExpression"] = "#s = :status"
        kwargs["ExpressionAttributeNames"] = {"#s": "status"}
        kwargs["ExpressionAttributeValues"][":status"] = _ser.serialize(status.value)
    runs: list[Run] = []
    while len(runs) < limit:
        # Without a filter every item read is a match; with one, read more per page so few pages are needed.
        page = db.query(**kwargs, Limit=limit - len(runs) if status is None else max(100, limit))
        runs += [_run(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return runs[:limit]


def newest_first(runs: Sequence[Run], limit: int) -> list[Run]:
    return sorted(runs, key=lambda run: run.created_at, reverse=True)[:limit]


# ---------------------------------------------------------------------------------------------------------- invoke


def _stdout_handlers() -> list[logging.StreamHandler[Any]]:
    loggers = [logging.getLogger()]
    loggers += [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__)
    ]


@contextmanager
def output_to_stderr() -> Iterator[None]:
    """A handler's logs and EMF metrics on stderr, as ``sam local invoke`` does, so stdout is just the response."""
    moved = [(handler, handler.stream) for handler in _stdout_handlers()]
    for handler, _ in moved:
        handler.setStream(sys.stderr)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


@contextmanager
def without_env(names: Sequence[str]) -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
