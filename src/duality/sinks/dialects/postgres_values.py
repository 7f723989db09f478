"""Debezium payload values → what a PostgreSQL target is sent.

Rows reach PostgreSQL through ``COPY … FROM STDIN`` in text format into a table whose
columns have the target's types, so a value only has to be something psycopg writes as
text that the column's input function reads back exactly: ``str`` for most logical
types (decimals as exact decimal text, dates and times in PostgreSQL's own syntax,
including BC years and ``infinity``), ``int``, ``float``, ``bool``, ``bytes`` for
``bytea``, and array literals built here (so an array's elements never depend on how a
driver guesses their type). Each decoder takes a non-null payload value as Kafka
Connect's JSON converter writes it.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any, Final

from duality.events.schema import ConnectSchema
from duality.sources.postgres.types_schema import BITS, MICRO_DURATION, POINT, ZONED_TIMESTAMP
from duality.tables import values as v
from duality.tables.types import (
    DAYS,
    DECIMAL,
    FLOATS,
    TIMES,
    TIMESTAMPS,
    VARIABLE_DECIMAL,
    json_bytes,
    json_decoder,
)

Decode = Callable[[Any], Any]

_ERAS: Final = ("+", "-")


def decoder(schema: ConnectSchema, source_type: str | None = None) -> Decode | None:
    """The decoder of a field's non-null payload values (None: sent as they are)."""
    name, kind = schema.name, schema.type
    if kind == "array":
        return _array(schema.items)
    if name == DECIMAL:
        return v.decimal_text_codec(int((schema.parameters or {}).get("scale", "0")))
    if name == VARIABLE_DECIMAL:
        return variable_decimal
    if name in DAYS:
        return day
    if name in TIMES:
        digits = TIMES[name]
        return lambda units: v.clock(units, digits)
    if name in TIMESTAMPS:
        return timestamp_codec(TIMESTAMPS[name])
    if name == ZONED_TIMESTAMP:
        return _era
    if name == MICRO_DURATION:
        return interval
    if name == BITS:
        fixed = bool(source_type and source_type.startswith("bit("))
        return bits_codec(int((schema.parameters or {}).get("length", "0")), fixed)
    if name == POINT:
        return point
    return _plain(schema, kind, source_type)


def _plain(schema: ConnectSchema, kind: str, source_type: str | None) -> Decode | None:
    if kind == "string" and source_type and source_type.startswith(("numeric", "decimal")):
        return numeric_text
    if kind in FLOATS:
        return floating
    if kind == "bytes":
        return v.from_base64
    if kind in ("map", "struct"):
        element = json_decoder(schema)
        return lambda value: json_bytes(element(value)).decode()
    return None


def floating(value: Any) -> Any:
    """Jackson writes NaN and the infinities as strings; PostgreSQL reads them as such."""
    return float(value) if type(value) is str else value


#: ``decimal.handling.mode=string``: Debezium's names of the special numeric values.
_NUMERIC_NAMES: Final = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity",
                         "NEGATIVE_INFINITY": "-Infinity"}


def numeric_text(value: Any) -> Any:
    """A numeric written as text, with Debezium's names of NaN and the infinities in
    PostgreSQL's syntax."""
    return _NUMERIC_NAMES.get(value, value) if type(value) is str else value


def variable_decimal(value: Any) -> str:
    """``VariableScaleDecimal``: ``{"scale": s, "value": base64}``."""
    return v.decimal_str(v.unscaled(value["value"]), int(value["scale"]))


# --- dates and times -------------------------------------------------------------------


def day(days: int) -> str:
    """An epoch day in PostgreSQL's syntax (``0044-03-15 BC``, ``infinity``)."""
    return _era(v.date_from_days(days))


def timestamp_codec(digits: int) -> Decode:
    """Epoch time in units of 10^-digits seconds, in PostgreSQL's syntax."""
    iso = v.timestamp_codec(digits)

    def convert(units: int) -> str:
        text = iso(units)
        return _era(text) if text[0] in _ERAS or text.startswith("0000") else text

    return convert


def _era(text: str) -> str:
    """ISO-8601 years (``-0043`` is 44 BC, ``+10000``) as PostgreSQL writes them."""
    if text.endswith("infinity") or not (text[0] in _ERAS or text.startswith("0000")):
        return text
    if text[0] == "+":
        return text[1:]
    negative = text[0] == "-"
    body = text[1:] if negative else text
    year, rest = body.split("-", 1)
    bc_year = int(year) + 1 if negative else 1
    return f"{bc_year:04d}-{rest.replace('T', ' ')} BC"


def interval(micros: int) -> str:
    """``MicroDuration`` (months are 30.4375 days, as Debezium computes them)."""
    return f"{micros} microseconds"


# --- other types -----------------------------------------------------------------------


def bits_codec(length: int, fixed: bool) -> Decode:
    """``Bits`` (the value's bits, little-endian bytes) → a bit string; ``bit(n)`` is
    padded to its length, ``bit varying`` keeps the digits the bytes hold."""

    def convert(value: Any) -> str:
        number = int.from_bytes(binascii.a2b_base64(value), "little")
        return format(number, f"0{length}b" if fixed else "b")

    return convert


def point(value: Any) -> str:
    """Debezium's ``Point`` struct (x, y, wkb, srid) → ``(x,y)``."""
    return f"({float(value['x'])!r},{float(value['y'])!r})"


def _array(items: ConnectSchema | None) -> Decode:
    element = decoder(items) if items is not None else None

    def convert(value: Any) -> str:
        return array_literal(value, element)

    return convert


def array_literal(items: list[Any], element: Decode | None) -> str:
    """A PostgreSQL array literal: every element quoted (NULL unquoted)."""
    parts = []
    for item in items:
        if item is None:
            parts.append("NULL")
            continue
        if type(item) is list:
            parts.append(array_literal(item, element))
            continue
        parts.append(_quoted(_text(element(item) if element is not None else item)))
    return "{" + ",".join(parts) + "}"


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if type(value) is bool:
        return "t" if value else "f"
    if type(value) is float:
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
