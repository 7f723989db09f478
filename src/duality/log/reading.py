"""Reading a topic across its partitions: where to start, and following new records.

A :class:`TopicReader` works on any log. On the embedded log it polls with short read
transactions (one query per partition per poll), so any number of readers can follow
a log while a writer appends; on Kafka, the log's consumer fetches in the background
and a poll takes what has arrived.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from duality.errors import ConfigError, GapError
from duality.events.model import Record
from duality.log.base import Log, LogReader

POLL_INTERVAL_S = 0.05
CHUNK = 2000


def check_not_ahead(log: LogReader, topic: str, partition: int, applied: int, holder: str,
                    fix: str) -> None:
    """A reader that keeps its own offsets (``holder``: a table store, a target) found
    ``applied`` past the end it read for the partition: past the log's end now too, the
    log or the topic was made again since (end offsets never go back otherwise), and
    going on would mix two logs' records or skip the new one's. ``fix``: what to do."""
    end = log.end_offsets(topic).get(partition, 0)
    if applied > end:
        raise GapError(
            f"{holder} has applied topic {topic!r} partition {partition} up to offset "
            f"{applied}, but the log's partition ends at offset {end}: the log or the "
            f"topic was made again since. {fix}"
        )


def check_origin(log: LogReader, topic: str, stored: str | None, holder: str,
                 fix: str) -> str | None:
    """The topic's origin (:meth:`~duality.log.base.LogReader.topic_origin`) for a reader
    that keeps its own offsets (``holder``) to store beside them; refuses when it stored
    another one: the topic, or the whole log, was made again since, and its offsets
    would skip the new topic's first records or mix two topics' rows. ``fix``: what to
    do. (A log made again that is still shorter is caught by :func:`check_not_ahead` too,
    also on Kafka.)"""
    origin = log.topic_origin(topic)
    if stored is not None and origin is not None and origin != stored:
        raise GapError(
            f"{holder} has applied topic {topic!r} of another log, or of a topic of that "
            f"name since deleted: the log or the topic was made again since, and its "
            f"offsets do not belong to this one. {fix}"
        )
    return origin if origin is not None else stored


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where reading starts: ``last`` records per partition (like ``tail``), the
    beginning, or an explicit offset (of one partition, or of the only one)."""

    last: int | None = None
    offset: int | None = None
    partition: int | None = None


def parse_offset(text: str) -> tuple[int | None, int]:
    """``N`` or ``P:N`` → (partition or None, offset)."""
    part, sep, off = text.partition(":")
    try:
        partition, offset = (int(part), int(off)) if sep else (None, int(part))
    except ValueError:
        partition, offset = None, -1
    if not 0 <= offset < 2**63 or not (partition is None or 0 <= partition < 2**31):
        raise ConfigError(
            f"offset {text!r} is not valid: use N for a single-partition topic, P:N otherwise "
            f"(N from 0 to 2^63-1)"
        )
    return partition, offset


class TopicReader:
    """Iterates a topic's records from a start point, optionally following it."""

    def __init__(self, log: Log, topic: str, start: StartAt) -> None:
        self.log = log
        self.topic = topic
        ends = log.end_offsets(topic)
        self.positions = self._start_positions(ends, start)

    def _start_positions(self, ends: dict[int, int], start: StartAt) -> dict[int, int]:
        if start.offset is not None:
            if start.partition is None and len(ends) > 1:
                raise ConfigError(
                    f"topic {self.topic!r} has {len(ends)} partitions; give the offset as "
                    f"P:N (partition:offset)"
                )
            partition = start.partition or 0
            if partition not in ends:
                raise ConfigError(f"topic {self.topic!r} has no partition {partition}")
            return {partition: start.offset}
        if start.last is not None:
            return {p: self._nth_from_end(p, end, start.last) for p, end in ends.items()}
        return dict.fromkeys(ends, 0)

    def _nth_from_end(self, partition: int, end: int, count: int) -> int:
        """The offset from which ``count`` records remain (compaction leaves gaps)."""
        offset = max(end - count, 0)
        while offset > 0:
            found = len(self.log.read(self.topic, partition, offset, count + 1))
            if found >= count:
                break
            offset = max(offset - 2 * count, 0)
        records = self.log.read(self.topic, partition, offset, end - offset)
        return records[-count].offset if len(records) >= count else offset

    def poll(self) -> list[Record]:
        """The next records of every partition, merged by timestamp."""
        batches = []
        for partition, offset in self.positions.items():
            records = self.log.read(self.topic, partition, offset, CHUNK)
            if records:
                self.positions[partition] = records[-1].offset + 1
                batches.append(records)
        if len(batches) == 1:
            return batches[0]
        return list(heapq.merge(*batches, key=lambda r: (r.timestamp, r.partition, r.offset)))

    def records(
        self, *, follow: bool = False, caught_up: Callable[[], None] | None = None
    ) -> Iterator[Record]:
        """Records until the end (or forever, with ``follow``); ``caught_up`` is called
        each time the reader has given every record there is and waits for more."""
        while True:
            # Taken before polling, so a change that lands during the poll is not missed.
            version = self.log.data_version() if follow else 0
            batch = self.poll()
            yield from batch
            if not batch:
                if not follow:
                    return
                if caught_up is not None:
                    caught_up()
                self._wait(version)

    def _wait(self, version: int) -> None:
        while self.log.data_version() == version:
            time.sleep(POLL_INTERVAL_S)
