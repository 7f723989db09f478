"""One row's history: ``duality history TOPIC --key JSON``.

Every change of the key, in order: when it was committed (source time, LSN, txId), the
op, and each field that changed, old → new, with values as ``duality table --json``
prints them. A primary-key change names where the row moved to or came from, and a
truncate that removed the row is listed too.

The old values come from the row as the history has built it so far, which works under
any replica identity; only for the first change seen, or after offsets the log lost
(compaction), do they come from the change's before-image — when that image is whole
(REPLICA IDENTITY FULL) — and otherwise they are reported as unknown, never guessed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import orjson

from duality.events.schema import RecordSchema
from duality.log.base import Log
from duality.tables.decode import DEFAULT_PLACEHOLDER
from duality.tables.points import show_lsn, show_time
from duality.tables.shape import field_codecs
from duality.tables.timeline import (
    NEW_KEY,
    OLD_KEY,
    Change,
    GapWatch,
    gap_watch,
    parse_change,
    read_range,
    show_ranges,
)
from duality.tables.types import differs, placeholder_values, render_json

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One change of the row. ``changed`` maps a field to (old, new); fields in
    ``unknown`` have no old value in the log."""

    partition: int
    offset: int
    op: str
    ts_us: int | None
    lsn: int | None
    tx: Any
    key: Any
    changed: dict[str, tuple[Any, Any]]
    unknown: tuple[str, ...] = ()
    moved_to: Any = None
    moved_from: Any = None
    note: str | None = None


@dataclass(slots=True)
class History:
    """The entries of one key, and what else the reader should know."""

    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sample_key: Any = None


def key_history(topic: str, key: Any, *, log: Log) -> History:
    """The history of the row with ``key`` (parsed JSON: an object of the key fields,
    or the value of a single-field key)."""
    history = History()
    watch = gap_watch(log, topic)
    found = _records(log, topic, key, watch, history)
    walker = _Walker(log, key, history, watch)
    for change in found:
        walker.step(change)
    return history


def _matches(parsed: Any, key: Any) -> bool:
    if parsed == key:
        return True
    return (type(key) is not dict and type(parsed) is dict and len(parsed) == 1
            and next(iter(parsed.values())) == key)


def _records(log: Log, topic: str, key: Any, watch: GapWatch, history: History
             ) -> list[Change]:
    """The key's changes (and truncates) of every partition, in source order."""
    per_partition = []
    for partition, end in sorted(log.end_offsets(topic).items()):
        found = []
        for record in read_range(log, topic, partition, 0, end, watch):
            if record.key is None:
                if record.value is not None and b'"t"' in record.value:
                    change = parse_change(record)
                    if change.op == "t":
                        found.append(change)
                continue
            change = parse_change(record)
            parsed = change.parsed_key()
            if history.sample_key is None:
                history.sample_key = parsed
            if _matches(parsed, key):
                found.append(change)
        per_partition.append(found)
    if len(per_partition) == 1:
        return per_partition[0]
    return list(heapq.merge(*per_partition,
                            key=lambda c: (*c.order(), c.partition, c.offset)))


class _Walker:
    def __init__(self, log: Log, key: Any, history: History, watch: GapWatch) -> None:
        self.log, self.key, self.history, self.watch = log, key, history, watch
        self.row: Row | None = None
        self.known = False  # whether ``row`` is what the source had
        self.previous: Change | None = None
        self._schemas: dict[int, tuple[RecordSchema, dict[str, Any]]] = {}

    def step(self, change: Change) -> None:
        self._check_lost(change)
        op = change.op
        if op is None:
            self._tombstone(change)
        elif op == "t":
            if self.row is not None:
                self._add(change, "t", self._diff(self.row, None), note="truncated")
            self.row, self.known = None, True
        elif op in ("c", "r", "u", "d"):
            self._change(change)
        elif op == "":
            self._plain(change)
        self.previous = change

    def _check_lost(self, change: Change) -> None:
        previous = self.previous
        start = previous.offset + 1 if previous is not None and \
            previous.partition == change.partition else 0
        lost = [r for r in self.watch.lost.get(change.partition, [])
                if r[0] < change.offset and r[1] > start]
        if lost:
            self.known = False
            self.history.notes.append(
                f"offsets {show_ranges(lost)} were removed from the log ({self.watch.setting}; "
                f"a longer min.compaction.lag.ms keeps more history): changes of the row may "
                f"have been among them, so old values after them come from before-images "
                f"where those are whole, and are unknown (?) otherwise"
            )

    def _tombstone(self, change: Change) -> None:
        previous = self.previous
        if previous is not None and previous.op == "d" and \
                previous.record.key == change.record.key:
            return
        self._add(change, "d", self._diff(self.row, None) if self.known else {},
                  note="tombstone (its delete is not in the log)")
        self.row, self.known = None, True

    def _decoder(self, change: Change) -> tuple[RecordSchema | None, dict[str, Any]]:
        schema_id = change.record.schema_id
        if schema_id is None:
            return None, {}
        cached = self._schemas.get(schema_id)
        if cached is None:
            schema = self.log.schema(schema_id)
            cached = self._schemas[schema_id] = (schema, field_codecs(schema))
        return cached

    def _render(self, change: Change, image: Any) -> tuple[Row | None, set[str]]:
        """An image as JSON-ready values, and its fields holding the TOAST placeholder."""
        if type(image) is not dict:
            return None, set()
        schema, codecs = self._decoder(change)
        placeholder = (schema.meta.unavailable_placeholder if schema else None) \
            or DEFAULT_PLACEHOLDER
        row: Row = {}
        unavailable = set()
        for name, value in image.items():
            codec = codecs.get(name)
            if value is not None and codec is not None and value in placeholder_values(
                codec.schema, codec.source_type, placeholder
            ):
                unavailable.add(name)
                continue
            if codec is None or value is None:
                row[name] = value
            else:
                decoded = codec.decode(value) if codec.decode is not None else value
                row[name] = render_json(codec.kind, decoded)
        return row, unavailable

    def _whole(self, change: Change, image: Row | None, unavailable: set[str]) -> bool:
        schema, codecs = self._decoder(change)
        return (schema is not None and schema.meta.complete_before_images
                and image is not None and not unavailable
                and all(name in image for name in codecs))

    def _change(self, change: Change) -> None:
        op = change.op or ""
        after, gone = self._render(change, change.after)
        before, partial = self._render(change, change.before)
        unknown: list[str] = []
        old: Row | None = None
        if op in ("c", "r"):
            pass
        elif self.known:
            old = self.row
        elif self._whole(change, before, partial):
            old = before
        else:
            unknown = list(after or {})
        new = None
        if after is not None:
            new = dict(after)
            for name in sorted(gone):  # an unchanged TOAST value: the row's old one
                if old is not None and name in old:
                    new[name] = old[name]
                elif name not in unknown:
                    unknown.append(name)
        if op == "d" and old is None:
            diff: dict[str, tuple[Any, Any]] = {}
            note = "the row's values before the delete are not in the log"
        else:
            diff = self._diff(old, new, every=op in ("c", "r") or bool(unknown))
            note = None
        self._add(change, op, diff, unknown=tuple(unknown),
                  moved_to=self._moved(change, NEW_KEY) if op == "d" else None,
                  moved_from=self._moved(change, OLD_KEY) if op == "c" else None, note=note)
        self.row = new
        self.known = new is None or not any(name in gone for name in unknown)

    def _plain(self, change: Change) -> None:
        new = change.after if type(change.after) is dict else {"value": change.after}
        self._add(change, "", self._diff(self.row if self.known else None, new))
        self.row, self.known = new, True

    @staticmethod
    def _moved(change: Change, header: str) -> Any:
        raw = change.header(header)
        return None if raw is None else orjson.loads(raw)

    @staticmethod
    def _diff(old: Row | None, new: Row | None, every: bool = False
              ) -> dict[str, tuple[Any, Any]]:
        names = list(dict.fromkeys([*(old or {}), *(new or {})]))
        out = {}
        for name in names:
            before = (old or {}).get(name)
            after = (new or {}).get(name)
            if every or differs(before, after) or (old is None) != (new is None):
                out[name] = (before, after)
        return out

    def _add(self, change: Change, op: str, changed: dict[str, tuple[Any, Any]], *,
             unknown: tuple[str, ...] = (), moved_to: Any = None, moved_from: Any = None,
             note: str | None = None) -> None:
        self.history.entries.append(Entry(
            change.partition, change.offset, op, change.ts_us, change.lsn, change.tx,
            change.parsed_key(), changed, unknown, moved_to, moved_from, note,
        ))


def entry_json(entry: Entry) -> dict[str, Any]:
    """An entry as ``history --json`` prints it."""
    changed = {}
    for name, (old, new) in entry.changed.items():
        changed[name] = {"new": new} if name in entry.unknown else {"old": old, "new": new}
    out: dict[str, Any] = {
        "partition": entry.partition, "offset": entry.offset, "op": entry.op,
        "time": None if entry.ts_us is None else show_time(entry.ts_us),
        "lsn": None if entry.lsn is None else show_lsn(entry.lsn),
        "txId": entry.tx, "key": entry.key, "changed": changed,
    }
    if entry.unknown:
        out["unknown"] = list(entry.unknown)
    for name in ("moved_to", "moved_from", "note"):
        if getattr(entry, name) is not None:
            out[name] = getattr(entry, name)
    return out
