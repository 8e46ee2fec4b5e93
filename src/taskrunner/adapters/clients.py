"""boto3 clients, built once per container with botocore's adaptive retry mode.

Adaptive mode adds client-side rate limiting on top of exponential back-off, so a burst of
RunTask calls slows down under throttling instead of failing; we never loop on top of it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config


def retry_config() -> Config:
    """Adaptive retries unless ``AWS_RETRY_MODE`` (botocore's own setting) says otherwise.

    Attempts default to botocore's 3 for this mode; ``AWS_MAX_ATTEMPTS`` tunes them without a code change.
    """
    mode = os.environ.get("AWS_RETRY_MODE", "adaptive")
    if mode not in {"adaptive", "standard", "legacy"}:
        raise ValueError(f"AWS_RETRY_MODE must be adaptive, standard or legacy, not {mode!r}")
    return Config(
        retries={"mode": mode},  # type: ignore[arg-type]
        connect_timeout=5,
        read_timeout=20,
        user_agent_extra="taskrunner",
    )


@functools.cache
def client(service: str) -> Any:
    """A cached client per container; ``AWS_ENDPOINT_URL`` (local mode, tests) is honoured by botocore itself."""
    return boto3.client(service, config=retry_config())  # type: ignore[call-overload]


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ThrottledException",
    }
)


def is_transient(exc: Exception) -> bool:
    return error_code(exc) in THROTTLING_CODES or http_status(exc) >= 500 or error_code(exc) == "ServerException"
