"""The embedded log's chunks: appended records packed in one pass equal the items path
(number, split, pack) that compaction uses, and unpack to what was appended; the C
reader (``duality.log._chunks``, where built) takes the same records as the Python one,
and both refuse a damaged chunk."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duality.errors import LogError
from duality.events.model import NewRecord, Record
from duality.log import sqlite_chunks, sqlite_store
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
    unpack,
)

try:
    from duality.log import _chunks
except ImportError:  # an editable install: the log reads with the Python take
    _chunks = None  # type: ignore[assignment]

Take = Callable[[list[Record], str, int, int, bytes, int, int], None]
TAKES = [pytest.param(sqlite_chunks.take, id="python"), pytest.param(
    _chunks.take if _chunks is not None else None, id="c", marks=pytest.mark.skipif(
        _chunks is None, reason="duality.log._chunks is not built (an editable install); "
        "./scripts/test installs the package with it"))]

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


@pytest.mark.parametrize("take", TAKES)
@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=12), st.integers(0, 14), st.integers(0, 14),
       st.integers(0, 3))
def test_take_reads_what_unpack_reads_from_an_offset_up_to_a_limit(
    take: Take, batch: list[NewRecord], skip: int, limit: int, already: int
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
    assert all(type(record) is Record for record in out)
    assert len(out) == max(already, min(limit, already + len(wanted)))


@pytest.mark.parametrize("take", TAKES)
def test_take_makes_records_of_extreme_fields(take: Take) -> None:
    """Offsets past 2**32 (a chunk's first offset plus a 32-bit delta), timestamps of
    either sign, empty keys and values, headers, schema ids: as the Python reader."""
    first = (1 << 40) + 5
    items: list[Item] = [
        (first, -(1 << 62), b"", b"", None, 0),
        (first + (1 << 32) - 2, (1 << 63) - 1, None, None, encode_headers((("h", b"\xff"),)),
         (1 << 31) - 1),
        (first + (1 << 32) - 1, 0, b"k", b"v" * 70_000, None, None),
    ]
    out: list[Record] = []
    take(out, "t\u00e9", 65_535, first, pack(items).data, 0, 10)
    assert out == [
        Record("t\u00e9", 65_535, first, -(1 << 62), b"", b"", (), 0),
        Record("t\u00e9", 65_535, first + (1 << 32) - 2, (1 << 63) - 1, None, None,
               (("h", b"\xff"),), (1 << 31) - 1),
        Record("t\u00e9", 65_535, first + (1 << 32) - 1, 0, b"k", b"v" * 70_000, (), None),
    ]
    assert out[0].is_tombstone is False and out[1].is_tombstone is True


@pytest.mark.skipif(_chunks is None, reason="duality.log._chunks is not built (an editable "
                    "install); ./scripts/test installs the package with it")
def test_c_records_of_atomic_fields_are_left_out_of_the_cyclic_collector() -> None:
    """They cannot be in a cycle; those with headers (tuples of tuples) are tracked."""
    items: list[Item] = [(7, 1, b"k", b"v", None, 3), (8, 1, None, None, None, None),
                         (9, 1, b"k", b"v", encode_headers((("h", b"x"),)), None)]
    out: list[Record] = []
    _chunks.take(out, "t", 0, 7, pack(items).data, 0, 10)
    assert [gc.is_tracked(record) for record in out] == [False, False, True]
    gc.collect()
    assert out[0] == Record("t", 0, 7, 1, b"k", b"v", (), 3)


@pytest.mark.parametrize("take", TAKES)
@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 1])
def test_take_refuses_a_chunk_that_ends_inside_a_record(take: Take, cut: int) -> None:
    data = pack([(9, 1, b"key", b"val", None, None), (10, 1, b"k", b"v", None, None)]).data
    damaged = data[: HEADER_SIZE + 6 + cut]  # the first record whole, then part of one
    with pytest.raises(ValueError, match=r"offset (9|10) ends inside a record"):
        take([], "t", 0, 9, damaged, 0, 5)
    out: list[Record] = []
    take(out, "t", 0, 9, damaged, 0, 1)  # what comes before the damage reads
    assert [r.key for r in out] == [b"key"]


def test_a_damaged_chunk_in_the_file_is_a_log_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SqliteLog(f"sqlite:///{path}") as log:
        log.create_topic("t", partitions=1)
        log.append(NewRecord("t", b"k%d" % i, b"v%d" % i) for i in range(3))
        log.flush()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE chunks SET data = substr(data, 1, length(data) - 1)")
    with SqliteLog(f"sqlite:///{path}", create=False) as log, pytest.raises(
        LogError, match=r"log file .*log\.db is damaged: reading topic 't' partition 0 "
        r"from offset 0: .*offset 2 ends inside a record.*Restore it from a copy"
    ):
        log.read("t", 0, 0, 10)


def test_c_reader_built() -> None:
    """A compiled install (``pip install .``, as the test command makes) reads the log
    in C: its absence would silently make every read three times slower."""
    if not sqlite_chunks.__file__ or sqlite_chunks.__file__.endswith(".py"):
        pytest.skip("an editable install, whose modules are not compiled")
    assert _chunks is not None
    from duality.log import sqlite

    assert sqlite.take is _chunks.take


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
