"""Paused jobs: one SSM parameter per paused job under ``/taskrunner/<stack>/paused/``.

Kept apart from the registry on purpose: the registry is what the stack deployed (CloudFormation owns it and
rewrites it on every deploy); a pause is an operator's decision that must survive a deploy. The Dispatcher
reads the whole prefix once per ``max_age_s`` (one SSM call, not one per event).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SSMProvider

from taskrunner.adapters.clients import client

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def pauses_prefix(registry_prefix: str) -> str:
    """``/taskrunner/<stack>/jobs`` → ``/taskrunner/<stack>/paused``."""
    return registry_prefix.rstrip("/").rsplit("/", 1)[0] + "/paused"


class SsmPauses:
    def __init__(self, prefix: str, ssm: SSMClient | None = None, max_age_s: int = 30) -> None:
        self.prefix = prefix.rstrip("/")
        self.max_age_s = max_age_s
        self.ssm: SSMClient = ssm or client("ssm")
        self._provider = SSMProvider(boto3_client=self.ssm)

    def paused(self) -> frozenset[str]:
        return frozenset(self.reasons())

    def reasons(self) -> dict[str, str]:
        """Paused job → the reason its pause was given (the parameter's value)."""
        found: dict[str, Any] = self._provider.get_multiple(self.prefix, max_age=self.max_age_s, recursive=False)
        return {str(job): str(reason) for job, reason in found.items()}

    def set_paused(self, job: str, paused: bool, reason: str = "") -> None:
        name = f"{self.prefix}/{job}"
        if paused:
            self.ssm.put_parameter(Name=name, Value=reason or "paused", Type="String", Overwrite=True)
        else:
            with contextlib.suppress(self.ssm.exceptions.ParameterNotFound):
                self.ssm.delete_parameter(Name=name)
        self._provider.clear_cache()  # type: ignore[no-untyped-call]
