"""Debezium payload values → PostgreSQL literals that mean exactly the source's value.

:func:`literal` writes a value as ``'<PostgreSQL input text>'::<source type>`` (an ``E''``
string when the text holds a backslash, so the meaning does not depend on
``standard_conforming_strings``); :func:`quote_ident` quotes any identifier. The
source type comes from the registered schema (PostgreSQL's ``format_type``) and is
checked against the grammar of type names before it is written. ``format_type`` leaves
out the schema of a type that was on the capture session's ``search_path``, so a name
without a schema is written only when it is PostgreSQL's own (``pg_catalog``, searched
first under any ``search_path``); a value of another type, or without a source type, is
written as an untyped literal, which PostgreSQL reads as the column's type where undo
writes it (a column's ``SET``, ``VALUES`` or ``=``).

A domain's values are those of the type under it, which capture records
(``TableMeta.base_types``): they are written as that type's and cast to the domain. In a
log captured without that record, a ``bytes`` value of a type that is neither bytea nor
PostgreSQL's own is a domain over bytea (its raw bytes) or a type Debezium does not map,
captured with ``include.unknown.datatypes=true`` (its text's bytes): the log cannot tell
which. ASCII without a backslash reads the same either way and is written as text; other
bytes are written as bytea, which fails in PostgreSQL if the column is not over bytea.

A value whose representation in the event lost information is refused with
:class:`Inexact`, naming the setting that keeps it whole: decimals as doubles
(``decimal.handling.mode=double``), intervals as ``MicroDuration``
(``interval.handling.mode=numeric``), times with microseconds at millisecond precision
(``time.precision.mode=connect``), bytea as text (``binary.handling.mode`` other than
``bytes``), ``bit varying`` (its length is not kept), dates and times inside arrays
(pgjdbc's ``java.sql`` conversions), ISO-string times. A ``time with time zone`` keeps
its instant but not its offset (Debezium writes it in UTC): :func:`literal` reports that
through ``notes``.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Callable
from typing import Any

import orjson

from duality.events.schema import ConnectSchema
from duality.tables.values import decimal_str, infinite_timestamps, iso_day, unscaled

DECIMAL = "org.apache.kafka.connect.data.Decimal"
VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
BITS = "io.debezium.data.Bits"
POINT = "io.debezium.data.geometry.Point"
JSON = "io.debezium.data.Json"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
ZONED_TIME = "io.debezium.time.ZonedTime"
INTERVAL = "io.debezium.time.Interval"
MICRO_DURATION = "io.debezium.time.MicroDuration"
_DATES = {"io.debezium.time.Date", "org.apache.kafka.connect.data.Date"}
#: time logical names → (units per second, Connect's own millisecond type)
_TIMES = {
    "io.debezium.time.Time": (1_000, False),
    "org.apache.kafka.connect.data.Time": (1_000, True),
    "io.debezium.time.MicroTime": (1_000_000, False),
    "io.debezium.time.NanoTime": (1_000_000_000, False),
}
_TIMESTAMPS = {
    "io.debezium.time.Timestamp": (1_000, False),
    "org.apache.kafka.connect.data.Timestamp": (1_000, True),
    "io.debezium.time.MicroTimestamp": (1_000_000, False),
    "io.debezium.time.NanoTimestamp": (1_000_000_000, False),
}
_ISO_STRINGS = {"io.debezium.time.IsoDate", "io.debezium.time.IsoTime",
                "io.debezium.time.IsoTimestamp"}
_TEMPORAL = set(_DATES) | set(_TIMES) | set(_TIMESTAMPS) | {ZONED_TIME, ZONED_TIMESTAMP}
_INFINITE_DAYS = {-2_147_472_692: "infinity", -2_147_472_691: "-infinity"}
#: Per timestamp schema: its stand-ins for infinity and -infinity (every precision).
_DIGITS = {1_000: 3, 1_000_000: 6, 1_000_000_000: 9}
_INFINITE = {name: infinite_timestamps(_DIGITS[per_second])
             for name, (per_second, _) in _TIMESTAMPS.items()}
_SPECIAL_DECIMALS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity",
                     "NEGATIVE_INFINITY": "-Infinity"}
_NUMERIC = re.compile(r"^(?:numeric|decimal|money)\b")
_PRECISION = re.compile(r"\((\d+)\)")
_BC_YEAR = re.compile(r"^([+-]?\d{4,})(-\d\d-\d\d)(?:T(.*?))?(Z|[+-]\d\d(?::?\d\d)?)?$")

# format_type output: words or quoted identifiers, optionally schema-qualified, with a
# type modifier, separated by single spaces, then array brackets.
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_WORD = rf"{_IDENT}(?:\.{_IDENT})?(?:\(\d+(?:,\s?-?\d+)?\))?"
_TYPE_NAME = re.compile(rf"^{_WORD}(?: {_WORD})*(?:\[\d*\])*$")
_QUALIFIED = re.compile(rf"^{_IDENT}\.")
_MODIFIER = re.compile(r"\(\d+(?:,\s?-?\d+)?\)")
_BRACKETS = re.compile(r"(?:\[\d*\])+$")
#: pg_catalog's types as format_type names them, without modifier or brackets (a few are
#: newer than PostgreSQL 12; a name missing here only loses its cast).
_CATALOG_TYPES = frozenset({
    '"char"', "aclitem", "bigint", "bit", "bit varying", "boolean", "box", "bpchar", "bytea",
    "character", "character varying", "cid", "cidr", "circle", "date", "datemultirange",
    "daterange", "double precision", "inet", "int2vector", "int4multirange", "int4range",
    "int8multirange", "int8range", "integer", "json", "jsonb", "jsonpath", "line", "lseg",
    "macaddr", "macaddr8", "money", "name", "numeric", "nummultirange", "numrange", "oid",
    "oidvector", "path", "pg_lsn", "pg_snapshot", "point", "polygon", "real", "refcursor",
    "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
    "regoperator", "regproc", "regprocedure", "regrole", "regtype", "smallint", "text", "tid",
    "time with time zone", "time without time zone", "timestamp with time zone",
    "timestamp without time zone", "tsmultirange", "tsquery", "tsrange", "tstzmultirange",
    "tstzrange", "tsvector", "txid_snapshot", "uuid", "xid", "xid8", "xml",
})  # fmt: skip
_INTERVAL = re.compile(
    r"^interval(?: (?:year|month|day|hour|minute|second)(?: to (?:month|hour|minute|second))?)?$"
)
#: Bytes that bytea's escape input and every server encoding read as themselves.
_PLAIN_ASCII = re.compile(rb"[\x01-\x5b\x5d-\x7f]*")


class Inexact(Exception):
    """A value cannot be written back exactly: ``reason``, and the ``setting`` that keeps
    such values whole."""

    def __init__(self, reason: str, setting: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.setting = setting


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier for any name (PostgreSQL names cannot hold NUL)."""
    if "\x00" in name:
        raise Inexact(f"the name {name!r} holds a NUL character", "rename it in the source")
    return '"' + name.replace('"', '""') + '"'


def quote_text(text: str) -> str:
    """A string literal of ``text``: ``'…'``, or ``E'…'`` when it holds a backslash."""
    if "\x00" in text:
        raise Inexact("a value holds a NUL character, which PostgreSQL text cannot hold",
                      "none: such a value cannot come from PostgreSQL")
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"


def cast_type(source_type: str | None) -> str | None:
    """``source_type`` if it is a type name (else :class:`Inexact`); None if unknown."""
    if source_type is None:
        return None
    if not _TYPE_NAME.match(source_type):
        raise Inexact(f"the source type {source_type!r} is not a type name duality can "
                      f"write safely", "none: check the log's registered schema")
    return source_type


def literal(
    value: Any,
    schema: ConnectSchema,
    source_type: str | None,
    notes: set[str] | None = None,
    base_type: str | None = None,
) -> str:
    """``value`` (a non-null or null payload value of a field with ``schema``) as a typed
    PostgreSQL literal. ``base_type``: the type under ``source_type`` where that is a
    domain (its values are the base type's; the literal is cast to the domain). Raises
    :class:`Inexact` (see the module docstring)."""
    if value is None:
        return "NULL"
    cast = resolvable_cast(source_type)
    values_type = base_type or source_type
    if _opaque(schema, values_type):
        return _opaque_bytes(binascii.a2b_base64(str(value)), cast)
    text = pg_text(value, schema, values_type, notes)
    if cast is None:
        return quote_text(text)
    if cast == "money":  # the text of a money value depends on lc_monetary; a numeric's does not
        return f"{quote_text(text)}::numeric::money"
    return f"{quote_text(text)}::{cast}"


@functools.cache
def catalog_type(source_type: str) -> bool:
    """Whether a type name names one of PostgreSQL's own types (``numeric(12,2)[]``)."""
    bare = _BRACKETS.sub("", _MODIFIER.sub("", source_type))
    return bare in _CATALOG_TYPES or _INTERVAL.match(bare) is not None


@functools.cache  # per value of undo's output; a table has few type names
def resolvable_cast(source_type: str | None) -> str | None:
    """``source_type`` where it names the same type under any ``search_path`` (it has its
    schema, or is PostgreSQL's own), else None: the literal is then left untyped."""
    cast = cast_type(source_type)
    if cast is None or _QUALIFIED.match(cast) or catalog_type(cast):
        return cast
    return None


def _opaque(schema: ConnectSchema, source_type: str | None) -> bool:
    """Whether values are bytes of a type that is not PostgreSQL's own."""
    return (schema.type == "bytes" and schema.name is None and source_type is not None
            and not catalog_type(source_type))


def _opaque_bytes(raw: bytes, cast: str | None) -> str:
    """Bytes of a domain over bytea or of an unmapped type's text (see the module
    docstring): as text where both read it alike, else as bytea."""
    if _PLAIN_ASCII.fullmatch(raw):
        text = quote_text(raw.decode("ascii"))
        return text if cast is None else f"{text}::{cast}"
    written = quote_text("\\x" + raw.hex()) + "::bytea"
    return written if cast is None else f"{written}::{cast}"


def pg_text(
    value: Any, schema: ConnectSchema, source_type: str | None, notes: set[str] | None = None
) -> str:
    """PostgreSQL's input text for a non-null payload value."""
    name = schema.name
    if name is not None:
        convert = _BY_NAME.get(name)
        if convert is not None:
            return convert(value, schema, source_type, notes)
        if name in _TIMES:
            return _time(value, schema, source_type)
        if name in _TIMESTAMPS:
            return _timestamp(value, schema, source_type)
        if name in _DATES:
            return _date(value)
        if name in _ISO_STRINGS:
            raise Inexact("dates and times written as ISO strings",
                          "time.precision.mode=adaptive")
    return _plain(value, schema, source_type, notes)


# -- numbers -------------------------------------------------------------------------------


def _unscaled(encoded: Any) -> int:
    if type(encoded) is not str:
        raise Inexact("a decimal written as a JSON number (read as a double)",
                      "decimal.format=BASE64 (the JSON converter's default)")
    return unscaled(encoded)


def _decimal(value: Any, schema: ConnectSchema, source_type: str | None,
             notes: set[str] | None) -> str:
    scale = int((schema.parameters or {}).get("scale", "0"))
    return decimal_str(_unscaled(value), scale)


def _variable_decimal(value: Any, schema: ConnectSchema, source_type: str | None,
                      notes: set[str] | None) -> str:
    return decimal_str(_unscaled(value["value"]), int(value["scale"]))


def _float(value: Any) -> str:
    if type(value) is str:  # Jackson writes NaN and the infinities as strings
        if value in ("NaN", "Infinity", "-Infinity"):
            return value
        raise ValueError(f"{value!r} is not a number")
    return repr(float(value)) if type(value) is not int else str(value)


# -- dates and times -----------------------------------------------------------------------


def _date(days: Any) -> str:
    if days in _INFINITE_DAYS:
        return _INFINITE_DAYS[days]
    return _bc(iso_day(int(days)))


def _bc(iso: str) -> str:
    """ISO years (``-0043`` is 44 BC, ``+10000``) as PostgreSQL reads them."""
    if iso[0] not in "+-" and not iso.startswith("0000"):
        return iso
    match = _BC_YEAR.match(iso)
    if match is None:
        return iso
    year = int(match.group(1))
    rest = match.group(2) + (f" {match.group(3)}" if match.group(3) else "")
    zone = match.group(4) or ""
    if year > 0:
        return f"{year}{rest}{zone}"
    return f"{1 - year:04d}{rest}{zone} BC"


def _precision(source_type: str | None) -> int:
    match = _PRECISION.search(source_type or "")
    return int(match.group(1)) if match else 6


def _units(value: Any, schema: ConnectSchema, source_type: str | None,
           table: dict[str, tuple[int, bool]]) -> int:
    """The value in microseconds (refused where milliseconds cut the column's digits)."""
    per_second, connect = table[schema.name or ""]
    if connect and _precision(source_type) > 3:
        raise Inexact("times with more than millisecond precision written in milliseconds",
                      "time.precision.mode=adaptive")
    units = int(value)
    return units * 1_000_000 // per_second if per_second <= 1_000_000 else units // 1000


def _time(value: Any, schema: ConnectSchema, source_type: str | None) -> str:
    micros = _units(value, schema, source_type, _TIMES)
    seconds, fraction = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}"


def _timestamp(value: Any, schema: ConnectSchema, source_type: str | None) -> str:
    special = _INFINITE.get(schema.name or "", {}).get(value)
    if special is not None:
        return special
    micros = _units(value, schema, source_type, _TIMESTAMPS)
    days, rest = divmod(micros, 86_400_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    day = _bc(iso_day(days))
    era = ""
    if day.endswith(" BC"):
        day, era = day[:-3], " BC"
    return f"{day} {hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}{era}"


def _zoned_timestamp(value: Any, schema: ConnectSchema, source_type: str | None,
                     notes: set[str] | None) -> str:
    return _bc(str(value))


def _zoned_time(value: Any, schema: ConnectSchema, source_type: str | None,
                notes: set[str] | None) -> str:
    if notes is not None:
        notes.add("time with time zone values come back in UTC (Debezium keeps the instant, "
                  "not the offset)")
    return str(value)


def _micro_duration(value: Any, schema: ConnectSchema, source_type: str | None,
                    notes: set[str] | None) -> str:
    raise Inexact("intervals written as MicroDuration (months as 30.4375 days, in doubles)",
                  "interval.handling.mode=string")


def _interval(value: Any, schema: ConnectSchema, source_type: str | None,
              notes: set[str] | None) -> str:
    return str(value)


# -- bits, points, maps, arrays ------------------------------------------------------------


def _bits(value: Any, schema: ConnectSchema, source_type: str | None,
          notes: set[str] | None) -> str:
    if source_type is not None and not source_type.startswith("bit("):
        raise Inexact("bit varying values (Debezium keeps the bits' value, not their length)",
                      "none: use bit(n), or leave the column out of undo")
    length = int((schema.parameters or {}).get("length", "0"))
    number = int.from_bytes(binascii.a2b_base64(str(value)), "little")
    return format(number, f"0{length}b")


def _point(value: Any, schema: ConnectSchema, source_type: str | None,
           notes: set[str] | None) -> str:
    return f"({_float(value['x'])},{_float(value['y'])})"


def _json(value: Any, schema: ConnectSchema, source_type: str | None,
          notes: set[str] | None) -> str:
    if source_type is not None and source_type.rsplit(".", 1)[-1] == "hstore":
        return _hstore(orjson.loads(value))
    return str(value)


def _hstore(pairs: dict[str, Any]) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ", ".join(
        f"{quoted(k)}=>{'NULL' if v is None else quoted(str(v))}" for k, v in pairs.items()
    )


def _array(value: Any, schema: ConnectSchema, source_type: str | None,
           notes: set[str] | None) -> str:
    items = schema.items
    if items is None:
        raise ValueError("an array schema without items")
    if items.name in _TEMPORAL:
        raise Inexact("dates and times inside arrays (Debezium reads them through java.sql, "
                      "with less precision)", "none: leave the column out of undo")
    element = source_type[:-2] if source_type and source_type.endswith("[]") else None

    def text(item: Any) -> str:
        if item is None:
            return "NULL"
        if isinstance(item, list):
            return text_of(item)
        inner = pg_text(item, items, element, notes)
        return '"' + inner.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def text_of(items_: list[Any]) -> str:
        return "{" + ",".join(text(x) for x in items_) + "}"

    return text_of(list(value))


def _bytes(raw: bytes, source_type: str | None) -> str:
    """bytea's hex input; for another type (an element of an unmapped array, or a built-in
    type Debezium does not map, under include.unknown.datatypes=true) the value's text."""
    if source_type is None or source_type == "bytea":
        return "\\x" + raw.hex()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # not the text of a value: capture reads text as UTF-8
        raise Inexact(f"binary values of type {source_type!r} that are not text",
                      "a bytea column instead") from None


def _plain(value: Any, schema: ConnectSchema, source_type: str | None,
           notes: set[str] | None) -> str:
    kind = schema.type
    numeric = bool(source_type and _NUMERIC.match(source_type))
    if kind == "boolean":
        if source_type is not None and source_type.startswith("bit"):
            return "1" if value else "0"
        return "true" if value else "false"
    if kind in ("int8", "int16", "int32", "int64"):
        return str(int(value))
    if kind in ("float32", "float64", "float", "double"):
        if numeric:
            raise Inexact("decimals written as doubles", "decimal.handling.mode=precise")
        return _float(value)
    if kind == "bytes":
        return _bytes(binascii.a2b_base64(str(value)), source_type)
    if kind == "string":
        if source_type == "bytea":
            raise Inexact("bytea written as text", "binary.handling.mode=bytes")
        if numeric:
            return _SPECIAL_DECIMALS.get(str(value), str(value))
        return str(value)
    if kind == "array":
        return _array(value, schema, source_type, notes)
    if kind == "map" and type(value) is dict:
        return _hstore(value)
    raise Inexact(f"values of Connect type {kind!r} ({schema.name or 'no logical name'})",
                  "none: leave the column out of undo")


_Convert = Callable[[Any, ConnectSchema, "str | None", "set[str] | None"], str]
_BY_NAME: dict[str, _Convert] = {
    DECIMAL: _decimal,
    VARIABLE_DECIMAL: _variable_decimal,
    BITS: _bits,
    POINT: _point,
    JSON: _json,
    ZONED_TIMESTAMP: _zoned_timestamp,
    ZONED_TIME: _zoned_time,
    INTERVAL: _interval,
    MICRO_DURATION: _micro_duration,
}

