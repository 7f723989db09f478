"""Strings, binary data, JSON-ish types, enums, hstore and point.

Facts from Debezium 3.6 (``PostgresValueConverter``, ``JdbcValueConverters``,
``io.debezium.data.geometry.Point``) and pgjdbc 42.7 (``HStoreConverter``, ``PGpoint``):

- Text-like types (text, varchar, bpchar with its padding, name, "char", json, jsonb, xml,
  uuid, inet, cidr, macaddr, macaddr8, tsvector, the built-in ranges, enums) carry the
  PostgreSQL text unchanged; only the schema's logical name differs.
- bytea follows ``binary.handling.mode``: bytes (base64 in JSON), base64, URL-safe base64
  (with padding), or lowercase hex.
- hstore under ``json`` is a JSON *string* produced by Jackson from a ``java.util.HashMap``,
  so its key order is HashMap's iteration order, reproduced here; under ``map`` it is a map.
- point is a struct ``{x, y, wkb, srid}`` whose wkb is a little-endian WKB point.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct as _struct
from typing import Any

from duality.sources.postgres.types_javafloat import java_double_string
from duality.sources.postgres.types_model import FromText
from duality.sources.postgres.types_schema import (
    JSON,
    POINT,
    Schema,
    b64,
    java_double,
    map_,
    prim,
    struct,
)


def to_str(text: bytes) -> str:
    return text.decode("utf-8")


def string_codec(optional: bool, name: str | None = None, **extra: Any) -> tuple[Schema, FromText]:
    return prim("string", optional, name, **extra), to_str


# --- binary --------------------------------------------------------------------------------


def binary_schema(mode: str, optional: bool) -> Schema:
    return prim("bytes" if mode == "bytes" else "string", optional)


def encode_binary(mode: str) -> FromText:
    """Raw bytes → the JSON value of ``binary.handling.mode``."""
    if mode == "hex":
        return lambda raw: raw.hex()
    if mode == "base64-url-safe":
        return lambda raw: base64.urlsafe_b64encode(raw).decode("ascii")
    return b64  # bytes (the JSON converter writes base64) and base64 alike


def bytea_codec(mode: str, optional: bool) -> tuple[Schema, FromText]:
    """bytea from its ``bytea_output=hex`` text ``\\x0a0b``."""
    if mode == "hex":
        return binary_schema(mode, optional), lambda text: text[2:].decode("ascii")
    encode = encode_binary(mode)
    unhex = binascii.unhexlify
    return binary_schema(mode, optional), lambda text: encode(unhex(text[2:]))


def unknown_bytes_codec(mode: str, optional: bool, geometric: bool) -> tuple[Schema, FromText]:
    """What Debezium emits for an unknown type with ``include.unknown.datatypes=true``:
    the UTF-8 bytes of the value's text, under ``binary.handling.mode``; for the geometric
    types, the text as pgjdbc's ``PGbox``/``PGcircle``/... objects print it again."""
    encode = encode_binary(mode)
    if geometric:
        return binary_schema(mode, optional), lambda text: encode(java_geometry_text(text))
    return binary_schema(mode, optional), encode


#: box, circle, line, lseg, path, polygon (and point, which Debezium maps itself)
GEOMETRIC = frozenset({"box", "circle", "line", "lseg", "path", "polygon", "point"})
_NUMBER = re.compile(rb"-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|Infinity)|NaN")


def java_geometry_text(text: bytes) -> bytes:
    """Geometric text with every coordinate printed by Java's ``Double.toString``
    (``(1.5,1),(0,0)`` → ``(1.5,1.0),(0.0,0.0)``), as pgjdbc's geometric objects do."""
    return _NUMBER.sub(lambda m: java_double_string(float(m.group())).encode(), text)


# --- point ---------------------------------------------------------------------------------

_POINT_FIELDS = [
    ("x", prim("double", False)),
    ("y", prim("double", False)),
    ("wkb", prim("bytes", True)),
    ("srid", prim("int32", True)),
]
_WKB_POINT = _struct.Struct("<BIdd")


def point_codec(optional: bool) -> tuple[Schema, FromText]:
    return struct(_POINT_FIELDS, optional, POINT, "Geometry (POINT)"), point_value


def point_value(text: bytes) -> dict[str, Any]:
    """``(x,y)`` → Debezium's Point struct."""
    x_text, y_text = text.strip(b"()").split(b",")
    x, y = float(x_text), float(y_text)
    wkb = b64(_WKB_POINT.pack(1, 1, x, y))
    return {"x": java_double(x), "y": java_double(y), "wkb": wkb, "srid": None}


# --- hstore --------------------------------------------------------------------------------


def parse_hstore(text: bytes) -> list[tuple[str, str | None]]:
    """Pairs of hstore's text output ``"k"=>"v", "k2"=>NULL``, in output order."""
    source = text.decode("utf-8")
    pairs: list[tuple[str, str | None]] = []
    pos = source.find('"')
    while pos >= 0:
        key, pos = _quoted(source, pos)
        pos = source.index("=>", pos) + 2
        value: str | None
        if source.startswith("NULL", pos):
            value, pos = None, pos + 4
        else:
            value, pos = _quoted(source, source.index('"', pos))
        pairs.append((key, value))
        pos = source.find('"', pos)
    return pairs


def _quoted(source: str, start: int) -> tuple[str, int]:
    """The unescaped content of the quoted string starting at ``start``, and the index after it."""
    chars: list[str] = []
    pos = start + 1
    while True:
        char = source[pos]
        if char == "\\":
            chars.append(source[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(chars), pos + 1
        else:
            chars.append(char)
            pos += 1


def java_string_hash(value: str) -> int:
    """``String.hashCode()`` as an unsigned 32-bit int (over UTF-16 code units)."""
    h = 0
    data = value.encode("utf-16-be")
    for index in range(0, len(data), 2):
        h = (31 * h + (data[index] << 8 | data[index + 1])) & 0xFFFFFFFF
    return h


def hashmap_order(keys: list[str]) -> list[str]:
    """The iteration order of a ``java.util.HashMap`` after ``put``-ting ``keys`` in order.

    Buckets are walked in index order and each bucket in insertion order; the table starts
    at 16 and doubles past a 0.75 load, or when a bucket of a table under 64 reaches 9 keys
    (where Java would otherwise build a tree bin; tree bins themselves are not modelled).
    """
    spread = [(h ^ (h >> 16)) for h in map(java_string_hash, keys)]
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2
    while capacity < 64:
        counts: dict[int, int] = {}
        overflow = False
        for index in range(len(keys)):
            bucket = spread[index] & (capacity - 1)
            counts[bucket] = counts.get(bucket, 0) + 1
            overflow = overflow or counts[bucket] > 8
        if not overflow:
            break
        capacity *= 2
    order = sorted(range(len(keys)), key=lambda i: (spread[i] & (capacity - 1), i))
    return [keys[i] for i in order]


_CONTROL_ESCAPE = re.compile(r"\\u00([01][0-9a-f])")


def jackson_object(pairs: list[tuple[str, str | None]]) -> str:
    """A flat string map as Jackson's generator writes it: compact, UTF-8 unescaped,
    control characters as ``\\n``-style or uppercase ``\\u00XX`` escapes."""
    text = json.dumps(dict(pairs), ensure_ascii=False, separators=(",", ":"))
    if "\\u00" in text:
        text = _CONTROL_ESCAPE.sub(lambda m: "\\u00" + m.group(1).upper(), text)
    return text


def hstore_codec(mode: str, optional: bool) -> tuple[Schema, FromText]:
    if mode == "map":
        schema = map_(prim("string", False), prim("string", True), optional)
        return schema, lambda text: dict(parse_hstore(text))
    return prim("string", optional, JSON), _hstore_json


def _hstore_json(text: bytes) -> str:
    pairs = parse_hstore(text)
    if len(pairs) > 1:
        values = dict(pairs)
        pairs = [(key, values[key]) for key in hashmap_order([key for key, _ in pairs])]
    return jackson_object(pairs)
