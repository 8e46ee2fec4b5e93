"""Who is calling: the STS caller identity, for records that say who did something (``taskrunner stop``)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskrunner.adapters.clients import client


def caller(sts: Any = None) -> str | None:
    """The caller's principal, short: ``assumed-role/OnCall/alice`` or ``user/bob``; None if STS does not say."""
    try:
        arn = str((sts or client("sts")).get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError, KeyError):
        return None
    # arn:aws:sts::123456789012:assumed-role/OnCall/alice → assumed-role/OnCall/alice
    return arn.split(":", 5)[-1] or None
