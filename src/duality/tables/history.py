"""One row's history: ``duality history TOPIC --key JSON``.

Every change of the key, in order: when it was committed (source time, LSN, txId), the
op, and each field that changed, old → new, with values as ``duality table --json``
prints them. A primary-key change names where the row moved to or came from, and a
truncate that removed the row is listed too.

The old values come from the row as the history has built it so far, which works under
any replica identity; only for the first change seen, or after offsets the log lost
(compaction), do they come from the change's before-image — when that image is whole
(REPLICA IDENTITY FULL) — and otherwise they are reported as unknown, never guessed.
Unknown-ness is kept per field: an unchanged TOAST value the row's history does not hold
is unknown on its own, while the other fields stay known. A row inserted by a key change
takes such values from its history under the old key, where the log still holds them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from duality.events.schema import RecordSchema
from duality.log.base import Log
from duality.tables.decode import DEFAULT_PLACEHOLDER
from duality.tables.points import show_lsn, show_time
from duality.tables.records import payload_of
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
    ``unknown`` have no old value in the log (for a create or snapshot read: no value,
    and they are not in ``changed``)."""

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
    #: When no change has the key but offsets were removed from the log: which, and the
    #: setting that removed them (the key's changes may have been among them).
    removed: str | None = None


def key_history(topic: str, key: Any, *, log: Log) -> History:
    """The history of the row with ``key`` (parsed JSON: an object of the key fields,
    or the value of a single-field key)."""
    history = History()
    watch = gap_watch(log, topic)
    found = _records(log, topic, key, watch, history)
    walker = _Walker(log, topic, key, history, watch)
    for change in found:
        walker.step(change)
    if not history.entries and watch.any_lost:
        history.removed = _removed(watch, len(log.end_offsets(topic)))
    return history


def _removed(watch: GapWatch, partitions: int) -> str:
    where = ", ".join(
        (f"partition {partition} " if partitions > 1 else "") + f"offsets {show_ranges(lost)}"
        for partition, lost in sorted(watch.lost.items()) if lost
    )
    keeps = "a longer retention.ms" if watch.young_after is None else \
        "a longer min.compaction.lag.ms"
    return f"{where} were removed from the log ({watch.setting}; {keeps} keeps more history)"


def _matches(parsed: Any, key: Any) -> bool:
    """Whether a record's key is ``key``: equal as JSON (``true`` is not ``1``), or, for
    ``key`` other than an object, the one field of a single-field key."""
    if parsed == key:
        return _same(parsed, key)
    if type(key) is not dict and type(parsed) is dict and len(parsed) == 1:
        value = next(iter(parsed.values()))
        return value == key and _same(value, key)
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality of two values Python finds equal: numbers by value (``1`` is
    ``1.0``), but booleans only equal booleans (Python's ``True == 1``)."""
    if type(a) is bool or type(b) is bool:
        return a is b
    if type(a) is dict:
        return all(_same(value, b[name]) for name, value in a.items())
    if type(a) is list:
        return all(map(_same, a, b))
    return True


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
    def __init__(self, log: Log, topic: str, key: Any, history: History, watch: GapWatch
                 ) -> None:
        self.log, self.topic, self.key, self.history, self.watch = \
            log, topic, key, history, watch
        self.row: Row | None = None
        self.known = False  # whether ``row`` is what the source had, but for ``unsure``
        self.unsure: tuple[str, ...] = ()  # fields of the row left out of ``row``: unknown
        self.previous: Change | None = None
        self._schemas: dict[int, tuple[RecordSchema, dict[str, Any]]] = {}

    def step(self, change: Change) -> None:
        self._check_lost(change)
        op = change.op
        if op is None:
            self._tombstone(change)
        elif op == "t":
            if self.row is not None:
                self._add(change, "t", self._removal(self.row, self.unsure),
                          unknown=self.unsure, note="truncated")
            self.row, self.known, self.unsure = None, True, ()
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
        known = self.known
        self._add(change, "d", self._removal(self.row, self.unsure) if known else {},
                  unknown=self.unsure if known else (),
                  note="tombstone (its delete is not in the log)")
        self.row, self.known, self.unsure = None, True, ()

    def _decoder(self, change: Change) -> tuple[RecordSchema | None, dict[str, Any]]:
        schema_id = change.record.schema_id
        if schema_id is None:
            return None, {}
        cached = self._schemas.get(schema_id)
        if cached is None:
            schema = self.log.schema(schema_id)
            cached = self._schemas[schema_id] = (schema, field_codecs(schema))
        return cached

    def _render(self, change: Change, image: Any) -> tuple[Row | None, list[str]]:
        """An image as JSON-ready values, and its fields holding the TOAST placeholder
        (in the image's order)."""
        if type(image) is not dict:
            return None, []
        schema, codecs = self._decoder(change)
        placeholder = (schema.meta.unavailable_placeholder if schema else None) \
            or DEFAULT_PLACEHOLDER
        row: Row = {}
        unavailable = []
        for name, value in image.items():
            codec = codecs.get(name)
            if value is not None and codec is not None and value in placeholder_values(
                codec.schema, codec.source_type, placeholder
            ):
                unavailable.append(name)
                continue
            if codec is None or value is None:
                row[name] = value
            else:
                decoded = codec.decode(value) if codec.decode is not None else value
                row[name] = render_json(codec.kind, decoded)
        return row, unavailable

    def _whole(self, change: Change, image: Row | None, unavailable: list[str]) -> bool:
        schema, codecs = self._decoder(change)
        return (schema is not None and schema.meta.complete_before_images
                and image is not None and not unavailable
                and all(name in image for name in codecs))

    def _old(self, change: Change) -> tuple[Row | None, tuple[str, ...], bool]:
        """The row before an update or delete: (its known values, its unknown fields,
        whether nothing of it is known)."""
        if self.known:
            return self.row, self.unsure, False
        before, partial = self._render(change, change.before)
        if self._whole(change, before, partial):
            return before, (), False
        return None, (), True

    def _change(self, change: Change) -> None:
        op = change.op or ""
        after, gone = self._render(change, change.after)
        old: Row | None
        unsure: tuple[str, ...]
        if op in ("c", "r"):
            old, unsure, blind = None, (), False
            # An unchanged TOAST value of a row that moved here: the old key's value.
            prior, prior_unsure = self._before_move(change) if gone else (None, ())
        else:
            old, unsure, blind = self._old(change)
            prior, prior_unsure = old, unsure
        new, missing = self._filled(after, gone, prior, prior_unsure)
        unknown: tuple[str, ...]
        if op == "d" and old is None:
            diff: dict[str, tuple[Any, Any]] = {}
            unknown = ()
            note = "the row's values before the delete are not in the log"
        elif op == "d":
            diff, unknown, note = self._removal(old, unsure), unsure, None
        elif op in ("c", "r") or blind:
            diff = self._diff(old, new, every=True)
            unknown = tuple(missing) if not blind else tuple(diff)
            note = None
        else:
            diff = self._diff(old, new, unsure=unsure)
            unknown = tuple(name for name in diff if name in unsure)
            note = None
        self._add(change, op, diff, unknown=unknown,
                  moved_to=self._moved(change, NEW_KEY) if op == "d" else None,
                  moved_from=self._moved(change, OLD_KEY) if op == "c" else None, note=note)
        self.row, self.known, self.unsure = new, True, missing

    @staticmethod
    def _filled(after: Row | None, gone: list[str], prior: Row | None,
                prior_unsure: tuple[str, ...]) -> tuple[Row | None, tuple[str, ...]]:
        """The row after a change: ``after`` with its unchanged TOAST values (``gone``)
        taken from ``prior`` where it knows them; and those it does not."""
        if after is None or not gone:
            return after, ()
        new, missing = dict(after), []
        for name in gone:
            if prior is not None and name in prior and name not in prior_unsure:
                new[name] = prior[name]
            else:
                missing.append(name)
        return new, tuple(missing)

    def _before_move(self, change: Change) -> tuple[Row | None, tuple[str, ...]]:
        """For a create made by a primary-key change: the row under the old key right
        before it moved (as :meth:`_old`), or (None, ()) when the log does not say. Reads
        the topic again, so only for creates with unchanged TOAST values."""
        raw = self._moved(change, OLD_KEY)
        if raw is None or change.lsn is None:
            return None, ()
        old_key, at = payload_of(raw), change.order()
        watch = gap_watch(self.log, self.topic)
        scratch = History()
        walker = _Walker(self.log, self.topic, old_key, scratch, watch)
        for earlier in _records(self.log, self.topic, old_key, watch, scratch):
            if earlier.order() < at:
                walker.step(earlier)
                continue
            if earlier.op == "d" and earlier.order() == at and \
                    _matches(payload_of(self._moved(earlier, NEW_KEY)), self.key):
                walker._check_lost(earlier)
                old, unsure, _ = walker._old(earlier)
                return old, unsure
            break
        return None, ()

    def _plain(self, change: Change) -> None:
        new = change.after if type(change.after) is dict else {"value": change.after}
        self._add(change, "", self._diff(self.row if self.known else None, new))
        self.row, self.known, self.unsure = new, True, ()

    @staticmethod
    def _moved(change: Change, header: str) -> Any:
        raw = change.header(header)
        return None if raw is None else orjson.loads(raw)

    @staticmethod
    def _diff(old: Row | None, new: Row | None, every: bool = False,
              unsure: Sequence[str] = ()) -> dict[str, tuple[Any, Any]]:
        """Fields that changed from ``old`` to ``new``; fields in ``unsure`` (not in
        ``old``: their value is unknown) count as changed wherever ``new`` has them."""
        names = list(dict.fromkeys([*(old or {}), *(new or {})]))
        out = {}
        for name in names:
            before = (old or {}).get(name)
            after = (new or {}).get(name)
            if every or differs(before, after) or (old is None) != (new is None) \
                    or name in unsure:
                out[name] = (before, after)
        return out

    @classmethod
    def _removal(cls, old: Row | None, unsure: Sequence[str]) -> dict[str, tuple[Any, Any]]:
        """The values a delete or truncate took away (None for those in ``unsure``)."""
        out = cls._diff(old, None)
        for name in unsure:
            out[name] = (None, None)
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
