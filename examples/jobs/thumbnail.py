"""Stand-in for the thumbnails image in local mode: reads the uploaded object, writes its "thumbnail".

The Dispatcher passes the upload as ``TASKRUNNER_S3_BUCKET`` / ``TASKRUNNER_S3_KEY``; boto3 reads it
with the task's credentials (in local mode ``AWS_ENDPOINT_URL`` points at the embedded AWS). The
thumbnail is a JSON file next to nothing else: the object's key, size and SHA-256, written into the
job's EFS folder as ``<file name>.thumb.json``.

Exit codes: 0 done, 2 not started by an upload (no bucket or key), 3 the object cannot be read.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    bucket, key = os.environ.get("TASKRUNNER_S3_BUCKET"), os.environ.get("TASKRUNNER_S3_KEY")
    if not bucket or not key:
        print("TASKRUNNER_S3_BUCKET and TASKRUNNER_S3_KEY are not set: this job runs on uploads", file=sys.stderr)
        return 2
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        print(f"cannot read s3://{bucket}/{key}: {exc}", file=sys.stderr)
        return 3
    thumbnail = {
        "bucket": bucket,
        "key": key,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "run_id": os.environ.get("TASKRUNNER_RUN_ID"),
    }
    print(f"thumbnail for s3://{bucket}/{key}: {len(body)} bytes")
    efs_dir = os.environ.get("TASKRUNNER_EFS_DIR")
    if efs_dir:
        target = Path(efs_dir) / f"{Path(key).name}.thumb.json"
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(thumbnail, indent=2))
        partial.replace(target)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
