"""Cleaning a topic of the embedded log, as Kafka's log cleaner and retention do.

Per partition, inside the caller's write transaction:

* ``compact``: the *cleanable* part of a partition is every record before the first
  one younger than ``min.compaction.lag.ms`` (by record timestamp). In it, only the
  latest record of each key survives, at its original offset; a tombstone that
  survives is removed once it is older than ``delete.retention.ms``. Records in the
  uncleanable tail are never touched, so history younger than the lag stays whole.
* ``delete``: records before the first one younger than ``retention.ms`` are removed,
  then the oldest records while the partition holds more than ``retention.bytes``
  (key plus value bytes).

Offsets never change and ``next_offset`` is untouched, so producing after a
compaction continues where it was. A chunk that loses records is rewritten with the
survivors (its row id follows its first surviving offset).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator

from duality.log.base import CompactionReport, TopicInfo
from duality.log.sqlite_chunks import Item, unpack
from duality.log.sqlite_store import MAX_OFFSET, OFFSET_BITS, write_chunks

Keep = Callable[[Item], bool]


def clean_topic(conn: sqlite3.Connection, info: TopicInfo, now: int) -> CompactionReport:
    removed = tombstones = expired = 0
    for (pid,) in conn.execute(
        "SELECT p.id FROM partitions p JOIN topics t ON t.id = p.topic_id WHERE t.name = ?",
        (info.name,),
    ).fetchall():
        lo = pid << OFFSET_BITS
        config = info.config
        if config.compacted:
            dropped, dead = _compact(
                conn, lo, now - config.min_compaction_lag_ms, now - config.delete_retention_ms
            )
            removed += dropped
            tombstones += dead
        if config.deletes:
            if config.retention_ms >= 0:
                expired += _delete_before(
                    conn, lo, _first_at_or_after(conn, lo, now - config.retention_ms)
                )
            if config.retention_bytes >= 0:
                expired += _delete_before(
                    conn, lo, _size_boundary(conn, lo, config.retention_bytes)
                )
    return CompactionReport(info.name, removed, tombstones, expired)


def _chunks(conn: sqlite3.Connection, lo: int) -> Iterator[tuple[int, bytes]]:
    """A partition's chunks in order, one in memory at a time (ids are read first, so
    rewriting chunks while iterating is safe)."""
    ids = conn.execute(
        "SELECT id FROM chunks WHERE id >= ? AND id < ? ORDER BY id", (lo, lo + MAX_OFFSET + 1)
    ).fetchall()
    for (chunk_id,) in ids:
        row = conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is not None:
            yield chunk_id - lo, row[0]


def _records(conn: sqlite3.Connection, lo: int) -> Iterator[Item]:
    for first, data in _chunks(conn, lo):
        yield from unpack(first, data)


def _compact(
    conn: sqlite3.Connection, lo: int, lag_cutoff: int, tomb_cutoff: int
) -> tuple[int, int]:
    boundary = None
    latest: dict[bytes, int] = {}
    for offset, ts, key, *_ in _records(conn, lo):
        if ts > lag_cutoff:
            boundary = offset
            break
        if key is not None:
            latest[key] = offset
    limit = MAX_OFFSET + 1 if boundary is None else boundary
    counts = [0, 0]

    def keep(item: Item) -> bool:
        offset, ts, key, value = item[0], item[1], item[2], item[3]
        if offset >= limit or key is None:
            return True
        if latest[key] != offset:
            counts[0] += 1
            return False
        if value is None and ts < tomb_cutoff:
            counts[1] += 1
            return False
        return True

    _rewrite(conn, lo, keep, upto=limit)
    return counts[0], counts[1]


def _first_at_or_after(conn: sqlite3.Connection, lo: int, cutoff: int) -> int:
    """The offset of the first record not older than ``cutoff`` (end if none)."""
    for offset, ts, *_ in _records(conn, lo):
        if ts >= cutoff:
            return offset
    return MAX_OFFSET + 1


def _size_boundary(conn: sqlite3.Connection, lo: int, limit: int) -> int:
    """The first offset to keep so the partition holds at most ``limit`` bytes. Reads
    chunk sizes newest first, one row at a time, and the records of only the chunk
    where the limit falls: a partition can be far larger than memory."""
    total = 0
    with contextlib.closing(
        conn.execute(
            "SELECT id, size FROM chunks WHERE id >= ? AND id < ? ORDER BY id DESC",
            (lo, lo + MAX_OFFSET + 1),
        )
    ) as sizes:
        for chunk_id, size in sizes:
            if total + size <= limit:
                total += size
                continue
            (data,) = conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
            for offset, _ts, key, value, *_ in reversed(list(unpack(chunk_id - lo, data))):
                total += len(key or b"") + len(value or b"")
                if total > limit:
                    return offset + 1
    return 0


def _delete_before(conn: sqlite3.Connection, lo: int, boundary: int) -> int:
    counts = [0]

    def keep(item: Item) -> bool:
        if item[0] < boundary:
            counts[0] += 1
            return False
        return True

    _rewrite(conn, lo, keep, upto=boundary)
    return counts[0]


def _rewrite(conn: sqlite3.Connection, lo: int, keep: Keep, *, upto: int) -> None:
    """Apply ``keep`` to every record of chunks starting before offset ``upto``;
    rewrite the chunks that lose records."""
    for first, data in _chunks(conn, lo):
        if first >= upto:
            break
        items = list(unpack(first, data))
        kept = [item for item in items if keep(item)]
        if len(kept) == len(items):
            continue
        conn.execute("DELETE FROM chunks WHERE id = ?", (lo + first,))
        if kept:
            write_chunks(conn, lo >> OFFSET_BITS, kept)
