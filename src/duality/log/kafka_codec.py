"""How records, schemas and positions look on Kafka (pure functions, no I/O).

* **Values** are what Kafka Connect's JSON converter writes by default:
  ``{"schema": <Connect schema>, "payload": <payload>}``, so ksqlDB, Flink and Connect
  sinks recover the types; with ``value.converter.schemas.enable=false`` the payload
  alone. Tombstones stay null.
* **Keys** are compact JSON (``{"id":1}``), as the JSON converter writes them with
  ``key.converter.schemas.enable=false``; their bytes decide the partition (murmur2).
* **duality's schema metadata** (:class:`~duality.events.schema.TableMeta`: source types,
  primary key, replica identity) does not fit in a Connect schema. Each record carries
  a ``duality.schema`` header with the SHA-256 fingerprint of its
  :class:`~duality.events.schema.RecordSchema`, and the compacted schemas topic
  (``__duality_schemas``) holds, keyed by the fingerprint as a JSON string, the
  schema's canonical JSON; a record written without a schema carries the header
  empty. A schema id is the fingerprint's first 60 bits as an
  integer, so every process derives the same id without coordination.
* **Source positions** follow Kafka Connect's offsets topic: key
  ``["<connector name>",{"server":"<topic.prefix>"}]`` (the position's name), value the
  offset JSON (Debezium's PostgreSQL offset keys, see
  :mod:`duality.events.positions`); a null value deletes a position.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from duality.events.schema import ConnectSchema, RecordSchema

SCHEMA_HEADER = "duality.schema"
#: The header of a record duality wrote without a schema (``duality produce``): its
#: bytes are the payload as given, and readers do not warn that types are lost.
SCHEMALESS = (SCHEMA_HEADER, b"")
_ID_HEX_DIGITS = 15


def schema_id(fingerprint: str) -> int:
    """The id of the schema with this fingerprint (its first 60 bits)."""
    return int(fingerprint[:_ID_HEX_DIGITS], 16)


def value_prefix(schema: ConnectSchema) -> bytes:
    """The bytes before the payload in a ``{"schema", "payload"}`` value."""
    return b'{"schema":' + orjson.dumps(schema.to_json()) + b',"payload":'


def wrap(prefix: bytes, payload: bytes) -> bytes:
    """A ``{"schema", "payload"}`` value from :func:`value_prefix` and payload bytes."""
    return b"".join((prefix, payload, b"}"))


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """A value or key as read: the payload bytes, and the Connect schema that came
    with it (None when the bytes carried none)."""

    payload: bytes | None
    schema: dict[str, Any] | None = None


def unwrap(data: bytes | None, prefix: bytes | None = None) -> Unwrapped:
    """Split a value into payload and schema. ``prefix`` (from :func:`value_prefix`)
    takes the fast path for values duality wrote itself; anything else is parsed."""
    if data is None:
        return Unwrapped(None)
    if prefix is not None and data.startswith(prefix) and data.endswith(b"}"):
        return Unwrapped(data[len(prefix) : -1])
    if not data.startswith(b"{"):
        return Unwrapped(data)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Unwrapped(data)
    if isinstance(parsed, dict) and parsed.keys() == {"schema", "payload"}:
        schema = parsed["schema"]
        payload = parsed["payload"]
        body = None if payload is None else orjson.dumps(payload)
        return Unwrapped(body, schema if isinstance(schema, dict) else None)
    return Unwrapped(data)


def schema_record(schema: RecordSchema) -> tuple[bytes, bytes, str]:
    """(key, value, fingerprint) of a schema's record in the schemas topic."""
    fingerprint = schema.fingerprint()
    return orjson.dumps(fingerprint), schema.canonical(), fingerprint


def parse_schema_record(key: bytes | None, value: bytes | None) -> tuple[str, RecordSchema] | None:
    """A schemas-topic record → (fingerprint, schema); None if it is not one (or its
    body does not match its fingerprint)."""
    if key is None or value is None:
        return None
    try:
        fingerprint = orjson.loads(key)
        schema = RecordSchema.from_json(orjson.loads(value))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if not isinstance(fingerprint, str) or hashlib.sha256(value).hexdigest() != fingerprint:
        return None
    return fingerprint, schema


def foreign_schema(key_schema: dict[str, Any] | None, value_schema: dict[str, Any] | None,
                   ) -> RecordSchema:
    """The schema of a record another writer (Debezium on Connect) wrote with the JSON
    converter: its Connect schemas, and no duality metadata."""
    return RecordSchema(
        key=ConnectSchema.from_json(key_schema) if key_schema else None,
        value=ConnectSchema.from_json(value_schema) if value_schema else None,
    )


def position_key(name: str) -> bytes:
    """The offsets-topic key of a position. duality's names already are Connect's JSON
    key (``["connector",{"server":"prefix"}]``); any other name becomes a JSON string."""
    try:
        return orjson.dumps(orjson.loads(name))
    except orjson.JSONDecodeError:
        return orjson.dumps(name)


#: What a reader cannot tell from payload-only JSON (``schemas.enable=false`` written by
#: another tool, without duality's schema header), by Connect type.
LOST_WITHOUT_SCHEMA = (
    "decimals in bytes mode (base64 text, scale unknown)",
    "dates, times and timestamps (plain numbers or text)",
    "binary columns (base64 text, indistinguishable from text)",
    "integer widths and float precision",
    "JSON, UUID, XML, geometry and other logical types (plain text)",
    "which fields are optional, and the source column types",
)


def schemaless_note(topic: str) -> str:
    """The warning a reader gives when a topic's records carry no schema."""
    return (
        f"topic {topic!r} has records without a schema (JSON converter with "
        f"schemas.enable=false, and no {SCHEMA_HEADER} header): their types cannot be "
        f"recovered: {'; '.join(LOST_WITHOUT_SCHEMA)}. Write them with "
        f"value.converter.schemas.enable=true, or with duality, to keep the types."
    )
