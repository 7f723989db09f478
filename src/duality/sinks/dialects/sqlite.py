"""The SQLite dialect: values and declared types exactly as the table store keeps them
(:mod:`duality.tables.types`): decimals as numbers when exact, else exact text, in a
column without a declared type (numeric affinity would round them); dates and times as
ISO-8601 text; bytes as BLOBs; arrays, maps and structs as JSON text."""

from __future__ import annotations

from duality.errors import ConfigError
from duality.events.schema import ConnectSchema
from duality.sinks.dialects import Dialect
from duality.tables import ddl
from duality.tables.shape import field_codecs
from duality.tables.types import column_codec


def quote(name: str) -> str:
    try:
        return ddl.quote(name)
    except ValueError as exc:
        raise ConfigError(f"{exc}, which SQLite cannot hold; rename it with --map") from None


def fold(name: str) -> str:
    """SQLite compares identifiers ignoring ASCII case (only)."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def column_type(schema: ConnectSchema, source_type: str | None = None) -> str:
    return column_codec(schema, source_type)[0].sql_type


def holds(existing: str, wanted: str) -> bool:
    """SQLite keeps any value in any column; what matters is the declared type's
    affinity, which may convert values. A column without one keeps every value as it is."""
    return existing.upper() == wanted.upper() or existing == ""


SQLITE = Dialect(
    name="sqlite",
    with_schemas=False,
    quote=quote,
    column_type=column_type,
    holds=holds,
    fields=field_codecs,
    param="?",
    casts=False,
    position_type="INTEGER",
    fold=fold,
    own_names=("duality_", "duality:"),
)
