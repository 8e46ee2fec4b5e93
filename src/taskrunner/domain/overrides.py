"""Which environment overrides a run request may carry: the rule that keeps "which run, when" apart from "what runs".

A principal that may trigger a run chooses *which* run and *when*, never *what runs*. Environment variables
are code in disguise (``LD_PRELOAD``, ``PYTHONWARNINGS`` + ``BROWSER``, ``NODE_OPTIONS``, a proxy or an AWS
endpoint that redirects the task role's credentials), so an override is accepted only when all hold:

* the request is a manual run (``taskrunner run``); schedules, uploads, events and retries carry none;
* the job lists the name in ``AllowedEnvOverrides`` (default: none);
* the name is not one of the job's own ``Environment`` or ``Secrets`` variables, nor a ``TASKRUNNER_*`` one;
* the name is not a loader, interpreter, shell, proxy, TLS-trust or AWS/ECS variable (:func:`dangerous`),
  even if the job lists it: a job author cannot opt a queue sender into code execution by accident.

The CLI checks before sending and the Dispatcher checks again before launching (the queue is the trust
boundary, not the CLI); both call :func:`override_problems`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: ECS takes at most 8 KiB of overrides per RunTask; overrides leave room for the event and taskrunner's own.
MAX_OVERRIDE_CHARS = 4096

#: Exact names that change how a process loads, finds or trusts code and endpoints.
_DANGEROUS_NAMES = frozenset(
    {
        "BROWSER",  # webbrowser.open() runs it; PYTHONWARNINGS can import `antigravity` to trigger it
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "PATH",
        "HOME",
        "TMPDIR",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "RUBYOPT",
        "RUBYLIB",
        "GEM_PATH",
        "GEM_HOME",
        "PERLLIB",
        "GCONV_PATH",
        "GIT_SSH_COMMAND",
        "GIT_EXEC_PATH",
        "EDITOR",
        "VISUAL",
        "PAGER",
        "SSLKEYLOGFILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "DOTNET_STARTUP_HOOKS",
        "CORECLR_PROFILER_PATH",
        "GLIBC_TUNABLES",
        "MALLOC_CHECK_",
        "OPENSSL_CONF",
        "OPENSSL_MODULES",
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "NO_PROXY",
    }
)
#: Prefixes: dynamic loader, interpreters, cloud SDK configuration, ECS agent and taskrunner's own contract.
_DANGEROUS_PREFIXES = (
    "LD_",
    "DYLD_",
    "PYTHON",
    "PERL5",
    "PERL_",
    "RUBY",
    "NODE_",
    "NPM_CONFIG_",
    "DENO_",
    "BUN_",
    "JAVA_",
    "JDK_",
    "LUA_",
    "TCL",
    "PHP",
    "AWS_",
    "ECS_",
    "TASKRUNNER_",
    "BOTO_",
    "SSL_CERT_",
    "GIT_",
    "KUBE",
    "DOCKER_",
)
#: Suffixes: proxies (HTTPS_PROXY, ALL_PROXY, ftp_proxy …) and CA bundles.
_DANGEROUS_SUFFIXES = ("_PROXY", "_CA_BUNDLE", "_CA_CERTS", "_CAFILE", "_CAPATH")


def dangerous(name: str) -> bool:
    """True for a variable no override may set, whatever the job allows (case-insensitive, as libc treats some)."""
    upper = name.upper()
    return upper in _DANGEROUS_NAMES or upper.startswith(_DANGEROUS_PREFIXES) or upper.endswith(_DANGEROUS_SUFFIXES)


def override_problems(
    env: Mapping[str, str],
    *,
    manual: bool,
    allowed: Collection[str],
    reserved: Collection[str] = (),
) -> list[str]:
    """Why these overrides may not reach the task; empty when they may.

    ``allowed`` is the job's ``AllowedEnvOverrides``; ``reserved`` its own ``Environment`` and ``Secrets``
    names, which an override must not shadow.
    """
    if not env:
        return []
    if not manual:
        return [f"environment overrides are accepted only on manual runs, got {sorted(env)}"]
    problems: list[str] = []
    for name in sorted(env):
        if not ENV_NAME.match(name):
            problems.append(f"{name!r} is not an environment variable name")
        elif dangerous(name):
            problems.append(f"{name} may never be overridden (it changes what code runs or where it connects)")
        elif name in reserved:
            problems.append(f"{name} is set by the job itself and cannot be overridden")
        elif name not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            problems.append(f"{name} is not in the job's AllowedEnvOverrides ({listed})")
    size = sum(len(k) + len(v) for k, v in env.items())
    if size > MAX_OVERRIDE_CHARS:
        problems.append(f"environment overrides are {size} characters, more than {MAX_OVERRIDE_CHARS}")
    return problems


def allowable(name: str) -> str | None:
    """Why a job may not list ``name`` in ``AllowedEnvOverrides`` (None if it may): validation of the job itself."""
    if not ENV_NAME.match(name):
        return f"{name!r} is not an environment variable name"
    if dangerous(name):
        return f"{name} can never be an allowed override (it changes what code runs or where it connects)"
    return None
