"""The snapshot's background transaction: all of it lands, or none of it, whichever
side fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from duality.errors import ConfigError
from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog
from duality.runtime.writer import HANDOFF_S, BackgroundFlusher, write_transaction


def _batches(count: int, topic: str = "t", fail_at: int | None = None) -> Iterator[list[NewRecord]]:
    for b in range(count):
        if b == fail_at:
            raise RuntimeError("source failed")
        yield [NewRecord(topic, b"%d" % (b * 10 + i), b"v") for i in range(10)]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteLog]:
    with SqliteLog(f"sqlite://{tmp_path / 'log.db'}") as opened:
        opened.create_topic("t", 1, {})
        yield opened


def test_every_batch_and_the_position_land_together(log: SqliteLog) -> None:
    written: list[int] = []
    write_transaction(log, _batches(50), {"src": {"lsn": 7}}, written.append)
    assert written == [10] * 50
    assert log.end_offsets("t") == {0: 500}
    assert log.source_position("src") == {"lsn": 7}


def test_a_failing_producer_leaves_nothing(log: SqliteLog) -> None:
    with pytest.raises(RuntimeError, match="source failed"):
        write_transaction(log, _batches(50, fail_at=30), {"src": {"lsn": 7}})
    assert log.end_offsets("t") == {0: 0}
    assert log.source_position("src") is None
    write_transaction(log, _batches(2), {"src": {"lsn": 8}})  # the log is usable after
    assert log.end_offsets("t") == {0: 20}


def test_a_failing_writer_stops_the_producer_and_leaves_nothing(log: SqliteLog) -> None:
    produced = 0

    def batches() -> Iterator[list[NewRecord]]:
        nonlocal produced
        for batch in _batches(1000):
            produced += 1
            yield batch if produced != 3 else [NewRecord("missing", b"k", b"v")]

    with pytest.raises(ConfigError, match="missing"):
        write_transaction(log, batches(), {"src": {"lsn": 7}})
    assert produced < 1000
    assert log.end_offsets("t") == {0: 0}
    assert log.source_position("src") is None


def test_the_switch_interval_is_short_while_a_writer_runs_and_restored_after(
    log: SqliteLog,
) -> None:
    seen: list[float] = []
    default = sys.getswitchinterval()
    write_transaction(log, _batches(2), {}, lambda _: seen.append(sys.getswitchinterval()))
    assert seen == [HANDOFF_S, HANDOFF_S]
    assert sys.getswitchinterval() == default
    flusher = BackgroundFlusher(log, "src")
    assert sys.getswitchinterval() == HANDOFF_S
    flusher.close()
    flusher.close()  # twice is harmless
    assert sys.getswitchinterval() == default
