"""Records of one topic → row operations on its table.

Three shapes of topic are folded:

- **Debezium envelopes** (``before``/``after``/``source``/``op``): ``c``, ``r`` and ``u``
  upsert the ``after`` image, ``d`` deletes, ``t`` truncates; ``source.lsn`` is the
  position that makes redeliveries harmless. An ``u`` whose ``after`` key columns differ
  from the record key moves the row. A tombstone right after the delete of the same key
  (Debezium writes one after every delete) repeats that delete and is skipped; a
  tombstone on its own (its delete compacted away) deletes the key.
- **Flattened** topics (the after-state only, or ExtractNewRecordState's output, where
  ``__deleted: "true"`` marks a rewritten delete): each value is the row.
- **Plain** key/value topics: an object value is the row; any other value is the single
  column ``value`` (a non-object key: the column ``key``; either takes a suffix, ``key~2``,
  when the other side has a field of that name, see :mod:`duality.tables.shape`). A later
  record or schema that would put such a field beside it is refused, not merged.

Records with a null key (other than truncates) are skipped and counted, as ksqlDB
does. Columns and types come from the record's registered schema, or from a
``{"schema", "payload"}`` value; a topic without either gets an inferred shape.

:meth:`TopicDecoder.feed` hands row operations to a :class:`Sink` or returns a
:class:`Barrier` — a truncate or a change of the table's shape — that the caller must
carry out before the rest of the batch; ``refeed`` says whether the same record must then
be fed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from duality.errors import ApplyError
from duality.events.model import Record
from duality.events.schema import ConnectField, ConnectSchema, RecordSchema
from duality.tables import codec as codecs
from duality.tables.batch import Pending
from duality.tables.fold import Key, Truncate, Values, Where, truncated
from duality.tables.parsing import ValueParser
from duality.tables.records import (
    embedded_key_schema,
    loads,
    parse_value,
    payload_of,
    position_of,
)
from duality.tables.shape import (
    EMPTY,
    KEY_FIELD,
    VALUE_FIELD,
    FieldCodec,
    Shape,
    field_codecs,
    free_field,
    moved_holder,
    row_schema,
    shape_from_schema,
    with_fields,
)
from duality.tables.types import infer_codec

DEFAULT_PLACEHOLDER = "__debezium_unavailable_value"
#: The header Debezium puts on the create that follows a primary-key change.
OLD_KEY = "__debezium.oldkey"
_UPSERT_OPS: Final = frozenset(("c", "r", "u"))
#: The field codecs of a record schema (see :func:`~duality.tables.shape.field_codecs`).
FieldCodecs = Callable[[RecordSchema], Mapping[str, FieldCodec]]


class Sink(Protocol):
    def upsert(
        self, key: Key, values: Values, position: int | None, unavailable: frozenset[int],
        where: Where, origin: Key | None = None,
    ) -> None: ...

    def delete(self, key: Key, position: int | None, where: Where) -> None: ...


@dataclass(frozen=True, slots=True)
class Reshape:
    """The table must take ``shape`` (from schema ``schema_id`` at ``position``)."""

    shape: Shape
    schema_id: int | None = None
    position: int | None = None
    refeed: bool = True


@dataclass(frozen=True, slots=True)
class TruncateTable:
    op: Truncate
    refeed: bool = False


Barrier = Reshape | TruncateTable


@dataclass(slots=True)
class TableView:
    """What the decoder needs to know of the table (kept current by the caller)."""

    shape: Shape = EMPTY
    schema_id: int | None = None
    schema_position: int | None = None
    watermark: int | None = None


@dataclass(slots=True)
class Counts:
    null_keys: int = 0
    skipped: int = 0
    carry: dict[int, bytes | None] = field(default_factory=dict)


class TopicDecoder:
    """Decodes one topic's records (see the module docstring)."""

    def __init__(
        self,
        topic: str,
        table: TableView,
        schemas: Callable[[int], RecordSchema],
        fields: FieldCodecs = field_codecs,
        *,
        fast: bool = True,
    ):
        self.topic = topic
        #: Whether runs of plain changes take the fast path (off only to compare the two).
        self._fast = fast
        self.table = table
        self._schemas = schemas
        #: How each field of a schema is decoded: the table store's values by default;
        #: a sink passes its dialect's (see :mod:`duality.sinks`).
        self._fields = fields
        self._codecs: dict[Any, codecs.RowCodec] = {}
        self._embedded: dict[bytes, tuple[int, RecordSchema]] = {}
        self._by_id: dict[int, RecordSchema] = {}
        self._keyless_ids: dict[int, bool] = {}
        self._last: tuple[int, codecs.RowCodec] | None = None
        self._values = ValueParser()
        self.counts = Counts()

    def schema_of(self, schema_id: int) -> RecordSchema:
        """A schema this decoder met: registered in the log, or embedded in a record's
        value (negative ids)."""
        return self._by_id.get(schema_id) or self._schemas(schema_id)

    def reset(self, table: TableView) -> None:
        """The table changed shape: codecs built for the old one are dropped."""
        self.table = table
        self._codecs.clear()
        self._last = None

    def feed(
        self, records: Sequence[Record], start: int, sink: Pending, stop: int = -1
    ) -> tuple[int, Barrier | None]:
        """Decode ``records[start:stop]`` (``stop`` -1: to the end) into ``sink`` until a
        barrier: returns the index of the record that raised it (and the barrier), or
        ``(stop, None)``."""
        index = start
        if stop < 0 or stop > len(records):
            stop = len(records)
        try:
            while index < stop:
                if self._fast:
                    index = self._run(records, index, stop, sink)
                if index < stop:
                    barrier = self._feed(records[index], sink)
                    if barrier is not None:
                        return index, barrier
                    index += 1
        except ApplyError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
            raise ApplyError(
                f"cannot apply record {_where(self.topic, records[index])}: {exc}; the "
                f"record is not a change event this table can fold"
            ) from exc
        return index, None

    def _run(  # noqa: PLR0912, PLR0915
        self, records: Sequence[Record], index: int, stop: int, sink: Pending
    ) -> int:
        """The fast path: inserts, snapshot reads, plain updates and deletes in Debezium
        envelopes of the table's current registered schema, and the tombstone after each
        delete, folded straight into a collapsed batch. Returns the index of the first
        record it leaves to :meth:`_feed` (which sees the same ``counts.carry``: a record
        is left to it before the carry is touched).

        One loop with everything inlined: per-record function calls would cost more
        than the decoding (see PERFORMANCE.md), hence the branch count."""
        codec = self._current()
        if codec is None or sink.ordered:
            return index
        schema_id, watermark, winners = self.table.schema_id, self.table.watermark, sink.winners
        parse, parse_event = orjson.loads, self._values.parse
        quick, getter, decoders = codec.quick, codec.getter, codec.decoders
        key_fields, key_of, carry = codec.key_fields, codec.key, self.counts.carry
        keyless = schema_id is not None and self._keyless(schema_id)
        for at in range(index, stop):
            record = records[at]
            value, key_bytes = record.value, record.key
            if value is None:
                if key_bytes is None or not carry or carry.get(record.partition) != key_bytes:
                    return at
                del carry[record.partition]  # repeats the delete just before it
                continue
            if key_bytes is None or record.schema_id != schema_id:
                return at
            try:
                payload = parse_event(value)
            except orjson.JSONDecodeError:
                return at
            op = payload.get("op") if type(payload) is dict else None
            if op == "d":
                after = None
                if keyless or ("before" not in payload and "after" not in payload):
                    return at
            else:
                after = payload.get("after") if op in _UPSERT_OPS else None
                if type(after) is not dict:
                    return at
            source = payload.get("source")
            position = source.get("lsn") if type(source) is dict else None
            if type(position) is not int:
                position = None
            else:
                position = position * 2 + (op != "r")  # see position_of
                if watermark is not None and position <= watermark:
                    return at
            parsed = parse(key_bytes)
            key = key_of(parsed)
            if key is None:
                return at
            current = winners.get(key)
            newer = (current is None or position is None or current[1] is None
                     or position > current[1])
            if after is None:  # a delete, as Pending.delete folds it
                if newer:
                    if current is not None and current[0] is not None:
                        sink.kept[key] = current
                    winners[key] = (None, position, (record.partition, record.offset, key_bytes))
                carry[record.partition] = key_bytes
                continue
            if op == "u" and _special_update(after, parsed, quick, key_fields):
                return at
            if op == "c" and record.headers and _has_old_key(record.headers):
                return at
            if newer:
                try:
                    raw = list(getter(after))
                except KeyError:
                    return at
                for column, decode in decoders:
                    if (x := raw[column]) is not None:
                        raw[column] = decode(x)
                where = (record.partition, record.offset, key_bytes)
                winners[key] = ((*key, *raw, position), position, where)
            if carry:
                carry.pop(record.partition, None)
        return stop

    def fast_placeholders(self) -> tuple[Any, ...] | None:
        """For an encoder of streamed changes that takes what :meth:`_run` takes (see
        :func:`duality.sinks.dialects.postgres_binary.encode_changes`): the values that
        stand for unchanged TOAST in the current schema's rows, or None where the fast
        path takes nothing (no codec of a registered schema, deletes without keys)."""
        codec = self._current()
        schema_id = self.table.schema_id
        if not self._fast or codec is None or schema_id is None or self._keyless(schema_id):
            return None
        return codec.quick

    def _current(self) -> codecs.RowCodec | None:
        """The codec of the table's current registered schema, if there is one."""
        table = self.table
        if not table.shape.typed or table.schema_id is None or table.schema_id < 0:
            return None
        known = self._codecs.get(table.schema_id)  # as _codec builds it for this schema
        if known is not None:
            return known
        schema = self._schemas(table.schema_id)
        placeholder = schema.meta.unavailable_placeholder or DEFAULT_PLACEHOLDER
        return self._codec_for(
            table.schema_id,
            lambda: codecs.typed_codec(table.shape, self._fields(schema), placeholder),
        )

    def _feed(self, record: Record, sink: Sink) -> Barrier | None:
        previous = self.counts.carry.pop(record.partition, None)
        if record.value is None:
            return self._tombstone(record, previous, sink)
        payload, schema_key = parse_value(record.value)
        if type(payload) is dict and "op" in payload and ("after" in payload
                                                          or "before" in payload):
            return self._envelope(record, payload, schema_key, sink)
        return self._flat(record, payload, schema_key, sink)

    # -- envelopes -------------------------------------------------------------------

    def _envelope(
        self, record: Record, payload: dict[str, Any], schema_key: Any, sink: Sink
    ) -> Barrier | None:
        op = payload["op"]
        source = payload.get("source")
        position = position_of(op, source)
        if op == "t":
            return TruncateTable(Truncate(position))
        if op not in _UPSERT_OPS and op != "d":
            self.counts.skipped += 1
            return None
        if record.key is None:
            self.counts.null_keys += 1
            return None
        if op == "d" and record.schema_id is not None and self._keyless(record.schema_id):
            raise self._keyless_error(record)
        if op == "d":  # the tombstone after it repeats it, applied or stale
            self.counts.carry[record.partition] = record.key
        image = payload.get("after") if op != "d" else payload.get("before")
        codec = self._codec(record, schema_key, position, image if type(image) is dict else {})
        if not isinstance(codec, codecs.RowCodec):
            return codec  # a new schema is adopted even when the change itself is stale
        if truncated(position, self.table.watermark):
            return None
        parsed_key = payload_of(loads(record.key))
        key = codec.key(parsed_key)
        if key is None:
            self.counts.null_keys += 1
            return None
        where = (record.partition, record.offset, record.key)
        if op == "d":
            sink.delete(key, position, where)
            return None
        if type(image) is not dict:
            raise ApplyError(f"record {_where(self.topic, record)}: op {op!r} has no 'after' row")
        origin = None
        if op == "u" and codec.moved(image, parsed_key):
            sink.delete(key, position, where)
            origin, key = key, codec.row_key(image) or key
        elif op == "c" and record.headers:
            origin = self._old_key(codec, record)
        check = op == "u" or origin is not None
        self._upsert(codec, key, image, position, where, sink, check=check, origin=origin)
        return None

    def _keyless(self, schema_id: int) -> bool:
        """Whether deletes of this registered schema carry no primary key
        (:attr:`~duality.events.schema.TableMeta.keyless_deletes`)."""
        known = self._keyless_ids.get(schema_id)
        if known is None:
            known = self._keyless_ids[schema_id] = self.schema_of(schema_id).meta.keyless_deletes
        return known

    def _keyless_error(self, record: Record) -> ApplyError:
        assert record.schema_id is not None
        meta = self.schema_of(record.schema_id).meta
        left_out = [k for k in meta.primary_key if k not in meta.identity_columns]
        return ApplyError(
            f"cannot apply record {_where(self.topic, record)}: table {meta.table} has "
            f"REPLICA IDENTITY USING INDEX on ({', '.join(meta.identity_columns)}), which "
            f"leaves out its primary-key column(s) {', '.join(left_out)}, so its deletes "
            f"carry no key (Debezium writes filler values) and the row one removes cannot "
            f"be found. Give the source table REPLICA IDENTITY DEFAULT or FULL and capture "
            f"it anew into a new log, or leave the topic out (--topic)"
        )

    def _old_key(self, codec: codecs.RowCodec, record: Record) -> Key | None:
        """The key a created row had before a primary-key change (Debezium's header)."""
        for name, value in record.headers:
            if name == OLD_KEY and value is not None:
                return codec.key(payload_of(loads(value)))
        return None

    def _upsert(
        self, codec: codecs.RowCodec, key: Key, row: Any, position: int | None, where: Where,
        sink: Sink, *, check: bool, origin: Key | None = None,
    ) -> None:
        unavailable = codec.unavailable(row) if check and type(row) is dict else frozenset()
        if unavailable:
            row = codec.without(row, unavailable)
        sink.upsert(key, codec.values(row), position, unavailable, where, origin)

    # -- flattened and plain records -------------------------------------------------

    def _flat(self, record: Record, row: Any, schema_key: Any, sink: Sink) -> Barrier | None:
        if record.key is None:
            self.counts.null_keys += 1
            return None
        codec = self._codec(record, schema_key, None, row)
        if not isinstance(codec, codecs.RowCodec):
            return codec
        key = codec.key(payload_of(loads(record.key)))
        if key is None:
            self.counts.null_keys += 1
            return None
        where = (record.partition, record.offset, record.key)
        if type(row) is dict and row.get("__deleted") in ("true", True):
            sink.delete(key, None, where)
            return None
        self._upsert(codec, key, row, None, where, sink, check=self.table.shape.typed)
        return None

    def _tombstone(self, record: Record, previous: bytes | None, sink: Sink) -> Barrier | None:
        if record.key is None:
            self.counts.null_keys += 1
            return None
        if previous is not None and previous == record.key:
            return None  # repeats the delete just before it
        shape = self.table.shape
        if not shape.key:
            return None  # nothing was ever stored under a key
        key = self._key_codec().key(payload_of(loads(record.key)))
        if key is None:
            self.counts.null_keys += 1
            return None
        sink.delete(key, None, (record.partition, record.offset, record.key))
        return None

    # -- codecs and shapes -----------------------------------------------------------

    def _key_codec(self) -> codecs.RowCodec:
        """A codec for keys alone, with the key decoders of the table's schema."""
        table = self.table
        if not table.shape.typed:
            return self._codec_for("inferred", lambda: codecs.inferred_codec(table.shape))
        schema = self._by_id.get(table.schema_id) if table.schema_id is not None else None
        if schema is None and table.schema_id is not None and table.schema_id >= 0:
            schema = self._schemas(table.schema_id)
        fields = self._fields(schema) if schema is not None else {}
        return self._codec_for(("keys", table.schema_id),
                               lambda: codecs.typed_codec(table.shape, fields, None))

    def _codec(
        self, record: Record, schema_key: Any, position: int | None, image: Any
    ) -> codecs.RowCodec | Barrier:
        last = self._last
        if last is not None and record.schema_id is not None and last[0] == record.schema_id:
            return last[1]
        found = self._schema(record, schema_key)
        if found is None:
            return self._inferred(record, image)
        schema_id, schema = found
        table = self.table
        if schema_id != table.schema_id and _adopt(position, table.schema_position):
            shape = shape_from_schema(schema, table.shape)
            moved = moved_holder(table.shape, shape)
            if moved is not None:
                part, held, now = moved
                raise _clash(self.topic, record, part, held,
                             None if shape.column(held) else now)
            return Reshape(shape, schema_id, position)
        placeholder = schema.meta.unavailable_placeholder or DEFAULT_PLACEHOLDER
        codec = self._codec_for(
            schema_id, lambda: codecs.typed_codec(table.shape, self._fields(schema), placeholder)
        )
        if record.schema_id is not None and schema_id == table.schema_id:
            self._last = (schema_id, codec)
        return codec

    def _codec_for(self, token: Any, build: Callable[[], codecs.RowCodec]) -> codecs.RowCodec:
        codec = self._codecs.get(token)
        if codec is None:
            codec = self._codecs[token] = build()
        return codec

    def _schema(self, record: Record, schema_key: Any) -> tuple[int, RecordSchema] | None:
        if record.schema_id is not None:
            return record.schema_id, self._schemas(record.schema_id)
        if schema_key is None:
            return None
        known = self._embedded.get(schema_key)
        if known is None:
            value = ConnectSchema.from_json(orjson.loads(schema_key))
            key = embedded_key_schema(record.key) or _key_schema_like(record.key, value)
            # Embedded schemas get negative ids (a digest, the same in every process),
            # apart from the log's registered ones.
            digest = hashlib.sha256(schema_key + b"|" + repr(key).encode()).digest()
            known = (-1 - int.from_bytes(digest[:6], "big"), RecordSchema(key, value))
            self._embedded[schema_key] = known
            self._by_id[known[0]] = known[1]
        return known

    def _inferred(self, record: Record, image: Any) -> codecs.RowCodec | Barrier:
        shape = self.table.shape
        if shape.typed:
            return self._codec_for("untyped", lambda: codecs.inferred_codec(shape))
        if type(image) is not dict:
            row = {shape.value_field: image}
        elif shape.key_scalar and not shape.value_scalar and shape.key_field in image:
            raise _clash(self.topic, record, "key", shape.key_field, None)
        else:
            row = image
        if not shape.key or not shape.fields.issuperset(row):
            grown = _grow(shape, record, image)
            if grown != shape:
                return Reshape(grown)
        return self._codec_for("inferred", lambda: codecs.inferred_codec(shape))


def _special_update(
    after: dict[str, Any], parsed_key: Any, quick: tuple[Any, ...], key_fields: tuple[str, ...]
) -> bool:
    """Whether an update holds an unchanged-TOAST placeholder or moves its row."""
    present = after.values()
    for placeholder in quick:
        if placeholder in present:
            return True
    return any(name in after and after[name] != parsed_key.get(name) for name in key_fields)


def _has_old_key(headers: tuple[tuple[str, bytes | None], ...]) -> bool:
    return any(name == OLD_KEY for name, _ in headers)


def _key_schema_like(key: bytes | None, value: ConnectSchema) -> ConnectSchema | None:
    """A key without a schema beside a value with one: its fields take the schemas of
    the row's fields of the same name (others are strings)."""
    parsed = None if key is None else payload_of(loads(key))
    if parsed is None:
        return None
    row = row_schema(value)
    if not isinstance(parsed, dict):
        return ConnectSchema("string" if isinstance(parsed, str) else "int64")
    fields = []
    for name in parsed:
        found = row.field(name) if row is not None else None
        fields.append(ConnectField(name, found.schema if found else ConnectSchema("string")))
    return ConnectSchema("struct", fields=tuple(fields))


def _adopt(position: int | None, current: int | None) -> bool:
    """A new schema is adopted unless it comes with a record older than the current one."""
    return position is None or current is None or position >= current


def _grow(shape: Shape, record: Record, image: Any) -> Shape:
    """An inferred shape grown by the fields of this record's key and row. A key (value)
    that is not an object gets its column's name when the table first holds it: ``key``
    (``value``), or a free ``key~N`` when the row (key) has a field of that name."""
    parsed_key = payload_of(loads(record.key)) if record.key is not None else None
    key_scalar = shape.key_scalar if shape.key else type(parsed_key) is not dict
    value_scalar = shape.value_scalar if shape.columns else type(image) is not dict
    row: dict[str, Any] = {} if value_scalar else dict(image or {})
    key_fields: dict[str, Any] = {} if key_scalar else dict(parsed_key or {})
    if key_scalar:
        name = shape.key_field if shape.key else free_field(KEY_FIELD, {*shape.fields, *row})
        key_fields[name] = parsed_key
    if value_scalar:
        name = shape.value_field if shape.columns else free_field(VALUE_FIELD, key_fields)
        row = {name: image}
    new = [(f, infer_codec(x)[0]) for f, x in {**key_fields, **row}.items()]
    grown = with_fields(shape, new, tuple(key_fields))
    return Shape(grown.columns, grown.key, False, key_scalar, value_scalar)


def _clash(topic: str, record: Record, part: str, held: str, new: str | None) -> ApplyError:
    """Refuses a record whose value (``part`` ``"value"``: whose key) has a field named
    ``held``, the column holding this table's record key (value), which is not an object;
    or, with ``new``, has lost the field ``new``, which would move that column there.
    Merging would lose values and moving would lose the rows stored so far."""
    other = "value" if part == "key" else "key"
    if new is None:
        reason = (f"its {other} has a field {held!r}, but this table's column {held!r} holds "
                  f"the record {part}, which is not a JSON object; one column cannot hold both")
        renamed = f", or with the field {held!r} renamed"
    else:
        reason = (f"its {other} no longer has a field {new!r}, which would move the record "
                  f"{part} (not a JSON object) from this table's column {held!r} to {new!r}, "
                  f"and the rows stored so far cannot follow")
        renamed = ""
    return ApplyError(
        f"cannot apply record {_where(topic, record)}: {reason}. Nothing of this batch was "
        f"applied and the offset was not advanced. Write these records with a key and a "
        f"value that are both JSON objects (such as {{\"id\": 1}}){renamed}, to a new "
        f"topic, and read that one."
    )


def _where(topic: str, record: Record) -> str:
    key = "null" if record.key is None else record.key.decode("utf-8", "replace")
    return f"topic {topic!r} partition {record.partition} offset {record.offset} key {key}"
