"""The backends the Log contract runs against, and what each can show.

* ``sqlite`` — the embedded log, a new file per test;
* ``kafka`` / ``kafka-eos`` — librdkafka's mock cluster (one per test process, hosted
  by a child process), without and with exactly-once;
* ``real-kafka`` / ``real-kafka-eos`` — the broker ``DUALITY_TEST_KAFKA`` names;
  skipped, saying so, when it is not set.

A test that needs a capability a backend lacks is skipped with the reason: the mock
cannot create topics with a config or a partition count (it auto-creates them with 4
partitions), answer DescribeConfigs or DeleteTopics, compact, or isolate open
transactions; a Kafka log without exactly-once does not make transactions atomic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from duality.log import open_log
from duality.log.base import Log
from tests.kafka.support import NEEDS_REAL, REAL_ENV, MockKafka, real_broker, unique

#: What only some backends can show, and why a backend cannot.
CAPABILITIES = {
    "configs": "create topics with the partitions and config asked for, and read them back",
    "delete": "delete topics",
    "compaction": "compact on request",
    "atomic": "make log transactions atomic for readers",
    "txn-offsets": "store reader offsets inside a transaction",
}
MOCK = "librdkafka's mock cluster cannot"
REAL = f"; checked against a real broker when {REAL_ENV} is set"
MOCK_WHY = {
    "configs": MOCK + " (no CreateTopics or DescribeConfigs; it auto-creates 4 partitions)" + REAL,
    "delete": MOCK + " (no DeleteTopics)" + REAL,
    "compaction": "Kafka's brokers compact on their own schedule, not on request",
    "atomic": MOCK + " (no transaction isolation: read_committed readers see open "
              "transactions)" + REAL,
    "txn-offsets": MOCK + " (it ignores TxnOffsetCommit)" + REAL,
}
PLAIN_WHY = {
    "atomic": "without exactly.once.source.support=enabled, a Kafka log's transactions are "
              "not atomic (documented)",
}


@dataclass
class Backend:
    name: str
    url: str
    settings: dict[str, str] = field(default_factory=dict)
    can: frozenset[str] = frozenset()
    why_not: dict[str, str] = field(default_factory=dict)
    opened: list[Log] = field(default_factory=list)

    @property
    def kafka(self) -> bool:
        return self.url.startswith("kafka://")

    @property
    def exactly_once(self) -> bool:
        return self.settings.get("exactly.once.source.support") == "enabled"

    def open(self) -> Log:
        log = open_log(self.url, settings=self.settings or None, warn=lambda _m: None)
        self.opened.append(log)
        return log

    def need(self, capability: str) -> None:
        if capability not in self.can:
            why = self.why_not.get(capability, "")
            pytest.skip(f"{self.name} does not {CAPABILITIES[capability]}: {why}")

    def topic(self, prefix: str = "t") -> str:
        return unique(prefix)


@pytest.fixture(scope="session")
def mock_kafka() -> Iterator[MockKafka]:
    mock = MockKafka()
    yield mock
    mock.stop()


EOS = {"exactly.once.source.support": "enabled"}
Maker = Callable[[Path, Callable[[], MockKafka]], Backend]


def _sqlite(tmp_path: Path, _: Callable[[], MockKafka]) -> Backend:
    return Backend("sqlite", f"sqlite://{tmp_path / 'log.db'}", can=frozenset(CAPABILITIES))


def _kafka(eos: bool) -> Maker:
    def make(_tmp: Path, mock: Callable[[], MockKafka]) -> Backend:
        why = {**MOCK_WHY, **({} if eos else PLAIN_WHY)}
        return Backend("kafka-eos" if eos else "kafka", mock().url, dict(EOS) if eos else {},
                       can=frozenset() if eos else frozenset({"txn-offsets"}), why_not=why)
    return make


def _real(eos: bool) -> Maker:
    def make(_tmp: Path, _mock: Callable[[], MockKafka]) -> Backend:
        broker = real_broker()
        if broker is None:
            pytest.skip(NEEDS_REAL)
        can = {"configs", "delete", "txn-offsets"} | ({"atomic"} if eos else set())
        return Backend("real-kafka-eos" if eos else "real-kafka", f"kafka://{broker}",
                       dict(EOS) if eos else {}, can=frozenset(can),
                       why_not={**MOCK_WHY, **({} if eos else PLAIN_WHY)})
    return make


BACKENDS: dict[str, Maker] = {
    "sqlite": _sqlite,
    "kafka": _kafka(False),
    "kafka-eos": _kafka(True),
    "real-kafka": _real(False),
    "real-kafka-eos": _real(True),
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    def mock() -> MockKafka:
        found: MockKafka = request.getfixturevalue("mock_kafka")
        return found

    made = BACKENDS[request.param](tmp_path, mock)
    yield made
    for log in made.opened:
        log.close()


@pytest.fixture
def log(backend: Backend) -> Log:
    """A log of the backend under test (overrides the embedded-only fixture)."""
    return backend.open()
