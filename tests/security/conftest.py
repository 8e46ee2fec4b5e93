"""The security tier: every trust boundary, played by an attacker (docs/security.md lists them).

Policies are evaluated as deployed: the SAM-transformed root template and each sample job's nested stack,
resolved to concrete ARNs (:mod:`tests.policies.cfn`) and judged by :mod:`tests.policies.iam`.
"""

from __future__ import annotations

import os

import pytest

from tests.policies.cfn import Stack
from tests.policies.stacks import WITH_OPERATORS, job_stacks, root_stack

# Handlers run in-process here, as in the unit tier: metrics off (with a namespace, so a buffer cannot fail).
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "TaskrunnerSecurityTests")


@pytest.fixture(scope="session")
def root() -> Stack:
    """The platform stack as deployed with its defaults (no operators, a bucket of its own)."""
    return root_stack()


@pytest.fixture(scope="session")
def root_with_operators() -> Stack:
    return root_stack(**WITH_OPERATORS)


@pytest.fixture(scope="session")
def jobs(root: Stack) -> dict[str, Stack]:
    """Every sample job's nested stack, by JobName: its block's parameters, the root's platform list."""
    return job_stacks(root)
