"""``taskrunner``: the developer and on-call tool for a deployed stack, or for ``taskrunner local``.

One module per command (``jobs``, ``status``, ``run``, ``runs``, ``logs``, ``stop``, ``pause``/``resume``,
``submit``, ``invoke``, ``completion``; ``simulate`` and ``local`` delegate to their tools), ``target`` for
which stack and clients, ``inputs`` for what the user gives, ``output`` for how results print. Like ``local/``
and ``sim/``, nothing here is imported by a Lambda handler nor shipped in the Lambda package.
``docs/cli.md`` is the reference.
"""

from taskrunner.cli.main import main

__all__ = ["main"]
