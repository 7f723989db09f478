"""What the source's catalog says about its tables: columns, keys, replica identity.

Columns are the ones pgoutput sends: not dropped, not generated, in ``attnum`` order.
The primary key gives the record key (Debezium's); the replica identity says which
before-images the WAL holds: ``full`` every column, ``default`` the primary key,
``index`` the columns of one unique index, ``nothing`` none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from duality.sources.postgres.pgoutput import Relation

#: ``relreplident`` (also a Relation message's) → the name registered schemas use.
IDENTITY = {"d": "default", "f": "full", "i": "index", "n": "nothing"}

_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relreplident,
       has_table_privilege(c.oid, 'SELECT'), c.relkind = 'p', c.relispartition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
  AND c.relpersistence = 'p'
ORDER BY n.nspname, c.relname
"""

_COLUMNS_SQL = """
SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
       format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attrelid, a.attnum
"""

_INDEXES_SQL = """
SELECT i.indrelid, i.indisprimary, i.indisreplident,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)
FROM pg_index i
WHERE i.indrelid = ANY(%s) AND (i.indisprimary OR i.indisreplident)
"""


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type_oid: int
    type_modifier: int
    not_null: bool
    #: As PostgreSQL names it: ``numeric(12,2)``, ``timestamp with time zone``.
    type_name: str
    #: The default expression (``'dflt'::text``, ``nextval(...)``), if any.
    default: str | None = None


@dataclass(frozen=True, slots=True)
class TableInfo:
    oid: int
    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    replica_identity: str
    identity_columns: tuple[str, ...]
    selectable: bool = True
    #: A partitioned table (it holds no rows of its own: its partitions do).
    partitioned: bool = False
    #: A partition of a partitioned table.
    partition: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def quoted(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def has_identity(self) -> bool:
        """Whether UPDATE and DELETE can be published (else they fail in the source)."""
        return bool(self.identity_columns) or self.replica_identity == "full"

    def column(self, name: str) -> ColumnInfo | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_tables(
    conn: psycopg.Connection[Any], oids: Iterable[int] | None = None, *, roots: bool = False
) -> list[TableInfo]:
    """Every ordinary, permanent user table, sorted by name: the partitions of a
    partitioned table, or with ``roots`` (a publication with
    ``publish_via_partition_root``, which publishes their changes as the root's) the
    partitioned tables at the top instead. With ``oids``: those tables, of either kind."""
    wanted = set(oids) if oids is not None else None
    rows = [(oid, schema, name, ident, selectable, partitioned, partition)
            for oid, schema, name, ident, selectable, partitioned, partition
            in conn.execute(_TABLES_SQL).fetchall()
            if (oid in wanted if wanted is not None
                else not partition if roots else not partitioned)]
    ids = [r[0] for r in rows]
    columns: dict[int, list[ColumnInfo]] = {oid: [] for oid in ids}
    for relid, name, typ, typmod, notnull, typename, default in conn.execute(_COLUMNS_SQL, (ids,)):
        columns[relid].append(ColumnInfo(name, typ, typmod, notnull, typename, default))
    primary: dict[int, tuple[str, ...]] = {}
    identity_index: dict[int, tuple[str, ...]] = {}
    for relid, is_primary, is_identity, names in conn.execute(_INDEXES_SQL, (ids,)):
        if is_primary:
            primary[relid] = tuple(names)
        if is_identity:
            identity_index[relid] = tuple(names)
    return [
        replace(_table(
            oid,
            schema,
            name,
            IDENTITY.get(ident, "default"),
            selectable,
            tuple(columns[oid]),
            primary.get(oid, ()),
            identity_index.get(oid, ()),
        ), partitioned=partitioned, partition=partition)
        for oid, schema, name, ident, selectable, partitioned, partition in rows
    ]


def _table(
    oid: int,
    schema: str,
    name: str,
    identity: str,
    selectable: bool,
    columns: tuple[ColumnInfo, ...],
    primary: tuple[str, ...],
    index: tuple[str, ...],
) -> TableInfo:
    identity_columns = {
        "default": primary,
        "full": tuple(c.name for c in columns),
        "index": index,
        "nothing": (),
    }[identity]
    return TableInfo(oid, schema, name, columns, primary, identity, identity_columns, selectable)


def as_described(
    relation: Relation, now: TableInfo | None, known_key: tuple[str, ...] = ()
) -> TableInfo:
    """The table as ``relation`` describes it when the changes that follow it were made.

    Schema, name, replica identity and identity columns are the message's: the table
    may have been renamed, moved or dropped since, or not be committed yet (a Relation
    inside a streamed transaction), so ``now`` (the catalog's row for the same OID, if
    it still sees one) only supplies what the message lacks: its columns' nullability
    and defaults (looked up by name) and the order of the primary key. The primary key
    comes from the message's key flags under REPLICA IDENTITY DEFAULT, where they mark
    exactly the primary-key columns of that time; under other identities from ``now``,
    else ``known_key`` (the key this relation had when last seen), as Debezium falls
    back to the key of the table it knows.
    """
    names = [c.name for c in relation.columns]
    identity = IDENTITY.get(relation.replica_identity, "default")
    flagged = tuple(c.name for c in relation.columns if c.is_key)
    current = tuple(k for k in now.primary_key if k in names) if now else ()
    known = known_key if all(k in names for k in known_key) else ()
    if identity == "default" and flagged:
        # Same columns, in the primary key's own order where one is known.
        key = next((k for k in (current, known) if sorted(k) == sorted(flagged)), flagged)
    else:
        key = current or known
    return TableInfo(
        relation.relation_id,
        relation.namespace,
        relation.name,
        now.columns if now else (),
        key,
        identity,
        tuple(names) if identity == "full" else flagged,
    )


def via_root(conn: psycopg.Connection[Any], publication: str) -> bool:
    """Whether ``publication`` exists and publishes partitions' changes as their root's
    (``publish_via_partition_root``)."""
    row = conn.execute(
        "SELECT pubviaroot FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    return bool(row and row[0])


def publication_tables(conn: psycopg.Connection[Any], publication: str) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
        (publication,),
    ).fetchall()
    return {(s, t) for s, t in rows}
