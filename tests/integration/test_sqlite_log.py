"""The embedded log: offsets, partitions, compaction, schemas, readers in other
processes, and durability across kill -9."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from duality.errors import ConfigError
from duality.events.model import NewRecord
from duality.events.partitioner import partition_for
from duality.events.schema import ConnectField, ConnectSchema, RecordSchema, TableMeta
from duality.log import sqlite_compaction
from duality.log.sqlite import SqliteLog
from duality.log.sqlite_store import OFFSET_BITS
from duality.runtime.replicate import read_partitions

WRITER = Path(__file__).with_name("log_writer.py")
DAY = 86_400_000
COMPACT_NOW = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "0",
}


def rec(topic: str, key: object, value: object, ts: int | None = None) -> NewRecord:
    return NewRecord(
        topic,
        None if key is None else orjson.dumps(key),
        None if value is None else orjson.dumps(value),
        timestamp=ts,
    )


def offsets(log: SqliteLog, topic: str, partition: int = 0) -> list[int]:
    return [r.offset for r in log.read(topic, partition, 0, 10_000)]


def test_offsets_start_at_zero_and_continue_across_flushes(log: SqliteLog) -> None:
    log.create_topic("t")
    log.append(rec("t", {"id": i}, {"v": i}) for i in range(3))
    log.flush()
    log.append(rec("t", {"id": i}, {"v": i}) for i in range(3, 5))
    log.flush()
    assert offsets(log, "t") == [0, 1, 2, 3, 4]
    assert log.end_offsets("t") == {0: 5}
    assert [orjson.loads(r.value or b"")["v"] for r in log.read("t", 0, 2, 2)] == [2, 3]


def test_readers_map_the_file_writers_do_not(log: SqliteLog) -> None:
    """A log opened to read (``create=False``: replicate, tables) has its pages mapped
    into memory; the same records read either way."""
    log.create_topic("t")
    log.append(rec("t", {"id": i}, {"v": i}) for i in range(50))
    log.flush()
    with SqliteLog(log.url, create=False) as reader:
        assert reader._conn.execute("PRAGMA mmap_size").fetchone()[0] > 0
        assert reader.read("t", 0, 0, 100) == log.read("t", 0, 0, 100)
    assert log._conn.execute("PRAGMA mmap_size").fetchone()[0] == 0


def test_nothing_is_visible_before_flush(log: SqliteLog, log_path: Path) -> None:
    log.create_topic("t")
    log.append([rec("t", {"id": 1}, {"v": 1})])
    with SqliteLog(f"sqlite://{log_path}") as other:
        assert other.read("t", 0, 0, 10) == []
        log.flush()
        assert len(other.read("t", 0, 0, 10)) == 1


def test_keys_go_to_their_murmur2_partition(log: SqliteLog) -> None:
    log.create_topic("t", 5)
    keys = [orjson.dumps({"id": i}) for i in range(100)]
    log.append(NewRecord("t", k, b"{}") for k in keys)
    log.flush()
    for partition in range(5):
        stored = [r.key for r in log.read("t", partition, 0, 1000)]
        assert stored == [k for k in keys if partition_for(k, 5) == partition]


def test_a_batch_of_several_topics_keeps_each_partitions_order(log: SqliteLog) -> None:
    """Records without a key take each partition in turn; records interleaved across
    topics and partitions keep their order within each partition; a record that cannot
    be placed is refused with those before it still pending, none after it."""
    log.create_topic("a", 3)
    log.create_topic("b", 2)
    batch = [
        NewRecord("a", None, b"a0"),
        NewRecord("b", b"k", b"b0", partition=1),
        NewRecord("a", None, b"a1"),
        NewRecord("a", None, b"a2"),
        NewRecord("b", b"k", b"b1", partition=0),
        NewRecord("a", None, b"a3"),
        NewRecord("b", b"k", b"b2", partition=1),
    ]
    log.append(batch)
    with pytest.raises(ConfigError, match="partition 2 does not exist"):
        log.append([NewRecord("b", b"k", b"b3"), NewRecord("b", b"k", b"x", partition=2),
                    NewRecord("b", b"k", b"never")])
    assert log.pending == len(batch) + 1
    log.flush()
    values = {(t, p): [r.value for r in log.read(t, p, 0, 99)] for t, p in
              [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]}
    home = partition_for(b"k", 2)
    expected_b = {0: [b"b1"], 1: [b"b0", b"b2"]}
    expected_b[home].append(b"b3")
    assert values == {("a", 0): [b"a0", b"a3"], ("a", 1): [b"a1"], ("a", 2): [b"a2"],
                      ("b", 0): expected_b[0], ("b", 1): expected_b[1]}


def test_compacted_topic_refuses_null_keys_with_the_fix(log: SqliteLog) -> None:
    log.create_topic("c", 1, {"cleanup.policy": "compact"})
    with pytest.raises(ConfigError) as info:
        log.append([rec("c", None, {"v": 1})])
    assert "cleanup.policy=delete" in str(info.value)
    log.create_topic("d", 1, {"cleanup.policy": "delete"})
    log.append([rec("d", None, {"v": 1})])
    log.flush()
    assert offsets(log, "d") == [0]


def test_compaction_keeps_latest_per_key_at_its_offset_and_offsets_continue(
    log: SqliteLog,
) -> None:
    log.create_topic("c", 1, COMPACT_NOW)
    values = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2), ("a", 3)]
    log.append(rec("c", {"k": k}, {"v": v}) for k, v in values)
    log.flush()
    (report,) = log.compact("c")
    assert report.removed == 3
    survivors = [(r.offset, orjson.loads(r.key or b""), r.value) for r in log.read("c", 0, 0, 99)]
    assert [o for o, _, _ in survivors] == [3, 4, 5]
    log.append([rec("c", {"k": "d"}, {"v": 1})])
    log.flush()
    assert offsets(log, "c")[-1] == 6
    assert log.end_offsets("c") == {0: 7}


def test_tombstones_stay_until_delete_retention(log: SqliteLog) -> None:
    log.create_topic("c", 1, {"cleanup.policy": "compact", "delete.retention.ms": str(DAY)})
    t0 = 1_700_000_000_000
    log.append([rec("c", {"k": 1}, {"v": 1}, t0), rec("c", {"k": 1}, None, t0 + 10)])
    log.flush()
    log.compact("c", now=t0 + DAY)  # the tombstone is younger than a day
    kept = log.read("c", 0, 0, 10)
    assert [(r.offset, r.value) for r in kept] == [(1, None)]
    log.compact("c", now=t0 + 10 + DAY + 1)
    assert log.read("c", 0, 0, 10) == []
    assert log.end_offsets("c") == {0: 2}


def test_records_younger_than_the_lag_are_never_touched(log: SqliteLog) -> None:
    log.create_topic(
        "c",
        1,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": "1000", "delete.retention.ms": "0"},
    )
    t0 = 1_700_000_000_000
    log.append(
        [
            rec("c", {"k": 1}, {"v": 1}, t0),
            rec("c", {"k": 1}, {"v": 2}, t0 + 100),
            rec("c", {"k": 1}, {"v": 3}, t0 + 2000),  # young at t0 + 2500
            rec("c", {"k": 2}, None, t0 + 2100),
        ]
    )
    log.flush()
    log.compact("c", now=t0 + 2500)
    # Only the cleanable prefix (older than the lag) was compacted.
    assert offsets(log, "c") == [1, 2, 3]
    log.compact("c", now=t0 + 10_000)
    assert offsets(log, "c") == [2]


def test_retention_by_time_and_size(log: SqliteLog) -> None:
    log.create_topic("d", 1, {"cleanup.policy": "delete", "retention.ms": "1000"})
    t0 = 1_700_000_000_000
    log.append(rec("d", {"k": i}, {"v": i}, t0 + i * 600) for i in range(5))
    log.flush()
    log.compact("d", now=t0 + 3000)  # cutoff t0 + 2000: offsets 0..3 are older
    assert offsets(log, "d") == [4]
    log.create_topic(
        "s", 1, {"cleanup.policy": "delete", "retention.bytes": "50", "retention.ms": "-1"}
    )
    log.append(NewRecord("s", b"k", b"x" * 19) for _ in range(10))  # 20 bytes each
    log.flush()
    log.compact("s")
    assert offsets(log, "s") == [8, 9]


class _CountingConnection:
    """A connection that counts the bytes of the blobs its queries hand back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.blob_bytes = 0

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _CountingCursor:
        return _CountingCursor(self, self.conn.execute(sql, params))


class _CountingCursor:
    def __init__(self, owner: _CountingConnection, cursor: sqlite3.Cursor) -> None:
        self.owner = owner
        self.cursor = cursor

    def _count(self, row: Any) -> Any:
        self.owner.blob_bytes += sum(len(v) for v in row or () if isinstance(v, bytes))
        return row

    def fetchone(self) -> Any:
        return self._count(self.cursor.fetchone())

    def fetchall(self) -> list[Any]:
        return [self._count(row) for row in self.cursor.fetchall()]

    def __iter__(self) -> Iterator[Any]:
        return (self._count(row) for row in self.cursor)

    def close(self) -> None:
        self.cursor.close()


def test_retention_by_size_reads_only_the_chunk_it_splits(log: SqliteLog) -> None:
    """Finding where ``retention.bytes`` cuts reads the chunks' sizes, and the records
    of one chunk only: a partition may be larger than memory."""
    log.create_topic(
        "s", 1, {"cleanup.policy": "delete", "retention.bytes": "250000", "retention.ms": "-1"}
    )
    for first in range(0, 10_000, 1000):  # 10 chunks of 1000 records of 100 bytes
        log.append(NewRecord("s", b"k%05d" % i, b"v" * 94) for i in range(first, first + 1000))
        log.flush()
    lo = log._partition_id("s", 0) << OFFSET_BITS
    counting = _CountingConnection(log._conn)
    boundary = sqlite_compaction._size_boundary(counting, lo, 250_000)  # type: ignore[arg-type]
    assert boundary == 7500  # 2500 records of 100 bytes
    chunk = log._conn.execute("SELECT max(length(data)) FROM chunks").fetchone()[0]
    assert 0 < counting.blob_bytes <= chunk
    log.compact("s")
    assert offsets(log, "s")[0] == 7500 and len(offsets(log, "s")) == 2500


def test_topic_management(log: SqliteLog) -> None:
    log.create_topic("t", 2, {"cleanup.policy": "compact"})
    assert log.create_topic("t", 2, {"cleanup.policy": "compact"}).partitions == 2
    with pytest.raises(ConfigError, match="already exists with 2 partition"):
        log.create_topic("t", 3)
    with pytest.raises(ConfigError, match="not valid"):
        log.create_topic("bad name!")
    with pytest.raises(ConfigError, match="unknown topic config"):
        log.create_topic("u", 1, {"cleanup.polcy": "compact"})
    assert [t.name for t in log.list_topics()] == ["t"]
    log.delete_topic("t")
    assert log.list_topics() == []
    with pytest.raises(ConfigError, match="does not exist"):
        log.append([rec("t", {"k": 1}, {})])


def test_schemas_are_content_addressed_and_read_back(log: SqliteLog, log_path: Path) -> None:
    schema = RecordSchema(
        key=ConnectSchema("struct", fields=(ConnectField("id", ConnectSchema("int32")),)),
        value=ConnectSchema(
            "struct",
            optional=True,
            fields=(
                ConnectField(
                    "price",
                    ConnectSchema(
                        "bytes",
                        True,
                        "org.apache.kafka.connect.data.Decimal",
                        1,
                        {"scale": "2", "connect.decimal.precision": "12"},
                    ),
                ),
            ),
        ),
        meta=TableMeta(
            "public.items", {"id": "integer", "price": "numeric(12,2)"}, ("id",), ("id",), "full"
        ),
    )
    first = log.register_schema(schema)
    assert log.register_schema(schema) == first
    log.create_topic("t")
    log.append(NewRecord("t", b'{"id":1}', b"{}", schema_id=first) for _ in range(3))
    log.flush()
    with SqliteLog(f"sqlite://{log_path}") as other:
        assert other.register_schema(schema) == first
        for record in other.read("t", 0, 0, 10):
            assert record.schema_id == first
            assert other.schema(first) == schema


def test_positions_and_reader_offsets_commit_with_records(log: SqliteLog) -> None:
    log.create_topic("t")
    log.append([rec("t", {"k": 1}, {})])
    log.flush(positions={"pg": {"lsn": 42}}, reader_offsets={"g": {("t", 0): 1}})
    assert log.source_position("pg") == {"lsn": 42}
    assert log.reader_offsets("g") == {("t", 0): 1}
    assert log.source_position("missing") is None


def _start_writer(
    url: str, topic: str, batches: int, size: int, position: str | None = None
) -> subprocess.Popen[str]:
    args = [sys.executable, str(WRITER), url, topic, str(batches), str(size)]
    if position:
        args += ["--position", position]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def test_readers_in_other_processes_see_whole_batches_while_a_writer_appends(
    log_path: Path,
) -> None:
    url = f"sqlite://{log_path}"
    with SqliteLog(url) as log:
        log.create_topic("t")
    writer = _start_writer(url, "t", 60, 500)
    reader_code = (
        "import sys, orjson, time\n"
        "from duality.log.sqlite import SqliteLog\n"
        "log = SqliteLog(sys.argv[1], create=False)\n"
        "seen = 0\n"
        "deadline = time.time() + 120\n"
        "while seen < 30000 and time.time() < deadline:\n"
        "    batch = log.read('t', 0, seen, 5000)\n"
        "    for r in batch:\n"
        "        assert r.offset == seen, (r.offset, seen)\n"
        "        seen += 1\n"
        "    if seen % 500:\n"
        "        assert log.end_offsets('t')[0] >= seen - seen % 500 + 500\n"
        "print(seen)\n"
    )
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", reader_code, url], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    assert writer.wait(timeout=120) == 0
    for reader in readers:
        out, _ = reader.communicate(timeout=120)
        assert reader.returncode == 0
        assert out.strip() == "30000"
    wal = Path(f"{log_path}-wal")
    assert not wal.exists() or wal.stat().st_size < 64 * 1024 * 1024


@pytest.mark.slow
def test_kill_minus_9_mid_batch_loses_nothing_flushed_and_shows_nothing_half_written(
    log_path: Path,
) -> None:
    url = f"sqlite://{log_path}"
    size = 2000
    rng = random.Random(7)
    flushed_total = 0
    for _round in range(12):
        writer = _start_writer(url, "t", 1000, size, position="w")
        assert writer.stdout is not None
        # Wait until at least one batch of this round was reported, then kill at a
        # random moment (most land in the middle of a batch).
        line = writer.stdout.readline()
        assert line.startswith("flushed"), line
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        reported = [line, *writer.stdout.read().splitlines()]
        writer.wait()
        last_reported = max(int(x.split()[1]) for x in reported if x.startswith("flushed"))
        with SqliteLog(url) as log:
            records = log.read("t", 0, 0, 10_000_000)
            batches = (log.source_position("w") or {})["batches"]
        # Every reported flush is there, nothing half-written is visible, and the
        # position stored with the records describes exactly them.
        assert len(records) % size == 0
        assert len(records) == batches * size
        assert batches >= last_reported + 1 > flushed_total
        assert [r.offset for r in records] == list(range(len(records)))
        keys = [orjson.loads(r.key or b"") for r in records]
        assert keys == [{"b": b, "i": i} for b in range(batches) for i in range(size)]
        flushed_total = batches


def test_replicate_reads_stop_at_the_end_even_past_compacted_gaps(log: SqliteLog) -> None:
    """Offsets 0-2 are compacted away: a read of at most ``end - start`` records from 0
    returns offsets from 3 on, and those at or past the end must be left out."""
    log.create_topic("c", 1, COMPACT_NOW)
    values = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("b", 2), ("a", 3)]
    log.append(rec("c", {"k": k}, {"v": v}) for k, v in values)
    log.flush()
    log.compact("c")
    records, nexts = read_partitions(log, "c", {0: 0}, {0: 5}, 99)
    assert [r.offset for r in records] == [3, 4]
    assert nexts == {0: 5}
    records, nexts = read_partitions(log, "c", {0: 0}, {0: 6}, 99)
    assert [r.offset for r in records] == [3, 4, 5]
    assert nexts == {0: 6}
