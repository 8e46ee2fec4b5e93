"""Render the generated parts of jobs/job.yaml: the slots that turn a job's JSON Environment and Secrets into
container-definition entries.

CloudFormation cannot parse JSON, but it can split a string. A flat JSON object whose keys and string values
contain no double quote, split on '"', puts key i at index 4i+1 and its value at 4i+3:

    {"A": "x", "B": "y"}  →  ['{', 'A', ': ', 'x', ', ', 'B', ': ', 'y', '}']

Padding the string with quotes keeps every index in range, and an empty key marks an unused slot. jobs/job.yaml
constrains both parameters to such objects (AllowedPattern) and `taskrunner validate` says the same in words.

    python tools/job_slots.py          # rewrite the generated regions of jobs/job.yaml
    python tools/job_slots.py --check  # exit 1 if they are stale (the template tests run this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

JOB_TEMPLATE = Path(__file__).resolve().parents[1] / "jobs" / "job.yaml"
ENV_SLOTS = 16
SECRET_SLOTS = 8


def _split(parameter: str, slots: int) -> str:
    pad = '"' * (4 * slots + 4)
    return f"!Split ['\"', !Join ['', [!Ref {parameter}, '{pad}']]]"


def _name(parameter: str, slots: int, i: int) -> str:
    return f"!Select [{4 * i + 1}, {_split(parameter, slots)}]"


def _value(parameter: str, slots: int, i: int) -> str:
    return f"!Select [{4 * i + 3}, {_split(parameter, slots)}]"


def conditions() -> str:
    lines = []
    for i in range(ENV_SLOTS):
        lines.append(f'  HasEnv{i}: !Not [!Equals [{_name("Environment", ENV_SLOTS, i)}, ""]]')
    for i in range(SECRET_SLOTS):
        lines.append(f'  HasSecret{i}: !Not [!Equals [{_name("Secrets", SECRET_SLOTS, i)}, ""]]')
    return "\n".join(lines)


def _slot_entries(kind: str, slots: int, condition: str, value_key: str) -> str:
    """One ``!If`` list entry per slot: the container's ``Name``/``Value`` (or ``ValueFrom``) pair when set."""
    lines = []
    for i in range(slots):
        lines += [
            "            - !If",
            f"              - {condition}{i}",
            f"              - Name: {_name(kind, slots, i)}",
            f"                {value_key}: {_value(kind, slots, i)}",
            "              - !Ref AWS::NoValue",
        ]
    return "\n".join(lines)


def environment() -> str:
    return _slot_entries("Environment", ENV_SLOTS, "HasEnv", "Value")


def secrets() -> str:
    return _slot_entries("Secrets", SECRET_SLOTS, "HasSecret", "ValueFrom")


def secret_resources() -> str:
    return "\n".join(
        f"                    - !If [HasSecret{i}, {_value('Secrets', SECRET_SLOTS, i)}, !Ref AWS::NoValue]"
        for i in range(SECRET_SLOTS)
    )


REGIONS = {
    "conditions": conditions,
    "environment": environment,
    "secrets": secrets,
    "secret-resources": secret_resources,
}


def render(text: str) -> str:
    for name, build in REGIONS.items():
        head = rf"(?P<head>[ \t]*# BEGIN GENERATED {name} \(tools/job_slots\.py\)\n)"
        pattern = re.compile(head + rf".*?(?P<tail>[ \t]*# END GENERATED {name}\n)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{JOB_TEMPLATE}: no generated region '{name}'")
        text = pattern.sub(lambda m: m["head"] + build() + "\n" + m["tail"], text)  # noqa: B023
    return text


def main(argv: list[str]) -> int:
    current = JOB_TEMPLATE.read_text()
    rendered = render(current)
    if "--check" in argv:
        if rendered != current:
            print("jobs/job.yaml: generated slots are stale; run python tools/job_slots.py", file=sys.stderr)
            return 1
        return 0
    JOB_TEMPLATE.write_text(rendered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
