"""Walking a table back from its current state through the before-images of later changes.

The window is every record from the cut to what the table store has applied. Per key,
the first change in the window says what the row was at the cut: a create says there
was none, an update or a delete carries the whole row it replaced in its before-image,
and an update that moved the row to another key says the new key had no row.

That is only exact when the window holds every change with a whole before-image, and
the store's rows came from exactly these changes. So a walk refuses (and says why, with
keys and offsets) when the window holds

- an update or delete whose before-image is incomplete: the registered schema's replica
  identity is not FULL, or a value is the unchanged-TOAST placeholder;
- a truncate (the rows it removed are not in the log), a snapshot read (the row's state
  before it is not either), a tombstone without its delete, records that are not change
  events, or lost offsets (compaction, retention);
- a schema change, or changes whose source positions do not grow (a redelivered
  window: the fold ignored some of them), or a key whose stored position is not its
  last change's.

Nothing is written until the whole window is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from duality.events.schema import RecordSchema
from duality.log.base import LogReader
from duality.tables import codec as codecs
from duality.tables import ddl
from duality.tables.cuts import Cut
from duality.tables.decode import DEFAULT_PLACEHOLDER
from duality.tables.fold import Key, RowState, Values, Where
from duality.tables.records import position_of
from duality.tables.shape import field_codecs
from duality.tables.sqlite import TableInfo, TableStore
from duality.tables.timeline import (
    OLD_KEY,
    Change,
    GapWatch,
    change_before,
    full_identity,
    parse_change,
    read_range,
)


@dataclass(slots=True)
class Walk:
    """What a walk found: the row of each key at the cut (None: no row), or why the
    walk cannot be exact."""

    rows: dict[Key, Values | None] = field(default_factory=dict)
    wheres: dict[Key, Where] = field(default_factory=dict)
    last: dict[Key, int | None] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    read: int = 0

    def refuse(self, reason: str, where: str) -> None:
        self.problems.setdefault(reason, []).append(where)


def walk_back(
    log: LogReader, topic: str, cut: Cut, store: TableStore, info: TableInfo, watch: GapWatch
) -> Walk:
    """The rows at ``cut`` of every key the window after it touches (see the module
    docstring); ``store`` holds the current table ``info``."""
    walk = Walk()
    if info.schema_id is None or not info.shape.typed:
        walk.refuse("the table has no registered schema", "its records carry none")
        return walk
    schema = log.schema(info.schema_id)
    placeholder = schema.meta.unavailable_placeholder or DEFAULT_PLACEHOLDER
    codec = codecs.typed_codec(info.shape, field_codecs(schema), placeholder)
    applied = {p: offset for p, (offset, _) in store.offsets(topic).items()}
    walker = _Walker(walk, info, schema, codec, len(cut.ends))
    windows = 0
    for partition, start in sorted(cut.ends.items()):
        end = applied.get(partition, 0)
        walker.previous = None
        windows += start < end
        if start > 0:
            walker.boundary(change_before(log, topic, partition, start), window=start < end)
        for record in read_range(log, topic, partition, start, end, watch):
            walk.read += 1
            walker.step(parse_change(record))
        for first, stop in watch.lost_before(partition, end):
            walk.refuse("offsets were removed from the log",
                        f"{walker.at(partition, first)}-{stop - 1} ({watch.setting})")
    if windows and not walker.shaped:
        walk.refuse("the window starts at the beginning of the topic",
                    "nothing before it shows the table's shape")
    if not walk.problems:
        _check_store(walk, store, info)
    return walk


class _Walker:
    """Checks one change after another and keeps each key's first state."""

    def __init__(self, walk: Walk, info: TableInfo, schema: RecordSchema,
                 codec: codecs.RowCodec, partitions: int) -> None:
        self.walk, self.info, self.codec = walk, info, codec
        self.complete = schema.meta.complete_before_images
        self.partitions = partitions
        self.previous: Change | None = None
        #: whether a change before the window shows the table's shape at the cut
        self.shaped = False

    def at(self, partition: int, offset: int) -> str:
        return str(offset) if self.partitions == 1 else f"{partition}:{offset}"

    def boundary(self, change: Change | None, *, window: bool) -> None:
        """The last change before a partition's ``window`` (if it has one), for the order
        check and the table's shape at the cut."""
        self.previous = change
        if change is None:
            return
        if change.record.schema_id == self.info.schema_id:
            self.shaped = True
        elif window:
            self._schema_change(change)

    def step(self, change: Change) -> None:
        op, record = change.op, change.record
        where = self.at(record.partition, record.offset)
        if op is None:
            self._tombstone(change, where)
            return
        if op == "":
            self.walk.refuse("records are not Debezium change events", f"offset {where}")
        elif op == "t":
            self.walk.refuse("a truncate removed rows the log does not hold", f"offset {where}")
        elif op == "r":
            self.walk.refuse("snapshot reads do not say what the row was before them",
                             f"offset {where}")
        elif op in ("c", "u", "d") and record.key is not None:
            self._change(change, where)
        if change.timed:
            self.previous = change

    def _tombstone(self, change: Change, where: str) -> None:
        previous = self.previous
        if change.record.key is None or (
            previous is not None and previous.op == "d"
            and previous.record.key == change.record.key
            and previous.offset < change.offset
        ):
            return
        self.walk.refuse("a tombstone's delete is not in the log",
                         f"key {_key_text(change)} at offset {where}")

    def _change(self, change: Change, where: str) -> None:
        record, walk = change.record, self.walk
        if record.schema_id != self.info.schema_id:
            self._schema_change(change)
            return
        position = position_of(change.op, {"lsn": change.lsn})
        if position is None:
            walk.refuse("changes carry no source position", f"offset {where}")
            return
        self._check_order(change, where)
        watermark = self.info.watermark
        if watermark is not None and position <= watermark:
            walk.refuse("changes are older than a truncate the table applied",
                        f"offset {where}")
        parsed = change.parsed_key()
        key = self.codec.key(parsed)
        if key is None:
            return  # a null key: the fold skips it too
        if change.op == "c":
            self._first(key, None, record)
        elif not self._whole_before(change):
            walk.refuse("before-images are incomplete (the replica identity is not FULL, "
                        f"or a value is the unchanged-TOAST placeholder); "
                        f"{full_identity(change)} keeps later ones whole",
                        f"key {_key_text(change)} at offset {where}")
            return
        else:
            self._first(key, self.codec.values(change.before), record)
        walk.last[key] = position
        if change.op == "u" and type(change.after) is dict and self.codec.moved(
            change.after, parsed
        ):
            moved = self.codec.row_key(change.after)
            if moved is not None:
                self._first(moved, None, record)
                walk.last[moved] = position

    def _first(self, key: Key, values: Values | None, record: Any) -> None:
        if key not in self.walk.rows:
            self.walk.rows[key] = values
            self.walk.wheres[key] = (record.partition, record.offset, record.key)

    def _whole_before(self, change: Change) -> bool:
        before = change.before
        if not self.complete or type(before) is not dict:
            return False
        if any(f not in before for f in self.codec.fields):
            return False
        return not self.codec.unavailable(before)

    def _check_order(self, change: Change, where: str) -> None:
        """Source positions must grow: (commit time, LSN), equal only for the create of a
        primary-key change right after its delete."""
        previous = self.previous
        if previous is None or previous.partition != change.partition:
            return
        if change.order() > previous.order():
            return
        if (change.order() == previous.order() and previous.op == "d" and change.op == "c"
                and change.header(OLD_KEY) is not None):
            return
        self.walk.refuse("source positions go back (a window of changes delivered again)",
                         f"offset {where}")

    def _schema_change(self, change: Change) -> None:
        self.walk.refuse("the table's schema changed in between",
                         f"offset {self.at(change.partition, change.offset)}")


def _check_store(walk: Walk, store: TableStore, info: TableInfo) -> None:
    """Every key's stored position must be its last change's: else the fold ignored a
    change of the window (a stale redelivery) and its before-image does not apply."""
    keys = list(walk.last)
    stored = store.load_states(info, keys)
    for key in keys:
        state = stored.get(key)
        if state is None or state.position != walk.last[key]:
            partition, offset, raw = walk.wheres[key]
            shown = "null" if raw is None else raw.decode("utf-8", "replace")
            walk.refuse("the table store's row does not come from the window's last change",
                        f"key {shown} (first changed at offset {offset} of partition "
                        f"{partition})")


def _key_text(change: Change) -> str:
    key = change.record.key
    return "null" if key is None else key.decode("utf-8", "replace")


# -- the table at the cut ------------------------------------------------------------------


def restore(target: TableStore, current: TableStore, info: TableInfo, walk: Walk) -> TableInfo:
    """Write the table at the cut into ``target``: the current rows, with the walked
    keys' rows as they were at the cut."""
    conn = target.conn
    conn.execute("ATTACH DATABASE ? AS current", (str(current.path),))  # not in a transaction
    try:
        with target.writing("writing the table as of a point"):
            made = target.create(info.name, "topic", info.shape)
            columns = ", ".join([ddl.quote(c.sql) for c in info.shape.columns] + [ddl.POS])
            conn.execute(
                f"INSERT INTO main.{ddl.quote(made.rows)} ({columns}) "
                f"SELECT {columns} FROM current.{ddl.quote(info.rows)} WHERE NOT {ddl.DEAD}"
            )
            target.write_states(made, {
                key: (RowState(values, None), walk.wheres[key])
                for key, values in walk.rows.items()
            })
    finally:
        conn.execute("DETACH DATABASE current")
    return made
