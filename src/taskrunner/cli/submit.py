"""``taskrunner submit QUEUE_OR_JOB -f FILE``: JSON lines to a work queue, 10 per SendMessageBatch, retried."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from taskrunner.adapters.clients import error_code
from taskrunner.adapters.queues import Queues
from taskrunner.cli import output
from taskrunner.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from taskrunner.cli.inputs import Message, read_messages
from taskrunner.cli.lookups import job_spec
from taskrunner.cli.target import Target
from taskrunner.domain.backoff import backoff_s as backoff

BATCH_ENTRIES = 10
#: SendMessageBatch's limit on the sum of a batch's bodies.
BATCH_BYTES = 256 * 1024
RETRY_ROUNDS = 5
#: A whole batch refused for its content: its messages fail, the others still go.
CONTENT_ERRORS = frozenset(
    {
        "AWS.SimpleQueueService.BatchRequestTooLong",
        "BatchRequestTooLong",
        "InvalidMessageContents",
        "InvalidParameterValue",
        "MessageTooLong",
    }
)
MISSING_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "submit",
        parents=[common],
        help="send JSON lines to a job's work queue",
        description="Send each non-empty line of FILE (JSON lines) as one message, 10 per SendMessageBatch. "
        "Every line is checked before anything is sent.",
    )
    parser.add_argument("queue", metavar="QUEUE_OR_JOB", help="a queue URL, or a job with a work queue")
    parser.add_argument("-f", "--file", required=True, metavar="FILE", help="messages, one JSON per line; '-' = stdin")
    parser.set_defaults(handler=handle)


@dataclass
class SendResult:
    sent: int = 0
    #: (line, reason) of every message that was not sent.
    failed: list[tuple[int, str]] = field(default_factory=list)


def batches(messages: Sequence[Message]) -> Iterator[list[Message]]:
    """At most 10 messages and 256 KiB per batch; an oversized message goes alone (and SQS says why)."""
    batch: list[Message] = []
    size = 0
    for message in messages:
        length = len(message.body.encode())
        if batch and (len(batch) == BATCH_ENTRIES or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += length
    if batch:
        yield batch


def send_messages(
    queues: Queues,
    queue_url: str,
    messages: Sequence[Message],
    advance: Callable[[int], None] = lambda n: None,
    sleep: Callable[[float], None] = time.sleep,
    backoff_s: float = 0.2,
) -> SendResult:
    """SendMessageBatch in rounds: entries SQS failed on its side are sent again (up to 5 more rounds,
    backing off between rounds); entries failed as the sender's fault are reported, never retried."""
    result = SendResult()
    pending = list(messages)
    for round_no in range(RETRY_ROUNDS + 1):
        if round_no:
            sleep(backoff(round_no, backoff_s, 2.0))
        retry: list[Message] = []
        for batch in batches(pending):
            by_id = {str(m.line): m for m in batch}
            try:
                sent, failures = queues.send_batch(queue_url, [(str(m.line), m.body) for m in batch])
            except ClientError as exc:
                code = error_code(exc)
                if code in CONTENT_ERRORS:
                    result.failed += [(m.line, f"{code}: {exc}") for m in batch]
                    advance(len(batch))
                    continue
                done = f"{result.sent} of {len(messages)} sent before the error"
                if code in MISSING_QUEUE:
                    raise CliError(f"queue not found: {queue_url} ({done})", EXIT_FAILED) from exc
                raise CliError(f"SendMessageBatch failed: {exc} ({done})", EXIT_FAILED) from exc
            result.sent += len(sent)
            finished = len(sent)
            for failure in failures:
                message = by_id[failure["Id"]]
                reason = f"{failure.get('Code', 'Failed')}: {failure.get('Message', '')}".rstrip(": ")
                if failure.get("SenderFault"):
                    result.failed.append((message.line, reason))
                    finished += 1
                elif round_no == RETRY_ROUNDS:
                    result.failed.append((message.line, f"{reason} (after {RETRY_ROUNDS} retries)"))
                    finished += 1
                else:
                    retry.append(message)
            advance(finished)
        if not retry:
            break
        pending = retry
    result.failed.sort()
    return result


def handle(args: argparse.Namespace, target: Target) -> int:
    messages = read_messages(args.file)
    destination: str = args.queue
    if destination.startswith(("https://", "http://")):
        queue_url = destination
    else:
        spec = job_spec(target, destination)
        if not spec.queue_url:
            raise CliError(
                f"job '{destination}' has no work queue (queue mode '{spec.queue_mode}'): "
                "submit to a queue job or a queue URL; `taskrunner run` starts other jobs",
                EXIT_USAGE,
            )
        queue_url = spec.queue_url
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(),
        disable=not sys.stdout.isatty() or args.json,
    ) as progress:
        task = progress.add_task(f"sending to {queue_url.rsplit('/', 1)[-1]}", total=len(messages))
        result = send_messages(target.queues(), queue_url, messages, advance=lambda n: progress.advance(task, n))
    for line, reason in result.failed[:10]:
        output.err(f"line {line}: {reason}")
    if len(result.failed) > 10:
        output.err(f"... and {len(result.failed) - 10} more")
    if args.json:
        output.json_line({"sent": result.sent, "failed": [{"line": n, "reason": r} for n, r in result.failed]})
    else:
        print(f"sent {result.sent}, failed {len(result.failed)}")
    return EXIT_FAILED if result.failed else EXIT_OK
