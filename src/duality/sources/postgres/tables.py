"""Per-table codecs: everything about a captured table that is worked out once, when the
table is first seen or its Relation message arrives, so the per-event path only indexes
tuples and calls precomputed converters.

A :class:`TableCodec` turns pgoutput tuples and COPY rows into Debezium row images:
``None`` stays None, an unchanged TOAST value becomes the configured placeholder (in
the column's own representation, as Debezium writes it), and a before-image built from
a key-only old tuple gets Debezium's filler for each NOT NULL column it lacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from duality.errors import ConfigError
from duality.events.schema import RecordSchema, TableMeta
from duality.sources.postgres.catalog import ColumnInfo
from duality.sources.postgres.pgoutput import UNCHANGED_TOAST
from duality.sources.postgres.record_schema import table_record_schema
from duality.sources.postgres.types import codec_for
from duality.sources.postgres.types_model import ColumnCodec, PgType, ValueSettings

FromText = Callable[[bytes], Any]


@dataclass(slots=True)
class TableCodec:
    """Converts one table's rows to Debezium images; see the module docstring."""

    schema: str
    table: str
    topic: str
    names: tuple[str, ...]
    converters: tuple[FromText, ...]
    placeholders: tuple[Any, ...]
    fillers: tuple[Any, ...]
    key_names: tuple[str, ...]
    record_schema: RecordSchema
    schema_id: int = 0
    unknown: tuple[str, ...] = ()

    def image(self, row: Sequence[Any]) -> dict[str, Any]:
        """A full row (COPY fields or a new/old pgoutput tuple) → a row image."""
        out: dict[str, Any] = {}
        for name, convert, placeholder, raw in zip(
            self.names, self.converters, self.placeholders, row, strict=True
        ):
            if raw is None:
                out[name] = None
            elif raw is UNCHANGED_TOAST:
                out[name] = placeholder
            else:
                out[name] = convert(raw)
        return out

    def key_only_image(self, row: Sequence[Any]) -> dict[str, Any]:
        """A before-image from a key-only old tuple: the identity columns it carries, and
        Debezium's filler (or None) for every other column."""
        out: dict[str, Any] = {}
        for name, convert, filler, raw in zip(
            self.names, self.converters, self.fillers, row, strict=True
        ):
            out[name] = filler if raw is None or raw is UNCHANGED_TOAST else convert(raw)
        return out

    def merged_image(self, new: Sequence[Any], old: Sequence[Any]) -> dict[str, Any]:
        """The after-image of an update whose old tuple holds every column (replica
        identity FULL): unchanged TOAST values are taken from the old tuple."""
        merged = [
            o if n is UNCHANGED_TOAST and o is not UNCHANGED_TOAST else n
            for n, o in zip(new, old, strict=True)
        ]
        return self.image(merged)

    def key(self, image: dict[str, Any]) -> dict[str, Any] | None:
        if not self.key_names:
            return None
        return {name: image[name] for name in self.key_names}


def build_codec(
    *,
    prefix: str,
    schema: str,
    table: str,
    columns: Sequence[ColumnInfo],
    key_names: Sequence[str],
    replica_identity: str,
    types: dict[int, PgType],
    settings: ValueSettings,
    placeholder: str,
) -> TableCodec:
    """Work out a table's converters, fillers, placeholders and record schema."""
    topic = f"{prefix}.{schema}.{table}"
    codecs = [_codec(c, types, settings) for c in columns]
    missing = [k for k in key_names if k not in {c.name for c in columns}]
    if missing:
        raise ConfigError(f"{schema}.{table}: key column(s) {missing} are not in the table")
    meta = TableMeta(
        table=f"{schema}.{table}",
        source_types={c.name: c.type_name for c in columns},
        primary_key=tuple(key_names),
        key_columns=tuple(key_names),
        replica_identity=replica_identity,
        unavailable_placeholder=placeholder,
    )
    record_schema = table_record_schema(
        topic,
        [(c.name, codec.schema) for c, codec in zip(columns, codecs, strict=True)],
        key_names,
        meta,
    )
    return TableCodec(
        schema=schema,
        table=table,
        topic=topic,
        names=tuple(c.name for c in columns),
        converters=tuple(codec.from_text for codec in codecs),
        placeholders=tuple(_placeholder(codec, placeholder) for codec in codecs),
        fillers=tuple(
            filler(codec.schema) if c.not_null else None
            for c, codec in zip(columns, codecs, strict=True)
        ),
        key_names=tuple(key_names),
        record_schema=record_schema,
        unknown=tuple(c.name for c, codec in zip(columns, codecs, strict=True) if codec.unknown),
    )


def _codec(column: ColumnInfo, types: dict[int, PgType], settings: ValueSettings) -> ColumnCodec:
    pg_type = types.get(column.type_oid)
    if pg_type is None:
        raise ConfigError(f"column {column.name!r}: type oid {column.type_oid} is unknown")
    return codec_for(
        pg_type,
        column.type_modifier,
        optional=not column.not_null,
        settings=settings,
        column=column.name,
    )


def _placeholder(codec: ColumnCodec, text: str) -> Any:
    """The unchanged-TOAST placeholder in the column's representation, as Debezium
    writes it: the placeholder's bytes for binary columns, a one-element list for
    arrays, the string itself for everything else."""
    schema = codec.schema
    kind, logical = schema.get("type"), schema.get("name")
    raw = text.encode()
    candidate = None
    if kind == "bytes" and not logical:
        candidate = b"\\x" + raw.hex().encode()
    elif kind == "array":
        candidate = b'{"' + raw + b'"}'
    if candidate is not None:
        with contextlib.suppress(Exception):
            return codec.from_text(candidate)
    return text


_EPOCH_STRINGS = {
    "io.debezium.time.ZonedTimestamp": "1970-01-01T00:00:00Z",
    "io.debezium.time.ZonedTime": "00:00:00Z",
}


def filler(schema: dict[str, Any]) -> Any:
    """What Debezium writes for a NOT NULL column that a key-only before-image lacks:
    the zero of the column's Connect type."""
    name = schema.get("name")
    if name in _EPOCH_STRINGS:
        return _EPOCH_STRINGS[name]
    if name == "org.apache.kafka.connect.data.Decimal":
        return "AA=="
    if name == "io.debezium.data.VariableScaleDecimal":
        return {"scale": 0, "value": "AA=="}
    kind = schema.get("type")
    if kind in ("int8", "int16", "int32", "int64"):
        return 0
    if kind in ("float", "double", "float32", "float64"):
        return 0.0
    if kind == "boolean":
        return False
    if kind in ("string", "bytes"):
        return ""
    if kind == "array":
        return []
    if kind == "map":
        return {}
    return None
