"""Kafka for tests: librdkafka's mock cluster in a helper process, or a real broker.

``DUALITY_TEST_KAFKA=host:9092`` names a real broker (Kafka or Redpanda, e.g. the one
``deploy/kafka/compose.yaml`` starts); tests that need what the mock cannot do (topic
creation with configs, DescribeConfigs, DeleteTopics, compaction, transaction isolation)
run against it and are skipped, saying so, without it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HOST = Path(__file__).with_name("mock_host.py")
REAL_ENV = "DUALITY_TEST_KAFKA"

NEEDS_REAL = (
    f"needs a real Kafka broker (the mock cluster cannot do this); set {REAL_ENV}=host:9092, "
    f"e.g. after `docker compose -f deploy/kafka/compose.yaml up -d`"
)


class MockKafka:
    """A mock cluster hosted by a child process (see mock_host.py)."""

    def __init__(self, brokers: int = 3) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HOST), str(brokers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.bootstrap = self.proc.stdout.readline().strip()
        if not self.bootstrap:
            raise RuntimeError("the mock Kafka cluster did not start")

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def freeze(self) -> None:
        """SIGSTOP the host, and wait until it is stopped (a signal takes effect when
        the process is next scheduled, which on a busy machine is not at once)."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while self._state() not in ("T", "t") and time.monotonic() < deadline:
            time.sleep(0.01)

    def _state(self) -> str:
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def real_broker() -> str | None:
    return os.environ.get(REAL_ENV) or None


def unique(prefix: str = "t") -> str:
    """A topic or group name no other test uses on a shared cluster."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def consume_all(bootstrap: str, topic: str, *, timeout: float = 20.0) -> list[Any]:
    """Every message of a topic, read by a plain confluent-kafka consumer (not duality
    code), partition by partition in offset order."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": unique("plain"),
        "enable.auto.commit": False, "enable.partition.eof": True,
        "auto.offset.reset": "earliest", "log_level": 0,
    })
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: dict[int, list[Any]] = {p: [] for p in partitions}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    if message.offset() >= ends[message.partition()]:
                        done.add(message.partition())
                    continue
                out[message.partition()].append(message)
        assert len(done) == len(partitions), f"could not read {topic} to its end"
        return [m for p in partitions for m in out[p]]
    finally:
        consumer.close()


def low_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """The first offset still held per partition (the mock drops the oldest records
    once a partition holds about 5 MiB; tests check that it did not)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm"),
                         "log_level": 0})
    try:
        partitions = consumer.list_topics(timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                for p in partitions}
    finally:
        consumer.close()
