"""Reading :class:`~duality.sources.postgres.types.PgType` descriptions from ``pg_type``.

This is the I/O half of :mod:`duality.sources.postgres.types`; table metadata (columns,
keys, replica identity) lives in the catalog module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from duality.errors import SourceError
from duality.sources.postgres.types_model import PgType

# One round trip: the requested types plus, recursively, array element types, domain base
# types and range subtypes.
_TYPES_SQL = """
WITH RECURSIVE wanted(oid) AS (
    SELECT unnest(%(oids)s::oid[])
  UNION
    SELECT dep.oid
    FROM wanted
    JOIN pg_catalog.pg_type t ON t.oid = wanted.oid
    LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
    CROSS JOIN LATERAL (VALUES
        (CASE WHEN t.typcategory = 'A' THEN t.typelem END),
        (NULLIF(t.typbasetype, 0)),
        (r.rngsubtype)
    ) AS dep(oid)
    WHERE dep.oid IS NOT NULL AND dep.oid <> 0
)
SELECT t.oid::int8, t.typname::text, n.nspname::text, t.typtype::text, t.typcategory::text,
       t.typelem::int8, t.typbasetype::int8, t.typtypmod, t.typdelim::text,
       r.rngsubtype::int8,
       (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
          FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
       n.nspname = ANY(pg_catalog.current_schemas(true)),
       CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
WHERE t.oid IN (SELECT oid FROM wanted)
"""


def load_types(conn: psycopg.Connection[Any], oids: Iterable[int]) -> dict[int, PgType]:
    """The types with these OIDs and every type they depend on, by OID.

    Raises :class:`~duality.errors.SourceError` when an OID is not in ``pg_type`` (a type
    dropped since its OID was read).
    """
    wanted = sorted(set(oids))
    if not wanted:
        return {}
    rows = {row[0]: row for row in conn.execute(_TYPES_SQL, {"oids": wanted}).fetchall()}
    missing = [oid for oid in wanted if oid not in rows]
    if missing:
        raise SourceError(
            f"type OIDs {missing} are not in pg_catalog.pg_type; a type was dropped while "
            f"duality was reading the schema. Retry once the DDL has finished."
        )
    built: dict[int, PgType] = {}
    for oid in rows:
        _build(oid, rows, built)
    return {oid: built[oid] for oid in wanted}


def _build(oid: int, rows: dict[int, tuple[Any, ...]], built: dict[int, PgType]) -> PgType:
    if oid in built:
        return built[oid]
    (_, name, schema, typtype, category, elem, base, typmod, delim, subtype, labels,
     on_path, base_name) = rows[oid]

    def dep(dep_oid: int | None) -> PgType | None:
        return _build(dep_oid, rows, built) if dep_oid and dep_oid in rows else None

    pg_type = PgType(
        oid=oid,
        name=name,
        schema=schema,
        typtype=typtype,
        category=category,
        element=dep(elem) if category == "A" else None,
        base=dep(base),
        typmod=typmod,
        subtype=dep(subtype),
        enum_labels=tuple(labels or ()),
        delimiter=delim,
        on_path=on_path,
        base_name=base_name,
    )
    built[oid] = pg_type
    return pg_type
