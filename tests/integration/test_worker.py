"""taskrunner.worker against a moto server and a fake ECS agent, both on loopback.

In-process tests run ``Worker.run()`` on a thread and stop it with ``request_stop()``. Signal tests
run the example worker image's ``app.py`` as a subprocess, as ECS would, and signal it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from taskrunner.worker import Message, TaskProtection, Worker, WorkerConfig, WorkerConfigError
from tests.integration.fake_ecs_agent import FakeEcsAgent

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO / "examples" / "worker" / "app.py"
REGION = "us-east-1"


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def sqs(moto_endpoint: str) -> SQSClient:
    return boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def agent() -> Iterator[FakeEcsAgent]:
    with FakeEcsAgent() as fake:
        yield fake


@dataclass
class Queue:
    url: str
    dlq_url: str


@pytest.fixture
def queue(sqs: SQSClient) -> Queue:
    """A fresh work queue (visibility 30 s) with a DLQ after 5 receives."""
    name = f"work-{uuid.uuid4().hex[:12]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    return Queue(url=url, dlq_url=dlq_url)


def send(sqs: SQSClient, queue_url: str, *bodies: dict[str, Any]) -> list[str]:
    return [sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))["MessageId"] for body in bodies]


def depth(sqs: SQSClient, queue_url: str) -> tuple[int, int]:
    """(visible, in flight)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def config(queue_url: str, **overrides: Any) -> WorkerConfig:
    settings: dict[str, Any] = {"queue_url": queue_url, "wait_time_s": 1, "region": REGION, "ecs_agent_uri": None}
    settings.update(overrides)
    return WorkerConfig(**settings)


@dataclass
class Recorder:
    """A handler that records what it saw; ``work`` runs inside it."""

    work: Callable[[Message], None] = lambda _message: None
    seen: list[Message] = field(default_factory=list)

    def __call__(self, message: Message) -> None:
        self.seen.append(message)
        self.work(message)


class Running:
    """A Worker running on a background thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.exit_code = self.worker.run()

    def join(self, timeout_s: float = 10.0) -> int:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the worker did not exit"
        assert self.exit_code is not None
        return self.exit_code

    def stop(self) -> int:
        self.worker.request_stop()
        return self.join()


@pytest.fixture
def start_worker() -> Iterator[Callable[[Worker], Running]]:
    """Runs workers on threads; any still running when the test ends (it failed) are stopped."""
    started: list[Running] = []

    def run(worker: Worker) -> Running:
        started.append(Running(worker))
        return started[-1]

    yield run
    for running in started:
        running.worker.request_stop()
        running.join()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- scale-in protection ---------------------------------------------------------------------------


def test_protection_is_held_while_busy_and_dropped_once_the_queue_is_idle(
    sqs: SQSClient, queue: Queue, agent: FakeEcsAgent, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN a service-mode worker with an ECS agent and three queued messages
    WHEN it handles them as three back-to-back batches and then polls an empty queue
    THEN it enabled protection once before the first message (true while each handler ran) and
    disabled it once, after the last handler finished: no flapping between batches."""
    send(sqs, queue.url, {"n": 1}, {"n": 2}, {"n": 3})
    state_during_handler: list[bool | None] = []
    handler_finished_at: list[float] = []

    def work(_message: Message) -> None:
        state_during_handler.append(agent.last_state)
        time.sleep(0.2)
        handler_finished_at.append(time.monotonic())

    handler = Recorder(work)
    running = start_worker(Worker(handler, config(queue.url, ecs_agent_uri=agent.url), sqs=sqs))
    assert agent.wait_for(lambda states: states[-1:] == [False])
    assert running.stop() == 0

    assert len(handler.seen) == 3
    assert state_during_handler == [True, True, True]
    assert agent.states == [True, False]
    enable, disable = agent.calls
    assert enable.body == {"ProtectionEnabled": True, "ExpiresInMinutes": 120}
    assert enable.at < min(handler_finished_at)
    assert disable.at >= max(handler_finished_at)
    assert depth(sqs, queue.url) == (0, 0)


def test_protection_is_re_armed_before_it_expires_during_a_long_job(
    sqs: SQSClient, queue: Queue, agent: FakeEcsAgent, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN 1-minute protection and a worker clock running 600x faster than real time
    WHEN one message takes 1 real second (10 clock minutes)
    THEN the heartbeat re-arms protection several times while the handler runs, then drops it."""
    send(sqs, queue.url, {"n": 1})
    start = time.monotonic()

    def fast_clock() -> float:
        return start + (time.monotonic() - start) * 600

    handler = Recorder(lambda _message: time.sleep(1.0))
    worker = Worker(
        handler,
        config(queue.url, ecs_agent_uri=agent.url, protection_minutes=1, visibility_timeout_s=2, heartbeat_every_s=0.2),
        sqs=sqs,
        clock=fast_clock,
    )
    running = start_worker(worker)
    assert agent.wait_for(lambda states: states[-1:] == [False])
    assert running.stop() == 0

    states = agent.states
    assert states[-1] is False
    assert all(states[:-1])
    assert len(states[:-1]) >= 3, f"protection was not re-armed during the job: {states}"
    assert all(call.body.get("ExpiresInMinutes") == 1 for call in agent.calls[:-1])


@pytest.mark.parametrize(("behaviour", "expected_calls"), [("error", 2), ("task-not-valid", 1)])
def test_work_goes_on_when_the_agent_refuses_protection(
    sqs: SQSClient, queue: Queue, behaviour: Any, expected_calls: int, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN an ECS agent that answers {"error": ...} (or the TASK_NOT_VALID failure of a standalone task)
    WHEN a service-mode worker gets two messages, one batch each
    THEN both are processed and deleted anyway; after an error it asks again for the next batch,
    after TASK_NOT_VALID it stops asking."""
    send(sqs, queue.url, {"n": 1}, {"n": 2})
    with FakeEcsAgent(behaviour) as refusing_agent:
        handler = Recorder()
        running = start_worker(Worker(handler, config(queue.url, ecs_agent_uri=refusing_agent.url), sqs=sqs))
        wait_until(lambda: running.worker.stats.succeeded == 2)
        assert running.stop() == 0
        assert refusing_agent.states == [True] * expected_calls
    assert len(handler.seen) == 2
    assert depth(sqs, queue.url) == (0, 0)


def test_protection_is_a_no_op_without_an_agent() -> None:
    """GIVEN no ECS_AGENT_URI (a local run)
    WHEN protection is enabled and disabled
    THEN both calls succeed without any request."""
    protection = TaskProtection(None)
    assert not protection.configured
    assert protection.enable(120)
    assert protection.disable()


# -- leases, deletes and retries -------------------------------------------------------------------


def test_heartbeat_keeps_a_message_longer_than_its_lease_invisible(
    sqs: SQSClient, queue: Queue, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN a 1 s lease renewed every 0.3 s
    WHEN the handler takes 2.2 s while another consumer polls the queue continuously
    THEN the other consumer never gets the message, it is handled once on its first receive, and deleted."""
    send(sqs, queue.url, {"n": 1})
    handler_running = threading.Event()
    stolen: list[str] = []

    def work(_message: Message) -> None:
        handler_running.set()
        time.sleep(2.2)
        handler_running.clear()

    def thief() -> None:
        handler_running.wait(5)
        while handler_running.is_set():
            response = sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=0, VisibilityTimeout=1)
            stolen.extend(message["MessageId"] for message in response.get("Messages", []))
            time.sleep(0.1)

    other_consumer = threading.Thread(target=thief, daemon=True)
    other_consumer.start()
    handler = Recorder(work)
    worker = Worker(
        handler, config(queue.url, mode="per-message", visibility_timeout_s=1, heartbeat_every_s=0.3), sqs=sqs
    )
    assert start_worker(worker).join() == 0
    other_consumer.join(5)

    assert stolen == []
    assert [message.receive_count for message in handler.seen] == [1]
    assert depth(sqs, queue.url) == (0, 0)


def test_success_deletes_every_message_of_a_batch(
    sqs: SQSClient, queue: Queue, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN five messages and a batch size of five
    WHEN the worker handles them successfully
    THEN all five are deleted (none visible, none in flight) and the body parses as JSON."""
    ids = send(sqs, queue.url, *({"n": n} for n in range(5)))
    handler = Recorder()
    worker = Worker(handler, config(queue.url, mode="per-message", batch_size=5), sqs=sqs)
    assert start_worker(worker).join() == 0

    assert sorted(message.message_id for message in handler.seen) == sorted(ids)
    assert sorted(message.json()["n"] for message in handler.seen) == list(range(5))
    assert depth(sqs, queue.url) == (0, 0)
    assert worker.stats.succeeded == 5


def test_a_failed_message_stays_queued_and_returns_after_the_backoff(
    sqs: SQSClient, queue: Queue, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN a handler that raises and a retry backoff of 0.5 s * 2**receive_count (1 s on the first try)
    WHEN the worker handles the message once (queue visibility timeout 30 s)
    THEN the message is not deleted, stays invisible for the backoff, and is delivered again
    within a few seconds, not after the 30 s lease, with receive count 2."""
    (message_id,) = send(sqs, queue.url, {"n": 1})

    def work(_message: Message) -> None:
        raise RuntimeError("boom")

    worker = Worker(
        Recorder(work),
        config(queue.url, mode="per-message", max_batches=1, retry_backoff_base_s=0.5),
        sqs=sqs,
    )
    assert start_worker(worker).join() == 0
    failed_at = time.monotonic()
    assert worker.stats.failed == 1
    assert depth(sqs, queue.url) == (0, 1)

    response = sqs.receive_message(
        QueueUrl=queue.url, WaitTimeSeconds=5, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )
    returned_after = time.monotonic() - failed_at
    (redelivered,) = response["Messages"]
    assert redelivered["MessageId"] == message_id
    assert redelivered["Attributes"]["ApproximateReceiveCount"] == "2"
    assert 0.5 <= returned_after < 4.5
    assert depth(sqs, queue.dlq_url) == (0, 0)


def test_per_message_mode_drains_the_queue_and_exits(
    sqs: SQSClient, queue: Queue, agent: FakeEcsAgent, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN five queued messages and a per-message task with batch size 2 (in an ECS task)
    WHEN it runs
    THEN it handles all five in three batches, exits 0 on the first empty poll, and never asks for
    scale-in protection (a RunTask task is not part of a service)."""
    send(sqs, queue.url, *({"n": n} for n in range(5)))
    handler = Recorder()
    worker = Worker(handler, config(queue.url, mode="per-message", batch_size=2, ecs_agent_uri=agent.url), sqs=sqs)
    started = time.monotonic()
    assert start_worker(worker).join() == 0

    assert len(handler.seen) == 5
    assert depth(sqs, queue.url) == (0, 0)
    assert agent.calls == []
    assert time.monotonic() - started < 5


def test_a_missing_queue_stops_the_worker_with_exit_code_1(
    sqs: SQSClient, moto_endpoint: str, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN a worker pointed at a queue that does not exist
    WHEN it runs
    THEN it exits 1 at once instead of polling nothing forever."""
    missing = f"{moto_endpoint}/123456789012/no-such-queue-{uuid.uuid4().hex[:8]}"
    worker = Worker(Recorder(), config(missing), sqs=sqs)
    started = time.monotonic()
    assert start_worker(worker).join() == 1
    assert time.monotonic() - started < 3


# -- signals (the example worker as a subprocess) --------------------------------------------------


class WorkerProcess:
    """examples/worker/app.py run as ECS would run it; its JSON log lines are collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE_APP)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"raw": line.rstrip()}
            with self._lock:
                self.lines.append(record if isinstance(record, dict) else {"raw": record})

    def logged(self, message: str) -> bool:
        with self._lock:
            return any(line.get("message") == message for line in self.lines)

    def wait_logged(self, message: str, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.logged(message):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker never logged {message!r}; output: {self.lines}")
            time.sleep(0.02)

    def wait(self, timeout_s: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(5)


@pytest.fixture
def worker_env(moto_endpoint: str, queue: Queue, agent: FakeEcsAgent, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TASKRUNNER_", "ECS_"))}
    env.update(
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        TASKRUNNER_QUEUE_URL=queue.url,
        TASKRUNNER_WAIT_TIME_S="1",
        TASKRUNNER_EFS_DIR=str(tmp_path),
        ECS_AGENT_URI=agent.url,
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def test_sigterm_mid_message_finishes_it_deletes_it_and_exits_0(
    sqs: SQSClient, queue: Queue, agent: FakeEcsAgent, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN the example worker in service mode handling a 1.5 s message
    WHEN ECS sends SIGTERM (scale-in, deployment) in the middle of it
    THEN the handler completes (its result file is written), the message is deleted,
    protection is released, and the process exits 0."""
    (message_id,) = send(sqs, queue.url, {"n": 7, "sleep_s": 1.5})
    worker = WorkerProcess(worker_env)
    worker.wait_logged("processing message")
    time.sleep(0.3)
    worker.proc.send_signal(signal.SIGTERM)

    assert worker.wait() == 0
    result = json.loads((tmp_path / f"{message_id}.json").read_text())
    assert result == {"message_id": message_id, "n": 7, "square": 49}
    assert depth(sqs, queue.url) == (0, 0)
    assert agent.states == [True, False]
    assert worker.logged("stop requested: finishing the message in hand")


def test_sigterm_while_idle_exits_0_within_one_poll(
    sqs: SQSClient, queue: Queue, agent: FakeEcsAgent, worker_env: dict[str, str]
) -> None:
    """GIVEN the example worker in service mode polling an empty queue (1 s long poll)
    WHEN ECS scales it in with SIGTERM
    THEN it exits 0 once the poll in progress returns, having never asked for protection."""
    worker = WorkerProcess(worker_env)
    worker.wait_logged("worker started")
    time.sleep(0.3)
    signalled_at = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)

    assert worker.wait() == 0
    assert time.monotonic() - signalled_at < 2.5
    assert agent.calls == []
    assert depth(sqs, queue.url) == (0, 0)


def test_a_second_signal_abandons_the_message_for_prompt_redelivery(
    sqs: SQSClient, queue: Queue, agent: FakeEcsAgent, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN the example worker handling a 30 s message
    WHEN it gets SIGTERM and then a second SIGTERM
    THEN it exits promptly with 128+SIGTERM, writes no result, releases protection,
    and the message is visible again at once for another worker."""
    (message_id,) = send(sqs, queue.url, {"n": 3, "sleep_s": 30})
    worker = WorkerProcess(worker_env)
    worker.wait_logged("processing message")
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    signalled_at = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)

    assert worker.wait() == 128 + signal.SIGTERM
    assert time.monotonic() - signalled_at < 5
    assert not (tmp_path / f"{message_id}.json").exists()
    assert agent.states[-1] is False
    response = sqs.receive_message(
        QueueUrl=queue.url, WaitTimeSeconds=0, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )
    (redelivered,) = response["Messages"]
    assert redelivered["MessageId"] == message_id
    assert redelivered["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_handler_outliving_the_stop_timeout_is_interrupted_before_sigkill(
    sqs: SQSClient, queue: Queue, worker_env: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN a task whose stop timeout is 2 s, handling a 30 s message
    WHEN it gets a single SIGTERM
    THEN it interrupts the handler about 1 s later (keeping 1 s to clean up before ECS's SIGKILL),
    exits 128+SIGTERM, and the message is back on the queue."""
    (message_id,) = send(sqs, queue.url, {"n": 3, "sleep_s": 30})
    worker = WorkerProcess({**worker_env, "TASKRUNNER_STOP_TIMEOUT_S": "2"})
    worker.wait_logged("processing message")
    signalled_at = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)

    assert worker.wait() == 128 + signal.SIGTERM
    assert 0.8 <= time.monotonic() - signalled_at < 2.5
    assert not (tmp_path / f"{message_id}.json").exists()
    assert depth(sqs, queue.url) == (1, 0)


# -- configuration ---------------------------------------------------------------------------------


def test_from_env_reads_every_setting() -> None:
    """GIVEN a task's environment
    WHEN the config is read from it
    THEN each TASKRUNNER_* variable lands in its field, and the heartbeat defaults to a third of the lease."""
    cfg = WorkerConfig.from_env(
        {
            "TASKRUNNER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/work",
            "TASKRUNNER_QUEUE_MODE": "per-message",
            "TASKRUNNER_BATCH_SIZE": "10",
            "TASKRUNNER_VISIBILITY_TIMEOUT_S": "120",
            "TASKRUNNER_IDLE_EXIT_AFTER_S": "none",
            "TASKRUNNER_STOP_TIMEOUT_S": "120",
            "ECS_AGENT_URI": "http://169.254.170.2/api/abc",
        }
    )
    assert cfg.mode == "per-message"
    assert cfg.batch_size == 10
    assert cfg.visibility_timeout_s == 120
    assert cfg.heartbeat_every_s == 40
    assert cfg.idle_exit_after_s is None
    assert cfg.stop_timeout_s == 120
    assert cfg.ecs_agent_uri == "http://169.254.170.2/api/abc"
    assert cfg.region is None
    assert cfg.retry_delay_s(1) == 10
    assert cfg.retry_delay_s(8) == 900


@pytest.mark.parametrize("value", [None, "", "  "])
def test_from_env_names_the_missing_queue_url(value: str | None) -> None:
    """GIVEN an environment without TASKRUNNER_QUEUE_URL (or with an empty one)
    WHEN the config is read
    THEN the error names the variable."""
    environ = {"TASKRUNNER_BATCH_SIZE": "2"} if value is None else {"TASKRUNNER_QUEUE_URL": value}
    with pytest.raises(WorkerConfigError, match="TASKRUNNER_QUEUE_URL is not set"):
        WorkerConfig.from_env(environ)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASKRUNNER_BATCH_SIZE", "11"),
        ("TASKRUNNER_QUEUE_MODE", "forever"),
        ("TASKRUNNER_VISIBILITY_TIMEOUT_S", "soon"),
        ("TASKRUNNER_PROTECTION_MINUTES", "2881"),
    ],
)
def test_from_env_names_an_invalid_variable(variable: str, value: str) -> None:
    """GIVEN one invalid TASKRUNNER_* value
    WHEN the config is read
    THEN the error names that variable and its value."""
    with pytest.raises(WorkerConfigError, match=f"{variable}='{value}'"):
        WorkerConfig.from_env({"TASKRUNNER_QUEUE_URL": "http://localhost/q", variable: value})


def test_a_worker_image_without_a_queue_url_exits_2_and_says_why(worker_env: dict[str, str]) -> None:
    """GIVEN the example worker started without TASKRUNNER_QUEUE_URL
    WHEN it starts
    THEN it exits 2 and its log names the missing variable."""
    env = {key: value for key, value in worker_env.items() if key != "TASKRUNNER_QUEUE_URL"}
    worker = WorkerProcess(env)
    assert worker.wait() == 2
    assert any("TASKRUNNER_QUEUE_URL is not set" in str(line.get("message")) for line in worker.lines)


# -- drain (scale-in at a message boundary) --------------------------------------------------------


@pytest.fixture(scope="module")
def dynamodb(moto_endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def drain_table(dynamodb: Any) -> str:
    """A table shaped like the Scaler's state table (hash key ``job``)."""
    name = f"state-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "job", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "job", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def publish_drain(dynamodb: Any, table: str, job: str, surplus: int) -> None:
    """What the Scaler writes (adapters.state.DynamoStateStore.publish_drain)."""
    from taskrunner.adapters.state import DynamoStateStore

    DynamoStateStore(table, dynamodb).publish_drain(job, surplus)


def claimed(dynamodb: Any, table: str, job: str) -> int:
    item = dynamodb.get_item(TableName=table, Key={"job": {"S": f"drain/{job}"}})["Item"]
    return int(item["claimed"]["N"])


def drain_config(queue_url: str, agent: FakeEcsAgent, table: str, job: str = "thumbs") -> WorkerConfig:
    return config(queue_url, ecs_agent_uri=agent.url, drain_table=table, job=job, drain_check_s=0)


def test_a_surplus_worker_finishes_its_message_releases_protection_and_exits_0(
    sqs: SQSClient,
    dynamodb: Any,
    queue: Queue,
    agent: FakeEcsAgent,
    drain_table: str,
    start_worker: Callable[[Worker], Running],
) -> None:
    """GIVEN a busy service worker (three messages queued) whose job's drain signal names one surplus worker
    WHEN it finishes the message in hand
    THEN it claims the drain, takes no further message (two stay queued for the others), drops protection
    and exits 0 by itself: scale-in without a kill, and without waiting for the queue to empty."""
    publish_drain(dynamodb, drain_table, "thumbs", 1)
    send(sqs, queue.url, {"n": 1}, {"n": 2}, {"n": 3})
    handler = Recorder(lambda _message: time.sleep(0.2))
    worker = Worker(handler, drain_config(queue.url, agent, drain_table), sqs=sqs, dynamodb=dynamodb)

    assert start_worker(worker).join() == 0
    assert worker.drained
    assert len(handler.seen) == 1
    assert worker.stats.succeeded == 1
    assert agent.states == [True, False], "protected while handling, released before exiting"
    assert claimed(dynamodb, drain_table, "thumbs") == 1
    assert depth(sqs, queue.url) == (2, 0), "the message in hand was deleted; the rest is left for others"


def test_only_as_many_workers_drain_as_the_signal_names(
    sqs: SQSClient,
    dynamodb: Any,
    queue: Queue,
    agent: FakeEcsAgent,
    drain_table: str,
    start_worker: Callable[[Worker], Running],
) -> None:
    """GIVEN two busy workers of one job and a drain signal naming one surplus worker
    WHEN both reach message boundaries
    THEN exactly one claims it and exits; the other keeps working the queue to the end."""
    publish_drain(dynamodb, drain_table, "thumbs", 1)
    send(sqs, queue.url, *({"n": n} for n in range(8)))
    handlers = [Recorder(lambda _message: time.sleep(0.1)) for _ in range(2)]
    workers = [Worker(h, drain_config(queue.url, agent, drain_table), sqs=sqs, dynamodb=dynamodb) for h in handlers]
    running = [start_worker(w) for w in workers]

    wait_until(lambda: depth(sqs, queue.url) == (0, 0) and sum(w.drained for w in workers) == 1, timeout_s=20)
    still_running = [r for r, w in zip(running, workers, strict=True) if not w.drained]
    assert len(still_running) == 1
    assert still_running[0].stop() == 0
    assert sum(len(h.seen) for h in handlers) == 8, "every message handled once, none lost to the drain"
    assert claimed(dynamodb, drain_table, "thumbs") == 1


def test_another_jobs_drain_signal_does_not_drain_this_worker(
    sqs: SQSClient,
    dynamodb: Any,
    queue: Queue,
    agent: FakeEcsAgent,
    drain_table: str,
    start_worker: Callable[[Worker], Running],
) -> None:
    """GIVEN a drain signal for job "other" only
    WHEN a worker of job "thumbs" works through its queue
    THEN it never drains, and "other"'s signal is left unclaimed."""
    publish_drain(dynamodb, drain_table, "other", 3)
    send(sqs, queue.url, {"n": 1}, {"n": 2})
    handler = Recorder()
    worker = Worker(handler, drain_config(queue.url, agent, drain_table), sqs=sqs, dynamodb=dynamodb)
    running = start_worker(worker)
    wait_until(lambda: worker.stats.succeeded == 2)
    assert running.stop() == 0
    assert not worker.drained
    assert claimed(dynamodb, drain_table, "other") == 0


def test_an_unreadable_drain_signal_means_no_drain(
    sqs: SQSClient, dynamodb: Any, queue: Queue, agent: FakeEcsAgent, start_worker: Callable[[Worker], Running]
) -> None:
    """GIVEN a drain table that does not exist (or that the task role may not read)
    WHEN the worker checks it at each boundary
    THEN it keeps working: a broken signal never stops a worker."""
    send(sqs, queue.url, {"n": 1}, {"n": 2}, {"n": 3})
    handler = Recorder()
    worker = Worker(handler, drain_config(queue.url, agent, "no-such-table"), sqs=sqs, dynamodb=dynamodb)
    running = start_worker(worker)
    wait_until(lambda: worker.stats.succeeded == 3, timeout_s=20)
    assert running.stop() == 0
    assert not worker.drained


def test_drain_settings_come_from_the_environment() -> None:
    cfg = WorkerConfig.from_env(
        {
            "TASKRUNNER_QUEUE_URL": "http://localhost/q",
            "TASKRUNNER_JOB": "thumbs",
            "TASKRUNNER_DRAIN_TABLE": "taskrunner-state",
            "TASKRUNNER_DRAIN_CHECK_S": "5",
        }
    )
    assert (cfg.job, cfg.drain_table, cfg.drain_check_s) == ("thumbs", "taskrunner-state", 5.0)
    assert WorkerConfig.from_env({"TASKRUNNER_QUEUE_URL": "http://localhost/q"}).drain_table is None
