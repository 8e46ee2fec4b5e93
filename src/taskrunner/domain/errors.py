"""The ways a request can fail, which decide where its message goes (and the metric that counts it)."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help (unknown job, invalid spec or event, rejected launch): dead-letter now, with the reason.

    ``kind`` is a fixed, low-cardinality class of the failure for metrics; the message carries the detail.
    """

    kind = "invalid"


class Refused(PermanentError):
    """A request its trigger may not make: a foreign bucket, a key outside the prefix, an unmatched event,
    overrides on a non-manual run, a retry of another job's run. Refused before anything is claimed or launched."""

    kind = "refused"


class RegistryMismatch(PermanentError):
    """A registry entry naming what this stack did not deploy (another cluster, subnet, task definition …)."""

    kind = "registry-mismatch"


class TryLater(Exception):
    """A transient condition (throttling, capacity, a concurrency cap): the message returns to the queue."""

    def __init__(self, reason: str, delay_s: int = 30) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class LaunchRejected(PermanentError):
    """ECS refused the launch for a reason retrying cannot fix (invalid parameters, access denied, failures[])."""

    kind = "launch-rejected"


class UnknownJob(PermanentError):
    kind = "unknown-job"

    def __init__(self, job: str) -> None:
        super().__init__(f"unknown job '{job}': no registry entry")
        self.job = job
