"""A point in time resolved against a topic: per partition, where its history is cut.

A :class:`Cut` says, per partition, the first offset *after* the point: the records
below it happened at or before the point. Offsets give the cut directly. A time is found
by binary search over the partition (commit times grow with offsets, since a partition
holds its changes in commit order), reading a few records per probe. An LSN needs a
scan: change positions do not grow with offsets (a transaction that started earlier can
commit later), so the cut is before the first transaction, in commit order, with a
change past the LSN; every later transaction committed after it. A transaction's
records are never split, and a tombstone stays with the delete before it.

A time or LSN before a topic's initial snapshot is refused: the snapshot reads the rows
as they were when it was taken, so the table before it is not in the log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from duality.errors import ConfigError, GapError
from duality.log.base import Log, LogReader
from duality.tables.points import (
    OffsetPoint,
    Point,
    TimePoint,
    show_lsn,
    show_offset,
    show_time,
)
from duality.tables.timeline import Change, GapWatch, gap_watch, parse_change, read_range

PROBE = 64


@dataclass(frozen=True, slots=True)
class Cut:
    """Records at offsets below ``ends[p]`` are at or before ``point``. Where offsets
    right after the cut were removed from the log (``unsure[p]``: the first offset after
    them), the point may fall anywhere among them."""

    point: Point
    ends: Mapping[int, int]
    unsure: Mapping[int, int] = field(default_factory=dict)

    def shown(self) -> str:
        """The cut as offsets: ``offsets < 42`` or ``0:<42, 1:<17``."""
        if len(self.ends) == 1:
            ((_, end),) = self.ends.items()
            return f"offsets < {end}"
        return ", ".join(f"{p}:<{e}" for p, e in sorted(self.ends.items()))


def resolve(log: Log, topic: str, point: Point) -> Cut:
    """The cut of ``point`` in ``topic`` as the log holds it now."""
    ends = log.end_offsets(topic)
    if isinstance(point, OffsetPoint):
        return Cut(point, _offset_ends(topic, point, ends))
    if isinstance(point, TimePoint):
        found = {p: _time_cut(log, topic, p, end, point.micros) for p, end in ends.items()}
    else:
        found = _lsn_ends(log, topic, ends, point.lsn)
    watch = gap_watch(log, topic)
    cuts, unsure = {}, {}
    for partition, end in found.items():
        cuts[partition] = _before_gap(log, topic, partition, end, watch)
        if cuts[partition] < end:
            unsure[partition] = end
        _refuse_before_snapshot(log, topic, partition, cuts[partition], point, len(ends))
    return Cut(point, cuts, unsure)


def _before_gap(log: LogReader, topic: str, partition: int, cut: int, watch: GapWatch) -> int:
    """Where the cut moves when offsets right before it were removed from the log: to
    the first of them (a time or an LSN says nothing about records that are gone)."""
    span = PROBE
    while cut > 0:
        start = max(cut - span, 0)
        records = [r for r in log.read(topic, partition, start, cut - start) if r.offset < cut]
        if records:
            last = records[-1]
            young = watch.young_after is not None and last.timestamp > watch.young_after
            return cut if last.offset + 1 == cut or young else last.offset + 1
        if start == 0:
            return 0
        span *= 16
    return cut


def end_cut(log: Log, topic: str, point: Point) -> Cut:
    """The cut at the log's end: every record is in."""
    return Cut(point, log.end_offsets(topic))


def _offset_ends(topic: str, point: OffsetPoint, ends: Mapping[int, int]) -> dict[int, int]:
    offsets = dict(point.offsets)
    if None in offsets:
        if len(ends) > 1:
            raise ConfigError(
                f"topic {topic!r} has {len(ends)} partitions; give an offset for each as "
                f"P:N,P:N… (e.g. {','.join(f'{p}:{e - 1}' for p, e in sorted(ends.items()))}), "
                f"or a time or an LSN, which apply to every partition"
            )
        offsets = {0: offsets[None]}
    missing = sorted(set(ends) - set(offsets))
    unknown = sorted(p for p in offsets if p is not None and p not in ends)
    if unknown:
        raise ConfigError(f"topic {topic!r} has no partition {unknown[0]} "
                          f"(it has {len(ends)})")
    if missing:
        raise ConfigError(
            f"offsets {point.text!r} name no offset for partition(s) "
            f"{', '.join(map(str, missing))} of topic {topic!r}; a point needs one per partition"
        )
    out = {}
    for partition, offset in offsets.items():
        assert partition is not None
        if offset >= ends[partition]:
            raise ConfigError(
                f"offset {show_offset(partition, offset, len(ends))} is past the end of topic "
                f"{topic!r} (partition {partition} ends before offset {ends[partition]})"
            )
        out[partition] = offset + 1
    return out


# -- times ---------------------------------------------------------------------------------


def _first_timed(log: LogReader, topic: str, partition: int, offset: int, end: int
                 ) -> Change | None:
    """The first record with a source time at or after ``offset`` (None: none before end)."""
    while offset < end:
        batch = [r for r in log.read(topic, partition, offset, PROBE) if r.offset < end]
        if not batch:
            return None
        for record in batch:
            change = parse_change(record)
            if change.timed:
                return change
        offset = batch[-1].offset + 1
    return None


def _time_cut(log: LogReader, topic: str, partition: int, end: int, micros: int) -> int:
    """The offset of the first change committed after ``micros`` (binary search)."""
    first = _first_timed(log, topic, partition, 0, end)
    if first is None:
        if end:
            raise ConfigError(
                f"topic {topic!r} partition {partition} has no source times (its records are "
                f"not Debezium change events); give the point as an offset"
            )
        return end
    lo, hi = 0, end  # find the smallest o whose first timed record is after the point
    while lo < hi:
        mid = (lo + hi) // 2
        found = _first_timed(log, topic, partition, mid, end)
        if found is None or (found.ts_us or 0) > micros:
            hi = mid
        else:
            lo = mid + 1
    found = _first_timed(log, topic, partition, lo, end)
    return end if found is None else found.offset


# -- LSNs ----------------------------------------------------------------------------------


def _lsn_ends(log: LogReader, topic: str, ends: Mapping[int, int], lsn: int) -> dict[int, int]:
    cuts: dict[int, int] = {}
    boundary: set[object] = set()
    for partition, end in ends.items():
        cut, tx = _lsn_cut(log, topic, partition, end, lsn)
        cuts[partition] = cut
        if tx is not None:
            boundary.add(tx)
    if len(ends) > 1 and boundary:
        # A transaction cut in one partition is cut in all of them.
        for partition, cut in cuts.items():
            for change in _changes(log, topic, partition, 0, cut):
                if change.tx in boundary and change.timed:
                    cuts[partition] = change.offset
                    break
    return cuts


def _changes(log: LogReader, topic: str, partition: int, start: int, end: int
             ) -> Iterator[Change]:
    for record in read_range(log, topic, partition, start, end):
        yield parse_change(record)


def _lsn_cut(log: LogReader, topic: str, partition: int, end: int, lsn: int
             ) -> tuple[int, object]:
    """The first offset of the first transaction with a change past ``lsn``, and its txId."""
    run_tx: object = None
    run_start = 0
    for change in _changes(log, topic, partition, 0, end):
        if not change.timed:
            continue
        tx = (change.tx, change.op == "r")  # snapshot reads are not the next transaction
        if change.tx is None or tx != run_tx:
            run_tx, run_start = tx, change.offset
        if change.lsn is not None and change.lsn > lsn:
            return (run_start if change.tx is not None else change.offset), change.tx
    return end, None


def _refuse_before_snapshot(
    log: LogReader, topic: str, partition: int, cut: int, point: Point, partitions: int
) -> None:
    first = _first_timed(log, topic, partition, 0, log.end_offsets(topic)[partition])
    if first is None or first.op != "r" or cut > first.offset:
        return
    when = show_time(first.ts_us or 0)
    where = f" at LSN {show_lsn(first.lsn)}" if first.lsn is not None else ""
    raise GapError(
        f"{point.text!r} is before the snapshot with which topic {topic!r} begins (taken "
        f"{when}{where}, from offset {show_offset(partition, first.offset, partitions)}): "
        f"the snapshot read the rows as they were then, so the table before it is not in "
        f"the log. Give a point at or after {when}."
    )
