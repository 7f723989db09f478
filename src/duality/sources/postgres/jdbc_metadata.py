"""Column metadata as the PostgreSQL JDBC driver (pgjdbc 42.7) reports it: the type name,
size and decimal digits that Debezium copies into the ``__debezium.source.column.*``
schema parameters (see :mod:`duality.sources.postgres.propagate`).

pgjdbc works from a type's OID and a type modifier (``atttypmod``, -1 when none):
:func:`precision` is JDBC's COLUMN_SIZE, :func:`scale` its DECIMAL_DIGITS and
:func:`display_size` the width of the text form. Types the driver has no rule for have
an unknown length (``Integer.MAX_VALUE``) and scale 0; an array counts as its element
type only when that element is one of the driver's core types. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Final

from duality.sources.postgres.types import builtin_type
from duality.sources.postgres.types_model import PgType

#: pgjdbc's ``unknownLength`` default: ``Integer.MAX_VALUE``.
UNKNOWN_LENGTH: Final = 2_147_483_647

BOOL: Final = 16
CHAR: Final = 18
INT8: Final = 20
INT2: Final = 21
INT4: Final = 23
OID: Final = 26
FLOAT4: Final = 700
FLOAT8: Final = 701
BPCHAR: Final = 1042
VARCHAR: Final = 1043
DATE: Final = 1082
TIME: Final = 1083
TIMESTAMP: Final = 1114
TIMESTAMPTZ: Final = 1184
INTERVAL: Final = 1186
TIMETZ: Final = 1266
BIT: Final = 1560
VARBIT: Final = 1562
NUMERIC: Final = 1700

#: The driver's core types (its built-in table): their arrays count as the element type,
#: and they are named without asking the server. ``interval`` is not one of them.
_CORE: Final = frozenset(builtin_type(name).oid for name in (
    "int2", "int4", "oid", "int8", "money", "numeric", "float4", "float8", "char", "bpchar",
    "varchar", "varbit", "text", "name", "bytea", "bool", "bit", "date", "time", "timetz",
    "timestamp", "timestamptz", "refcursor", "json", "jsonb", "point", "box",
))
#: pgjdbc reports a column with a ``nextval(`` default under these names.
_SERIALS: Final = {"int2": "smallserial", "int4": "serial", "int8": "bigserial"}

_FIXED_PRECISION: Final = {
    INT2: 5, INT4: 10, OID: 10, INT8: 19, FLOAT4: 8, FLOAT8: 17, CHAR: 1, BOOL: 1,
}  # fmt: skip
_FIXED_DISPLAY: Final = {
    INT2: 6, INT4: 11, OID: 10, INT8: 20, FLOAT4: 15, FLOAT8: 25, CHAR: 1, BOOL: 1,
    DATE: 13, INTERVAL: 49,
}  # fmt: skip
_FIXED_SCALE: Final = {FLOAT4: 8, FLOAT8: 17}
#: Width of the text form without the fraction of a second: ``HH:MM:SS`` (8), a date
#: ``5874897-12-31`` and a space before it (14), a zone ``+11:30`` after it (6).
_CLOCK_WIDTH: Final = {TIME: 8, TIMETZ: 14, TIMESTAMP: 22, TIMESTAMPTZ: 28}
_CHARACTERS: Final = frozenset({BPCHAR, VARCHAR})
_DATETIMES: Final = frozenset({DATE, TIME, TIMETZ, INTERVAL, TIMESTAMP, TIMESTAMPTZ})


def driver_oid(pg_type: PgType) -> int:
    """The OID pgjdbc's metadata rules see: an array of a core type is its element's."""
    element = pg_type.element
    if pg_type.is_array and element is not None and element.oid in _CORE:
        return element.oid
    return pg_type.oid


def driver_type_name(pg_type: PgType, default: str | None) -> str:
    """TYPE_NAME of ``DatabaseMetaData.getColumns``: the ``pg_type`` name, schema-qualified
    in double quotes when its schema is not on the session's ``search_path``; ``serial``,
    ``bigserial`` or ``smallserial`` for an integer column whose default calls ``nextval(``."""
    name = pg_type.name
    if driver_oid(pg_type) not in _CORE and not pg_type.on_path:
        name = f'"{pg_type.schema}"."{name}"'
    if default is not None and "nextval(" in default:
        return _SERIALS.get(name, name)
    return name


def precision(oid: int, typmod: int) -> int:
    """pgjdbc's ``TypeInfoCache.getPrecision``."""
    fixed = _FIXED_PRECISION.get(oid)
    if fixed is not None:
        return fixed
    if oid == NUMERIC:
        return 0 if typmod == -1 else ((typmod - 4) >> 16) & 0xFFFF
    if oid in _CHARACTERS:
        return UNKNOWN_LENGTH if typmod == -1 else typmod - 4
    if oid in _DATETIMES:
        return display_size(oid, typmod)
    return _bits(oid, typmod)


def scale(oid: int, typmod: int) -> int:
    """pgjdbc's ``TypeInfoCache.getScale``."""
    fixed = _FIXED_SCALE.get(oid)
    if fixed is not None:
        return fixed
    if oid == NUMERIC:
        return 0 if typmod == -1 else (typmod - 4) & 0xFFFF
    if oid in _CLOCK_WIDTH:
        return 6 if typmod == -1 else typmod
    if oid == INTERVAL:
        return 6 if typmod == -1 else typmod & 0xFFFF
    return 0


def display_size(oid: int, typmod: int) -> int:
    """pgjdbc's ``TypeInfoCache.getDisplaySize``: the longest text form."""
    fixed = _FIXED_DISPLAY.get(oid)
    if fixed is not None:
        return fixed
    clock = _CLOCK_WIDTH.get(oid)
    if clock is not None:
        return clock + _fraction_width(typmod)
    if oid in _CHARACTERS:
        return UNKNOWN_LENGTH if typmod == -1 else typmod - 4
    if oid == NUMERIC:
        return _numeric_width(typmod)
    return _bits(oid, typmod)


def _bits(oid: int, typmod: int) -> int:
    """bit(n) is n long (whatever n); varbit(n) too, unbounded varbit and anything else
    has an unknown length."""
    if oid == BIT or (oid == VARBIT and typmod != -1):
        return typmod
    return UNKNOWN_LENGTH


def _fraction_width(typmod: int) -> int:
    """Digits of the fraction of a second and the point before them (the driver counts
    two digits for a precision of 1)."""
    return {-1: 7, 0: 0, 1: 3}.get(typmod, typmod + 1)


def _numeric_width(typmod: int) -> int:
    """Sign, digits, and a point when the scale is not 0; the width of the longest
    unconstrained numeric (``length(pow(10::numeric, 131071))``) without a modifier."""
    if typmod == -1:
        return 131_089
    digits = ((typmod - 4) >> 16) & 0xFFFF
    return 1 + digits + (1 if (typmod - 4) & 0xFFFF else 0)
