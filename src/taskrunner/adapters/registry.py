"""The job registry: one SSM parameter per job under a prefix, holding its validated JSON spec.

Reads go through Powertools Parameters, which caches per container (``max_age``), so a warm
Dispatcher reads SSM once a minute per job, not once per event.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from taskrunner.adapters.clients import client
from taskrunner.domain.errors import UnknownJob
from taskrunner.domain.jobs import InvalidJobSpec, JobSpec
from taskrunner.domain.pacing import TokenBucket

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

log = logging.getLogger(__name__)


class SsmRegistry:
    def __init__(
        self, prefix: str, ssm: SSMClient | None = None, max_age_s: int = 60, pages_per_s: float | None = None
    ) -> None:
        """``pages_per_s``: pace ``GetParametersByPath`` pages (10 entries each) to this rate, so reading thousands
        of entries stays within Parameter Store's throughput, which the Dispatcher's reads share."""
        self.prefix = prefix.rstrip("/")
        self.max_age_s = max_age_s
        ssm = ssm or client("ssm")
        if pages_per_s:
            bucket = TokenBucket(pages_per_s, max(1.0, pages_per_s), time.monotonic)

            def pace(**_: Any) -> None:
                time.sleep(bucket.reserve())

            ssm.meta.events.register("before-call.ssm.GetParametersByPath", pace)
        self._provider = SSMProvider(boto3_client=ssm)

    def get(self, job: str) -> JobSpec:
        try:
            raw = self._provider.get(f"{self.prefix}/{job}", max_age=self.max_age_s)
        except GetParameterError as exc:
            if "ParameterNotFound" in str(exc) or "ValidationException" in str(exc):
                raise UnknownJob(job) from exc
            raise
        spec = JobSpec.parse(str(raw))
        if spec.name != job:
            raise UnknownJob(job)
        return spec

    def _scan(self) -> tuple[list[JobSpec], dict[str, str]]:
        raw: dict[str, Any] = self._provider.get_multiple(self.prefix, max_age=self.max_age_s, recursive=False)
        specs, invalid = [], {}
        for name, value in sorted(raw.items()):
            try:
                spec = JobSpec.parse(str(value))
            except InvalidJobSpec as exc:
                invalid[name] = str(exc)
                continue
            if spec.name != name:
                invalid[name] = f"entry names job {spec.name!r}, not {name!r}"
                continue
            specs.append(spec)
        return specs, invalid

    def scan(self) -> tuple[list[JobSpec], dict[str, str]]:
        """Every valid job and every invalid entry with why, from one listing (the Scaler's round)."""
        specs, invalid = self._scan()
        for name, reason in invalid.items():
            log.error("invalid registry entry %s/%s: %s", self.prefix, name, reason)
        return specs, invalid

    def all(self) -> list[JobSpec]:
        """Every valid job; an invalid entry is logged and left out, so one bad job cannot stop the others."""
        specs, invalid = self._scan()
        for name, reason in invalid.items():
            log.error("invalid registry entry %s/%s: %s", self.prefix, name, reason)
        return specs

    def invalid(self) -> dict[str, str]:
        return self._scan()[1]
