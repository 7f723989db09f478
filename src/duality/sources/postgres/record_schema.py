"""The Kafka Connect schemas of a captured table's records, as Debezium writes them.

Key: ``<topic>.Key`` struct of the key columns. Value: ``<topic>.Envelope`` (version 2)
with ``before``/``after`` (``<topic>.Value``), ``source``
(``io.debezium.connector.postgresql.Source``), ``transaction`` (``event.block``), ``op``,
``ts_ms``, ``ts_us``, ``ts_ns``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
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


def _struct(
    name: str, *items: tuple[str, ConnectSchema], optional: bool = False, version: int = 1
) -> ConnectSchema:
    """A named, versioned struct of Debezium's (``io.debezium…``, ``event.block``)."""
    return ConnectSchema("struct", optional, name=name, version=version, fields=_fields(*items))


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
    value_parameters: Mapping[str, Mapping[str, str]] | None = None,
) -> RecordSchema:
    """Key and envelope schemas for a table whose columns (name, field schema) are given
    in order; ``key_columns`` may be empty (a keyless table: null keys).
    ``value_parameters`` are added to the parameters of those columns' fields in the
    row struct, not in the key (Debezium's ``column.propagate.source.type``)."""
    by_name = {name: column_schema(schema) for name, schema in columns}
    extra = value_parameters or {}
    value = ConnectSchema(
        "struct",
        True,
        name=f"{topic}.Value",
        fields=tuple(
            ConnectField(name, _with_parameters(by_name[name], extra.get(name)))
            for name, _ in columns
        ),
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
            # As the column is: a primary key's are NOT NULL, a message.key.columns
            # column may be nullable (Debezium's key field is optional then).
            fields=tuple(ConnectField(name, by_name[name]) for name in key_columns),
        )
    return RecordSchema(key=key, value=envelope, meta=meta)


def _with_parameters(
    schema: ConnectSchema, parameters: Mapping[str, str] | None
) -> ConnectSchema:
    """``schema`` with ``parameters`` after the ones it has."""
    if not parameters:
        return schema
    return replace(schema, parameters={**(schema.parameters or {}), **parameters})


def message_schema(content: ConnectSchema) -> RecordSchema:
    """Logical decoding messages (``<prefix>.message``); ``content`` follows
    ``binary.handling.mode``."""
    prefix = ("prefix", _prim("string", True))
    return RecordSchema(
        key=_struct("io.debezium.connector.postgresql.MessageKey", prefix),
        value=_struct(
            "io.debezium.connector.postgresql.MessageValue",
            ("op", _prim("string")),
            ("ts_ms", _prim("int64", True)),
            ("source", SOURCE_SCHEMA),
            ("transaction", TRANSACTION_SCHEMA),
            (
                "message",
                _struct("io.debezium.connector.postgresql.Message", prefix, ("content", content)),
            ),
        ),
        meta=TableMeta(table=None),
    )


def transaction_schema() -> RecordSchema:
    """Transaction BEGIN/END records (``<prefix>.transaction``)."""
    collection = _struct(
        "event.collection",
        ("data_collection", _prim("string")),
        ("event_count", _prim("int64")),
        optional=True,
    )
    return RecordSchema(
        key=_struct("io.debezium.connector.common.TransactionMetadataKey", ("id", _prim("string"))),
        value=_struct(
            "io.debezium.connector.common.TransactionMetadataValue",
            ("status", _prim("string")),
            ("id", _prim("string")),
            ("event_count", _prim("int64", True)),
            ("data_collections", ConnectSchema("array", True, items=collection)),
            ("ts_ms", _prim("int64")),
        ),
        meta=TableMeta(table=None),
    )


def heartbeat_schema() -> RecordSchema:
    """Heartbeats (``__debezium-heartbeat.<prefix>``)."""
    return RecordSchema(
        key=_struct("io.debezium.connector.common.ServerNameKey", ("serverName", _prim("string"))),
        value=_struct("io.debezium.connector.common.Heartbeat", ("ts_ms", _prim("int64"))),
        meta=TableMeta(table=None),
    )


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
        holder = envelope if not added.struct else _member(envelope, added.struct)
        found = holder.field(added.field) if holder is not None else None
        kind = found.schema if found is not None else _prim("string", True)
        fields.append(ConnectField(added.name, _optional(kind)))
    if flatten.rewrites:
        fields.append(ConnectField("__deleted", _prim("string", True)))
    value = ConnectSchema("struct", True, name=after.schema.name, fields=tuple(fields))
    return RecordSchema(key=schema.key, value=value, meta=schema.meta)


def _member(envelope: ConnectSchema, name: str) -> ConnectSchema | None:
    found = envelope.field(name)
    return found.schema if found is not None else None


def _optional(schema: ConnectSchema) -> ConnectSchema:
    return replace(schema, optional=True)
