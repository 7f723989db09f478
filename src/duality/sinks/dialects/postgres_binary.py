"""Change events straight to PostgreSQL's binary ``COPY`` rows, in C.

The snapshot phase of ``replicate`` into PostgreSQL spends most of its time turning
each event into Python objects and those into ``COPY`` text, which the server then
parses again (``bench/replicate.py``). For the common case, this module skips both:

- :func:`plan` reads a table's shape and field schemas once and says how each field of
  a snapshot event's key and row image becomes a binary ``COPY`` value, or None when
  some field is of a kind the C code does not convert (then nothing changes);
- :func:`encode_run` hands a run of records to the C extension ``duality._binarycopy``,
  which parses each record's key and row image itself and writes binary ``COPY``
  tuples, for as long as the records are snapshot reads (``op`` ``r``) of the plan's
  shape with the same ``source`` block. It stops at the first record it cannot take
  exactly; the Python decoder carries on from there;
- :func:`encode_changes` does the same for streamed changes, as rows of the table's
  stage (key, values, position, op), collapsed per key as the Python decoder collapses
  them; :func:`stage_fits` says whether a stage reads them (a stage has the table's
  column types as duality would create them);
- :func:`fits` says whether the columns the target actually has take those binary
  values (a table that was there before, or a column left wider than the source now
  is, may not: then the run is decoded in Python after all).

The values are those the Python path sends (:mod:`postgres_values`), only in binary:
integers, booleans, text (JSON escapes undone; a NUL, invalid UTF-8 or anything else
unexpected stops the run), ``Decimal`` with a scale of 0 or more (unscaled values of up
to 16 bytes), ``ZonedTimestamp`` in UTC with at most six fraction digits, ``Date``,
``Timestamp`` and ``MicroTimestamp`` in the years 1 to 9999. Anything else — a
``VariableScaleDecimal``, an array, JSON, another time zone, ``infinity`` — leaves the
table, or the record, to the Python path. Tests hold the two paths to the same rows.

The extension is optional: without a C compiler the package builds without it, and
:data:`native` is None.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from duality.events.model import Record
from duality.events.schema import ConnectSchema, RecordSchema
from duality.sinks.dialects.postgres_types import column_type
from duality.sources.postgres.types_schema import ZONED_TIMESTAMP
from duality.tables.shape import FieldCodec, Shape, row_schema
from duality.tables.types import DAYS, DECIMAL, TIMESTAMPS

try:
    from duality import _binarycopy as native  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler, or an editable install
    native = None

SKIP: Final = 0
INT2: Final = 1
INT4: Final = 2
INT8: Final = 3
BOOL: Final = 4
TEXT: Final = 5
NUMERIC: Final = 6
TIMESTAMPTZ: Final = 7
DATE: Final = 8
TIMESTAMP_US: Final = 9
TIMESTAMP_MS: Final = 10

#: The target column types (as ``format_type`` writes them) that read each kind's
#: binary form as the Python path's text reads.
_TYPES: Final = {
    INT2: re.compile(r"smallint"),
    INT4: re.compile(r"integer"),
    INT8: re.compile(r"bigint"),
    BOOL: re.compile(r"boolean"),
    TEXT: re.compile(r"text|character varying(\(\d+\))?|character\(\d+\)"),
    NUMERIC: re.compile(r"numeric(\(\d+,-?\d+\))?"),
    TIMESTAMPTZ: re.compile(r"timestamp(\(\d\))? with time zone"),
    DATE: re.compile(r"date"),
    TIMESTAMP_US: re.compile(r"timestamp(\(\d\))? without time zone"),
    TIMESTAMP_MS: re.compile(r"timestamp(\(\d\))? without time zone"),
}
_INTEGERS: Final = {"int8": INT2, "int16": INT2, "int32": INT4, "int64": INT8}
_TIMESTAMPS: Final = {3: TIMESTAMP_MS, 6: TIMESTAMP_US}
#: Where a snapshot event's row image starts, and the key that follows it.
_HEAD: Final = b'{"before":null,"after":'
_CUT: Final = b',"source":'

#: What a binary ``COPY`` starts with: the signature, no flags, no header extension.
SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)

PlanField = tuple[bytes, int, int]


@dataclass(frozen=True, slots=True)
class Plan:
    """How a table's snapshot events become binary ``COPY`` tuples: the key's fields
    and the row image's (in the order the events hold them), and the kind of each
    column sent, key columns first (the order of the sink's ``COPY`` column list)."""

    key: tuple[PlanField, ...]
    value: tuple[PlanField, ...]

    @property
    def kinds(self) -> tuple[int, ...]:
        return tuple(kind for _, kind, _ in (*self.key, *self.value) if kind != SKIP)


def plan(shape: Shape, schema: RecordSchema, codecs: Mapping[str, FieldCodec]) -> Plan | None:
    """The plan for events of ``schema`` into a table of ``shape`` (None: some field is
    not one the C code converts, or the events do not hold the fields in the order the
    table's columns are sent)."""
    if native is None or not shape.typed or shape.key_scalar or shape.value_scalar:
        return None
    key_schema, row = schema.key, row_schema(schema.value)
    if key_schema is None or key_schema.type != "struct" or row is None or not shape.key:
        return None
    if tuple(f.name for f in key_schema.fields) != shape.key:
        return None
    key = [_field(f.name, codecs.get(f.name)) for f in key_schema.fields]
    values = iter(shape.value_columns)
    expected = next(values, None)
    image: list[PlanField | None] = []
    for field in row.fields:
        if field.name in shape.key:
            image.append((field.name.encode(), SKIP, 0))
        elif expected is not None and field.name == expected.field:
            image.append(_field(field.name, codecs.get(field.name)))
            expected = next(values, None)
        else:
            return None
    if expected is not None:
        return None  # a column the events do not hold
    if any(f is None for f in key) or any(f is None for f in image):
        return None
    return Plan(tuple(f for f in key if f is not None), tuple(f for f in image if f is not None))


def _field(name: str, codec: FieldCodec | None) -> PlanField | None:
    if codec is None:
        return None
    found = _kind(codec.schema)
    if found is None:
        return None
    kind, scale = found
    wanted = column_type(codec.schema, codec.source_type)
    if not _TYPES[kind].fullmatch(wanted):
        return None  # e.g. a string holding an inet or a uuid: sent as text
    return name.encode(), kind, scale


def _kind(schema: ConnectSchema) -> tuple[int, int] | None:
    name, kind = schema.name, schema.type
    if name is None:
        if kind in _INTEGERS:
            return _INTEGERS[kind], 0
        if kind == "boolean":
            return BOOL, 0
        if kind == "string":
            return TEXT, 0
        return None
    if name == DECIMAL:
        scale = int((schema.parameters or {}).get("scale", "0"))
        return (NUMERIC, scale) if 0 <= scale <= 1000 else None
    if name == ZONED_TIMESTAMP:
        return TIMESTAMPTZ, 0
    if name in DAYS:
        return DATE, 0
    if name in TIMESTAMPS and TIMESTAMPS[name] in _TIMESTAMPS:
        return _TIMESTAMPS[TIMESTAMPS[name]], 0
    return None


def fits(kinds: Sequence[int], types: Sequence[str]) -> bool:
    """Whether columns of ``types`` (the target's, in ``COPY`` order) read the binary
    values of ``kinds``."""
    return len(kinds) == len(types) and all(
        _TYPES[kind].fullmatch(found) is not None for kind, found in zip(kinds, types, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Run:
    """Records ``start``..``stop`` of a batch as binary ``COPY`` tuples (no header),
    all snapshot reads at ``position``."""

    start: int
    stop: int
    data: bytes
    position: int


#: Records per call of the C encoder: it holds the GIL while it runs, and the applier
#: thread, sending the previous run to the target, needs it each time the socket takes
#: more (see ``duality.runtime.replicate.FEED_SLICE``).
WINDOW: Final = 1_000


def encode_run(
    records: list[Record], start: int, schema_id: int, table_plan: Plan,
    watermark: int | None,
) -> Run | None:
    """The run of snapshot reads from ``records[start]`` on (see the module docstring),
    or None when ``records[start]`` does not start one: not a snapshot read, or at or
    below ``watermark`` (stale: the Python path skips it). The C code takes records
    with the same bytes after the row image; where those change (Debezium's events
    carry their own ``ts_ms``) and the position does not, the run goes on."""
    if native is None or type(records) is not list:
        return None
    parts: list[bytes] = []
    stop, position = start, None
    while stop < len(records):
        value = records[stop].value
        cut = value.find(_CUT, len(_HEAD)) if value and value.startswith(_HEAD) else -1
        at = _snapshot_position(value, cut) if value and cut >= 0 else None
        if at is None or (position is not None and at != position):
            break
        if watermark is not None and at <= watermark:
            break
        assert value is not None
        position = at
        window = records[stop : stop + WINDOW]
        taken, data = native.encode(window, 0, schema_id, value[cut:], table_plan.key,
                                    table_plan.value)
        if not data:
            break
        stop += taken
        parts.append(data)
    if position is None or not parts:
        return None
    return Run(start, stop, b"".join(parts) if len(parts) > 1 else parts[0], position)


#: The stage's two columns after the table's: the position and the op.
STAGE_KINDS: Final = (INT8, TEXT)
_STAGE_TYPES: Final = ("bigint", "text")


def stage_fits(kinds: Sequence[int], types: Sequence[str]) -> bool:
    """Whether a stage whose table columns are of ``types`` reads :func:`encode_changes`
    tuples of a plan with ``kinds``."""
    return fits((*kinds, *STAGE_KINDS), (*types, *_STAGE_TYPES))


def placeholder_marks(quick: Sequence[Any]) -> tuple[bytes, ...] | None:
    """The unchanged-TOAST placeholder values of a table (a row codec's ``quick``) as
    the C encoder compares them, or None when one is a number (it would compare equal
    to a number the encoder does not look at: the Python path then takes every record)."""
    if any(type(x) in (int, float, bool) for x in quick):
        return None
    return tuple(x.encode() for x in quick if type(x) is str)


def encode_changes(
    records: list[Record], start: int, stop: int, schema_id: int, table_plan: Plan,
    watermark: int | None, marks: tuple[bytes, ...], carry: bytes | None,
    winners: dict[bytes, tuple[int, bytes]],
) -> tuple[int, bytes | None]:
    """Streamed changes ``records[start:stop]`` of one partition as stage rows, folded
    into ``winners`` (key bytes → position, tuple), for as long as the C encoder
    takes them exactly as :meth:`duality.tables.decode.TopicDecoder.feed`'s fast path
    would: inserts, updates and deletes (and snapshot reads) in envelopes of schema
    ``schema_id`` with a ``source.lsn`` past ``watermark``, and the tombstone after each
    delete (``carry``: the key of a delete just before ``start``). It stops at an update
    that may move its row (its image's key columns are not the key's bytes), a create
    with headers (perhaps the other half of such a move), a value that is a placeholder
    of ``marks``, a key with escapes (keys are told apart by their bytes), and anything
    :func:`encode_run` would stop at. Returns the index of the first record not taken
    and the key of a delete whose tombstone may follow it."""
    assert native is not None
    taken, after = native.encode_changes(records, start, stop, schema_id, table_plan.key,
                                         table_plan.value, watermark, marks, carry, winners)
    return int(taken), after


def _snapshot_position(value: bytes, cut: int) -> int | None:
    """The position of a snapshot read whose row image ends at ``cut`` (see
    :func:`duality.tables.records.position_of`), or None when the value is not one."""
    try:
        rest: Any = orjson.loads(b"{" + value[cut + 1 :])
        orjson.loads(value[len(_HEAD) : cut])  # the image alone is a whole value
    except orjson.JSONDecodeError:
        return None
    if type(rest) is not dict or "before" in rest or "after" in rest or rest.get("op") != "r":
        return None
    source = rest.get("source")
    lsn = source.get("lsn") if type(source) is dict else None
    return lsn * 2 if type(lsn) is int else None


__all__ = ["SIGNATURE", "Plan", "Run", "encode_changes", "encode_run", "fits", "native",
           "placeholder_marks", "plan", "stage_fits"]
