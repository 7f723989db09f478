"""PostgreSQL types → Debezium 3.6 value converters and Kafka Connect schemas.

Values arrive as the PostgreSQL **text output** of a value, as bytes: pgoutput's text
tuples while streaming and ``COPY ... TO STDOUT`` text fields (see :func:`split_copy_line`)
while snapshotting, both under :data:`SESSION_SETTINGS`. One converter serves both, which
is why a row reads the same in a snapshot and in the stream.

:func:`codec_for` is called once per column of a relation and precomputes everything;
:attr:`ColumnCodec.from_text` is called once per non-null value and stays small.

Where Debezium 3.6 itself reads a value differently in its snapshot (JDBC) and in its
stream (pgoutput), duality follows the stream, since one converter serves both:

- scalar ``date``: BC dates keep their era and ``±infinity`` become Debezium's streaming
  sentinels (its snapshot drops the era and gives other numbers for the infinities);
- ``name``: the text (Debezium's stream has no converter for it and emits null).

Array elements are read as Debezium reads them in both paths, through pgjdbc's
``PgArray`` (see :mod:`.types_array`). Values Debezium's converter gives up on become null
per ``event.converting.failure.handling.mode``, as in Debezium.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Final

from duality.sources.postgres import types_array as arrays
from duality.sources.postgres import types_numeric as num
from duality.sources.postgres import types_temporal as tmp
from duality.sources.postgres import types_text as txt
from duality.sources.postgres.types_model import (
    SESSION_SETTINGS,
    ColumnCodec,
    FromText,
    PgType,
    ValueConversionError,
    ValueSettings,
)
from duality.sources.postgres.types_schema import (
    ENUM,
    JSON,
    LTREE,
    TSVECTOR,
    UUID,
    XML,
    Schema,
    array,
    prim,
    with_optional,
)

__all__ = [
    "BUILTIN_TYPES",
    "SESSION_SETTINGS",
    "ColumnCodec",
    "PgType",
    "ValueConversionError",
    "ValueSettings",
    "builtin_type",
    "codec_for",
    "split_copy_line",
]

Built = tuple[Schema, FromText]
_LOG = logging.getLogger(__name__)

# Text-like types whose text is the value; the schema's logical name (if any) differs.
_STRINGS: dict[str, str | None] = {
    "text": None,
    "varchar": None,
    "bpchar": None,
    "name": None,
    "char": None,
    "citext": None,
    "inet": None,
    "cidr": None,
    "macaddr": None,
    "macaddr8": None,
    "int4range": None,
    "int8range": None,
    "numrange": None,
    "tsrange": None,
    "tstzrange": None,
    "daterange": None,
    "json": JSON,
    "jsonb": JSON,
    "xml": XML,
    "uuid": UUID,
    "tsvector": TSVECTOR,
    "ltree": LTREE,
}
# Extension types Debezium recognises by name, in whatever schema the extension lives.
_EXTENSION_TYPES = frozenset({"hstore", "citext", "ltree"})
# Array types Debezium 3.6 always leaves out of its schema, include.unknown.datatypes or not
# (PostgresValueConverter returns no schema for them); bit[] gets a non-array schema and fails.
_OMITTED_ARRAYS = frozenset(
    {"money", "name", "interval", "varbit", "xml", "point", "refcursor", "bit"}
)
# Element types Debezium converts inside arrays; the rest make the array unknown.
_ARRAY_ELEMENTS = frozenset(
    {"int2", "int4", "int8", "oid", "float4", "float8", "bool", "numeric", "date", "time",
     "timetz", "timestamp", "timestamptz", "bytea", "hstore", "tsvector"}
    | set(_STRINGS) - {"name", "xml"}
)  # fmt: skip
# Debezium builds these element schemas without .optional() (enums too), so a NULL
# element fails the whole array; ltree arrays fail on a NULL element too (NPE).
_REQUIRED_ITEMS = frozenset({"tsvector"})
_NULL_FAILS = frozenset({"ltree"})


def codec_for(
    pg_type: PgType,
    type_modifier: int,
    *,
    optional: bool,
    settings: ValueSettings,
    column: str = "",
) -> ColumnCodec:
    """The codec of a column of ``pg_type`` with ``type_modifier`` (``atttypmod``, -1 if none).

    Domains are read as their base type with the nearest declared modifier, as Debezium
    does. A type Debezium cannot map yields an ``unknown`` codec (see :class:`ColumnCodec`).
    ``column`` only names the column in error messages.
    """
    root, modifier = pg_type.root(type_modifier)
    if root.is_array:
        return _array_codec(root, modifier, optional, settings, column)
    built = _scalar(root, modifier, optional, settings, column)
    if built is None:
        return _unknown(root, optional, settings, omitted_always=False)
    schema, convert = built
    if _fallible(root, settings):
        convert = _guard(convert, settings.event_converting_failure_handling_mode)
    return ColumnCodec(schema, convert, type_name=_display(root))


def _fallible(root: PgType, settings: ValueSettings) -> bool:
    """Whether Debezium's converter fails on some valid value of this (non-array) type."""
    if root.oid == 1700:  # numeric: NaN and the infinities under precise
        return settings.decimal_handling_mode == "precise"
    return root.oid == 1114 and settings.time_precision_mode == "nanoseconds"


def _guard(convert: FromText, failure_mode: str) -> FromText:
    """Debezium's ``event.converting.failure.handling.mode``: a value its converter cannot
    convert becomes null, logged as a warning (``warn``) or not (``skip``), or stops the
    capture (``fail``)."""

    def guarded(text: bytes) -> Any:
        try:
            return convert(text)
        except ValueConversionError as exc:
            if failure_mode == "fail":
                raise
            log = _LOG.warning if failure_mode == "warn" else _LOG.debug
            log("%s; emitting null (event.converting.failure.handling.mode=%s)", exc, failure_mode)
            return None

    return guarded


def _display(pg_type: PgType) -> str:
    if pg_type.is_array and pg_type.element is not None:
        return _display(pg_type.element) + "[]"
    return pg_type.name if pg_type.schema == "pg_catalog" else f"{pg_type.schema}.{pg_type.name}"


def _known_name(pg_type: PgType) -> str:
    """The name the dispatch tables know the type by, or "" for user-defined types."""
    if pg_type.oid < 16384 or pg_type.name in _EXTENSION_TYPES:
        return pg_type.name
    return ""


def _scalar(
    root: PgType, modifier: int, optional: bool, settings: ValueSettings, column: str
) -> Built | None:
    """Schema and converter of a non-array, non-domain type, or None if Debezium has none."""
    name = _known_name(root)
    if root.typtype == "e":
        allowed = {"allowed": ",".join(root.enum_labels)}
        return prim("string", optional, ENUM, parameters=allowed), txt.to_str
    if name in num.SIMPLE:
        type_, convert = num.SIMPLE[name]
        return prim(type_, optional), convert
    if name in _STRINGS:
        return txt.string_codec(optional, _STRINGS[name])
    builder = _BUILDERS.get(name)
    return None if builder is None else builder(modifier, optional, settings, column)


def _numeric(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return num.numeric_codec(modifier, settings.decimal_handling_mode, optional, column)


def _money(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return num.money_codec(settings.money_fraction_digits, settings.decimal_handling_mode, optional)


def _bit(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return num.bits_codec(num.bit_length(modifier, False), optional)


def _varbit(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return num.bits_codec(num.bit_length(modifier, True), optional)


def _bytea(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return txt.bytea_codec(settings.binary_handling_mode, optional)


def _date(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return tmp.date_codec(settings.time_precision_mode, optional)


def _time(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    precision = tmp.temporal_precision(modifier)
    return tmp.time_codec(precision, settings.time_precision_mode, optional)


def _timestamp(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    precision = tmp.temporal_precision(modifier)
    return tmp.timestamp_codec(precision, settings.time_precision_mode, optional, column)


def _timestamptz(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return tmp.timestamptz_codec(tmp.temporal_precision(modifier), optional)


def _timetz(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return tmp.timetz_codec(optional)


def _interval(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return tmp.interval_codec(settings.interval_handling_mode, optional)


def _point(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return txt.point_codec(optional)


def _hstore(modifier: int, optional: bool, settings: ValueSettings, column: str) -> Built:
    return txt.hstore_codec(settings.hstore_handling_mode, optional)


_BUILDERS: dict[str, Callable[[int, bool, ValueSettings, str], Built]] = {
    "numeric": _numeric,
    "money": _money,
    "bit": _bit,
    "varbit": _varbit,
    "bytea": _bytea,
    "date": _date,
    "time": _time,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "timetz": _timetz,
    "interval": _interval,
    "point": _point,
    "hstore": _hstore,
}


def _vector_codec(root: PgType, optional: bool) -> ColumnCodec:
    """int2vector and oidvector are arrays to Debezium, but their text (``1 2 3``) has no
    braces, which pgjdbc reads as no elements at all (and the empty vector as null)."""
    items = prim("int16" if root.name == "int2vector" else "int64", False)
    return ColumnCodec(array(items, optional), _empty_vector, type_name=root.name)


def _empty_vector(text: bytes) -> list[Any] | None:
    return [] if text else None


def _array_codec(
    root: PgType, modifier: int, optional: bool, settings: ValueSettings, column: str
) -> ColumnCodec:
    if root.oid in (22, 30):  # int2vector, oidvector
        return _vector_codec(root, optional)
    element_type = root.element if root.element is not None else root
    element, element_modifier = element_type.root(modifier)
    name = _known_name(element)
    if name in _OMITTED_ARRAYS:
        return _unknown(root, optional, settings, omitted_always=True)
    built = None
    if element_type.typtype != "d" and (name in _ARRAY_ELEMENTS or element.typtype == "e"):
        built = _element(element, name, element_modifier, settings, column)
    delimiter = ord(element_type.delimiter or ",")
    if built is None:
        return _unknown_array(root, element, delimiter, optional, settings)
    items, convert = built
    required = element.typtype == "e" or name in _REQUIRED_ITEMS
    if required:
        items = with_optional(items, False)
    null_fails = required or name in _NULL_FAILS
    convert = arrays.array_converter(convert, delimiter, null_fails, column)
    if null_fails or name == "numeric" or _fallible(element, settings):
        convert = _guard(convert, settings.event_converting_failure_handling_mode)
    return ColumnCodec(array(items, optional), convert, type_name=_display(root))


def _element(
    element: PgType, name: str, modifier: int, settings: ValueSettings, column: str
) -> Built | None:
    """Schema and converter of an array element as Debezium converts what pgjdbc's
    ``PgArray`` makes of it (``java.sql`` temporal objects, ``BigDecimal``...)."""
    mode = settings.time_precision_mode
    if name == "date":
        return tmp.jdbc_date_codec(mode, True)
    if name == "timestamp":
        precision = tmp.temporal_precision(modifier)
        schema, convert = tmp.timestamp_codec(
            precision, mode, True, column, tmp.parse_jdbc_timestamp
        )
        return schema, arrays.element_or_null(convert) if mode == "nanoseconds" else convert
    built = _scalar(element, modifier, True, settings, column)
    if built is None:
        return None
    schema, convert = built
    if name == "time":
        return schema, lambda text: convert(arrays.truncate_clock(text))
    if name == "timetz":
        return schema, lambda text: convert(arrays.whole_seconds_timetz(text))
    if name == "timestamptz":  # java.sql.Timestamp's fields lose the era
        return schema, lambda text: convert(text.removesuffix(b" BC"))
    if name == "numeric":
        return schema, arrays.numeric_element(convert, column)
    return schema, convert


def _unknown_array(
    root: PgType, element: PgType, delimiter: int, optional: bool, settings: ValueSettings
) -> ColumnCodec:
    """An array whose element type Debezium cannot map: with include.unknown.datatypes,
    an array of each element's text as bytes (a null element fails, the items being
    required); otherwise Debezium leaves the column out."""
    if not settings.include_unknown_datatypes:
        return _unknown(root, optional, settings, omitted_always=False)
    geometric = _known_name(element) in txt.GEOMETRIC
    items, encode = txt.unknown_bytes_codec(settings.binary_handling_mode, False, geometric)
    convert = arrays.array_converter(encode, delimiter, True)
    convert = _guard(convert, settings.event_converting_failure_handling_mode)
    shown = _display(root)
    note = (
        f"type {shown} is not mapped by Debezium 3.6; as Debezium does with "
        f"include.unknown.datatypes=true, each element's text is emitted as bytes"
    )
    return ColumnCodec(array(items, optional), convert, unknown=True, note=note, type_name=shown)


def _unknown(
    pg_type: PgType, optional: bool, settings: ValueSettings, *, omitted_always: bool
) -> ColumnCodec:
    """A type Debezium 3.6 cannot map: Debezium's bytes-of-text when
    ``include.unknown.datatypes`` makes it emit the column, else the text as a string."""
    shown = _display(pg_type)
    if settings.include_unknown_datatypes and not omitted_always:
        geometric = _known_name(pg_type) in txt.GEOMETRIC
        schema, convert = txt.unknown_bytes_codec(
            settings.binary_handling_mode, optional, geometric
        )
        note = (
            f"type {shown} is not mapped by Debezium 3.6; as Debezium does with "
            f"include.unknown.datatypes=true, its text is emitted as bytes"
        )
        return ColumnCodec(schema, convert, unknown=True, note=note, type_name=shown)
    if shown == "bit[]":
        why = "declares a Bits field for them but always emits null"
    elif omitted_always:
        why = "leaves such columns out (whatever include.unknown.datatypes says)"
    else:
        why = "leaves such columns out unless include.unknown.datatypes=true"
    note = (
        f"type {shown} is not mapped by Debezium 3.6, which {why}; duality emits the "
        f"value's text as a string"
    )
    return ColumnCodec(
        prim("string", optional), txt.to_str, unknown=True, note=note, type_name=shown
    )


# --- COPY text format ----------------------------------------------------------------------

_COPY_ESCAPE: Final = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_COPY_SIMPLE: Final = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def _copy_unescape(match: re.Match[bytes]) -> bytes:
    octal, hexa, char = match.groups()
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    return _COPY_SIMPLE.get(char, char)


def split_copy_line(line: bytes) -> list[bytes | None]:
    """One line of ``COPY ... TO STDOUT`` text format → its fields, un-escaped; ``\\N`` is None.

    The trailing newline is optional. Tabs and newlines inside values arrive escaped, so
    splitting on raw tabs is safe.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if b"\\" not in line:
        return list(line.split(b"\t"))  # list() so mypy types it list[bytes | None]
    return [
        None
        if field == b"\\N"
        else _COPY_ESCAPE.sub(_copy_unescape, field)
        if b"\\" in field
        else field
        for field in line.split(b"\t")
    ]


# --- built-in types (no database needed) ---------------------------------------------------

# oid, name, category, array oid; box is the one built-in whose array delimiter is ';'.
_BUILTINS: tuple[tuple[int, str, str, int], ...] = (
    (16, "bool", "B", 1000), (17, "bytea", "U", 1001), (18, "char", "Z", 1002),
    (19, "name", "S", 1003), (20, "int8", "N", 1016), (21, "int2", "N", 1005),
    (23, "int4", "N", 1007), (25, "text", "S", 1009), (26, "oid", "N", 1028),
    (114, "json", "U", 199), (142, "xml", "U", 143), (600, "point", "G", 1017),
    (601, "lseg", "G", 1018), (602, "path", "G", 1019), (603, "box", "G", 1020),
    (604, "polygon", "G", 1027), (628, "line", "G", 629), (650, "cidr", "I", 651),
    (700, "float4", "N", 1021), (701, "float8", "N", 1022), (718, "circle", "G", 719),
    (774, "macaddr8", "U", 775), (790, "money", "N", 791), (829, "macaddr", "U", 1040),
    (869, "inet", "I", 1041), (1042, "bpchar", "S", 1014), (1043, "varchar", "S", 1015),
    (1082, "date", "D", 1182), (1083, "time", "D", 1183), (1114, "timestamp", "D", 1115),
    (1184, "timestamptz", "D", 1185), (1186, "interval", "T", 1187), (1266, "timetz", "D", 1270),
    (1560, "bit", "V", 1561), (1562, "varbit", "V", 1563), (1700, "numeric", "N", 1231),
    (1790, "refcursor", "U", 2201), (2950, "uuid", "U", 2951), (3220, "pg_lsn", "U", 3221),
    (3614, "tsvector", "U", 3643), (3615, "tsquery", "U", 3645), (3802, "jsonb", "U", 3807),
    (3904, "int4range", "R", 3905), (3906, "numrange", "R", 3907), (3908, "tsrange", "R", 3909),
    (3910, "tstzrange", "R", 3911), (3912, "daterange", "R", 3913),
    (3926, "int8range", "R", 3927), (4072, "jsonpath", "U", 4073),
)  # fmt: skip


def _builtin_table() -> dict[int, PgType]:
    table: dict[int, PgType] = {}
    for oid, name, category, array_oid in _BUILTINS:
        typtype = "r" if category == "R" else "b"
        scalar = PgType(oid, name, typtype=typtype, category=category,
                        delimiter=";" if name == "box" else ",")  # fmt: skip
        table[oid] = scalar
        table[array_oid] = PgType(array_oid, "_" + name, category="A", element=scalar)
    return table


#: The built-in types by OID, for callers and tests without a database;
#: :func:`duality.sources.postgres.typeinfo.load_types` reads any type from the catalog.
BUILTIN_TYPES: dict[int, PgType] = _builtin_table()
_BY_NAME = {pg_type.name: pg_type for pg_type in BUILTIN_TYPES.values()}


def builtin_type(name_or_oid: str | int) -> PgType:
    """A built-in type by OID or ``pg_type`` name (``int4``, ``_text`` for ``text[]``)."""
    if isinstance(name_or_oid, int):
        return BUILTIN_TYPES[name_or_oid]
    if name_or_oid.endswith("[]"):
        name_or_oid = "_" + name_or_oid[:-2]
    return _BY_NAME[name_or_oid]
