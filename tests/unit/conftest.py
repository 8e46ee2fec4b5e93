"""The unit tier runs handlers' cores with fakes: metrics off (a namespace set, so a full buffer cannot fail), no X-Ray.

Only what the handlers need: these variables reach every process the session starts, worker subprocesses included.
"""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "TaskrunnerUnitTests")
