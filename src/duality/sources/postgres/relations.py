"""What a Relation message says of a table, read against the catalog: the column types
(with a stand-in for a type the catalog no longer or not yet holds), each column's
description, and how a table's shape changed, in words.

Used by :class:`~duality.sources.postgres.source.PostgresSource` once per Relation
message, never per change.
"""

from __future__ import annotations

from typing import Any

from duality.sources.postgres import catalog
from duality.sources.postgres.tables import TableCodec
from duality.sources.postgres.typeinfo import load_types
from duality.sources.postgres.types_model import PgType


def describe_change(old: TableCodec, new: TableCodec) -> list[str]:
    """What changed between two shapes of a table, in words."""
    old_types = old.record_schema.meta.source_types
    new_types = new.record_schema.meta.source_types
    notes = []
    if (old.schema, old.table) != (new.schema, new.table):
        notes.append(f"renamed to {new.schema}.{new.table} (topic {new.topic!r})")
    notes += [f"added {c} ({t})" for c, t in new_types.items() if c not in old_types]
    notes += [f"dropped {c}" for c in old_types if c not in new_types]
    notes += [
        f"retyped {c} {old_types[c]} -> {t}"
        for c, t in new_types.items()
        if c in old_types and old_types[c] != t
    ]
    if old.key_names != new.key_names:
        notes.append(f"key columns {list(old.key_names)} -> {list(new.key_names)}")
    return notes


#: ``typtype`` of the stand-in for a type the catalog does not hold: no real type has it,
#: so it is captured as a type Debezium cannot map (its text form).
GONE = "?"


def relation_types(conn: Any, oids: set[int]) -> dict[int, PgType]:
    """The column types of a Relation message, by OID. A type the catalog does not hold
    (dropped since, with its table, or created by the transaction being streamed) gets a
    stand-in that is captured in its text form, rather than stopping capture for good."""
    rows = conn.execute(
        "SELECT oid::int8 FROM pg_catalog.pg_type WHERE oid = ANY(%s::oid[])", (sorted(oids),)
    ).fetchall()
    held = {row[0] for row in rows}
    types = load_types(conn, held)
    for oid in oids - held:
        types[oid] = PgType(oid=oid, name=f"oid {oid}", typtype=GONE)
    return types


def relation_spec(
    conn: Any, column: Any, table: catalog.TableInfo, types: dict[int, PgType]
) -> catalog.ColumnInfo:
    """A column as the Relation message describes it (the truth for its events), with
    nullability and default from the catalog when the catalog still agrees on its type
    (the catalog may already be ahead of the stream, or no longer, or not yet, hold the
    table). Where it cannot say, a column of the replica identity's key (a primary key
    or identity index column) is NOT NULL, as PostgreSQL demands of those; a type the
    catalog does not hold is named ``text``, the form its values are captured in."""
    known = table.column(column.name)
    if known is not None and known.type_oid == column.type_oid:
        return catalog.ColumnInfo(
            column.name,
            column.type_oid,
            column.type_modifier,
            known.not_null,
            known.type_name,
            known.default,
        )
    not_null = column.is_key and table.replica_identity in ("default", "index")
    if types[column.type_oid].typtype == GONE:
        return catalog.ColumnInfo(column.name, column.type_oid, -1, not_null, "text")
    row = conn.execute(
        "SELECT format_type(%s, %s)", (column.type_oid, column.type_modifier)
    ).fetchone()
    return catalog.ColumnInfo(
        column.name, column.type_oid, column.type_modifier, not_null, str(row[0])
    )
