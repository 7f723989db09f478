"""The Log seam's contract, one suite for every backend (see conftest.py).

Each test speaks only the seam: what capture, tables and tools rely on, whatever the
log is. Topic names are unique per test, so backends that share a cluster do not mix.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from duality.errors import ConfigError
from duality.events.model import NewRecord, Record
from duality.events.partitioner import partition_for
from duality.events.schema import ConnectField, ConnectSchema, RecordSchema, TableMeta
from duality.log.base import Log
from duality.log.reading import StartAt, TopicReader
from tests.contract.conftest import Backend

COMPACT = {"cleanup.policy": "compact"}
DELETE = {"cleanup.policy": "delete"}
POSITION = '["inventory",{"server":"shop"}]'


def rec(topic: str, key: object, value: object, **extra: object) -> NewRecord:
    return NewRecord(
        topic,
        None if key is None else orjson.dumps(key),
        None if value is None else orjson.dumps(value),
        **extra,  # type: ignore[arg-type]
    )


def upto(log: Log, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
    """Up to ``limit`` records from ``offset``, reading again until the partition's end:
    one ``read`` may return fewer than there are (Kafka's returns what has been fetched)."""
    end = log.end_offsets(topic)[partition]
    out: list[Record] = []
    while len(out) < limit and offset < end:
        batch = log.read(topic, partition, offset, limit - len(out))
        if not batch:
            break
        out += batch
        offset = batch[-1].offset + 1
    return out


def every(log: Log, topic: str) -> list[Record]:
    out: list[Record] = []
    for partition in sorted(log.end_offsets(topic)):
        out += upto(log, topic, partition, 0, 100_000)
    return out


def schema(table: str, *columns: str) -> RecordSchema:
    fields = tuple(ConnectField(c, ConnectSchema("int32")) for c in columns)
    return RecordSchema(
        key=ConnectSchema("struct", fields=fields[:1], name=f"shop.public.{table}.Key"),
        value=ConnectSchema("struct", fields=fields, name=f"shop.public.{table}.Value"),
        meta=TableMeta(table=f"public.{table}", source_types=dict.fromkeys(columns, "integer"),
                       primary_key=columns[:1], key_columns=columns[:1],
                       replica_identity="default"),
    )


# -- appending and offsets -------------------------------------------------------------------


def test_offsets_start_at_zero_and_grow_across_flushes(log: Log, backend: Backend) -> None:
    """Consecutive, except that Kafka's exactly-once mode leaves a gap where each
    transaction's commit marker sits."""
    topic = backend.topic()
    log.create_topic(topic, 1, DELETE)
    log.append(rec(topic, {"id": i}, {"v": i}, partition=0) for i in range(3))
    log.flush()
    log.append(rec(topic, {"id": i}, {"v": i}, partition=0) for i in range(3, 5))
    log.flush()
    records = upto(log, topic, 0, 0, 100)
    offsets = [r.offset for r in records]
    assert offsets[:3] == [0, 1, 2] and offsets == sorted(set(offsets))
    if "exactly.once.source.support" not in backend.settings:
        assert offsets == [0, 1, 2, 3, 4]
    assert [orjson.loads(r.value or b"")["v"] for r in records] == [0, 1, 2, 3, 4]
    end = log.end_offsets(topic)[0]
    assert end > offsets[-1]
    assert [r.offset for r in upto(log, topic, 0, 2, 2)] == offsets[2:4]
    assert log.read(topic, 0, end, 10) == []
    assert log.read(topic, 0, end + 99, 10) == []


def test_keys_go_to_their_murmur2_partition(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    info = log.create_topic(topic, 3, DELETE)
    count = info.partitions
    assert log.describe(topic) is not None
    keys = [orjson.dumps({"id": i}) for i in range(60)]
    log.append(NewRecord(topic, k, b"{}") for k in keys)
    log.flush()
    for partition in range(count):
        stored = [r.key for r in upto(log, topic, partition, 0, 1000)]
        assert stored == [k for k in keys if partition_for(k, count) == partition]


def test_partition_count_is_what_was_asked(log: Log, backend: Backend) -> None:
    backend.need("configs")
    topic = backend.topic()
    assert log.create_topic(topic, 3, DELETE).partitions == 3
    assert sorted(log.end_offsets(topic)) == [0, 1, 2]


def test_explicit_partition_and_timestamp_and_headers_are_kept(
    log: Log, backend: Backend
) -> None:
    topic = backend.topic()
    count = log.create_topic(topic, 2, DELETE).partitions
    last = count - 1
    headers = (("a", b"1"), ("b", None), ("a", b"\xff\x00"))
    log.append([rec(topic, {"id": 1}, {"v": 1}, partition=last, timestamp=1_600_000_000_123,
                    headers=headers)])
    log.flush()
    [record] = upto(log, topic, last, 0, 10)
    assert record.partition == last
    assert record.timestamp == 1_600_000_000_123
    assert record.headers == headers
    with pytest.raises(ConfigError):
        log.append([rec(topic, {"id": 1}, {"v": 1}, partition=count)])


def test_tombstones_and_null_keys_round_trip(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    log.create_topic(topic, 1, DELETE)
    log.append([rec(topic, {"id": 1}, None, partition=0), rec(topic, None, {"v": 2}, partition=0)])
    log.flush()
    first, second = upto(log, topic, 0, 0, 10)
    assert first.key == b'{"id":1}' and first.value is None and first.is_tombstone
    assert second.key is None and orjson.loads(second.value or b"") == {"v": 2}


def test_compacted_topics_refuse_null_keys(log: Log, backend: Backend) -> None:
    backend.need("configs")
    topic = backend.topic()
    log.create_topic(topic, 1, COMPACT)
    assert (info := log.describe(topic)) is not None and info.config.compacted
    with pytest.raises(ConfigError) as refused:
        log.append([rec(topic, None, {"v": 1})])
        log.flush()
    assert "cleanup.policy=delete" in str(refused.value)


def test_nothing_is_visible_before_flush_and_discard_drops(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    log.create_topic(topic, 1, DELETE)
    other = backend.open()
    log.append([rec(topic, {"id": 1}, {"v": 1}, partition=0)])
    assert log.pending == 1
    assert other.read(topic, 0, 0, 10) == []
    log.discard()
    assert log.pending == 0
    log.flush()
    assert other.read(topic, 0, 0, 10) == []
    log.append([rec(topic, {"id": 2}, {"v": 2}, partition=0)])
    log.flush()
    assert [orjson.loads(r.key or b"") for r in other.read(topic, 0, 0, 10)] == [{"id": 2}]


def test_a_large_batch_round_trips_in_order(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    log.create_topic(topic, 1, DELETE)
    values = [{"i": i, "pad": "x" * 200} for i in range(6000)]
    log.append(rec(topic, {"id": i % 50}, v, partition=0) for i, v in enumerate(values))
    log.flush()
    read: list[Record] = []
    while batch := log.read(topic, 0, len(read), 2500):
        read += batch
    assert [orjson.loads(r.value or b"") for r in read] == values


# -- topics ------------------------------------------------------------------------------------


def test_topic_admin(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    assert log.describe(topic) is None
    info = log.create_topic(topic, 1, COMPACT)
    assert info.name == topic and info.partitions >= 1
    again = log.create_topic(topic, 1, COMPACT)
    assert again.partitions == info.partitions
    assert topic in {t.name for t in log.list_topics()}
    log.append([rec(topic, {"id": 1}, {"v": 1}, partition=0)])
    log.flush()
    described = log.describe(topic)
    assert described is not None and described.records >= 1
    assert described.details[0].next_offset >= 1
    with pytest.raises(ConfigError):
        log.read(backend.topic("missing"), 0, 0, 1)


def test_topic_configs_are_kept(log: Log, backend: Backend) -> None:
    backend.need("configs")
    topic = backend.topic()
    config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"}
    log.create_topic(topic, 1, config)
    info = backend.open().describe(topic)
    assert info is not None and info.unchecked is None
    assert info.config.compacted and info.config.min_compaction_lag_ms == 3_600_000


def test_delete_topic(log: Log, backend: Backend) -> None:
    backend.need("delete")
    topic = backend.topic()
    log.create_topic(topic, 1, DELETE)
    log.delete_topic(topic)
    deadline = time.monotonic() + 30
    while log.describe(topic) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert log.describe(topic) is None


def test_compact_keeps_the_latest_record_per_key(log: Log, backend: Backend) -> None:
    backend.need("compaction")
    topic = backend.topic()
    log.create_topic(topic, 1, {**COMPACT, "min.compaction.lag.ms": "0"})
    log.append(rec(topic, {"id": i % 3}, {"v": i}) for i in range(9))
    log.flush()
    log.compact(topic)
    assert sorted(orjson.loads(r.value or b"")["v"] for r in every(log, topic)) == [6, 7, 8]


# -- positions, reader offsets, schemas --------------------------------------------------------


def test_positions_are_stored_with_the_records(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    name = POSITION.replace("shop", backend.topic("shop"))
    log.create_topic(topic, 1, DELETE)
    assert log.source_position(name) is None
    log.append([rec(topic, {"id": 1}, {"v": 1})])
    log.flush(positions={name: {"lsn": 100, "txId": 7, "lsn_commit": 90}})
    log.flush(positions={name: {"lsn": 200, "txId": 8, "lsn_commit": 190}})
    other = backend.open()
    assert other.source_position(name) == {"lsn": 200, "txId": 8, "lsn_commit": 190}
    assert other.source_position(name.replace("inventory", "other")) is None
    assert len(every(other, topic)) == 1


def test_reader_offsets(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    group = backend.topic("group")
    count = log.create_topic(topic, 2, DELETE).partitions
    log.append(rec(topic, {"id": i}, {"v": i}) for i in range(10))
    if backend.exactly_once:
        backend.need("txn-offsets")
    log.flush(reader_offsets={group: {(topic, 0): 3}})
    assert backend.open().reader_offsets(group) == {(topic, 0): 3}
    log.commit_offsets(group, {(topic, 0): 4, (topic, count - 1): 1})
    stored = backend.open().reader_offsets(group)
    assert stored == {(topic, 0): 4, (topic, count - 1): 1}
    assert log.reader_offsets(backend.topic("nobody")) == {}


def test_schemas_are_content_addressed_and_travel(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    log.create_topic(topic, 1, DELETE)
    first = schema("customers", "id", "balance")
    sid = log.register_schema(first)
    assert log.register_schema(schema("customers", "id", "balance")) == sid
    other_id = log.register_schema(schema("orders", "id"))
    assert other_id != sid
    log.append([rec(topic, {"id": 1}, {"id": 1, "balance": 5}, schema_id=sid, partition=0),
                rec(topic, {"id": 1}, None, schema_id=sid, partition=0)])
    log.flush()
    reader = backend.open()
    stored, tombstone = reader.read(topic, 0, 0, 10)
    assert stored.schema_id == sid and tombstone.schema_id == sid
    assert orjson.loads(stored.value or b"") == {"id": 1, "balance": 5}
    assert tombstone.value is None
    assert reader.schema(sid) == first
    assert reader.schema(sid).meta.primary_key == ("id",)
    with pytest.raises(ConfigError):
        reader.schema(max(sid, other_id) + 1000)


# -- reading while writing, transactions, groups -----------------------------------------------


def test_a_follower_sees_every_record_while_a_writer_appends(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    count = log.create_topic(topic, 2, DELETE).partitions
    total = 400
    seen: list[Record] = []

    def write() -> None:
        for batch in range(8):
            log.append(rec(topic, {"id": batch * 50 + i}, {"n": batch * 50 + i})
                       for i in range(50))
            log.flush()
            time.sleep(0.05)

    writer = threading.Thread(target=write)
    reader = TopicReader(backend.open(), topic, StartAt())
    writer.start()
    for record in reader.records(follow=True):
        seen.append(record)
        if len(seen) == total:
            break
    writer.join()
    assert sorted(orjson.loads(r.value or b"")["n"] for r in seen) == list(range(total))
    for partition in range(count):
        offsets = [r.offset for r in seen if r.partition == partition]
        assert offsets == sorted(offsets)


def test_a_transaction_is_all_or_nothing(log: Log, backend: Backend) -> None:
    backend.need("atomic")
    topic = backend.topic()
    name = POSITION.replace("shop", backend.topic("shop"))
    log.create_topic(topic, 1, DELETE)
    reader = backend.open()
    with pytest.raises(RuntimeError), log.transaction():
        log.append([rec(topic, {"id": 1}, {"v": 1}, partition=0)])
        log.flush()
        raise RuntimeError("crash mid-snapshot")
    with log.transaction():
        log.append([rec(topic, {"id": 2}, {"v": 2}, partition=0)])
        log.flush()
        assert [r for r in reader.read(topic, 0, 0, 10) if r.value] == []
        log.append([rec(topic, {"id": 3}, {"v": 3}, partition=0)])
        log.flush(positions={name: {"lsn": 5}})
    keys = [orjson.loads(r.key or b"")["id"] for r in reader.read(topic, 0, 0, 10)]
    assert keys == [2, 3]
    assert reader.source_position(name) == {"lsn": 5}


def test_transactions_do_not_nest(log: Log) -> None:
    with log.transaction(), pytest.raises(ConfigError), log.transaction():
        pass


def test_a_group_member_starts_at_stored_offsets_and_commits(log: Log, backend: Backend) -> None:
    topic = backend.topic()
    group = backend.topic("group")
    count = log.create_topic(topic, 2, DELETE).partitions
    log.append(rec(topic, {"id": i}, {"v": i}) for i in range(40))
    log.flush()
    ends = log.end_offsets(topic)
    assigned: list[tuple[str, int]] = []

    def on_assign(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        assigned.extend(partitions)
        return {(topic, 0): 2}

    member = backend.open().join_group(group, [topic], on_assign=on_assign)
    got: list[Record] = []
    deadline = time.monotonic() + 30
    expected = 40 - len([r for r in log.read(topic, 0, 0, 2) if r.offset < 2])
    while len(got) < expected and time.monotonic() < deadline:
        got += member.poll(0.5)
    assert sorted(assigned) == [(topic, p) for p in range(count)]
    assert sorted(member.assignment()) == [(topic, p) for p in range(count)]
    assert len(got) == expected
    assert all(r.offset >= 2 for r in got if r.partition == 0)
    member.commit({(topic, 0): ends[0]})  # a plain group commit, also in exactly-once mode
    member.close()
    assert backend.open().reader_offsets(group).get((topic, 0)) == ends[0]
