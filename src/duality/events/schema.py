"""Schemas that travel with the log.

Payload-only JSON cannot say that a base64 string is a ``numeric(12,2)`` or that an
integer is a timestamp. So every record refers to a :class:`RecordSchema`: the Kafka
Connect key and value schemas (as the JSON converter writes them, with logical names
and parameters) plus duality's :class:`TableMeta` (source type names, primary-key
columns, replica identity). Schemas are immutable and content-addressed: registering
an equal schema again returns the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class ConnectSchema:
    """A Kafka Connect schema: ``type`` is int8…int64, float32/64, boolean, string,
    bytes, array, map or struct; ``name``/``version``/``parameters`` carry the logical
    type (``org.apache.kafka.connect.data.Decimal`` with ``scale``, …)."""

    type: str
    optional: bool = False
    name: str | None = None
    version: int | None = None
    parameters: Mapping[str, str] | None = None
    default: Any = None
    doc: str | None = None
    fields: tuple[ConnectField, ...] = ()
    items: ConnectSchema | None = None
    keys: ConnectSchema | None = None
    values: ConnectSchema | None = None

    def field(self, name: str) -> ConnectField | None:
        for item in self.fields:
            if item.name == name:
                return item
        return None

    def to_json(self) -> dict[str, Any]:
        """The JSON converter's representation (field order as Connect writes it)."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "struct":
            out["fields"] = [f.to_json() for f in self.fields]
        if self.items is not None:
            out["items"] = self.items.to_json()
        if self.keys is not None:
            out["keys"] = self.keys.to_json()
        if self.values is not None:
            out["values"] = self.values.to_json()
        out["optional"] = self.optional
        if self.default is not None:
            out["default"] = self.default
        if self.name is not None:
            out["name"] = self.name
        if self.version is not None:
            out["version"] = self.version
        if self.doc is not None:
            out["doc"] = self.doc
        if self.parameters is not None:
            out["parameters"] = dict(self.parameters)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectSchema:
        def sub(key: str) -> ConnectSchema | None:
            value = data.get(key)
            return cls.from_json(value) if isinstance(value, Mapping) else None

        params = data.get("parameters")
        return cls(
            type=str(data["type"]),
            optional=bool(data.get("optional", False)),
            name=data.get("name"),
            version=data.get("version"),
            parameters={str(k): str(v) for k, v in params.items()} if params else None,
            default=data.get("default"),
            doc=data.get("doc"),
            fields=tuple(ConnectField.from_json(f) for f in data.get("fields") or ()),
            items=sub("items"),
            keys=sub("keys"),
            values=sub("values"),
        )


@dataclass(frozen=True, slots=True)
class ConnectField:
    """A named field of a struct schema."""

    name: str
    schema: ConnectSchema

    def to_json(self) -> dict[str, Any]:
        out = self.schema.to_json()
        out["field"] = self.name
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectField:
        return cls(name=str(data["field"]), schema=ConnectSchema.from_json(data))


@dataclass(frozen=True, slots=True)
class TableMeta:
    """What duality knows about the source table beyond Connect's schema.

    ``source_types`` maps each column to its source type as the database names it
    (``numeric(12,2)``, ``timestamp with time zone``, ``text[]``); ``primary_key`` is
    the table's key columns; ``key_columns`` are the columns in the record key (they
    differ when ``message.key.columns`` is set); ``replica_identity`` is ``default``,
    ``full``, ``index`` or ``nothing`` (``None`` when the source has no such notion).
    Only with ``full`` are before-images complete. ``unavailable_placeholder`` is the
    text that stands for an unchanged TOAST value (``unavailable.value.placeholder``):
    a value equal to it, in the column's representation, is not data. ``altered`` maps
    each column whose values capture changed (masked, hashed, truncated) to the
    properties that did it: such values are not the source's. ``table`` is
    ``<schema>.<table>``; ``schema`` is given where the schema's name holds a dot, which
    would make that ambiguous (see :meth:`source_table`). ``identity_columns`` are the
    columns of the replica identity's index, under ``index`` only. ``base_types`` maps each
    column of a domain type (or an array of one) to the type under the domain
    (``numeric(8,3)``, ``bytea[]``): what its values are.
    """

    table: str | None = None
    source_types: Mapping[str, str] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()
    replica_identity: str | None = None
    unavailable_placeholder: str | None = None
    altered: Mapping[str, str] = field(default_factory=dict)
    schema: str | None = None
    identity_columns: tuple[str, ...] = ()
    base_types: Mapping[str, str] = field(default_factory=dict)

    @property
    def complete_before_images(self) -> bool:
        return self.replica_identity == "full"

    @property
    def keyless_deletes(self) -> bool:
        """Whether deletes (and the delete of a key change) carry no primary key: under
        ``REPLICA IDENTITY USING INDEX`` on columns that leave part of it out, the old
        row holds the index's columns only, and Debezium keys the event by filler values
        (``{"id": 0}``)."""
        return (self.replica_identity == "index" and bool(self.identity_columns)
                and not set(self.primary_key) <= set(self.identity_columns))

    def to_json(self) -> dict[str, Any]:
        out = {
            "table": self.table,
            "source_types": dict(self.source_types),
            "primary_key": list(self.primary_key),
            "key_columns": list(self.key_columns),
            "replica_identity": self.replica_identity,
            "unavailable_placeholder": self.unavailable_placeholder,
        }
        if self.altered:  # only then, so that schemas registered before keep their ids
            out["altered"] = dict(self.altered)
        if self.schema is not None:  # the same
            out["schema"] = self.schema
        if self.identity_columns:  # the same (only under REPLICA IDENTITY USING INDEX)
            out["identity_columns"] = list(self.identity_columns)
        if self.base_types:  # the same (only with domains)
            out["base_types"] = dict(self.base_types)
        return out

    def source_table(self) -> tuple[str, str] | None:
        """The source table's (schema, name): ``table`` split after ``schema``, or at its
        first dot; None without both parts."""
        if not self.table:
            return None
        if self.schema is not None and self.table.startswith(self.schema + "."):
            return self.schema, self.table[len(self.schema) + 1 :]
        schema, dot, name = self.table.partition(".")
        return (schema, name) if dot else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableMeta:
        return cls(
            table=data.get("table"),
            source_types=dict(data.get("source_types") or {}),
            primary_key=tuple(data.get("primary_key") or ()),
            key_columns=tuple(data.get("key_columns") or ()),
            replica_identity=data.get("replica_identity"),
            unavailable_placeholder=data.get("unavailable_placeholder"),
            altered=dict(data.get("altered") or {}),
            schema=data.get("schema"),
            identity_columns=tuple(data.get("identity_columns") or ()),
            base_types=dict(data.get("base_types") or {}),
        )


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """The key and value schema of a record, and the source table's metadata."""

    key: ConnectSchema | None
    value: ConnectSchema | None
    meta: TableMeta = field(default_factory=TableMeta)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key.to_json() if self.key else None,
            "value": self.value.to_json() if self.value else None,
            "meta": self.meta.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordSchema:
        key, value = data.get("key"), data.get("value")
        return cls(
            key=ConnectSchema.from_json(key) if key else None,
            value=ConnectSchema.from_json(value) if value else None,
            meta=TableMeta.from_json(data.get("meta") or {}),
        )

    def canonical(self) -> bytes:
        """Canonical JSON (sorted keys): equal schemas give equal bytes."""
        return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()
