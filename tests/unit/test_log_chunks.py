"""The embedded log's chunks: appended records packed in one pass equal the items path
(number, split, pack) that compaction uses, and unpack to what was appended."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duality.events.model import NewRecord, Record
from duality.log import sqlite_store
from duality.log.sqlite import SqliteLog
from duality.log.sqlite_chunks import (
    CHUNK_BYTES,
    CHUNK_RECORDS,
    HEADER_SIZE,
    Item,
    decode_headers,
    encode_headers,
    pack,
    pack_appended,
    split,
    take,
    unpack,
)

STAMP = 1_700_000_000_000
blobs = st.one_of(
    st.none(),
    st.binary(max_size=40),
    # a third of a chunk, exactly a chunk with its header, more than a chunk
    st.sampled_from([CHUNK_BYTES // 3, CHUNK_BYTES - HEADER_SIZE, CHUNK_BYTES]).map(
        lambda n: b"v" * n
    ),
)
records = st.builds(
    NewRecord,
    topic=st.just("t"),
    key=blobs,
    value=blobs,
    headers=st.lists(st.tuples(st.sampled_from(["h", "é"]), st.none() | st.binary(max_size=4)),
                     max_size=2).map(tuple),
    schema_id=st.none() | st.integers(0, 9),
    timestamp=st.none() | st.integers(0, 2 * STAMP),
)


def _items(batch: list[NewRecord], first: int) -> list[Item]:
    return [
        (first + i, STAMP if r.timestamp is None else r.timestamp, r.key, r.value,
         encode_headers(r.headers), r.schema_id)
        for i, r in enumerate(batch)
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=12), st.integers(0, 1 << 39))
def test_appended_records_pack_as_the_items_path_packs_them(
    batch: list[NewRecord], first: int
) -> None:
    items = _items(batch, first)
    chunks = pack_appended(batch, first, STAMP)
    assert chunks == [pack(run) for run in split(items)]
    assert [item for c in chunks for item in unpack(c.first, c.data)] == items


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=12), st.integers(0, 14), st.integers(0, 14),
       st.integers(0, 3))
def test_take_reads_what_unpack_reads_from_an_offset_up_to_a_limit(
    batch: list[NewRecord], skip: int, limit: int, already: int
) -> None:
    first = 40
    chunk = pack(_items(batch, first))
    out: list[Record] = [Record("x", 0, i, 0, None, None) for i in range(already)]
    take(out, "t", 3, first, chunk.data, first + skip, limit)
    wanted = [
        Record("t", 3, offset, ts, key, value, decode_headers(headers), schema_id)
        for offset, ts, key, value, headers, schema_id in unpack(first, chunk.data)
        if offset >= first + skip
    ][: max(limit - already, 0)]
    assert out[already:] == wanted
    assert len(out) == max(already, min(limit, already + len(wanted)))


def test_a_chunk_closes_at_its_record_limit() -> None:
    batch = [NewRecord("t", b"%d" % i, b"v") for i in range(2 * CHUNK_RECORDS + 5)]
    chunks = pack_appended(batch, 7, STAMP)
    assert [(c.first, c.records) for c in chunks] == [
        (7, CHUNK_RECORDS), (7 + CHUNK_RECORDS, CHUNK_RECORDS), (7 + 2 * CHUNK_RECORDS, 5)
    ]
    assert pack_appended([], 7, STAMP) == []


def test_a_flush_of_more_chunks_than_one_insert_takes_reads_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_CHUNKS_PER_INSERT", 2)
    count = 5 * CHUNK_RECORDS + 3  # six chunks: three statements
    with SqliteLog(f"sqlite:///{tmp_path / 'log.db'}") as log:
        log.create_topic("t", partitions=1)
        log.append(NewRecord("t", b"%d" % i, b"v%d" % i) for i in range(count))
        log.flush()
        got = log.read("t", 0, 0, count + 1)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, b"%d" % i, b"v%d" % i) for i in range(count)
    ]
