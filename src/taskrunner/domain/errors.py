"""The two ways a request can fail, which decide where its message goes."""

from __future__ import annotations


class PermanentError(Exception):
    """Retrying cannot help (unknown job, invalid spec or event, rejected launch): dead-letter now, with the reason."""


class TryLater(Exception):
    """A transient condition (throttling, capacity, a concurrency cap): the message returns to the queue."""

    def __init__(self, reason: str, delay_s: int = 30) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s


class LaunchRejected(PermanentError):
    """ECS refused the launch for a reason retrying cannot fix (invalid parameters, access denied, failures[])."""


class UnknownJob(PermanentError):
    def __init__(self, job: str) -> None:
        super().__init__(f"unknown job '{job}': no registry entry")
        self.job = job
