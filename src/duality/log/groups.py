"""Reading as one member of a group: each member takes a share of the partitions.

``log.join_group(group, topics, on_assign=…, on_revoke=…)`` returns a
:class:`~duality.log.base.GroupReader`. On Kafka the group is a consumer group:
processes that join with the same name split the topics' partitions between them and
rebalance when one joins or leaves (:mod:`duality.log.kafka_group`). On the embedded
log a group has a single member, which reads every partition
(:class:`LocalGroupReader`).

Offsets belong to the reader's own store (a table store, a target database), written
in the same transaction as the rows they describe (DESIGN.md, delivery rule 4):

* ``on_assign(partitions)`` is called when partitions are given to this member and
  returns the offsets stored for them; a partition it leaves out starts at the group's
  committed offset (a hint, see :meth:`GroupReader.commit`) or else at the beginning;
* ``on_revoke(partitions)`` is called before partitions are taken away: make the work
  done for them durable now, because another member continues from what is stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from duality.events.model import Record
from duality.log.base import GroupReader, Log, OffsetMap, OnAssign, OnRevoke, Partition

CHUNK = 2000


class LocalGroupReader:
    """The only member of a group on a log without group coordination."""

    def __init__(
        self,
        log: Log,
        group: str,
        topics: Sequence[str],
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
    ) -> None:
        self.log = log
        self.group = group
        self._on_revoke = on_revoke
        partitions = [(t, p) for t in topics for p in sorted(log.end_offsets(t))]
        stored = dict(on_assign(partitions)) if on_assign else {}
        hints = log.reader_offsets(group)
        self._next = {tp: stored.get(tp, hints.get(tp, 0)) for tp in partitions}

    def assignment(self) -> list[Partition]:
        return list(self._next)

    def poll(self, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            version = self.log.data_version()
            out: list[Record] = []
            for (topic, partition), offset in self._next.items():
                records = self.log.read(topic, partition, offset, CHUNK)
                if records:
                    self._next[(topic, partition)] = records[-1].offset + 1
                    out += records
            if out or time.monotonic() >= deadline:
                return out
            while self.log.data_version() == version and time.monotonic() < deadline:
                time.sleep(0.05)

    def commit(self, offsets: OffsetMap) -> None:
        self.log.commit_offsets(self.group, offsets)

    def close(self) -> None:
        if self._on_revoke is not None:
            self._on_revoke(self.assignment())
        self._next.clear()


__all__ = ["GroupReader", "LocalGroupReader", "OnAssign", "OnRevoke", "Partition"]
