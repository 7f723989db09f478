"""The SQLite sink (``--target sqlite:///path/replica.db``).

Target tables are named after the source table alone (SQLite has no schemas; ``--map``
renames). Values are stored as the table store keeps them (see
:mod:`duality.sinks.dialects.sqlite`). Beside them the file holds ``duality_tables``
(one row per replicated topic), ``duality_offsets(topic, partition, next_offset, carry)``
and ``duality_positions_<id>`` per table (key columns, ``duality:position``), written in
the transaction that writes the rows (``BEGIN IMMEDIATE``). The file is in WAL mode with
``synchronous=NORMAL``: a commit survives kill -9; power loss may lose the last commits,
rows and offsets together, which are then applied again from the log.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from duality.errors import ConfigError, DualityError, Unavailable
from duality.log.sqlite_store import APPLICATION_ID as LOG_ID
from duality.sinks import ddl
from duality.sinks.base import Offsets, TargetName
from duality.sinks.dialects.sqlite import SQLITE
from duality.sinks.sql import SqlSink, Staged
from duality.sinks.statements import TableSql
from duality.sinks.target import META_COLUMNS, Target
from duality.tables.store_file import APPLICATION_ID as STORE_ID
from duality.tables.store_file import store_path

BUSY_TIMEOUT_S = 30.0

_META_SQL = (
    """CREATE TABLE IF NOT EXISTS duality_tables (
        id INTEGER PRIMARY KEY, topic TEXT NOT NULL UNIQUE, target_schema TEXT,
        target_table TEXT NOT NULL, created INTEGER NOT NULL, spec TEXT, shape TEXT,
        schema_id INTEGER, schema_position INTEGER, watermark INTEGER, high_water INTEGER,
        loading INTEGER)""",
    """CREATE TABLE IF NOT EXISTS duality_offsets (
        topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
        carry BLOB, PRIMARY KEY (topic, partition)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS duality_origins (
        topic TEXT PRIMARY KEY, origin TEXT NOT NULL) WITHOUT ROWID""",
)


class SqliteSink(SqlSink):
    """A SQLite target (see the module docstring)."""

    dialect = SQLITE

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = store_path(url)
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            self._refuse_others()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._transaction():
                for statement in _META_SQL:
                    self._execute(statement)
                self._read_state()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the target {self.path}: {exc}") from exc

    def describe(self) -> str:
        return str(self.path)

    def _refuse_others(self) -> None:
        """A log or a table store is never a target (its tables would be mixed in)."""
        found = self._conn.execute("PRAGMA application_id").fetchone()[0]
        kind = {LOG_ID: "an embedded log", STORE_ID: "a table store"}.get(found)
        if kind is not None:
            self._conn.close()
            raise ConfigError(f"{self.path} is {kind} of duality, not a replica; check --target "
                              f"(a SQLite target is a file of its own)")

    def close(self) -> None:
        self._conn.close()

    def _read_state(self) -> None:
        for row in self._query(f"SELECT {META_COLUMNS} FROM duality_tables ORDER BY id"):
            target = Target.from_meta(row)
            self._targets[target.topic] = target
            if target.spec is not None:
                self._sql[target.id] = self._table_sql(target, target.spec)
        for topic, partition, offset, carry in self._query(
            "SELECT topic, partition, next_offset, carry FROM duality_offsets"
        ):
            self._offsets[(topic, int(partition))] = (int(offset), carry)
        self._origins = dict(self._query("SELECT topic, origin FROM duality_origins"))

    def reset_offsets(self, topics: list[str]) -> None:
        with self._transaction():
            for topic in topics:
                self._execute("DELETE FROM duality_offsets WHERE topic = ?", (topic,))
                self._execute("DELETE FROM duality_origins WHERE topic = ?", (topic,))
        self._offsets = {k: v for k, v in self._offsets.items() if k[0] not in topics}
        self._origins = {k: v for k, v in self._origins.items() if k not in topics}

    # -- statements -----------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, commit: bool = True) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            yield
            self._conn.execute("COMMIT" if commit else "ROLLBACK")
            if not commit:
                self._stages.clear()
        except BaseException as exc:
            self._stages.clear()  # a stage made in the transaction is gone with it
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and self._refusal(exc) is None:
                raise self._mapped(exc) from exc
            raise

    def _mapped(self, exc: sqlite3.Error) -> DualityError:
        text = str(exc)
        if "locked" in text or "busy" in text or "disk" in text or "full" in text:
            return Unavailable(f"the target {self.path} is unavailable: {text}")
        if "readonly" in text or "read-only" in text:
            return ConfigError(f"the target {self.path} cannot be written: {text}")
        return DualityError(f"the target {self.path} refused a statement: {text}")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _refusal(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | OverflowError):
            return str(exc)
        if isinstance(exc, sqlite3.OperationalError) and any(
            marker in str(exc) for marker in ("no such", "mismatch", "too big", "has no column")
        ):
            return str(exc)
        return None

    # -- tables ---------------------------------------------------------------------

    def _describe(self, name: TargetName) -> ddl.ExistingTable | None:
        quoted = self.dialect.quote(name.table)
        kind = self._query("SELECT type FROM sqlite_schema WHERE name = ? COLLATE NOCASE",
                           (name.table,))
        if not kind:
            return None
        if kind[0][0] != "table":
            raise ConfigError(
                f"{quoted} in {self.path} is a {kind[0][0]}, not a table; replicate into "
                f"another name with --map or --table-prefix"
            )
        info = self._query(f"PRAGMA table_info({quoted})")
        columns = tuple(ddl.ExistingColumn(n, t, bool(nn), d is not None)
                        for _, n, t, nn, d, _ in info)
        keys = [tuple(n for _, n, *_, pk in sorted(info, key=lambda r: r[5]) if pk)]
        for _, index, unique, *_ in self._query(f"PRAGMA index_list({quoted})"):
            if unique:
                rows = self._query(f"PRAGMA index_info({self.dialect.quote(index)})")
                keys.append(tuple(column for _, _, column in rows))
        return ddl.ExistingTable(columns, tuple(k for k in keys if k))

    def _ddl(self, sql: TableSql, action: ddl.Action) -> None:
        if isinstance(action, ddl.CreateTable):
            self._execute(sql.create_table())
        elif isinstance(action, ddl.AddColumn):
            self._execute(sql.add_column(action.column))
        else:
            self._rebuild(sql)

    def _rebuild(self, sql: TableSql) -> None:
        """SQLite cannot change a column's declared type or nullability: the table is
        created anew with the spec's columns and every row copied over."""
        old, new = sql.table, '"duality:rebuilt"'
        existing = self._query(f"PRAGMA table_info({old})")
        names = [self.dialect.quote(row[1]) for row in existing]
        declared = {c.name: c.type for c in sql.spec.columns}
        columns = [f"{self.dialect.quote(row[1])} {declared.get(row[1], row[2])}".rstrip()
                   for row in existing]
        keys = ", ".join(self.dialect.quote(k) for k in sql.spec.key)
        self._execute(f"CREATE TABLE {new} ({', '.join(columns)}, PRIMARY KEY ({keys}))")
        self._execute(f"INSERT INTO {new} SELECT {', '.join(names)} FROM {old}")
        self._execute(f"DROP TABLE {old}")
        self._execute(f"ALTER TABLE {new} RENAME TO {old}")

    def _ensure_schema(self, name: TargetName) -> None:
        return  # SQLite has no schemas

    def _new_target(self, topic: str, name: TargetName, *, created: bool) -> Target:
        cur = self._conn.execute(
            "INSERT INTO duality_tables (topic, target_schema, target_table, created) "
            "VALUES (?, ?, ?, ?)", (topic, name.schema, name.table, created),
        )
        assert cur.lastrowid is not None
        return Target(cur.lastrowid, topic, name, created)

    def _save_target(self, target: Target) -> None:
        self._execute(
            "UPDATE duality_tables SET target_schema = ?, target_table = ?, created = ?, "
            "spec = ?, shape = ?, schema_id = ?, schema_position = ?, watermark = ?, "
            "high_water = ?, loading = ? WHERE id = ?",
            (*target.meta_values(), target.id),
        )

    def _save_offsets(self, offsets: Offsets) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO duality_offsets (topic, partition, next_offset, carry) "
            "VALUES (?, ?, ?, ?)", [(t, p, o, c) for (t, p), (o, c) in offsets.items()],
        )

    def _save_origins(self, origins: dict[str, str]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO duality_origins (topic, origin) VALUES (?, ?)",
            list(origins.items()),
        )

    def _side_name(self, target: Target) -> TargetName:
        return TargetName(None, f"duality_positions_{target.id}")

    def _stage_name(self, target: Target) -> str:
        return f'temp."duality_stage_{target.id}"'

    # -- rows -----------------------------------------------------------------------

    def _stage(self, sql: TableSql, rows: Sequence[Staged]) -> None:
        self._empty_stage(sql, sql.clear_stage())
        marks = ", ".join(["?"] * (len(sql.spec.staged) + 2))
        self._conn.executemany(f"INSERT INTO {sql.stage} VALUES ({marks})", rows)

    def _apply_staged(self, sql: TableSql, with_positions: bool) -> None:
        if with_positions:
            self._execute(sql.drop_stale())
            self._execute(sql.positions_from_stage())
        self._execute(sql.delete_from_stage())
        self._execute(sql.upsert_from_stage())

    def _load(self, sql: TableSql, rows: Sequence[tuple[Any, ...]]) -> bool:
        self._execute("SAVEPOINT duality_load")
        try:
            self._conn.executemany(sql.insert(sql.table), rows)
        except sqlite3.IntegrityError:
            self._execute("ROLLBACK TO duality_load")
            self._execute("RELEASE duality_load")
            return False
        self._execute("RELEASE duality_load")
        return True

    def _truncate_all(self, sql: TableSql) -> None:
        self._execute(f"DELETE FROM {sql.table}")
        self._execute(f"DELETE FROM {sql.side}")
