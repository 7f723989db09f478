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
compaction continues where it was.
"""

from __future__ import annotations

import sqlite3

from duality.log.base import CompactionReport, TopicInfo
from duality.log.sqlite_store import MAX_OFFSET, OFFSET_BITS


def clean_topic(conn: sqlite3.Connection, info: TopicInfo, now: int) -> CompactionReport:
    removed = tombstones = expired = 0
    for (pid,) in conn.execute(
        "SELECT p.id FROM partitions p JOIN topics t ON t.id = p.topic_id WHERE t.name = ?",
        (info.name,),
    ).fetchall():
        lo = pid << OFFSET_BITS
        hi = lo + MAX_OFFSET + 1
        config = info.config
        if config.compacted:
            boundary = _first_younger(conn, lo, hi, now - config.min_compaction_lag_ms)
            removed += _drop_superseded(conn, lo, boundary)
            tombstones += _drop_tombstones(conn, lo, boundary, now - config.delete_retention_ms)
        if config.deletes:
            if config.retention_ms >= 0:
                boundary = _first_younger(conn, lo, hi, now - config.retention_ms)
                expired += _delete_range(conn, lo, boundary)
            if config.retention_bytes >= 0:
                expired += _trim_to_size(conn, lo, hi, config.retention_bytes)
    return CompactionReport(info.name, removed, tombstones, expired)


def _first_younger(conn: sqlite3.Connection, lo: int, hi: int, cutoff: int) -> int:
    """The id of the first record with a timestamp after ``cutoff`` (``hi`` if none)."""
    row = conn.execute(
        "SELECT min(id) FROM records WHERE id >= ? AND id < ? AND ts > ?", (lo, hi, cutoff)
    ).fetchone()
    return hi if row[0] is None else int(row[0])


def _drop_superseded(conn: sqlite3.Connection, lo: int, boundary: int) -> int:
    cur = conn.execute(
        "DELETE FROM records WHERE id >= ?1 AND id < ?2 AND key IS NOT NULL "
        "AND id NOT IN (SELECT max(id) FROM records WHERE id >= ?1 AND id < ?2 "
        "AND key IS NOT NULL GROUP BY key)",
        (lo, boundary),
    )
    return cur.rowcount


def _drop_tombstones(conn: sqlite3.Connection, lo: int, boundary: int, cutoff: int) -> int:
    cur = conn.execute(
        "DELETE FROM records WHERE id >= ? AND id < ? AND value IS NULL AND ts < ?",
        (lo, boundary, cutoff),
    )
    return cur.rowcount


def _delete_range(conn: sqlite3.Connection, lo: int, boundary: int) -> int:
    return conn.execute("DELETE FROM records WHERE id >= ? AND id < ?", (lo, boundary)).rowcount


def _trim_to_size(conn: sqlite3.Connection, lo: int, hi: int, limit: int) -> int:
    row = conn.execute(
        "SELECT id FROM (SELECT id, sum(coalesce(length(key), 0) + coalesce(length(value), 0)) "
        "OVER (ORDER BY id DESC) AS total FROM records WHERE id >= ? AND id < ?) "
        "WHERE total > ? ORDER BY id DESC LIMIT 1",
        (lo, hi, limit),
    ).fetchone()
    if row is None:
        return 0
    return _delete_range(conn, lo, int(row[0]) + 1)
