"""Column types: a Kafka Connect field schema (with Debezium's logical names) → the kind
of a table column, its SQLite declared type, and how values are decoded and rendered.

A *kind* is a short code kept in the store's metadata (``int``, ``decimal:2``,
``timestamp:6`` …), so a table can be read without the log's schemas. Decoders need
the schema (a ``MicroTimestamp`` and a ``Timestamp`` both become ``timestamp:*``), so
they are built from it by :func:`column_codec`; renderers need only the kind.

Declared types are chosen for SQLite's affinity rules: a decimal column has no declared
type, because NUMERIC affinity would round exact decimal text to 15 digits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from duality.events.placeholders import array_placeholder, scalar_placeholder
from duality.events.schema import ConnectSchema
from duality.tables import values as v
from duality.tables.records import digit_run

Decode = Callable[[Any], Any]

DECIMAL = "org.apache.kafka.connect.data.Decimal"
VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
DAYS = {"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"}
TIMES = {
    "io.debezium.time.Time": 3,
    "org.apache.kafka.connect.data.Time": 3,
    "io.debezium.time.MicroTime": 6,
    "io.debezium.time.NanoTime": 9,
}
TIMESTAMPS = {
    "io.debezium.time.Timestamp": 3,
    "org.apache.kafka.connect.data.Timestamp": 3,
    "io.debezium.time.MicroTimestamp": 6,
    "io.debezium.time.NanoTimestamp": 9,
}
_TEXTUAL = {
    "io.debezium.time.ZonedTimestamp": "timestamptz",
    "io.debezium.time.ZonedTime": "timetz",
    "io.debezium.data.Json": "json",
}
INTS = {"int8", "int16", "int32", "int64"}
FLOATS = {"float", "double", "float32", "float64"}
_NUMERIC_SOURCE = re.compile(r"^(?:numeric|decimal)(?:\((\d+)(?:,\s*(-?\d+))?\))?$|^money$")

_SQL_TYPES = {
    "int": "INTEGER",
    "float": "REAL",
    "bool": "BOOLEAN",
    "text": "TEXT",
    "json": "TEXT",
    "container": "TEXT",
    "bytes": "BLOB",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "timetz": "TIMETZ",
    "duration": "INTERVAL",
    "decimal": "",
    "any": "",
}


@dataclass(frozen=True, slots=True)
class Kind:
    """A column's kind: ``base`` (``decimal``, ``time`` …) and a scale or digit count."""

    base: str
    scale: int | None = None

    @property
    def code(self) -> str:
        return self.base if self.scale is None else f"{self.base}:{self.scale}"

    @property
    def sql_type(self) -> str:
        return _SQL_TYPES[self.base]

    @classmethod
    def parse(cls, code: str) -> Kind:
        base, _, scale = code.partition(":")
        if base not in _SQL_TYPES:
            raise ValueError(f"unknown column kind {code!r}")
        return cls(base, int(scale) if scale else None)


def column_codec(
    schema: ConnectSchema, source_type: str | None = None
) -> tuple[Kind, Decode | None]:
    """The kind of a column with field schema ``schema`` and the decoder of its
    non-null payload values (None: stored as they are)."""
    name, kind = schema.name, schema.type
    if name == DECIMAL:
        scale = int((schema.parameters or {}).get("scale", "0"))
        return Kind("decimal", scale), v.decimal_codec(scale)
    if name == VARIABLE_DECIMAL:
        return Kind("decimal"), v.variable_decimal
    if name in DAYS:
        return Kind("date"), v.date_from_days
    if name in TIMES:
        digits = TIMES[name]
        return Kind("time", digits), lambda units: v.clock(units, digits)
    if name in TIMESTAMPS:
        digits = TIMESTAMPS[name]
        return Kind("timestamp", digits), v.timestamp_codec(digits)
    if name == "io.debezium.time.MicroDuration":
        return Kind("duration"), None
    if name in _TEXTUAL:
        return Kind(_TEXTUAL[name]), None
    return _plain_codec(schema, kind, source_type)


def _plain_codec(
    schema: ConnectSchema, kind: str, source_type: str | None
) -> tuple[Kind, Decode | None]:
    if kind in INTS:
        return Kind("int"), None
    if kind in FLOATS:
        return Kind("float"), v.store_float
    if kind == "boolean":
        return Kind("bool"), None
    if kind == "bytes":
        return Kind("bytes"), v.from_base64
    if kind in ("array", "map", "struct"):
        element = json_decoder(schema)
        return Kind("container"), lambda value: json_bytes(element(value)).decode()
    if kind == "string" and source_type:
        match = _NUMERIC_SOURCE.match(source_type)
        if match:  # decimal.handling.mode=string
            scale = 2 if source_type == "money" else match.group(2)
            return Kind("decimal", None if scale is None else int(scale)), v.decimal_text
    return Kind("text"), None


def json_decoder(schema: ConnectSchema) -> Decode:
    """Payload value → JSON-ready value with logical types decoded (for array elements,
    map values and struct fields): decimals as text, times as ISO-8601 text."""
    if schema.type == "array" and schema.items is not None:
        item = json_decoder(schema.items)
        return lambda value: [None if x is None else item(x) for x in value]
    if schema.type == "map" and schema.values is not None:
        entry = json_decoder(schema.values)
        return lambda value: {k: None if x is None else entry(x) for k, x in value.items()}
    if schema.type == "struct" and schema.name != VARIABLE_DECIMAL:
        fields = {f.name: json_decoder(f.schema) for f in schema.fields}
        return lambda value: {
            k: x if x is None or k not in fields else fields[k](x) for k, x in value.items()
        }
    kind, decode = column_codec(schema)
    if decode is None:
        return _same
    return lambda value: render_json(kind, decode(value))


def _same(value: Any) -> Any:
    return value


def infer_codec(value: Any) -> tuple[Kind, Decode]:
    """A column of a topic without schemas takes its kind from its first non-null value:
    booleans make a ``bool`` column, anything else an ``any`` column (numbers and text
    stored as such, other JSON as JSON bytes)."""
    if type(value) is bool:
        return Kind("bool"), _bool_or_json
    return Kind("any"), _any


def _bool_or_json(value: Any) -> Any:
    return value if type(value) is bool else json_bytes(value)


def _any(value: Any) -> Any:
    if type(value) in (str, float):
        return value
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else json_bytes(value)
    return json_bytes(value)


def json_bytes(value: Any) -> bytes:
    """Compact JSON; integers beyond 64 bits (which orjson refuses) kept exactly."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_value(data: bytes | str) -> Any:
    """Parse JSON; integers beyond 64 bits (which orjson reads as floats) kept exactly."""
    raw = data.encode() if isinstance(data, str) else data
    return json.loads(raw) if digit_run(raw, 19) else orjson.loads(raw)


def differs(before: Any, after: Any) -> bool:
    """Whether two payload values differ, ``-0.0`` and ``0.0`` included (equal to
    Python), also inside arrays and maps."""
    if before != after:
        return True
    if type(before) in (int, str, bool) or before is None:
        return False
    sort = orjson.OPT_SORT_KEYS
    return orjson.dumps(before, option=sort) != orjson.dumps(after, option=sort)


def placeholder_values(
    schema: ConnectSchema | None, source_type: str | None, placeholder: str
) -> tuple[Any, ...]:
    """The payload values that stand for an unchanged TOAST value in this column: the
    placeholder text; in a binary column its bytes (base64, URL-safe base64 or hex, per
    ``binary.handling.mode``); in an hstore column ``{placeholder: placeholder}`` (or its
    JSON text); in an array column the form its elements take (see
    :func:`_array_placeholders`); in a numeric (not ``double precision``, which is never
    TOASTed) or bit-string column the form :func:`scalar_placeholder` gives."""
    raw = placeholder.encode()
    out: list[Any] = [placeholder]
    binary = source_type == "bytea" or (
        schema is not None and schema.type == "bytes" and not schema.name
    )
    if binary:
        out += [v.to_base64(raw), _urlsafe(raw), raw.hex()]
    if schema is None:
        return tuple(out)
    if schema.type == "array":
        out += _array_placeholders(schema.items, placeholder)
    elif schema.type == "map":
        out.append({placeholder: placeholder})
    elif schema.name == _JSON_NAME and (source_type is None or _is_hstore(source_type)):
        pair = {placeholder: placeholder}
        out.append(json.dumps(pair, ensure_ascii=False, separators=(",", ":")))
    elif source_type not in _FIXED_SIZE_FLOATS:
        scalar = scalar_placeholder(schema.type, schema.name, placeholder)
        if scalar is not None:
            out.append(scalar)
    return tuple(out)


_JSON_NAME = "io.debezium.data.Json"
#: Source types of double columns stored in line (never TOASTed): only the string form.
_FIXED_SIZE_FLOATS = frozenset({"double precision", "real", "money"})


def _is_hstore(source_type: str) -> bool:
    return source_type.rsplit(".", 1)[-1].strip('"') == "hstore"


def _array_placeholders(items: ConnectSchema | None, placeholder: str) -> list[Any]:
    """An array column's placeholder forms: a one-element list of the placeholder (what
    earlier versions wrote for every array), and the form by element schema
    (:mod:`duality.events.placeholders`)."""
    out: list[Any] = [[placeholder]]
    if items is not None:
        form = array_placeholder(items.type, items.name, placeholder)
        if form not in out:
            out.append(form)  # floats compare equal to the ints Debezium writes
    return out


def _urlsafe(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode("ascii")


# --- rendering -------------------------------------------------------------------------


def render_json(kind: Kind, stored: Any) -> Any:
    """A stored value as ``--json`` prints it: integers and floats as numbers, decimals
    as strings, times as ISO-8601 strings, bytes as base64, JSON columns nested."""
    if stored is None:
        return None
    render = _JSON.get(kind.base)
    return stored if render is None else render(kind, stored)


def to_python(kind: Kind, stored: Any) -> Any:
    """A stored value as the Python API returns it (Decimal, date, datetime, time,
    timedelta, bytes, bool …); values outside Python's ranges (BC dates, infinity)
    stay ISO text."""
    if stored is None:
        return None
    convert = _PYTHON.get(kind.base)
    return stored if convert is None else convert(kind, stored)


def _json_float(kind: Kind, stored: Any) -> Any:
    if type(stored) is float and stored in (float("inf"), float("-inf")):
        return "Infinity" if stored > 0 else "-Infinity"
    return stored


def _json_any(kind: Kind, stored: Any) -> Any:
    if isinstance(stored, bytes):
        return json_value(stored)
    return stored


def _json_bool(kind: Kind, stored: Any) -> Any:
    if isinstance(stored, bytes):
        return json_value(stored)
    return bool(stored) if type(stored) is int else stored


def _json_int(kind: Kind, stored: Any) -> Any:
    return int(stored) if type(stored) is str and stored.lstrip("-").isdigit() else stored


_JSON: Mapping[str, Callable[[Kind, Any], Any]] = {
    "int": _json_int,
    "float": _json_float,
    "bool": _json_bool,
    "decimal": lambda kind, s: v.render_decimal(s, kind.scale),
    "bytes": lambda kind, s: v.to_base64(s),
    "duration": lambda kind, s: v.duration_iso(s) if type(s) is int else s,
    "container": lambda kind, s: json_value(s) if type(s) is str else s,
    "any": _json_any,
}


def _python_decimal(kind: Kind, stored: Any) -> Any:
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(v.render_decimal(stored, kind.scale))
    except InvalidOperation:
        return stored


def _python_float(kind: Kind, stored: Any) -> Any:
    return float(stored) if stored == "NaN" else stored


_PYTHON: Mapping[str, Callable[[Kind, Any], Any]] = {
    **_JSON,
    "float": _python_float,
    "decimal": _python_decimal,
    "bytes": lambda kind, s: s,
    "date": lambda kind, s: v.python_date(s),
    "time": lambda kind, s: v.python_time(s),
    "timestamp": lambda kind, s: v.python_timestamp(s),
    "timestamptz": lambda kind, s: v.python_timestamp(s),
    "duration": lambda kind, s: v.python_duration(s) if type(s) is int else s,
}
