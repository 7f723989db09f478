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
import uuid
from pathlib import Path

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
        os.kill(self.proc.pid, signal.SIGSTOP)

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
