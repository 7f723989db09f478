"""The Kafka Connect schemas of a captured table's records, as Debezium writes them.

Key: ``<topic>.Key`` struct of the key columns. Value: ``<topic>.Envelope`` (version 2)
with ``before``/``after`` (``<topic>.Value``), ``source``
(``io.debezium.connector.postgresql.Source``), ``transaction`` (``event.block``), ``op``,
``ts_ms``, ``ts_us``, ``ts_ns``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from duality.events.schema import ConnectField, ConnectSchema, RecordSchema, TableMeta

SNAPSHOT_VALUES = (
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"
)


def _prim(kind: str, optional: bool = False, **extra: Any) -> ConnectSchema:
    return ConnectSchema(kind, optional, **extra)


def _fields(*items: tuple[str, ConnectSchema]) -> tuple[ConnectField, ...]:
    return tuple(ConnectField(name, schema) for name, schema in items)


SOURCE_SCHEMA = ConnectSchema(
    "struct",
    False,
    name="io.debezium.connector.postgresql.Source",
    version=1,
    fields=_fields(
        ("version", _prim("string")),
        ("connector", _prim("string")),
        ("name", _prim("string")),
        ("ts_ms", _prim("int64")),
        (
            "snapshot",
            _prim(
                "string",
                True,
                name="io.debezium.data.Enum",
                version=1,
                parameters={"allowed": SNAPSHOT_VALUES},
                default="false",
            ),
        ),
        ("db", _prim("string")),
        ("sequence", _prim("string", True)),
        ("ts_us", _prim("int64", True)),
        ("ts_ns", _prim("int64", True)),
        ("schema", _prim("string")),
        ("table", _prim("string")),
        ("txId", _prim("int64", True)),
        ("lsn", _prim("int64", True)),
        ("xmin", _prim("int64", True)),
        ("origin", _prim("string", True)),
        ("origin_lsn", _prim("int64", True)),
    ),
)

TRANSACTION_SCHEMA = ConnectSchema(
    "struct",
    True,
    name="event.block",
    version=1,
    fields=_fields(
        ("id", _prim("string")),
        ("total_order", _prim("int64")),
        ("data_collection_order", _prim("int64")),
    ),
)


def column_schema(schema: Mapping[str, Any]) -> ConnectSchema:
    """A codec's field schema (the JSON converter's dict) as a ConnectSchema."""
    return ConnectSchema.from_json(schema)


def table_record_schema(
    topic: str,
    columns: Sequence[tuple[str, Mapping[str, Any]]],
    key_columns: Sequence[str],
    meta: TableMeta,
) -> RecordSchema:
    """Key and envelope schemas for a table whose columns (name, field schema) are given
    in order; ``key_columns`` may be empty (a keyless table: null keys)."""
    by_name = {name: column_schema(schema) for name, schema in columns}
    value = ConnectSchema(
        "struct",
        True,
        name=f"{topic}.Value",
        fields=tuple(ConnectField(name, by_name[name]) for name, _ in columns),
    )
    envelope = ConnectSchema(
        "struct",
        False,
        name=f"{topic}.Envelope",
        version=2,
        fields=_fields(
            ("before", value),
            ("after", value),
            ("source", SOURCE_SCHEMA),
            ("transaction", TRANSACTION_SCHEMA),
            ("op", _prim("string")),
            ("ts_ms", _prim("int64", True)),
            ("ts_us", _prim("int64", True)),
            ("ts_ns", _prim("int64", True)),
        ),
    )
    key = None
    if key_columns:
        key = ConnectSchema(
            "struct",
            False,
            name=f"{topic}.Key",
            fields=tuple(ConnectField(name, _required(by_name[name])) for name in key_columns),
        )
    return RecordSchema(key=key, value=envelope, meta=meta)


def _required(schema: ConnectSchema) -> ConnectSchema:
    if not schema.optional:
        return schema
    return ConnectSchema(
        schema.type,
        False,
        schema.name,
        schema.version,
        schema.parameters,
        schema.default,
        schema.doc,
        schema.fields,
        schema.items,
        schema.keys,
        schema.values,
    )
