"""The Log seam: what capture writes to and what tables, targets and tools read from.

Implementations (the embedded SQLite log, Kafka) do not inherit from these Protocols;
they are chosen by URL scheme in :func:`duality.log.open_log`.

Offsets follow Kafka: per partition they start at 0, only grow, and are never reused,
also after compaction removed the latest records. "Next offset" is the offset the next
appended record will get, so a partition's records are ``[first, next)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from duality.events.model import NewRecord, Record
from duality.events.schema import RecordSchema
from duality.log.config import TopicConfig

#: A reader's progress: (topic, partition) → the next offset it will read.
OffsetMap = Mapping[tuple[str, int], int]
Partition = tuple[str, int]
#: Called with partitions given to a group member; returns the offsets its store has.
OnAssign = Callable[[list[Partition]], Mapping[Partition, int]]
#: Called with partitions about to be taken from a group member.
OnRevoke = Callable[[list[Partition]], None]


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    first_offset: int
    next_offset: int
    records: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    config: TopicConfig
    #: The keys the topic was created with (the rest are defaults).
    overrides: Mapping[str, str] = field(default_factory=dict)
    details: tuple[PartitionInfo, ...] = ()
    #: Why ``config`` could not be read from where the topic lives (a Kafka broker that
    #: refuses DescribeConfigs); ``config`` then holds Kafka's defaults. None: checked.
    unchecked: str | None = None

    @property
    def records(self) -> int:
        return sum(p.records for p in self.details)


@dataclass(frozen=True, slots=True)
class CompactionReport:
    topic: str
    removed: int
    tombstones_removed: int
    expired: int

    @property
    def total(self) -> int:
        return self.removed + self.tombstones_removed + self.expired


class TopicAdmin(Protocol):
    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None
    ) -> TopicInfo:
        """Create a topic; an existing topic with the same settings is returned as is."""
        ...

    def describe(self, name: str) -> TopicInfo | None: ...

    def list_topics(self) -> list[TopicInfo]: ...

    def delete_topic(self, name: str) -> None: ...


class LogWriter(Protocol):
    def register_schema(self, schema: RecordSchema) -> int:
        """Durably register a schema; an equal schema returns the same id."""
        ...

    def append(self, records: Iterable[NewRecord]) -> None:
        """Buffer records; nothing is visible or durable until :meth:`flush`."""
        ...

    @property
    def pending(self) -> int:
        """Records appended and not yet flushed."""
        ...

    def discard(self) -> None:
        """Drop every record appended since the last flush."""
        ...

    def flush(
        self,
        positions: Mapping[str, Mapping[str, Any]] | None = None,
        reader_offsets: Mapping[str, OffsetMap] | None = None,
    ) -> None:
        """Make every buffered record durable and visible, atomically with the given
        source positions (name → position) and reader offsets (group → offsets).
        When it returns, all of it survives kill -9 and power loss (embedded log), or
        every record was acknowledged by all in-sync replicas before the positions and
        offsets were written (Kafka). When it raises, none of it was written (embedded
        log, and Kafka in exactly-once mode); on Kafka without exactly-once, records
        may have been delivered while the positions were not stored."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Make every flush inside one atomic unit: readers see all of it or (after an
        error or a crash) none of it. Kafka keeps this promise in exactly-once mode
        only (read_committed readers); otherwise each flush is visible as it returns."""
        ...


class LogReader(Protocol):
    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        """Records at ``offset`` or later, in offset order (gaps where compacted): at most
        ``max_records``, possibly fewer before the end (Kafka returns what has been
        fetched so far); empty only at the end. Read again from the next offset."""
        ...

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset of each partition."""
        ...

    def topic_origin(self, topic: str) -> str | None:
        """Which making of ``topic`` this is: it differs once the topic, or the whole log,
        was made again, so a reader keeping its own offsets can tell that they belong to
        another topic. None where the log cannot tell (Kafka)."""
        ...

    def schema(self, schema_id: int) -> RecordSchema: ...

    def source_position(self, name: str) -> dict[str, Any] | None: ...

    def reader_offsets(self, group: str) -> dict[tuple[str, int], int]: ...

    def data_version(self) -> int:
        """A number that changes when records may have arrived: a cheap "anything
        new?" poll for readers that follow a topic."""
        ...


class GroupReader(Protocol):
    def poll(self, timeout: float) -> list[Record]:
        """The next records of this member's partitions; waits up to ``timeout``
        seconds when there are none (and serves rebalances meanwhile)."""
        ...

    def assignment(self) -> list[Partition]:
        """The partitions this member reads now."""
        ...

    def commit(self, offsets: OffsetMap) -> None:
        """Record the next offsets to read as the group's offsets (a hint for members
        without a store of their own, and for monitoring)."""
        ...

    def close(self) -> None:
        """Leave the group (its partitions go to the other members)."""
        ...


class Log(TopicAdmin, LogWriter, LogReader, Protocol):
    """The whole seam, as :func:`duality.log.open_log` returns it."""

    url: str

    def compact(self, topic: str | None = None) -> list[CompactionReport]:
        """Apply cleanup policies now where the log can (the embedded log); Kafka's
        brokers clean on their own schedule, so there it reports nothing."""
        ...

    def commit_offsets(self, group: str, offsets: OffsetMap) -> None:
        """Store a reader group's offsets (alone, without records)."""
        ...

    def join_group(
        self,
        group: str,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> GroupReader:
        """Read ``topics`` as one member of ``group`` (see :mod:`duality.log.groups`)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Log: ...

    def __exit__(self, *exc: object) -> None: ...


Batch = Sequence[NewRecord]
