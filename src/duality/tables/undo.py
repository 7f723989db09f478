"""The SQL that undoes a window of changes: ``duality undo TOPIC --since POINT``.

The window is every change after ``since`` up to and including ``until`` (default: the
end of the log). Each change is reverted by one statement, newest first, in one
transaction, so that running the SQL in the source brings the rows back to how they
were at ``since``:

- a create (``c``) by deleting the row it made;
- an update (``u``) by setting the columns it changed back to their before-image values,
  where the row's primary key is what the update left (a key change too);
- a delete (``d``) by inserting its before-image;
- a primary-key change (Debezium's delete + tombstone + create with
  ``__debezium.oldkey``) by one update that gives the row its old key and values.

Identifiers are quoted and values are typed literals (:mod:`.pg_literals`), whatever
they hold. Nothing is printed — a :class:`~duality.errors.GapError` (exit 4) names the
keys and offsets at fault — when an update or delete lacks a whole before-image (replica
identity not FULL, an unchanged-TOAST placeholder), the window holds a truncate (its rows
are not in the log), snapshot reads, records that are not change events, lost offsets,
or values that cannot be written back exactly; and, unless ``force``, when a row of the
window changed again after it (reverting would overwrite that change).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from duality.errors import ConfigError, GapError
from duality.events.schema import ConnectSchema, RecordSchema
from duality.log.base import Log
from duality.tables.cuts import Cut, end_cut, resolve
from duality.tables.decode import DEFAULT_PLACEHOLDER
from duality.tables.pg_literals import Inexact, literal, quote_ident
from duality.tables.points import OffsetPoint, Point, parse_point, show_time, show_when
from duality.tables.shape import row_schema
from duality.tables.timeline import (
    NEW_KEY,
    OLD_KEY,
    Change,
    GapWatch,
    change_before,
    full_identity,
    gap_watch,
    parse_change,
    read_range,
    show_ranges,
)
from duality.tables.types import differs, placeholder_values

#: Places named per reason in a refusal, at most.
SHOWN = 12


@dataclass(frozen=True, slots=True)
class Statement:
    comment: str
    sql: str


@dataclass(slots=True)
class UndoPlan:
    """The statements (newest change first), and what the caller should say."""

    topic: str
    since: Cut
    until: Cut
    #: whether the window ends at a point given (else at the end of the log)
    bounded: bool = False
    statements: list[Statement] = field(default_factory=list)
    changes: int = 0
    #: rows of the window changed again after it (reverted anyway: ``force``)
    later: list[str] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)

    def sql(self) -> Iterator[str]:
        """The script, line by line."""
        yield (f"-- duality undo of topic {_json(self.topic)}: {self.changes} change(s) after "
               f"{_json(self.since.point.text)}"
               + (f" through {_json(self.until.point.text)}" if self.bounded else "")
               + ", newest first")
        if not self.statements:
            yield "-- nothing to undo"
            return
        yield "BEGIN;"
        for statement in self.statements:
            yield statement.comment
            yield statement.sql
        yield "COMMIT;"


def _json(value: Any) -> str:
    """JSON text: control characters are escaped, so it cannot end an SQL comment."""
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class _Problems:
    by_reason: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.by_reason.setdefault(reason, []).append(where)

    def text(self) -> str:
        parts = []
        for reason, wheres in self.by_reason.items():
            unique = list(dict.fromkeys(wheres))
            more = f" and {len(unique) - SHOWN} more" if len(unique) > SHOWN else ""
            parts.append(f"{reason}: {', '.join(unique[:SHOWN])}{more}")
        return "; ".join(parts)


def plan_undo(
    topic: str, since: Point | str, *, log: Log, until: Point | str | None = None,
    force: bool = False,
) -> UndoPlan:
    """The statements that revert the window (see the module docstring)."""
    start = resolve(log, topic, parse_point(since, "--since") if isinstance(since, str)
                    else since)
    stop_point = parse_point(until, "--until") if isinstance(until, str) else until
    stop = (resolve(log, topic, stop_point) if stop_point is not None
            else end_cut(log, topic, OffsetPoint({}, "the end of the log")))
    for partition, end in stop.ends.items():
        if start.ends[partition] > end:
            raise ConfigError(f"--until {stop.point.text!r} is before --since "
                              f"{start.point.text!r}")
    plan = UndoPlan(topic, start, stop, bounded=stop_point is not None)
    window = _Window(log, topic, len(stop.ends))
    watch = gap_watch(log, topic)
    for partition, end in sorted(stop.ends.items()):
        window.read(partition, start.ends[partition], end, watch)
    window.lost(watch, stop)
    plan.statements = window.statements(plan.notes)
    plan.changes = window.count
    if window.problems.by_reason:
        raise GapError(f"cannot undo the changes of topic {topic!r} after "
                       f"{start.point.text!r}: {window.problems.text()}. Nothing was printed.")
    plan.later = _changed_later(log, topic, stop, window.keys)
    if plan.later and not force:
        raise GapError(
            f"rows of the window changed again after it, and reverting would overwrite those "
            f"changes: {_listed(plan.later)}. Widen the window (--until), or give --force to "
            f"revert anyway. Nothing was printed."
        )
    return plan


def _listed(items: Sequence[str]) -> str:
    unique = list(dict.fromkeys(items))
    more = f" and {len(unique) - SHOWN} more" if len(unique) > SHOWN else ""
    return ", ".join(unique[:SHOWN]) + more


class _Window:
    """The window's changes and the statements that revert them."""

    def __init__(self, log: Log, topic: str, partitions: int) -> None:
        self.log, self.topic, self.partitions = log, topic, partitions
        self.changes: list[Change] = []
        self.problems = _Problems()
        self.keys: set[bytes] = set()
        self.count = 0
        self._schemas: dict[int, RecordSchema] = {}

    def at(self, change: Change) -> str:
        offset = change.offset
        return str(offset) if self.partitions == 1 else f"{change.partition}:{offset}"

    def read(self, partition: int, start: int, end: int, watch: GapWatch) -> None:
        previous = change_before(self.log, self.topic, partition, start)
        for record in read_range(self.log, self.topic, partition, start, end, watch):
            change = parse_change(record)
            if self._keep(change, previous):
                self.changes.append(change)
            if change.timed or change.op == "":
                previous = change

    def _keep(self, change: Change, previous: Change | None) -> bool:
        op, where = change.op, self.at(change)
        if op is None:
            repeat = (previous is not None and previous.op == "d"
                      and previous.record.key == change.record.key)
            if not repeat and change.record.key is not None:
                self.problems.add("a tombstone's delete is not in the log",
                                  f"key {_key(change)} at offset {where}")
            return False
        if op == "":
            self.problems.add("records are not Debezium change events", f"offset {where}")
        elif op == "t":
            self.problems.add("a truncate removed rows the log does not hold, so undo cannot "
                              "bring them back", f"offset {where} ({_when(change)})")
        elif op == "r":
            self.problems.add("the window reaches into a snapshot, whose reads are not "
                              "changes; start it after the snapshot", f"offset {where}")
        elif op in ("c", "u", "d"):
            if change.record.key is None:
                self.problems.add("the table has no primary key, so rows cannot be named",
                                  f"offset {where}")
                return False
            self.count += 1
            parsed = change.parsed_key()
            self.keys.add(_norm(parsed))
            if op == "u" and type(parsed) is dict and type(change.after) is dict:
                self.keys.add(_norm({k: change.after.get(k, v) for k, v in parsed.items()}))
            return True
        return False

    def lost(self, watch: GapWatch, stop: Cut) -> None:
        for partition, end in sorted(stop.ends.items()):
            ranges = watch.lost_before(partition, end)
            if ranges:
                part = f"partition {partition} " if self.partitions > 1 else ""
                self.problems.add(
                    "changes of the window were removed from the log",
                    f"{part}offsets {show_ranges(ranges)} ({watch.setting}; a longer "
                    f"min.compaction.lag.ms keeps more history)",
                )

    def schema(self, change: Change) -> RecordSchema | None:
        schema_id = change.record.schema_id
        if schema_id is None:
            return None
        found = self._schemas.get(schema_id)
        if found is None:
            found = self._schemas[schema_id] = self.log.schema(schema_id)
        return found

    def statements(self, notes: set[str]) -> list[Statement]:
        """One statement per change (a primary-key change's delete and create as one),
        newest first: in offset order on one partition, else by source position."""
        deletes = {(c.tx, c.lsn, _norm(c.parsed_key())): c for c in self.changes if c.op == "d"}
        partners: dict[int, Change] = {}
        for change in self.changes:
            old_key = change.header(OLD_KEY)
            if change.op == "c" and old_key is not None:
                partner = deletes.get((change.tx, change.lsn, _norm(orjson.loads(old_key))))
                if partner is not None:
                    partners[id(change)] = partner
        paired = {id(partner) for partner in partners.values()}
        made: list[tuple[tuple[int, ...], Statement]] = []
        for change in self.changes:
            if id(change) in paired:
                continue
            partner = partners.get(id(change))
            reverter = _Reverter(change, self.schema(change), self.problems, self.at(change),
                                 notes)
            statement = reverter.statement(partner)
            if statement is not None:
                order = ((change.offset,) if self.partitions == 1 else
                         (change.ts_us or 0, change.lsn or 0, change.partition, change.offset))
                made.append((order, statement))
        made.sort(key=lambda pair: pair[0], reverse=True)
        return [statement for _, statement in made]


class _Reverter:
    """The statement that reverts one change."""

    def __init__(self, change: Change, schema: RecordSchema | None, problems: _Problems,
                 where: str, notes: set[str]) -> None:
        self.change, self.problems, self.where, self.notes = change, problems, where, notes
        self.schema = schema
        meta = schema.meta if schema is not None else None
        self.types: Mapping[str, str] = meta.source_types if meta is not None else {}
        self.bases: Mapping[str, str] = meta.base_types if meta is not None else {}
        self.altered: Mapping[str, str] = meta.altered if meta is not None else {}
        self.complete = meta is not None and meta.complete_before_images
        self.placeholder = (meta.unavailable_placeholder if meta is not None else None) \
            or DEFAULT_PLACEHOLDER
        row = row_schema(schema.value) if schema is not None else None
        self.fields: dict[str, ConnectSchema] = (
            {f.name: f.schema for f in row.fields} if row is not None else {}
        )
        key_fields = [f.name for f in schema.key.fields] if schema and schema.key else []
        primary = list(meta.primary_key) if meta is not None and meta.primary_key else []
        self.pk = primary or key_fields
        #: Capture says the table has no primary key: its record key (message.key.columns)
        #: need not name one row, and a statement by it could change others.
        self.unnamed = meta is not None and meta.table is not None and not primary

    def statement(self, partner: Change | None) -> Statement | None:
        change = self.change
        table = self._table()
        if table is None:
            return None
        if self.unnamed:
            self.problems.add("the table has no primary key (a key set by message.key.columns "
                              "need not name one row), so rows cannot be named",
                              f"key {_key(change)} at offset {self.where}")
            return None
        try:
            if change.op == "c" and partner is not None:
                sql = self._update(table, partner.before, change.after, every=True)
            elif change.op == "c":
                sql = f"DELETE FROM {table} WHERE {self._match(change.after)};"
            elif change.op == "u":
                sql = self._update(table, change.before, change.after, every=False)
            else:
                sql = self._insert(table, change.before)
        except Inexact as exc:
            self.problems.add(f"{exc.reason} cannot be written back exactly ({exc.setting})",
                              f"key {_key(change)} at offset {self.where}")
            return None
        if sql is None:
            return None
        return Statement(self._comment(), sql)

    def _table(self) -> str | None:
        change = self.change
        if not isinstance(change.schema, str) or not isinstance(change.table, str):
            self.problems.add("changes do not name their source table (source.schema, "
                              "source.table)", f"offset {self.where}")
            return None
        return f"{quote_ident(change.schema)}.{quote_ident(change.table)}"

    def _whole(self, image: Any) -> bool:
        if not self.complete or type(image) is not dict or not self.fields:
            return False
        if any(name not in image for name in self.fields):
            return False
        return not any(self._placeholder(name, image[name]) for name in self.fields)

    def _placeholder(self, name: str, value: Any) -> bool:
        if value is None:
            return False
        alts = placeholder_values(self.fields.get(name), self.types.get(name), self.placeholder)
        return value in alts

    def _incomplete(self) -> None:
        self.problems.add(
            "before-images are incomplete (the source table's replica identity is not FULL, "
            f"or a value is the unchanged-TOAST placeholder); run {full_identity(self.change)} "
            f"so that later changes can be undone",
            f"key {_key(self.change)} at offset {self.where}",
        )

    def _value(self, name: str, value: Any) -> str:
        if name in self.altered:
            raise Inexact(f"values of column {name!r}, changed at capture by "
                          f"{self.altered[name]},", "capture without that property")
        schema = self.fields.get(name)
        if schema is None:
            raise Inexact(f"column {name!r} has no schema", "none")
        return literal(value, schema, self.types.get(name), self.notes, self.bases.get(name))

    def _match(self, image: Any) -> str:
        values = image if type(image) is dict else {}
        key = self.change.parsed_key()
        parts = []
        for name in self.pk:
            value = values[name] if name in values else (key or {}).get(name)
            parts.append(f"{quote_ident(name)} = {self._value(name, value)}")
        return " AND ".join(parts)

    def _update(self, table: str, before: Any, after: Any, *, every: bool) -> str | None:
        if not self._whole(before):
            self._incomplete()
            return None
        after_row = after if type(after) is dict else {}
        changed = [
            name for name in self.fields
            if every or (name in after_row and not self._placeholder(name, after_row[name])
                         and differs(before[name], after_row[name]))
        ]
        if not changed:
            return None
        sets = ", ".join(f"{quote_ident(n)} = {self._value(n, before[n])}" for n in changed)
        return f"UPDATE {table} SET {sets} WHERE {self._match(after)};"

    def _insert(self, table: str, before: Any) -> str | None:
        if not self._whole(before):
            self._incomplete()
            return None
        names = list(self.fields)
        columns = ", ".join(quote_ident(n) for n in names)
        values = ", ".join(self._value(n, before[n]) for n in names)
        # the row's own values, also into a GENERATED ALWAYS AS IDENTITY column
        return f"INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE VALUES ({values});"

    def _comment(self) -> str:
        change = self.change
        tx = None if change.tx is None else _json(change.tx)
        return "  ".join([f"-- {self.where}", change.op or "", _key(change),
                          *show_when(change.ts_us, change.lsn, tx)])


def _key(change: Change) -> str:
    """The record key as compact JSON (control characters escaped)."""
    parsed = change.parsed_key()
    return "null" if parsed is None else _json(parsed)


def _norm(parsed: Any) -> bytes:
    return orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)


def _when(change: Change) -> str:
    return show_time(change.ts_us) if change.ts_us is not None else "no source time"


def _changed_later(log: Log, topic: str, stop: Cut, keys: set[bytes]) -> list[str]:
    """Rows of the window that a change after it touched (key, offset, time)."""
    found = []
    ends = log.end_offsets(topic)
    partitions = len(ends)
    for partition, end in sorted(ends.items()):
        for record in read_range(log, topic, partition, stop.ends[partition], end):
            change = parse_change(record)
            at = str(change.offset) if partitions == 1 else f"{partition}:{change.offset}"
            if change.op == "t":
                found.append(f"every row (truncate at offset {at}, {_when(change)})")
                continue
            touched = [change.parsed_key()]
            moved = change.header(NEW_KEY)
            if moved is not None:
                touched.append(orjson.loads(moved))
            for parsed in touched:
                if parsed is not None and _norm(parsed) in keys and change.op is not None:
                    found.append(f"key {_json(parsed)} at offset {at} ({_when(change)})")
    return found
