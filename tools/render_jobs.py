"""Render jobs/job.yaml once per job we know of, so the linters scan what is deployed and not only the defaults.

cfn-lint and checkov evaluate a template with its parameters' defaults. jobs/job.yaml's defaults are a job with
no trigger, no EFS, no queue, no secrets and a `Platform` they cannot resolve (an SSM parameter type), so most of
its conditional resources and statements are never looked at. This writes one copy per parameter set, each
parameter's Default set to that job's value:

* every sample job block of template.yaml (its `Parameters`), and
* one synthetic job with every optional part on: a schedule, an S3 trigger, an event pattern, EFS, a worker
  service with its queue and producers, all environment and secret slots, a secrets KMS key, managed policies,
  a private-ECR image, and a permissions boundary from the platform.

`Platform` becomes a CommaDelimitedList whose default is a realistic platform list, in the order job.yaml's
Metadata documents (the root stack's PlatformParameter), so `!Select [i, !Ref Platform]` resolves.

    python tools/render_jobs.py            # writes build/rendered-jobs/<job name>.yaml

tests/template reads the same parameter sets (job_parameter_sets) for its resolved checks of job.yaml.
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from taskrunner.local.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[1]
ROOT_TEMPLATE = ROOT / "template.yaml"
JOB_TEMPLATE = ROOT / "jobs" / "job.yaml"
JOB_LOCATION = "jobs/job.yaml"
OUTPUT = ROOT / "build" / "rendered-jobs"

STACK = "taskrunner"
REGION = "eu-central-1"
ACCOUNT = "123456789012"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}

# What the root stack's PlatformParameter holds once deployed, keyed by the element job.yaml's Metadata
# documents (a new or renamed element fails here until it has a sample value).
SAMPLE_PLATFORM = {
    "stack name": STACK,
    "cluster ARN": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{STACK}-Cluster-Ab12Cd34Ef56",
    "task subnets (;)": "subnet-0123456789abcdef0;subnet-0fedcba9876543210",
    "task security groups (;)": "sg-0123456789abcdef0;sg-0fedcba9876543210",
    "AssignPublicIp": "DISABLED",
    "dispatch queue ARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-DispatchQueue-Gh78Ij90Kl12",
    "dispatch DLQ ARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-DispatchDeadLetterQueue-Mn34Op56Qr78",
    "EFS file system id": "fs-0123456789abcdef0",
    "data bucket": f"{STACK}-databucket-st90uv12wx34",
    "log retention days": "30",
    "alarm topic ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-AlarmTopic-Yz56Ab78Cd90",
    "job scheduler role ARN": f"arn:aws:iam::{ACCOUNT}:role/{STACK}/schedulers/{STACK}-DispatchSchedulerRole-Ef12Gh34",
    "schedule group": STACK,
    'permissions boundary ARN or "none"': "none",
    "scaler state table": f"{STACK}-ScalerStateTable-Ij56Kl78Mn90",
}
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/{STACK}-job-boundary"

# Sixteen variables and eight secrets: every generated slot of job.yaml is filled (an empty value is allowed).
_ENVIRONMENT = {
    "LOG_LEVEL": "info",
    "OUTPUT_PREFIX": "processed/everything/",
    "BATCH_SIZE": "500",
    "TZ": "Europe/Berlin",
    "FEATURE_FLAGS": "fast-path,new-parser",
    "API_BASE_URL": "https://api.example.com/v2",
    "CACHE_DIR": "/mnt/data/cache",
    "REPORT_FORMAT": "csv",
    "LANG": "de_DE.UTF-8",
    "MAX_WORKERS": "4",
    "TRACE_SAMPLING": "0.05",
    "OWNER": "data-platform",
    "COST_CENTER": "cc-1234",
    "GREETING": "Grüße: a=b; c",
    "EMPTY_VALUE": "",
    "LAST_SLOT": "16",
}
_SECRETS = {
    "DB_PASSWORD": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:everything/db-AbCdEf",
    "API_TOKEN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:everything/api-GhIjKl",
    "SIGNING_KEY": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:everything/signing-MnOpQr",
    "WEBHOOK_SECRET": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:everything/webhook-StUvWx",
    "SMTP_PASSWORD": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/everything/smtp-password",
    "LICENSE_KEY": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/everything/license",
    "PARTNER_TOKEN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/everything/partner-token",
    "ENCRYPTION_SALT": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/everything/salt",
}


def _json_object(values: dict[str, str]) -> str:
    # The flat form job.yaml's AllowedPattern accepts (json.dumps would escape non-ASCII and quotes).
    return "{" + ", ".join(f'"{k}": "{v}"' for k, v in values.items()) + "}"


# Every optional part of a job on at once (the values are realistic, not minimal).
SYNTHETIC_JOB: dict[str, Any] = {
    "JobName": "everything",
    "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team/everything:2.1.0",
    "Command": "python,-m,everything",
    "Environment": _json_object(_ENVIRONMENT),
    "Secrets": _json_object(_SECRETS),
    "SecretsKmsKeyArns": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "AllowedEnvOverrides": "REPORT_DATE,DRY_RUN",
    "Cpu": 1024,
    "Memory": 2048,
    "CpuArchitecture": "X86_64",
    "Capacity": "FARGATE_SPOT_WITH_FALLBACK",
    "PosixUid": 10099,
    "LocalCommand": "python examples/jobs/report.py",
    "ScheduleExpression": "rate(15 minutes)",
    "ScheduleTimezone": "Europe/Berlin",
    "OverlapPolicy": "Replace",
    "StartingDeadlineSeconds": 300,
    "MaxConcurrency": 4,
    "S3Prefix": "incoming/everything/",
    "S3Suffix": ".json",
    "EventPattern": '{"source": ["com.example.orders"], "detail-type": ["OrderPlaced"]}',
    "EfsPath": "/everything",
    "ManagedPolicyArns": f"arn:aws:iam::{ACCOUNT}:policy/everything-extra",
    "MaxAttempts": 3,
    "RetryExitCodes": "75,137",
    "RetryBackoffSeconds": 30,
    "RetryBackoffMaxSeconds": 1800,
    "TimeoutSeconds": 7200,
    "QueueMode": "service",
    "MinTasks": 1,
    "MaxTasks": 20,
    "AcceptableLatencySeconds": 120,
    "MessageProcessingSeconds": 10,
    "MessagesPerTask": 2,
    "ScaleInWindowSeconds": 600,
    "IdleBeforeZeroSeconds": 300,
    "WorkQueueVisibilitySeconds": 600,
    "WorkQueueMaxReceiveCount": 3,
    "WorkQueueProducers": f"arn:aws:iam::{ACCOUNT}:role/producers/*",
}
SYNTHETIC_PLATFORM = {'permissions boundary ARN or "none"': BOUNDARY}


def platform_layout(job_template: dict[str, Any]) -> list[str]:
    """The elements of `Platform`, in order, as job.yaml's Metadata documents them ("0 stack name, 1 ...")."""
    text = job_template["Metadata"]["taskrunner"]["platform"]
    listing = text.split(":", 1)[1].strip().rstrip(".")
    elements = [re.match(r"(\d+) (.+)", item.strip()) for item in re.split(r",\s*(?=\d+ )", listing)]
    if not all(elements) or [int(m[1]) for m in elements if m] != list(range(len(elements))):
        raise ValueError(f"job.yaml's Metadata does not number the platform elements 0, 1, ...: {text}")
    return [m[2].strip() for m in elements if m]


def platform_list(job_template: dict[str, Any], **overrides: str) -> list[str]:
    values = SAMPLE_PLATFORM | overrides
    layout = platform_layout(job_template)
    if set(values) != set(layout):
        raise ValueError(f"sample platform {sorted(values)} is not job.yaml's documented layout {layout}")
    return [values[name] for name in layout]


def _resolve(value: Any, where: str) -> Any:
    """A sample block's value as the job stack receives it (only pseudo parameters may be substituted)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{(AWS::[A-Za-z]+)\}", lambda m: PSEUDO[m[1]], value["Fn::Sub"])
    if isinstance(value, dict):
        raise ValueError(f"{where}: cannot render {value}")
    return value


def sample_jobs(root_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id → the Parameters of every job block of template.yaml."""
    return {
        logical_id: resource["Properties"]["Parameters"]
        for logical_id, resource in root_template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Application" and resource["Properties"].get("Location") == JOB_LOCATION
    }


def job_parameter_sets(root_template: dict[str, Any], job_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Job name → the parameters that job's stack receives (what is not given keeps job.yaml's default)."""
    sets: dict[str, dict[str, Any]] = {}
    platform = ",".join(platform_list(job_template))
    for logical_id, passed in sample_jobs(root_template).items():
        if passed.get("Platform") != {"Ref": "PlatformParameter"}:
            raise ValueError(f"{logical_id}: Platform must be !Ref PlatformParameter")
        values = {name: _resolve(value, f"{logical_id}.{name}") for name, value in passed.items() if name != "Platform"}
        sets[str(values["JobName"])] = values | {"Platform": platform}
    synthetic = SYNTHETIC_JOB | {"Platform": ",".join(platform_list(job_template, **SYNTHETIC_PLATFORM))}
    sets[SYNTHETIC_JOB["JobName"]] = synthetic
    declared = set(job_template["Parameters"])
    for name, values in sets.items():
        if unknown := sorted(set(values) - declared):
            raise ValueError(f"{name}: job.yaml declares no parameters {unknown}")
    return sets


def render(job_template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """job.yaml with each given parameter's Default set to its value, and Platform a resolvable list."""
    rendered = copy.deepcopy(job_template)
    declared = rendered["Parameters"]
    for name, value in parameters.items():
        declared[name]["Default"] = value
    declared["Platform"] = {
        "Type": "CommaDelimitedList",
        "Default": parameters["Platform"],
        "Description": "A sample of the root stack's platform list (rendered for linting; see Metadata).",
    }
    return rendered


def main(argv: list[str]) -> int:
    root_template, job_template = load(ROOT_TEMPLATE), load(JOB_TEMPLATE)
    sets = job_parameter_sets(root_template, job_template)
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    for name, parameters in sets.items():
        body = yaml.safe_dump(render(job_template, parameters), sort_keys=False, width=200, allow_unicode=True)
        (OUTPUT / f"{name}.yaml").write_text(
            f"# Rendered from jobs/job.yaml by tools/render_jobs.py: do not edit.\n{body}"
        )
    if "--quiet" not in argv:
        print(f"rendered {len(sets)} job stacks into {OUTPUT.relative_to(ROOT)}/: {', '.join(sets)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
