"""The apply loop: topics of the log → tables in a table store. The only place that
orders the store's commits.

Every batch (:meth:`Materializer.apply_batch`) is one store transaction, in this order:

1. read the topic's applied offsets (and the tombstone carry) from the store;
2. read records from the log from those offsets;
3. decode and fold them, writing rows as the fold goes (a truncate or a change of the
   table's shape is carried out where it occurs, between the rows before and after it);
4. update aggregates over the table from the rows' before/after images;
5. store the new offsets and table metadata;
6. commit — rows, aggregates, offsets and (while somebody follows a table, see
   :mod:`duality.tables.journal`) the journal of its changes become durable together;
7. hand the changes to the listener, if any.

A crash anywhere before 6 leaves the store as it was; the next run applies the same
records again. Applying a committed batch again cannot happen: offsets only move in
the transaction that applied the rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from duality.events.model import Record
from duality.log.base import LogReader
from duality.log.reading import check_not_ahead, check_origin
from duality.runtime import collector
from duality.tables import journal
from duality.tables.batch import Pending, RowChange, fold_ordered
from duality.tables.decode import Barrier, Reshape, TableView, TopicDecoder, TruncateTable
from duality.tables.derived import Aggregates
from duality.tables.fold import truncated
from duality.tables.shape import EMPTY, Shape
from duality.tables.sqlite import Offsets, TableInfo, TableStore
from duality.testing import crash_point

#: Records per batch (one store transaction).
BATCH_RECORDS = 20_000
POLL_INTERVAL_S = 0.05
#: What to do when the store's offsets belong to a log or topic made again since.
REBUILD = ("Build the table anew from this log: remove the table store file, or give another "
           "--store.")

Listener = Callable[[TableInfo, list[RowChange]], None]
#: The changes of a batch, each with the table's shape when it was made.
Changes = list[tuple[Shape, RowChange]]


@dataclass(slots=True)
class ApplyStats:
    records: int = 0
    batches: int = 0


class Materializer:
    """Folds ``topics`` of ``log`` into ``store`` (see the module docstring). With a
    ``listener``, every change is reported after its batch commits."""

    def __init__(
        self,
        log: LogReader,
        store: TableStore,
        topics: Sequence[str],
        *,
        batch_records: int = BATCH_RECORDS,
        listener: Listener | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.topics = list(topics)
        self.batch_records = batch_records
        self.listener = listener
        self.stats = ApplyStats()
        self._decoders: dict[str, TopicDecoder] = {}

    def catch_up(self) -> ApplyStats:
        """Apply every record that is in the log now (up to the end offsets read first)."""
        targets = {topic: self.log.end_offsets(topic) for topic in self.topics}
        for topic, ends in targets.items():
            while self.apply_batch(topic, ends):
                pass
        return self.stats

    def follow(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Catch up, then keep applying new records until ``stop()`` is true."""
        while not stop():
            version = _data_version(self.log)
            applied = sum(self.apply_batch(topic, None) for topic in self.topics)
            if applied:
                continue
            while not stop() and _data_version(self.log) == version:
                time.sleep(POLL_INTERVAL_S)

    # -- one batch --------------------------------------------------------------------

    def apply_batch(self, topic: str, ends: dict[int, int] | None) -> int:
        """Apply one batch of ``topic`` (up to ``ends``, or to the log's end); returns
        the number of records read."""
        store = self.store
        changes: Changes = []
        with collector.paused(), store.writing(f"applying topic {topic!r}"):
            info = store.info(topic) or store.create(topic, "topic", EMPTY)
            origin = check_origin(self.log, topic, info.origin, "the table store", REBUILD)
            info = info if origin == info.origin else replace(info, origin=origin)
            offsets = store.offsets(topic)  # 1
            ends = ends if ends is not None else self.log.end_offsets(topic)
            records, advanced = self._read(topic, offsets, ends)  # 2
            if not records and advanced == offsets:
                return 0
            decoder = self._decoder(topic, info, advanced)
            aggregates = Aggregates.over(store, info)
            followed = journal.followed(store.conn, [topic, *(m.info.name for m in aggregates)])
            info = self._fold(info, decoder, records, aggregates, changes,
                              ordered=bool(followed))  # 3, 4
            counts = decoder.counts
            for partition, (offset, _) in advanced.items():
                advanced[partition] = (offset, counts.carry.get(partition))
            info = replace(
                info,
                null_keys=info.null_keys + counts.null_keys,
                skipped=info.skipped + counts.skipped,
            )
            store.save(info)
            store.save_offsets(topic, advanced)  # 5
            self._journal(topic, changes, aggregates, followed)
            crash_point("tables.before-commit")
        crash_point("tables.committed")  # 6
        self.stats.records += len(records)
        self.stats.batches += 1
        if self.listener is not None:  # 7
            if changes:
                self.listener(info, [change for _, change in changes])
            for member in aggregates:
                if member.changes:
                    self.listener(member.info, member.changes)
        return len(records) or 1

    def _read(
        self, topic: str, offsets: Offsets, ends: dict[int, int]
    ) -> tuple[list[Record], Offsets]:
        """Records from the applied offsets, and the offsets after them. A partition whose
        remaining offsets were all compacted away advances to its end."""
        records: list[Record] = []
        advanced: Offsets = {}
        budget = self.batch_records
        for partition, end in sorted(ends.items()):
            start, carry = offsets.get(partition, (0, None))
            advanced[partition] = (start, carry)
            if start > end:
                check_not_ahead(self.log, topic, partition, start, "the table store", REBUILD)
            if start >= end or budget <= 0:
                continue
            batch = self.log.read(topic, partition, start, min(budget, end - start))
            batch = [r for r in batch if r.offset < end]
            if batch:
                advanced[partition] = (batch[-1].offset + 1, carry)
                records += batch
                budget -= len(batch)
            else:
                advanced[partition] = (end, carry)
        return records, advanced

    def _decoder(self, topic: str, info: TableInfo, offsets: Offsets) -> TopicDecoder:
        decoder = self._decoders.get(topic)
        if decoder is None:
            decoder = self._decoders[topic] = TopicDecoder(topic, _view(info), self.log.schema)
        decoder.reset(_view(info))
        decoder.counts.null_keys = decoder.counts.skipped = 0
        decoder.counts.carry = {p: carry for p, (_, carry) in offsets.items() if carry}
        return decoder

    def _journal(
        self, topic: str, changes: Changes, aggregates: Aggregates, followed: set[str]
    ) -> None:
        """Journal the batch's changes of every table somebody follows."""
        if topic in followed:
            for shape, change in changes:
                journal.append(self.store.conn, topic, shape, [change])
        for member in aggregates:
            if member.info.name in followed and member.changes:
                journal.append(self.store.conn, member.info.name, member.info.shape,
                               member.changes)

    def _fold(
        self,
        info: TableInfo,
        decoder: TopicDecoder,
        records: list[Record],
        aggregates: Aggregates,
        changes: Changes,
        *,
        ordered: bool = False,
    ) -> TableInfo:
        ordered = ordered or self.listener is not None or bool(aggregates)
        pending = Pending(ordered=ordered)
        index = 0
        while True:
            index, barrier = decoder.feed(records, index, pending)
            if barrier is None:
                break
            self._flush(info, pending, aggregates, changes)
            info = self._barrier(info, barrier, aggregates, changes)
            # (an aggregate the barrier made fit again joins: changes are then ordered)
            pending = Pending(ordered=ordered or bool(aggregates))
            decoder.reset(_view(info))
            if not barrier.refeed:
                index += 1
        self._flush(info, pending, aggregates, changes)
        crash_point("tables.batch-written")
        return info

    def _flush(
        self,
        info: TableInfo,
        pending: Pending,
        aggregates: Aggregates,
        changes: Changes,
    ) -> None:
        if not len(pending):
            return
        if not pending.ordered:
            self.store.write_winners(info, pending.winners, pending.kept)
            return
        stored = self.store.load_states(info, pending.keys())
        folded = fold_ordered(pending.ops, stored)
        self.store.write_states(info, folded.finals)
        changes += [(info.shape, change) for change in folded.changes]
        aggregates.update(folded.net)

    def _barrier(
        self,
        info: TableInfo,
        barrier: Barrier,
        aggregates: Aggregates,
        changes: Changes,
    ) -> TableInfo:
        if isinstance(barrier, TruncateTable):
            position = barrier.op.position
            if truncated(position, info.watermark):
                return info
            self.store.truncate(info, position)
            changes.append((info.shape, RowChange("t", None, None, None)))
            aggregates.rebuild(info)
            if position is not None:
                info = self.store.save(replace(info, watermark=position))
            return info
        assert isinstance(barrier, Reshape)
        if barrier.shape != info.shape:
            info = self.store.reshape(info, barrier.shape)
            aggregates.rebuild(info)
        if barrier.schema_id is not None:
            info = self.store.save(
                replace(info, schema_id=barrier.schema_id, schema_position=barrier.position)
            )
        return info


def _view(info: TableInfo) -> TableView:
    return TableView(info.shape, info.schema_id, info.schema_position, info.watermark)


def _data_version(log: LogReader) -> int:
    return log.data_version()
