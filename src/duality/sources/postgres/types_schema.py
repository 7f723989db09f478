"""Kafka Connect schemas as the JSON converter writes them, and the JSON-ready forms of
Connect values (bytes as base64, non-finite doubles as strings).

A schema here is the dict ``JsonConverter.asJsonSchema`` produces for a field, minus the
``field`` key: ``type``, ``optional``, then ``name``/``version``/``doc``/``parameters`` when
set, and ``items``/``keys``/``values``/``fields`` for containers. Logical names and
versions are Debezium's and Kafka Connect's.
"""

from __future__ import annotations

import binascii
import math
from typing import Any

Schema = dict[str, Any]

# Debezium logical names (io.debezium.*) and Kafka Connect's own (org.apache.kafka.*).
DECIMAL = "org.apache.kafka.connect.data.Decimal"
CONNECT_DATE = "org.apache.kafka.connect.data.Date"
CONNECT_TIME = "org.apache.kafka.connect.data.Time"
CONNECT_TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
BITS = "io.debezium.data.Bits"
ENUM = "io.debezium.data.Enum"
JSON = "io.debezium.data.Json"
UUID = "io.debezium.data.Uuid"
XML = "io.debezium.data.Xml"
TSVECTOR = "io.debezium.data.Tsvector"
LTREE = "io.debezium.data.Ltree"
POINT = "io.debezium.data.geometry.Point"
DATE = "io.debezium.time.Date"
TIME = "io.debezium.time.Time"
MICRO_TIME = "io.debezium.time.MicroTime"
NANO_TIME = "io.debezium.time.NanoTime"
TIMESTAMP = "io.debezium.time.Timestamp"
MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
NANO_TIMESTAMP = "io.debezium.time.NanoTimestamp"
ZONED_TIME = "io.debezium.time.ZonedTime"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
ISO_DATE = "io.debezium.time.IsoDate"
ISO_TIME = "io.debezium.time.IsoTime"
ISO_TIMESTAMP = "io.debezium.time.IsoTimestamp"
MICRO_DURATION = "io.debezium.time.MicroDuration"
INTERVAL = "io.debezium.time.Interval"


def prim(
    type_: str,
    optional: bool,
    name: str | None = None,
    *,
    version: int | None = None,
    parameters: dict[str, str] | None = None,
    doc: str | None = None,
) -> Schema:
    """A primitive schema; a logical ``name`` gets version 1 unless told otherwise."""
    schema: Schema = {"type": type_, "optional": optional}
    if name is not None:
        schema["name"] = name
        schema["version"] = 1 if version is None else version
    if doc is not None:
        schema["doc"] = doc
    if parameters is not None:
        schema["parameters"] = parameters
    return schema


def array(items: Schema, optional: bool) -> Schema:
    return {"type": "array", "items": items, "optional": optional}


def map_(keys: Schema, values: Schema, optional: bool) -> Schema:
    return {"type": "map", "keys": keys, "values": values, "optional": optional}


def struct(fields: list[tuple[str, Schema]], optional: bool, name: str, doc: str) -> Schema:
    return {
        "type": "struct",
        "fields": [{**schema, "field": fname} for fname, schema in fields],
        "optional": optional,
        "name": name,
        "version": 1,
        "doc": doc,
    }


def with_optional(schema: Schema, optional: bool) -> Schema:
    return {**schema, "optional": optional}


def b64(data: bytes) -> str:
    """Bytes as the JSON converter writes them: standard base64 with padding."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def java_double(value: float) -> float | str:
    """A double as Jackson writes it: NaN and the infinities become quoted strings."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def twos_complement(value: int) -> bytes:
    """``BigInteger.toByteArray()``: minimal big-endian two's complement."""
    size = ((value if value >= 0 else ~value).bit_length() >> 3) + 1
    return value.to_bytes(size, "big", signed=True)
