"""The PostgreSQL type of a replicated column, and which type changes keep every value.

A column's type comes from its Kafka Connect schema (Debezium's logical types), refined
by the source column's type where the source is PostgreSQL too and the source type is a
built-in one whose text form the value carries: ``numeric(12,2)`` stays
``numeric(12,2)``, ``character varying(20)`` stays, ``inet`` stays ``inet``. Types a
target may not have (enums, domains, extension types) become the logical type's
(``text``, ``jsonb`` …). Type names are written as PostgreSQL's ``format_type`` writes
them, so they compare equal to what the target's catalog says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from duality.events.schema import ConnectSchema
from duality.sources.postgres.types_schema import (
    BITS,
    ISO_DATE,
    ISO_TIME,
    ISO_TIMESTAMP,
    JSON,
    MICRO_DURATION,
    POINT,
    UUID,
    XML,
    ZONED_TIME,
    ZONED_TIMESTAMP,
)
from duality.tables.types import DAYS, DECIMAL, TIMES, TIMESTAMPS, VARIABLE_DECIMAL

#: Built-in source types whose text form a plain string value holds exactly.
_TEXT_SOURCES = frozenset({
    "text", "character varying", "character", "bpchar", "name", '"char"', "inet", "cidr",
    "macaddr", "macaddr8", "int4range", "int8range", "numrange", "tsrange", "tstzrange",
    "daterange", "line", "lseg", "box", "path", "polygon", "circle", "pg_lsn", "tsquery",
    "jsonpath", "interval", "money", "numeric", "tsvector", "xml", "uuid", "json", "jsonb",
    "date", "time without time zone", "timestamp without time zone",
})  # fmt: skip
_INTEGERS = {"int8": "smallint", "int16": "smallint", "int32": "integer", "int64": "bigint"}
_SIMPLE = {"float": "real", "float32": "real", "double": "double precision",
           "float64": "double precision", "boolean": "boolean", "bytes": "bytea",
           "map": "jsonb", "struct": "jsonb", "string": "text"}  # fmt: skip
_BY_NAME = {UUID: "uuid", XML: "xml", POINT: "point", MICRO_DURATION: "interval",
            VARIABLE_DECIMAL: "numeric", ZONED_TIME: "time with time zone",
            ISO_DATE: "date", ISO_TIME: "time without time zone",
            ISO_TIMESTAMP: "timestamp without time zone"}  # fmt: skip
#: A format_type name: words (or "char"), an optional modifier, an optional zone suffix.
_TYPE = re.compile(
    r'^(?P<base>[a-z][a-z0-9_ ]*?|"char")(?:\((?P<mods>-?\d+(?:,-?\d+)?)\))?'
    r"(?P<zone> with(?:out)? time zone)?(?P<arrays>(?:\[\])*)$"
)


@dataclass(frozen=True, slots=True)
class PgType:
    """A parsed type name: ``timestamp(3) without time zone[]`` is base ``timestamp
    without time zone``, modifiers (3,), one array level."""

    base: str
    mods: tuple[int, ...] = ()
    arrays: int = 0

    @classmethod
    def parse(cls, text: str) -> PgType | None:
        match = _TYPE.match(text.replace(", ", ","))
        if match is None:
            return None
        base = match["base"].strip() + (match["zone"] or "")
        mods = tuple(int(m) for m in match["mods"].split(",")) if match["mods"] else ()
        return cls(base, mods, len(match["arrays"]) // 2)

    @property
    def element(self) -> PgType:
        return PgType(self.base, self.mods)


def column_type(schema: ConnectSchema, source_type: str | None = None) -> str:
    """The target type of a column with this field schema (see the module docstring)."""
    source = PgType.parse(source_type) if source_type else None
    if schema.type == "array" and schema.items is not None:
        element = source_type[:-2] if source_type and source_type.endswith("[]") else None
        return column_type(schema.items, element) + "[]"
    keep = source is not None and source.arrays == 0
    base = source.base if source is not None and keep else ""
    name = schema.name
    if name == DECIMAL:
        if base in ("numeric", "money"):
            return str(source_type)
        params = schema.parameters or {}
        precision = params.get("connect.decimal.precision")
        scale = params.get("scale", "0")
        return f"numeric({precision},{scale})" if precision else "numeric"
    if name in DAYS:
        return "date"
    if name in TIMES:
        return str(source_type) if base == "time without time zone" else "time without time zone"
    if name in TIMESTAMPS:
        wanted = "timestamp without time zone"
        return str(source_type) if base == wanted else wanted
    if name == ZONED_TIMESTAMP:
        wanted = "timestamp with time zone"
        return str(source_type) if base == wanted else wanted
    if name == JSON:
        return "json" if base == "json" else "jsonb"
    if name == BITS:
        return str(source_type) if base in ("bit", "bit varying") else "bit varying"
    if name in _BY_NAME:
        return _BY_NAME[name]
    if schema.type in _INTEGERS:
        return _INTEGERS[schema.type]
    if schema.type == "string" and name is None and base in _TEXT_SOURCES:
        return str(source_type)
    return _SIMPLE.get(schema.type, "text")


# --- type changes ------------------------------------------------------------------------

_INT_RANK = {"smallint": 0, "integer": 1, "bigint": 2}
_INT_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_TEXTS = ("character varying", "text")
_PRECISION_BASES = frozenset({
    "time without time zone", "time with time zone", "timestamp without time zone",
    "timestamp with time zone",
})  # fmt: skip


def holds(existing: str, wanted: str) -> bool:
    """Whether a column of type ``existing`` keeps every value of type ``wanted``."""
    if existing == wanted:
        return True
    narrow, wide = PgType.parse(wanted), PgType.parse(existing)
    return narrow is not None and wide is not None and _widens(narrow, wide)


def _widens(old: PgType, new: PgType) -> bool:
    """Whether every value of ``old`` converts to ``new`` unchanged."""
    if old.arrays != new.arrays:
        return False
    if old.base == new.base and old.mods == new.mods:
        return True
    if old.base in _INT_RANK:
        if new.base in _INT_RANK:
            return _INT_RANK[new.base] >= _INT_RANK[old.base]
        return new.base == "numeric" and _numeric_fits(_INT_DIGITS[old.base], 0, new.mods)
    if old.base == "numeric" and new.base == "numeric":
        if not old.mods:
            return not new.mods
        whole = old.mods[0] - (old.mods[1] if len(old.mods) > 1 else 0)
        return _numeric_fits(whole, old.mods[1] if len(old.mods) > 1 else 0, new.mods)
    if old.base == "real":
        return new.base == "double precision"
    if old.base in _TEXTS and new.base in _TEXTS:
        return _length_fits(old.mods, new.mods, new.base)
    if old.base in ("bit", "bit varying") and new.base == "bit varying":
        return _length_fits(old.mods, new.mods, new.base)
    if old.base == new.base and old.base in _PRECISION_BASES:
        return not new.mods or (bool(old.mods) and new.mods[0] >= old.mods[0])
    return False


def _numeric_fits(whole: int, scale: int, mods: tuple[int, ...]) -> bool:
    if not mods:
        return True
    new_scale = mods[1] if len(mods) > 1 else 0
    return new_scale >= scale and mods[0] - new_scale >= whole


def _length_fits(old: tuple[int, ...], new: tuple[int, ...], new_base: str) -> bool:
    if new_base == "text" or not new:
        return True
    return bool(old) and new[0] >= old[0]
