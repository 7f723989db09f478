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
from duality.sources.postgres.flatten import Flatten

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


def message_schema(content: ConnectSchema) -> RecordSchema:
    """Logical decoding messages (``<prefix>.message``); ``content`` follows
    ``binary.handling.mode``."""
    key = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.postgresql.MessageKey",
        version=1,
        fields=_fields(("prefix", _prim("string", True))),
    )
    message = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.postgresql.Message",
        version=1,
        fields=_fields(("prefix", _prim("string", True)), ("content", content)),
    )
    value = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.postgresql.MessageValue",
        version=1,
        fields=_fields(
            ("op", _prim("string")),
            ("ts_ms", _prim("int64", True)),
            ("source", SOURCE_SCHEMA),
            ("transaction", TRANSACTION_SCHEMA),
            ("message", message),
        ),
    )
    return RecordSchema(key=key, value=value, meta=TableMeta(table=None))


def transaction_schema() -> RecordSchema:
    """Transaction BEGIN/END records (``<prefix>.transaction``)."""
    key = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.common.TransactionMetadataKey",
        version=1,
        fields=_fields(("id", _prim("string"))),
    )
    collection = ConnectSchema(
        "struct",
        True,
        name="event.collection",
        version=1,
        fields=_fields(("data_collection", _prim("string")), ("event_count", _prim("int64"))),
    )
    value = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.common.TransactionMetadataValue",
        version=1,
        fields=_fields(
            ("status", _prim("string")),
            ("id", _prim("string")),
            ("event_count", _prim("int64", True)),
            ("data_collections", ConnectSchema("array", True, items=collection)),
            ("ts_ms", _prim("int64")),
        ),
    )
    return RecordSchema(key=key, value=value, meta=TableMeta(table=None))


def heartbeat_schema() -> RecordSchema:
    """Heartbeats (``__debezium-heartbeat.<prefix>``)."""
    key = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.common.ServerNameKey",
        version=1,
        fields=_fields(("serverName", _prim("string"))),
    )
    value = ConnectSchema(
        "struct",
        False,
        name="io.debezium.connector.common.Heartbeat",
        version=1,
        fields=_fields(("ts_ms", _prim("int64"))),
    )
    return RecordSchema(key=key, value=value, meta=TableMeta(table=None))


def flattened_schema(schema: RecordSchema, flatten: Flatten) -> RecordSchema:
    """The value schema of flattened output: the row struct (``<topic>.Value``) plus
    the added fields (typed as in the envelope) and ``__deleted`` when deletes are
    rewritten."""
    envelope = schema.value
    assert envelope is not None
    after = envelope.field("after")
    assert after is not None
    fields = list(after.schema.fields)
    for added in flatten.fields:
        holder = envelope if not added.struct else _struct(envelope, added.struct)
        found = holder.field(added.field) if holder is not None else None
        kind = found.schema if found is not None else _prim("string", True)
        fields.append(ConnectField(added.name, _optional(kind)))
    if flatten.rewrites:
        fields.append(ConnectField("__deleted", _prim("string", True)))
    value = ConnectSchema("struct", True, name=after.schema.name, fields=tuple(fields))
    return RecordSchema(key=schema.key, value=value, meta=schema.meta)


def _struct(envelope: ConnectSchema, name: str) -> ConnectSchema | None:
    found = envelope.field(name)
    return found.schema if found is not None else None


def _optional(schema: ConnectSchema) -> ConnectSchema:
    return ConnectSchema(
        schema.type,
        True,
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
