"""A topic's records as changes in time, and the history the log no longer holds.

:func:`parse_change` reads what time travel needs from a record: the op, both row images,
when the change was committed (``source.ts_us``, else ``ts_ms``), its WAL position
(``source.lsn``) and transaction (``source.txId``). Tombstones and records that are not
Debezium envelopes keep their op as None or ``""``.

:class:`GapWatch` notices offsets that are missing from a partition while its records are
read in order, and decides which of them are *lost history*:

- on a compacted topic, the cleaner only removes records older than
  ``min.compaction.lag.ms`` (by record timestamp), and only before the first record that
  was younger than that when it ran. A gap after a record that is younger than the lag
  *now* was not made by compaction (on Kafka: a transaction marker or an aborted record),
  so it loses nothing; every other gap may have held changes;
- on a topic whose cleanup policy deletes, every missing offset was removed by retention.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from duality.errors import ConfigError
from duality.events.model import Record
from duality.log.base import LogReader, TopicAdmin
from duality.log.config import TopicConfig
from duality.tables.records import loads, parse_value, payload_of

READ_CHUNK = 5000
#: How far back to look for the change before an offset (a run of tombstones is short).
LOOK_BACK = 64
OLD_KEY = "__debezium.oldkey"
NEW_KEY = "__debezium.newkey"
#: Ops that change rows; ``t`` truncates; anything else (``m``) is not a row change.
ROW_OPS = frozenset("cudr")


@dataclass(frozen=True, slots=True)
class Change:
    """One record as a change (see the module docstring)."""

    record: Record
    #: ``c u d r t m`` for envelopes, None for a tombstone, ``""`` for other records.
    op: str | None
    before: Any = None
    after: Any = None
    ts_us: int | None = None
    lsn: int | None = None
    tx: Any = None
    schema: str | None = None
    table: str | None = None

    @property
    def partition(self) -> int:
        return self.record.partition

    @property
    def offset(self) -> int:
        return self.record.offset

    @property
    def timed(self) -> bool:
        return self.ts_us is not None

    def header(self, name: str) -> bytes | None:
        for key, value in self.record.headers:
            if key == name:
                return value
        return None

    def parsed_key(self) -> Any:
        return None if self.record.key is None else payload_of(loads(self.record.key))

    def order(self) -> tuple[int, int]:
        """(commit time, WAL position) for ordering changes across partitions."""
        return (self.ts_us or 0, self.lsn or 0)


def full_identity(change: Change) -> str:
    """The statement that makes the source keep whole before-images of ``change``'s table."""
    if isinstance(change.schema, str) and isinstance(change.table, str):
        name = ".".join('"' + n.replace('"', '""') + '"' for n in (change.schema, change.table))
    else:
        name = "…"
    return f"ALTER TABLE {name} REPLICA IDENTITY FULL"


def parse_change(record: Record) -> Change:
    if record.value is None:
        return Change(record, None)
    payload, _ = parse_value(record.value)
    if type(payload) is not dict or "op" not in payload or not (
        "after" in payload or "before" in payload
    ):
        return Change(record, "", after=payload)
    source = payload.get("source")
    source = source if type(source) is dict else {}
    ts_us = source.get("ts_us")
    if type(ts_us) is not int:
        ts_ms = source.get("ts_ms")
        ts_us = ts_ms * 1000 if type(ts_ms) is int else None
    lsn = source.get("lsn")
    return Change(
        record, str(payload["op"]), payload.get("before"), payload.get("after"), ts_us,
        lsn if type(lsn) is int else None, source.get("txId"), source.get("schema"),
        source.get("table"),
    )


@dataclass(slots=True)
class GapWatch:
    """Missing offsets of partitions read in order (see the module docstring)."""

    #: Records with a timestamp after this (ms) are younger than the compaction lag;
    #: None on a topic whose cleanup deletes (every gap is lost history).
    young_after: int | None
    setting: str
    expected: dict[int, int] = field(default_factory=dict)
    young: set[int] = field(default_factory=set)
    #: partition → lost ranges [first, end) of offsets
    lost: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def start(self, partition: int, offset: int) -> None:
        self.expected.setdefault(partition, offset)

    def see(self, record: Record) -> None:
        partition = record.partition
        expected = self.expected.get(partition, record.offset)
        if record.offset > expected:
            self._gap(partition, expected, record.offset)
        self.expected[partition] = max(expected, record.offset + 1)
        if self.young_after is not None and record.timestamp > self.young_after:
            self.young.add(partition)

    def close(self, partition: int, end: int) -> None:
        """Reading ``partition`` stopped at ``end``: offsets not seen before it are missing."""
        expected = self.expected.get(partition, end)
        if end > expected:
            self._gap(partition, expected, end)
            self.expected[partition] = end

    def _gap(self, partition: int, first: int, end: int) -> None:
        if partition in self.young:
            return  # not compaction: the cleaner never reaches past a young record
        ranges = self.lost.setdefault(partition, [])
        if ranges and ranges[-1][1] == first:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((first, end))

    def lost_before(self, partition: int, end: int) -> list[tuple[int, int]]:
        return [(a, min(b, end)) for a, b in self.lost.get(partition, []) if a < end]

    @property
    def any_lost(self) -> bool:
        return any(self.lost.values())


def gap_watch(log: TopicAdmin, topic: str) -> GapWatch:
    """A :class:`GapWatch` for ``topic`` under its cleanup policy, as of now."""
    info = log.describe(topic)
    if info is None:
        raise ConfigError(f"topic {topic!r} does not exist in the log; see duality topics")
    return watch_for(info.config)


def watch_for(config: TopicConfig, now_ms: int | None = None) -> GapWatch:
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if config.deletes:
        return GapWatch(None, f"retention.ms={config.retention_ms}, "
                              f"retention.bytes={config.retention_bytes}")
    return GapWatch(now - config.min_compaction_lag_ms,
                    f"min.compaction.lag.ms={config.min_compaction_lag_ms}")


def read_range(
    log: LogReader, topic: str, partition: int, start: int, end: int,
    watch: GapWatch | None = None,
) -> Iterator[Record]:
    """Records of ``partition`` at offsets [start, end), in order, reported to ``watch``."""
    offset = start
    if watch is not None:
        watch.start(partition, start)
    while offset < end:
        batch = log.read(topic, partition, offset, min(READ_CHUNK, end - offset))
        batch = [r for r in batch if r.offset < end]
        if not batch:
            break
        for record in batch:
            if watch is not None:
                watch.see(record)
            yield record
        offset = batch[-1].offset + 1
    if watch is not None:
        watch.close(partition, end)


def change_before(log: LogReader, topic: str, partition: int, offset: int) -> Change | None:
    """The last record with a source time before ``offset`` (None: none shortly before)."""
    start = max(offset - LOOK_BACK, 0)
    found = None
    for record in log.read(topic, partition, start, offset - start) if offset > start else ():
        change = parse_change(record)
        if record.offset < offset and change.timed:
            found = change
    return found


def show_ranges(ranges: list[tuple[int, int]], limit: int = 8) -> str:
    """``3-17, 22`` for offset ranges [first, end)."""
    parts = [str(a) if b - a == 1 else f"{a}-{b - 1}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"… ({len(ranges) - limit} more ranges)")
    return ", ".join(parts)
