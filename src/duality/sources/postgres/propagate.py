"""The parameters of a column's value field: the source type (Debezium's
``column.propagate.source.type`` and ``datatype.propagate.source.type``), or the marks of
a mask or truncation (``masked``, ``truncateLength``: :func:`field_parameters`).

A column these properties select (see
:meth:`~duality.sources.postgres.columns.ColumnRules.propagates`) gets, in its field
schema of the value's ``before``/``after`` struct and after the parameters its logical
type already has (a Decimal's ``scale``, …):

* ``__debezium.source.column.type`` — the type name in upper case: ``VARCHAR``,
  ``BPCHAR`` for ``char(n)``, ``_INT4`` for ``integer[]``;
* ``__debezium.source.column.length`` — left out when unknown (-1);
* ``__debezium.source.column.scale`` — left out when unset;
* ``__debezium.source.column.name``.

Key fields never carry them. Debezium applies one rule to a column, the first that
matches: masks (``column.mask.with``) and truncation come before these properties, so a
column they change has none of these parameters; hashing (``column.mask.hash``) comes
after them, so Debezium leaves such a column unhashed. duality hashes it all the same
(the raw value must not reach the log), with the parameters in its schema.

Debezium takes name, length and scale from two places
that disagree, and each record's schema follows the place its event came from:

* **snapshot**: the JDBC driver's column metadata. Its type name (``serial`` for an
  ``int4`` column whose default calls ``nextval(``; ``"schema"."name"`` for a type off the
  ``search_path``), its COLUMN_SIZE (the display size where the precision is 0, but not
  for numeric: an unconstrained numeric is 0 long) and its DECIMAL_DIGITS (unset for an
  unconstrained numeric).
* **stream**: the Relation message. The ``pg_type`` name; for a column with a type
  modifier, the driver's precision and scale for it; without one, the type's defaults:
  the precision, else the display size (an unconstrained numeric is 131089 long), scale
  as the driver gives it (0).

Domains have the defaults of their base type under the domain's own modifier, in both.
Worked out once per table shape, never per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from duality.sources.postgres.catalog import ColumnInfo
from duality.sources.postgres.columns import ColumnRules
from duality.sources.postgres.jdbc_metadata import (
    NUMERIC,
    UNKNOWN_LENGTH,
    display_size,
    driver_oid,
    driver_type_name,
    precision,
    scale,
)
from duality.sources.postgres.types_model import PgType

TYPE_PARAMETER: Final = "__debezium.source.column.type"
LENGTH_PARAMETER: Final = "__debezium.source.column.length"
SCALE_PARAMETER: Final = "__debezium.source.column.scale"
NAME_PARAMETER: Final = "__debezium.source.column.name"


@dataclass(frozen=True, slots=True)
class SourceColumn:
    """A column's type as Debezium describes it: name, length (-1: unknown) and scale
    (None: unset)."""

    type_name: str
    length: int
    scale: int | None

    def parameters(self, column: str) -> dict[str, str]:
        """The schema parameters of the column named ``column``, in Debezium's order."""
        out = {TYPE_PARAMETER: self.type_name.upper()}
        if self.length != -1:
            out[LENGTH_PARAMETER] = str(self.length)
        if self.scale is not None:
            out[SCALE_PARAMETER] = str(self.scale)
        out[NAME_PARAMETER] = column
        return out


def field_parameters(
    schema: str,
    table: str,
    columns: Sequence[ColumnInfo],
    types: dict[int, PgType],
    rules: ColumnRules,
    *,
    snapshot: bool,
) -> dict[str, dict[str, str]]:
    """The parameters ``rules`` give the value fields of ``columns``, by column name: the
    source type where a propagation property selects the column (``snapshot`` says which
    of Debezium's two descriptions applies), else a mask's or truncation's marks
    (:meth:`ColumnRules.marks`). Debezium applies the first of its rules that matches a
    column: masks and truncation before the source type, the source type before a hash."""
    out = {}
    for column in columns:
        parameters = rules.marks(schema, table, column.name)
        if rules.propagating:
            pg_type = types[column.type_oid]
            if snapshot:
                found = snapshot_column(pg_type, column.type_modifier, column.default)
            else:
                found = streamed_column(pg_type, column.type_modifier)
            if rules.propagates(schema, table, column.name, found.type_name):
                parameters = found.parameters(column.name)
        if parameters:
            out[column.name] = parameters
    return out


def snapshot_column(pg_type: PgType, type_modifier: int, default: str | None) -> SourceColumn:
    """The column as Debezium's snapshot describes it (the JDBC driver's ``getColumns``,
    with Debezium's own defaults for domains)."""
    name = driver_type_name(pg_type, default)
    if pg_type.base is not None:
        return SourceColumn(name, default_length(pg_type), default_scale(pg_type))
    oid = driver_oid(pg_type)
    numeric = pg_type.oid == NUMERIC  # JDBC type NUMERIC: not its arrays or domains
    length = precision(oid, type_modifier)
    if length == 0 and not numeric:
        length = display_size(oid, type_modifier)
    unset = numeric and type_modifier == -1
    return SourceColumn(name, length, None if unset else scale(oid, type_modifier))


def streamed_column(pg_type: PgType, type_modifier: int) -> SourceColumn:
    """The column as Debezium's stream describes it (from the Relation message)."""
    if type_modifier == -1:
        return SourceColumn(pg_type.name, default_length(pg_type), default_scale(pg_type))
    oid = driver_oid(pg_type)
    return SourceColumn(pg_type.name, precision(oid, type_modifier), scale(oid, type_modifier))


def default_length(pg_type: PgType) -> int:
    """Debezium's ``PostgresType.getDefaultLength``: the precision under the type's own
    modifier (``typtypmod``), else its display size; a domain's from its base type."""
    base = pg_type.base
    if base is not None:
        if pg_type.typmod == -1:
            return default_length(base)
        size = _size(driver_oid(base), pg_type.typmod)
        if size not in (0, UNKNOWN_LENGTH):
            return size
    return _size(driver_oid(pg_type), pg_type.typmod)


def default_scale(pg_type: PgType) -> int:
    """Debezium's ``PostgresType.getDefaultScale``: the scale under the type's own
    modifier; a domain's from its base type."""
    base = pg_type.base
    if base is None:
        return scale(driver_oid(pg_type), pg_type.typmod)
    if pg_type.typmod == -1:
        return default_scale(base)
    return scale(driver_oid(base), pg_type.typmod)


def _size(oid: int, typmod: int) -> int:
    return precision(oid, typmod) or display_size(oid, typmod)
