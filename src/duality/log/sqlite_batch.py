"""The embedded log's per-record write path, compiled with mypyc: placing appended
records in their partitions (``sqlite_chunks.pack_appended`` then packs each
partition's batch).

Every captured change passes through here once (a delete twice, with its tombstone),
so nothing here is done per record that can be done per topic or per batch. In pure
Python these loops cost about 1 µs per record, about a tenth of capture's whole budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from duality.errors import ConfigError
from duality.events.model import NewRecord
from duality.events.partitioner import partition_for

#: Appended records not yet flushed, by (topic, partition), in append order.
Pending = dict[tuple[str, int], list[NewRecord]]


class Topic:
    """What the writer caches about a topic to place records without a query."""

    def __init__(self, name: str, partitions: int, compacted: bool) -> None:
        self.name = name
        self.partitions = partitions
        self.compacted = compacted
        self._turn = 0

    def next_partition(self) -> int:
        """Where a record without a key goes: each partition in turn."""
        partition = self._turn
        self._turn = (partition + 1) % self.partitions
        return partition


def place(records: Iterable[NewRecord], pending: Pending, topic_of: Callable[[str], Topic]) -> None:
    """Add ``records`` to ``pending`` under their topic and partition: the one given,
    else the key's (Kafka's partitioner), else the topic's next in turn. A record that
    cannot be placed raises, with the records before it already added."""
    topic: Topic | None = None
    bucket: list[NewRecord] = []
    where = ("", -1)
    for record in records:
        name = record.topic
        if topic is None or topic.name != name:
            topic = topic_of(name)
        partition = record.partition
        key = record.key
        if partition is None:
            if key is None:
                partition = topic.next_partition()
            else:
                partition = partition_for(key, topic.partitions)
        elif not 0 <= partition < topic.partitions:
            raise ConfigError(
                f"topic {name!r} has {topic.partitions} partition(s); "
                f"partition {partition} does not exist"
            )
        if key is None and topic.compacted:
            raise ConfigError(
                f"topic {name!r} is compacted (cleanup.policy=compact) and refuses "
                f"records with a null key, as Kafka does; give the record a key, or "
                f"write it to a topic created with --config cleanup.policy=delete"
            )
        if where[1] != partition or where[0] != name:
            where = (name, partition)
            found = pending.get(where)
            if found is None:
                found = pending[where] = []
            bucket = found
        bucket.append(record)
