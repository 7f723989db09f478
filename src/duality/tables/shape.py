"""The shape of a table: its columns (field name, SQL name, kind) and key.

A table's shape comes from the registered schema of its records: the ``after`` struct
of a Debezium envelope (or the flat value struct of a flattened topic) gives the
columns in order, the key schema gives the primary key. A topic without schemas gets
an *inferred* shape that grows as new fields appear and never loses columns.

Field names pass through byte for byte; the SQL column name is the field name unless
SQLite cannot hold it as such (a NUL character, an empty name, a name that differs from
another only in ASCII case, or one starting with ``duality:`` in any ASCII case, which
the store keeps for its own tables and hidden columns), in which case a suffix or prefix
makes it unique. The store keeps both, so output always uses the field name.

A key (or value) that is not an object is held in one column named ``key`` (``value``),
or ``key~2``, ``key~3``… when the row (the key) has a field of that name itself, so the
two never share a column.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from duality.events.schema import ConnectSchema, RecordSchema
from duality.tables.types import Decode, Kind, column_codec

#: Field names of a topic whose key (or value) is not a JSON object (see :func:`free_field`).
KEY_FIELD = "key"
VALUE_FIELD = "value"
#: Names starting with this (ignoring ASCII case) belong to the store itself.
RESERVED = "duality:"


@dataclass(frozen=True, slots=True)
class Column:
    field: str
    sql: str
    kind: Kind

    def to_json(self) -> list[str]:
        return [self.field, self.sql, self.kind.code]


@dataclass(frozen=True, slots=True)
class Shape:
    """Columns in table order; ``key`` names the key fields in key order (empty: the
    topic has no keys yet). ``typed``: from registered schemas, else inferred.
    ``key_scalar``/``value_scalar``: the record key/value is a single value, not an
    object, held in the column :attr:`key_field`/:attr:`value_field`."""

    columns: tuple[Column, ...]
    key: tuple[str, ...]
    typed: bool
    key_scalar: bool = False
    value_scalar: bool = False

    def column(self, field: str) -> Column | None:
        for column in self.columns:
            if column.field == field:
                return column
        return None

    @property
    def key_columns(self) -> tuple[Column, ...]:
        by_field = {c.field: c for c in self.columns}
        return tuple(by_field[f] for f in self.key)

    @property
    def value_columns(self) -> tuple[Column, ...]:
        """The non-key columns, in table order."""
        keys = set(self.key)
        return tuple(c for c in self.columns if c.field not in keys)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(c.field for c in self.columns)

    @property
    def key_field(self) -> str:
        """The field of the column holding a key that is not an object."""
        return self.key[0] if self.key_scalar and self.key else KEY_FIELD

    @property
    def value_field(self) -> str:
        """The field of the column holding a value that is not an object (the first
        value column, as :meth:`~duality.tables.codec.RowCodec.values` reads it)."""
        if self.value_scalar:
            for column in self.columns:
                if column.field not in self.key:
                    return column.field
        return VALUE_FIELD

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [c.to_json() for c in self.columns],
            "key": list(self.key),
            "typed": self.typed,
            "key_scalar": self.key_scalar,
            "value_scalar": self.value_scalar,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Shape:
        columns = tuple(Column(f, s, Kind.parse(k)) for f, s, k in data["columns"])
        return cls(
            columns,
            tuple(data["key"]),
            bool(data["typed"]),
            bool(data.get("key_scalar")),
            bool(data.get("value_scalar")),
        )


EMPTY = Shape((), (), typed=False)


def row_schema(value: ConnectSchema | None) -> ConnectSchema | None:
    """The struct that holds a row: an envelope's ``after`` (or ``before``), or the value
    schema itself for a flattened topic; None when the value is not a struct."""
    if value is None:
        return None
    if is_envelope(value):
        after = value.field("after") or value.field("before")
        return after.schema if after is not None else None
    return value if value.type == "struct" else None


def is_envelope(value: ConnectSchema | None) -> bool:
    return (
        value is not None
        and value.type == "struct"
        and value.field("op") is not None
        and (value.field("after") is not None or value.field("before") is not None)
    )


@dataclass(frozen=True, slots=True)
class FieldCodec:
    field: str
    kind: Kind
    decode: Decode | None
    schema: ConnectSchema
    source_type: str | None = None


def field_codecs(schema: RecordSchema) -> dict[str, FieldCodec]:
    """Every field of the key and the row, with its kind and decoder (key first)."""
    types = schema.meta.source_types
    out: dict[str, FieldCodec] = {}
    for name, field_schema in _key_fields(schema) + _row_fields(schema):
        kind, decode = column_codec(field_schema, types.get(name))
        out.setdefault(name, FieldCodec(name, kind, decode, field_schema, types.get(name)))
    return out


def _struct_names(struct: ConnectSchema | None) -> set[str]:
    if struct is None or struct.type != "struct":
        return set()
    return {f.name for f in struct.fields}


def _key_fields(schema: RecordSchema) -> list[tuple[str, ConnectSchema]]:
    key = schema.key
    if key is None:
        return []
    if key.type == "struct":
        return [(f.name, f.schema) for f in key.fields]
    return [(free_field(KEY_FIELD, _struct_names(row_schema(schema.value))), key)]


def _row_fields(schema: RecordSchema) -> list[tuple[str, ConnectSchema]]:
    value = schema.value
    row = row_schema(value)
    if row is not None:
        return [(f.name, f.schema) for f in row.fields]
    if value is None or is_envelope(value):
        return []
    return [(free_field(VALUE_FIELD, _struct_names(schema.key)), value)]


def shape_from_schema(schema: RecordSchema, previous: Shape) -> Shape:
    """The table shape the schema describes, keeping the SQL names ``previous`` gave to
    the same fields. Key fields the row lacks come first, then the row's fields."""
    codecs = field_codecs(schema)
    key = tuple(name for name, _ in _key_fields(schema))
    row = [name for name, _ in _row_fields(schema)]
    order = [k for k in key if k not in row] + row
    namer = SqlNamer(previous, keep=order)
    columns = tuple(Column(f, namer.name(f), codecs[f].kind) for f in order)
    key_scalar = schema.key is not None and schema.key.type != "struct"
    value_scalar = bool(row) and row_schema(schema.value) is None
    return Shape(columns, key, True, key_scalar, value_scalar)


def moved_holder(old: Shape, new: Shape) -> tuple[str, str, str] | None:
    """``("key", old field, new field)`` (or ``"value"``) when ``new`` would hold a key
    (value) that is not an object in another column than ``old`` holds it in: the row
    (key) gained or lost a field of that name. Its rows cannot be carried over."""
    if not old.columns:
        return None
    if old.key_scalar and new.key_scalar and old.key_field != new.key_field:
        return "key", old.key_field, new.key_field
    if old.value_scalar and new.value_scalar and old.value_field != new.value_field:
        return "value", old.value_field, new.value_field
    return None


def with_fields(shape: Shape, fields: Iterable[tuple[str, Kind]], key: tuple[str, ...]) -> Shape:
    """An inferred shape grown by new fields (existing ones keep name and kind)."""
    namer = SqlNamer(shape, keep=[c.field for c in shape.columns])
    columns = list(shape.columns)
    for field, kind in fields:
        if shape.column(field) is None and all(c.field != field for c in columns):
            columns.append(Column(field, namer.name(field), kind))
    return Shape(tuple(columns), shape.key or key, shape.typed, shape.key_scalar,
                 shape.value_scalar)


class SqlNamer:
    """Gives fields SQL column names that SQLite can hold, that are unique ignoring
    ASCII case and that never start with the store's own ``duality:`` (see
    :func:`reserved`), keeping the names ``previous`` gave to fields still present."""

    def __init__(self, previous: Shape, keep: Iterable[str]) -> None:
        wanted = set(keep)
        self._given = {c.field: c.sql for c in previous.columns if c.field in wanted}
        self._taken = {_fold(sql) for sql in self._given.values()}

    def name(self, field: str) -> str:
        known = self._given.get(field)
        if known is not None:
            return known
        base = field.replace("\x00", "\\0") or "_"
        if reserved(base):
            base = "_" + base
        candidate = _suffixed(base, lambda name: _fold(name) in self._taken)
        self._taken.add(_fold(candidate))
        self._given[field] = candidate
        return candidate


def reserved(name: str) -> bool:
    """Whether SQLite would take ``name`` for one of the store's own ``duality:`` names
    (its tables, and the hidden columns beside a table's or a probe's own)."""
    return _fold(name).startswith(RESERVED)


def free_field(base: str, taken: Collection[str]) -> str:
    """``base``, or the first of ``base~2``, ``base~3``… that is not a field of ``taken``
    (field names are compared exactly; :class:`SqlNamer` then names the column)."""
    return _suffixed(base, taken.__contains__)


def free_sql_name(base: str, taken: Iterable[str]) -> str:
    """``base``, or the first of ``base~2``, ``base~3``… that SQLite does not see as one of
    the SQL names ``taken``."""
    folded = {_fold(name) for name in taken}
    return _suffixed(base, lambda name: _fold(name) in folded)


def _suffixed(base: str, taken: Callable[[str], bool]) -> str:
    candidate, n = base, 1
    while taken(candidate):
        n += 1
        candidate = f"{base}~{n}"
    return candidate


def _fold(name: str) -> str:
    """SQLite compares identifiers ignoring ASCII case only."""
    return "".join(c.lower() if c.isascii() else c for c in name)
