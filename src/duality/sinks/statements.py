"""The SQL a sink runs for one target table, built once per table shape.

Every identifier goes through the dialect's ``quote`` and every value is a bound
parameter (or a row of ``COPY`` data), so nothing a source table or row holds can become
SQL in the target. Three tables serve one target table:

- the target table itself;
- its **positions** side table (key columns, ``duality:position``): the source position
  of the last change applied to each key, kept for deleted keys too, so a stale create
  cannot bring a row back;
- a temporary **stage** table (key columns, value columns, ``duality:position``,
  ``duality:op``) that a batch's rows are bulk-loaded into before one set-based
  statement applies them, skipping those whose key holds a newer position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from duality.errors import ConfigError
from duality.sinks.ddl import ColumnSpec, TableSpec

POSITION = "duality:position"
OP = "duality:op"
#: Columns the statements make for themselves beside the table's: a staged key's stored
#: position, and a key's index among the keys asked for.
STORED = "duality:stored"
INDEX = "duality:index"
RESERVED = frozenset({POSITION, OP, STORED, INDEX})
#: The keys :meth:`TableSql.load_states` asks for (a common table expression: a name no
#: target table may have, see :attr:`~duality.sinks.dialects.Dialect.own_names`).
KEYS = '"duality:keys"'


@dataclass(frozen=True, slots=True)
class TableSql:
    """Statements of one target table (see the module docstring). ``param`` is the
    driver's placeholder; ``casts`` adds the column type to parameters whose type the
    server cannot infer (PostgreSQL's VALUES lists)."""

    quote: Callable[[str], str]
    param: str
    table: str
    side: str
    stage: str
    spec: TableSpec
    casts: bool
    position_type: str
    #: A name as the target compares it (:attr:`~duality.sinks.dialects.Dialect.fold`).
    fold: Callable[[str], str]

    def __post_init__(self) -> None:
        for column in self.spec.columns:
            if self.fold(column.name) in RESERVED:
                raise ConfigError(
                    f"column {column.name!r} has a name duality uses for its own columns; "
                    f"rename it in the source, or leave its table out (--topic)"
                )

    # -- names ---------------------------------------------------------------------

    def _names(self, columns: Sequence[ColumnSpec], alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + self.quote(c.name) for c in columns)

    @property
    def keys(self) -> str:
        return self._names(self.spec.key_columns)

    @property
    def staged(self) -> str:
        return self._names(self.spec.staged)

    def _match(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{self.quote(k)} = {right}.{self.quote(k)}"
                            for k in self.spec.key)

    def _declared(self, columns: Sequence[ColumnSpec]) -> list[str]:
        return [f"{self.quote(c.name)} {c.type}".rstrip() for c in columns]

    def _set(self) -> str:
        """The update of an upsert; the table is aliased ``t`` there, so that a table
        named ``excluded`` cannot be taken for the row that conflicted."""
        return f"DO UPDATE SET {self._assigned('excluded')}" if self.spec.values else "DO NOTHING"

    def _assigned(self, row: str) -> str:
        """Every value column set to its value in ``row`` (an alias)."""
        return ", ".join(f"{self.quote(c.name)} = {row}.{self.quote(c.name)}"
                         for c in self.spec.values)

    # -- DDL -----------------------------------------------------------------------

    def create_table(self) -> str:
        parts = [*self._declared(self.spec.columns), f"PRIMARY KEY ({self.keys})"]
        return f"CREATE TABLE {self.table} ({', '.join(parts)})"

    def create_side(self, storage: str = "") -> str:
        """The positions table; ``storage``: the dialect's table options."""
        parts = [*self._declared(self.spec.key_columns),
                 f"{self.quote(POSITION)} {self.position_type} NOT NULL",
                 f"PRIMARY KEY ({self.keys})"]
        return f"CREATE TABLE {self.side} ({', '.join(parts)}){storage}"

    def add_key(self) -> str:
        return f"ALTER TABLE {self.table} ADD PRIMARY KEY ({self.keys})"

    def drop_duplicate_keys(self) -> str:
        """Keep one row of each key, the last one stored (PostgreSQL: the highest
        ``ctid``; a bulk load appends)."""
        return (f"DELETE FROM {self.table} AS t USING {self.table} AS u "
                f"WHERE {self._match('t', 'u')} AND t.ctid < u.ctid")

    def stage_columns(self) -> list[str]:
        return [*self._declared(self.spec.staged), f"{self.quote(POSITION)} {self.position_type}",
                f"{self.quote(OP)} text"]

    def add_column(self, column: ColumnSpec) -> str:
        return f"ALTER TABLE {self.table} ADD COLUMN {self._declared([column])[0]}"

    def fill(self, column: str) -> str:
        """Set ``column`` to one value (a parameter) in every row."""
        return f"UPDATE {self.table} SET {self.quote(column)} = {self.param}"

    # -- rows ----------------------------------------------------------------------

    def insert(self, table: str) -> str:
        """Insert staged-order rows (key, values) into ``table`` (the fast snapshot path
        on drivers without COPY)."""
        marks = ", ".join([self.param] * len(self.spec.staged))
        return f"INSERT INTO {table} ({self.staged}) VALUES ({marks})"

    def upsert_from_stage(self) -> str:
        """Insert or update the stage's ``u`` rows."""
        return (
            f"INSERT INTO {self.table} AS t ({self.staged}) "
            f"SELECT {self._names(self.spec.staged, 's')} FROM {self.stage} AS s "
            f"WHERE s.{self.quote(OP)} = 'u' ON CONFLICT ({self.keys}) {self._set()}"
        )

    def positions_from_stage(self) -> str:
        """Record the stage's positions, only where newer than the stored ones."""
        pos = self.quote(POSITION)
        return (
            f"INSERT INTO {self.side} AS p ({self.keys}, {pos}) "
            f"SELECT {self.keys}, {pos} FROM {self.stage} WHERE true "
            f"ON CONFLICT ({self.keys}) DO UPDATE SET {pos} = excluded.{pos} "
            f"WHERE p.{pos} < excluded.{pos}"
        )

    def _fresh(self) -> str:
        """The common table expressions of :meth:`apply_with_positions` and
        :meth:`merge_with_positions`: the staged rows whose position is newer than the
        stored one (or have none) are ``fresh``; their positions are inserted (new keys)
        or updated (known keys). Plain inserts into the positions table, not ``ON
        CONFLICT``: the stage holds each key once and one replicate process writes the
        target (measured: half the cost of a speculative insert per key). The stored
        position is looked up key by key through the positions table's index (``OFFSET
        0`` keeps the planner from turning the lookup into a join, which it may plan as
        a scan of the whole table)."""
        pos, op, stored = self.quote(POSITION), self.quote(OP), self.quote(STORED)
        staged = self._names(self.spec.staged, "s")
        return (
            f"WITH fresh AS MATERIALIZED (SELECT {staged}, s.{pos}, s.{op}, p.{stored} "
            f"FROM {self.stage} AS s LEFT JOIN LATERAL (SELECT p.{pos} AS {stored} "
            f"FROM {self.side} AS p WHERE {self._match('p', 's')} OFFSET 0) AS p ON true "
            f"WHERE p.{stored} IS NULL OR p.{stored} < s.{pos}), "
            f"added AS (INSERT INTO {self.side} ({self.keys}, {pos}) "
            f"SELECT {self.keys}, {pos} FROM fresh WHERE {stored} IS NULL), "
            f"moved AS (UPDATE {self.side} AS p SET {pos} = f.{pos} FROM fresh AS f "
            f"WHERE f.{stored} IS NOT NULL AND {self._match('p', 'f')})"
        )

    def apply_with_positions(self) -> str:
        """One statement (PostgreSQL): the ``fresh`` staged rows (see :meth:`_fresh`)
        are applied — deletes, then inserts and updates (``ON CONFLICT``)."""
        op = self.quote(OP)
        return (
            f"{self._fresh()}, gone AS (DELETE FROM {self.table} AS t USING fresh AS f "
            f"WHERE f.{op} = 'd' AND {self._match('t', 'f')}) "
            f"INSERT INTO {self.table} AS t ({self.staged}) SELECT {self.staged} FROM fresh "
            f"WHERE {op} = 'u' ON CONFLICT ({self.keys}) {self._set()}"
        )

    def merge_with_positions(self) -> str:
        """:meth:`apply_with_positions` as one ``MERGE`` (PostgreSQL 15 and later): each
        fresh row is looked up in the table once, then deleted, updated or inserted —
        where the upsert probes the key's index, then inserts (measured: 5-6% less of
        the server's work on the streaming phase of ``bench/replicate.py``). Unlike
        ``ON CONFLICT``, a key another session inserts meanwhile makes it fail with a
        unique violation: the sink then runs :meth:`apply_with_positions` instead."""
        op = self.quote(OP)
        update = f"UPDATE SET {self._assigned('f')}" if self.spec.values else "DO NOTHING"
        return (
            f"{self._fresh()} MERGE INTO {self.table} AS t USING fresh AS f "
            f"ON {self._match('t', 'f')} "
            f"WHEN MATCHED AND f.{op} = 'd' THEN DELETE "
            f"WHEN MATCHED THEN {update} "
            f"WHEN NOT MATCHED AND f.{op} = 'u' THEN INSERT ({self.staged}) "
            f"VALUES ({self._names(self.spec.staged, 'f')})"
        )

    def apply_without_positions(self) -> str:
        """One statement (PostgreSQL) for rows without positions: applied in log order."""
        return (
            f"WITH gone AS (DELETE FROM {self.table} AS t USING {self.stage} AS s "
            f"WHERE s.{self.quote(OP)} = 'd' AND {self._match('t', 's')}) "
            f"{self.upsert_from_stage()}"
        )

    def drop_stale(self) -> str:
        """Remove staged rows whose key holds a position at least as new."""
        pos = self.quote(POSITION)
        return (
            f"DELETE FROM {self.stage} AS s WHERE EXISTS (SELECT 1 FROM {self.side} AS p "
            f"WHERE {self._match('p', 's')} AND p.{pos} >= s.{pos})"
        )

    def delete_from_stage(self) -> str:
        return (
            f"DELETE FROM {self.table} WHERE ({self.keys}) IN "
            f"(SELECT {self.keys} FROM {self.stage} WHERE {self.quote(OP)} = 'd')"
        )

    def clear_stage(self) -> str:
        return f"DELETE FROM {self.stage}"

    def load_states(self, count: int) -> str:
        """Stored state of ``count`` keys given as (index, key values...) parameters:
        index, position, whether the row exists, then the value columns."""
        key_columns = self.spec.key_columns
        marks = [f"{self.param}::{c.type}" if self.casts else self.param for c in key_columns]
        first = "::integer" if self.casts else ""
        row = ", ".join([f"{self.param}{first}", *marks])
        rows = ", ".join([f"({row})"] * count)
        index = self.quote(INDEX)
        names = ", ".join([index, *(self.quote(c.name) for c in key_columns)])
        text = "::text" if self.casts else ""
        values = "".join(f", t.{self.quote(c.name)}{text}" for c in self.spec.values)
        present = f"t.{self.quote(self.spec.key[0])} IS NOT NULL"
        return (
            f"WITH {KEYS}({names}) AS (VALUES {rows}) "
            f"SELECT v.{index}, p.{self.quote(POSITION)}, {present}{values} FROM {KEYS} AS v "
            f"LEFT JOIN {self.table} AS t ON {self._match('t', 'v')} "
            f"LEFT JOIN {self.side} AS p ON {self._match('p', 'v')}"
        )

    def occupied(self) -> str:
        """Whether the table has rows, or positions at or after a snapshot's."""
        return (
            f"SELECT EXISTS (SELECT 1 FROM {self.table}) OR EXISTS (SELECT 1 FROM "
            f"{self.side} WHERE {self.quote(POSITION)} >= {self.param})"
        )

    def delete_older(self) -> list[str]:
        """A truncate at a position some rows are newer than: only the older rows go."""
        pos = self.quote(POSITION)
        return [
            f"DELETE FROM {self.table} AS t WHERE NOT EXISTS (SELECT 1 FROM {self.side} AS p "
            f"WHERE {self._match('p', 't')} AND p.{pos} > {self.param})",
            f"DELETE FROM {self.side} WHERE {pos} <= {self.param}",
        ]
