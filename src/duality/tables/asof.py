"""A table as of an earlier point: ``duality table TOPIC --as-of POINT``.

Two ways give the table at a point, and they agree wherever both are exact:

- **forward**: fold the topic from its start up to the cut (:mod:`.cuts`), as the table
  store folds it (the same apply loop, into a temporary store). Exact when no record
  before the cut was removed, or when the cut is past every record the compaction
  cleaner may have touched (records younger than ``min.compaction.lag.ms`` stop it; the
  table at such a cut is the fold of what survives, which compaction keeps equal).
- **backward**: start from the current table (the table store, caught up first) and walk
  back through the before-images of the records after the cut (:mod:`.walkback`).

The one that reads fewer records goes first: forward reads the records before the cut;
backward reads the ones after it, plus what the store has not applied yet. When it
cannot be exact the other is tried; when neither can, nothing is printed and the
:class:`~duality.errors.GapError` names the offsets and keys at fault and the setting
that keeps history (``min.compaction.lag.ms``, ``REPLICA IDENTITY FULL``).

The result is a read-only :class:`~duality.tables.query.Table` over a temporary store,
removed when the context ends.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from duality.errors import ConfigError, GapError
from duality.events.model import Record
from duality.events.schema import RecordSchema
from duality.log.base import Log, LogReader
from duality.tables import store_file as files
from duality.tables.api import store_url_for
from duality.tables.cuts import Cut, resolve
from duality.tables.points import Point, parse_point
from duality.tables.query import Table, open_connection
from duality.tables.sqlite import TableInfo, TableStore
from duality.tables.timeline import GapWatch, gap_watch, read_range, show_ranges
from duality.tables.walkback import restore, walk_back

METHODS = ("auto", "forward", "backward")
#: Keys named in a refusal, at most.
SHOWN_KEYS = 12


@dataclass(frozen=True, slots=True)
class AsOf:
    """The table at ``cut``, computed by ``method`` after reading ``read`` records."""

    table: Table
    cut: Cut
    method: str
    read: int


@dataclass(slots=True)
class _Blocked:
    method: str
    problems: dict[str, list[str]] = field(default_factory=dict)

    def text(self) -> str:
        parts = [f"{reason}: {_listed(wheres)}" for reason, wheres in self.problems.items()]
        return f"{self.method}: " + "; ".join(parts)


def _listed(items: list[str]) -> str:
    unique = list(dict.fromkeys(items))
    shown = ", ".join(unique[:SHOWN_KEYS])
    return shown + (f" and {len(unique) - SHOWN_KEYS} more" if len(unique) > SHOWN_KEYS else "")


@contextlib.contextmanager
def as_of(
    topic: str, point: Point | str, *, log: Log, store: str | None = None,
    method: str = "auto", batch_records: int | None = None,
) -> Iterator[AsOf]:
    """The table of ``topic`` at ``point`` (see the module docstring). ``store`` is the
    table store holding the current table (default: beside the log); ``method`` forces
    ``forward`` or ``backward``."""
    if method not in METHODS:
        raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}")
    parsed = parse_point(point) if isinstance(point, str) else point
    cut = resolve(log, topic, parsed)
    store_url = store_url_for(log, store)
    order = _order(log, topic, cut, store_url) if method == "auto" else [method]
    directory = Path(tempfile.mkdtemp(prefix="duality-asof-"))
    try:
        blocked = []
        for chosen in order:
            target = TableStore(f"sqlite://{directory / f'{chosen}.db'}")
            try:
                result = _compute(chosen, log, topic, cut, store_url, target, batch_records)
            finally:
                target.close()
            if isinstance(result, _Blocked):
                blocked.append(result)
                continue
            info, read = result
            connection = open_connection(target.url)
            try:
                yield AsOf(Table(connection, info), cut, chosen, read)
            finally:
                connection.close()
            return
        raise _refusal(topic, parsed, blocked)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _order(log: Log, topic: str, cut: Cut, store_url: str) -> list[str]:
    """Both methods, the one that reads fewer records first."""
    info = log.describe(topic)
    firsts = {p.partition: p.first_offset for p in info.details} if info else {}
    ends = log.end_offsets(topic)
    forward = sum(max(end - firsts.get(p, 0), 0) for p, end in cut.ends.items())
    applied: Mapping[int, int] = {}
    if files.store_path(store_url).exists():
        with TableStore(store_url) as current:
            applied = {p: o for p, (o, _) in current.offsets(topic).items()}
    backward = sum(ends[p] - cut.ends[p] + ends[p] - applied.get(p, 0) for p in ends)
    return ["forward", "backward"] if forward <= backward else ["backward", "forward"]


def _compute(
    method: str, log: Log, topic: str, cut: Cut, store_url: str, target: TableStore,
    batch_records: int | None,
) -> tuple[TableInfo, int] | _Blocked:
    if method == "forward":
        return _forward(log, topic, cut, target, batch_records)
    return _backward(log, topic, cut, store_url, target, batch_records)


# -- forward -------------------------------------------------------------------------------


class _Watched:
    """The log as the apply loop reads it, with every record below the cut reported to
    a :class:`GapWatch` (so one read both folds and finds lost offsets)."""

    def __init__(self, log: LogReader, cut: Cut, watch: GapWatch) -> None:
        self._log, self._cut, self._watch = log, cut, watch
        for partition in cut.ends:
            watch.start(partition, 0)
        self.read_count = 0

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        records = self._log.read(topic, partition, offset, max_records)
        end = self._cut.ends.get(partition, 0)
        for record in records:
            if record.offset < end:
                self._watch.see(record)
                self.read_count += 1
        return records

    def end_offsets(self, topic: str) -> dict[int, int]:
        return dict(self._cut.ends)

    def topic_origin(self, topic: str) -> str | None:
        return self._log.topic_origin(topic)

    def schema(self, schema_id: int) -> RecordSchema:
        return self._log.schema(schema_id)

    def source_position(self, name: str) -> dict[str, object] | None:
        return self._log.source_position(name)

    def reader_offsets(self, group: str) -> dict[tuple[str, int], int]:
        return self._log.reader_offsets(group)

    def data_version(self) -> int:
        return self._log.data_version()


def _forward(
    log: Log, topic: str, cut: Cut, target: TableStore, batch_records: int | None
) -> tuple[TableInfo, int] | _Blocked:
    from duality.runtime.materialize import BATCH_RECORDS, Materializer

    watch = gap_watch(log, topic)
    watched = _Watched(log, cut, watch)
    applier = Materializer(watched, target, [topic], batch_records=batch_records or BATCH_RECORDS)
    ends = dict(cut.ends)
    while applier.apply_batch(topic, ends):
        pass
    blocked = _Blocked("forward from the start")
    for partition, after in sorted(cut.unsure.items()):
        blocked.problems.setdefault(
            "records around the point were removed from the log, so which of them were "
            "before it is not known", []
        ).append(f"offsets {show_ranges([(cut.ends[partition], after)])} "
                 f"({watch.setting}; a longer min.compaction.lag.ms keeps more history)")
    for partition, end in sorted(cut.ends.items()):
        watch.close(partition, end)
        lost = watch.lost_before(partition, end)
        if lost and partition not in watch.young and not _young_at(log, topic, partition, end,
                                                                    watch):
            _name_lost(blocked, log, topic, partition, end, lost, watch, len(cut.ends))
    if blocked.problems:
        return blocked
    info = target.info(topic)
    assert info is not None
    return info, watched.read_count


def _young_at(log: LogReader, topic: str, partition: int, cut: int, watch: GapWatch) -> bool:
    """Whether the first record at or after the cut is younger than the compaction lag
    (then every record the cleaner touched is before the cut), or the cut is at the
    partition's end (compaction keeps the fold of the whole partition)."""
    if watch.young_after is None:
        return False
    found = log.read(topic, partition, cut, 1)
    if not found:
        return cut >= log.end_offsets(topic)[partition]
    return found[0].timestamp > watch.young_after


def _name_lost(
    blocked: _Blocked, log: LogReader, topic: str, partition: int, cut: int,
    lost: list[tuple[int, int]], watch: GapWatch, partitions: int,
) -> None:
    where = f"partition {partition} " if partitions > 1 else ""
    blocked.problems.setdefault("records before the point were removed from the log", []).append(
        f"{where}offsets {show_ranges(lost)} ({watch.setting}; a longer "
        f"min.compaction.lag.ms keeps more history)"
    )
    keys = []
    end = log.end_offsets(topic)[partition]
    for record in read_range(log, topic, partition, cut, end):
        if watch.young_after is not None and record.timestamp > watch.young_after:
            break
        if record.key is not None:
            keys.append(record.key.decode("utf-8", "replace"))
        if len(set(keys)) > SHOWN_KEYS:
            break
    if keys:
        blocked.problems.setdefault(
            "rows that may have changed in the removed records (besides keys the removed "
            "records alone held)", []
        ).extend(keys)


# -- backward ------------------------------------------------------------------------------


def _backward(
    log: Log, topic: str, cut: Cut, store_url: str, target: TableStore,
    batch_records: int | None,
) -> tuple[TableInfo, int] | _Blocked:
    from duality.runtime.materialize import BATCH_RECORDS, Materializer

    with TableStore(store_url) as current:
        applier = Materializer(log, current, [topic], batch_records=batch_records or BATCH_RECORDS)
        caught_up = applier.catch_up().records
        info = current.info(topic)
        if info is None or info.source != "topic":
            raise ConfigError(f"{topic!r} is not a topic's table in {store_url}")
        walk = walk_back(log, topic, cut, current, info, gap_watch(log, topic))
        if walk.problems:
            return _Blocked("backward from the current table", walk.problems)
        made = restore(target, current, info, walk)
    return made, caught_up + walk.read


def _refusal(topic: str, point: Point, blocked: list[_Blocked]) -> GapError:
    reasons = " | ".join(b.text() for b in blocked)
    return GapError(
        f"the table {topic!r} as of {point.text!r} cannot be known exactly, so nothing is "
        f"printed. {reasons}"
    )
