"""The table store on SQLite (``sqlite:///path/tables.db``): typed tables folded from
topics, and the log offsets they were folded up to, in one file.

Writes happen inside :meth:`TableStore.writing` — one ``BEGIN IMMEDIATE`` transaction
holding the rows, the table metadata and the offsets, so a crash at any point leaves the
store as of the last commit and applying resumes from the offsets it holds. Several
processes may apply to one store: SQLite serialises them, and each re-reads what it
caches whenever another process has committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from duality.errors import ApplyError, ConfigError
from duality.tables import ddl
from duality.tables import store_file as files
from duality.tables.batch import Winner
from duality.tables.fold import Key, RowState, Where
from duality.tables.shape import Shape

#: Keys per query when reading stored rows.
CHUNK = 400
Offsets = dict[int, tuple[int, bytes | None]]


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A table's metadata. ``source`` is ``topic`` or ``aggregate``; ``watermark`` the
    position of the last truncate; ``null_keys``/``skipped`` count records with a null
    key and records that are not row changes (logical messages, unknown ops)."""

    id: int
    name: str
    source: str
    shape: Shape
    schema_id: int | None = None
    schema_position: int | None = None
    watermark: int | None = None
    null_keys: int = 0
    skipped: int = 0
    view: str | None = None
    spec: str | None = None
    #: The log's ``topic_origin`` of the topic the table was applied from.
    origin: str | None = None

    @property
    def rows(self) -> str:
        return ddl.rows_table(self.id)


_INFO_COLUMNS = (
    "id, name, source, shape, schema_id, schema_position, watermark, null_keys, skipped, view, "
    "spec, origin"
)


class TableStore:
    """One store file (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path: Path = files.store_path(url)
        self.conn = files.connect(self.path)
        self._infos: dict[str, TableInfo] | None = None
        self._seen_version = -1
        self._in_transaction = False
        self._add_journal()

    def _add_journal(self) -> None:
        """Stores made before the change journal existed get its tables."""
        found = self.conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'duality:journal'"
        ).fetchone()[0]
        if not found:
            with self.writing("adding the change journal"):
                for statement in files.SCHEMA_SQL[2:]:
                    self.conn.execute(
                        statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")
                    )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> TableStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, action: str = "applying changes") -> Iterator[None]:
        """One atomic write transaction; cached metadata is re-read first if another
        process committed since, and dropped if the transaction fails."""
        if self._in_transaction:
            raise ConfigError("table store transactions do not nest")
        with files.errors(self.path, action):
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                self._refresh()
                yield
                self.conn.execute("COMMIT")
                self._seen_version = self._data_version()
            except BaseException:
                self._infos = None
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    def _data_version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def data_version(self) -> int:
        """Changes whenever another process commits to the store."""
        with files.errors(self.path, "polling the table store"):
            return self._data_version()

    def _refresh(self) -> None:
        version = self._data_version()
        if version != self._seen_version:
            self._infos = None
            self._seen_version = version

    # -- metadata ---------------------------------------------------------------------

    def infos(self) -> dict[str, TableInfo]:
        if self._infos is None:
            with files.errors(self.path, "reading table metadata"):
                rows = self.conn.execute(
                    f'SELECT {_INFO_COLUMNS} FROM "duality:tables" ORDER BY id'
                ).fetchall()
            self._infos = {row[1]: _info(row) for row in rows}
        return self._infos

    def info(self, name: str) -> TableInfo | None:
        return self.infos().get(name)

    def create(self, name: str, source: str, shape: Shape, spec: str | None = None) -> TableInfo:
        cur = self.conn.execute(
            'INSERT INTO "duality:tables" (name, source, shape, spec) VALUES (?, ?, ?, ?)',
            (name, source, orjson.dumps(shape.to_json()).decode(), spec),
        )
        assert cur.lastrowid is not None
        info = TableInfo(cur.lastrowid, name, source, Shape((), (), shape.typed), spec=spec)
        self.infos()[name] = info
        return self.reshape(info, shape) if shape.columns else info

    def save(self, info: TableInfo) -> TableInfo:
        self.conn.execute(
            'UPDATE "duality:tables" SET shape = ?, schema_id = ?, schema_position = ?, '
            "watermark = ?, null_keys = ?, skipped = ?, view = ?, origin = ? WHERE id = ?",
            (orjson.dumps(info.shape.to_json()).decode(), info.schema_id, info.schema_position,
             info.watermark, info.null_keys, info.skipped, info.view, info.origin, info.id),
        )
        self.infos()[info.name] = info
        return info

    def drop(self, info: TableInfo) -> None:
        if info.view:
            self.conn.execute(ddl.drop_view(info.view))
        self.conn.execute(ddl.drop_table(info.rows))
        self.conn.execute('DELETE FROM "duality:tables" WHERE id = ?', (info.id,))
        self.conn.execute('DELETE FROM "duality:offsets" WHERE topic = ?', (info.name,))
        self.infos().pop(info.name, None)

    # -- offsets ----------------------------------------------------------------------

    def offsets(self, topic: str) -> Offsets:
        rows = self.conn.execute(
            'SELECT partition, next_offset, carry FROM "duality:offsets" WHERE topic = ?',
            (topic,),
        ).fetchall()
        return {int(p): (int(o), c) for p, o, c in rows}

    def save_offsets(self, topic: str, offsets: Offsets) -> None:
        self.conn.executemany(
            'INSERT OR REPLACE INTO "duality:offsets" (topic, partition, next_offset, carry) '
            "VALUES (?, ?, ?, ?)",
            [(topic, p, o, c) for p, (o, c) in offsets.items()],
        )

    # -- shapes -----------------------------------------------------------------------

    def reshape(self, info: TableInfo, shape: Shape) -> TableInfo:
        """Give the table ``shape``: create it, add and drop columns, or rebuild it when
        its key or a column's type changes (rows keep their stored values)."""
        old = info.shape
        if info.view:
            self.conn.execute(ddl.drop_view(info.view))
        if not old.columns:
            self.conn.execute(ddl.create_rows(info.rows, shape))
        elif _alterable(old, shape):
            for column in shape.columns:
                if old.column(column.field) is None:
                    self.conn.execute(ddl.add_column(info.rows, column))
            for column in old.columns:
                if shape.column(column.field) is None:
                    self.conn.execute(ddl.drop_column(info.rows, column))
        else:
            self._rebuild(info, shape)
        return self.adopt(info, shape)

    def adopt(self, info: TableInfo, shape: Shape) -> TableInfo:
        """Record ``shape`` as the table's and (re)create its view."""
        if info.view:
            self.conn.execute(ddl.drop_view(info.view))
        view = self._view(info.name, info.rows, shape)
        return self.save(replace(info, shape=shape, view=view))

    def _rebuild(self, info: TableInfo, shape: Shape) -> None:
        staging = info.rows + ":new"
        self.conn.execute(ddl.drop_table(staging))
        self.conn.execute(ddl.create_rows(staging, shape))
        self.conn.execute(ddl.copy_rows(info.rows, staging, info.shape, shape))
        self.conn.execute(ddl.drop_table(info.rows))
        self.conn.execute(ddl.rename_table(staging, info.rows))

    def _view(self, name: str, table: str, shape: Shape) -> str | None:
        """A view named after the table, unless that name is taken (SQLite names ignore
        ASCII case, topic names do not)."""
        try:
            self.conn.execute("SAVEPOINT view")
            self.conn.execute(ddl.create_view(name, table, shape))
            self.conn.execute("RELEASE view")
            return name
        except sqlite3.OperationalError:
            self.conn.execute("ROLLBACK TO view")
            self.conn.execute("RELEASE view")
            return None

    # -- rows -------------------------------------------------------------------------

    def write_winners(
        self, info: TableInfo, winners: Mapping[Key, Winner],
        kept: Mapping[Key, Winner] | None = None,
    ) -> None:
        """Write a collapsed batch; each write applies only over an older stored row. A
        delete that replaced an upsert of the batch keeps that upsert's values as the
        dead row's last values (``kept``)."""
        upserts, buried, kills, deletes = [], [], [], []
        for key, (params, position, where) in winners.items():
            last = kept[key][0] if kept and key in kept else None
            if params is not None:
                upserts.append((params, where))
            elif position is None:
                deletes.append((key, where))
            elif last is not None:
                buried.append(((*last[:-1], position), where))
            else:
                kills.append(((*key, position), where))
        self._run(info, ddl.upsert(info.rows, info.shape), upserts)
        self._run(info, ddl.upsert(info.rows, info.shape, dead=True), buried)
        self._run(info, ddl.kill(info.rows, info.shape), kills)
        self._run(info, ddl.delete(info.rows, info.shape), deletes)

    def write_states(self, info: TableInfo, finals: Mapping[Key, tuple[RowState, Where]]) -> None:
        """Write rows folded in order onto the stored ones (dead rows with the values
        they had last)."""
        winners: dict[Key, Winner] = {}
        kept: dict[Key, Winner] = {}
        for key, (state, where) in finals.items():
            params = None if state.values is None else (*key, *state.values, state.position)
            winners[key] = (params, state.position, where)
            if state.values is None and state.kept is not None:
                kept[key] = ((*key, *state.kept, state.position), state.position, where)
        self.write_winners(info, winners, kept)

    def _run(
        self, info: TableInfo, sql: str, rows: Sequence[tuple[tuple[Any, ...], Where]]
    ) -> None:
        if not rows:
            return
        try:
            self.conn.executemany(sql, [params for params, _ in rows])
        except (sqlite3.Error, OverflowError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _row_error(exc):
                raise
            raise self._culprit(info, sql, rows, exc) from exc

    def _culprit(
        self, info: TableInfo, sql: str, rows: Sequence[tuple[tuple[Any, ...], Where]],
        error: BaseException,
    ) -> ApplyError:
        """The first row SQLite refuses, as an ApplyError naming where it came from."""
        for params, where in rows:
            try:
                self.conn.execute(sql, params)
            except (sqlite3.Error, OverflowError) as exc:
                return apply_error(info.name, where, str(exc))
        return apply_error(info.name, rows[0][1], str(error))

    def load_states(self, info: TableInfo, keys: Sequence[Key]) -> dict[Key, RowState]:
        """The stored rows (live or dead) of ``keys``."""
        width = len(info.shape.key)
        out: dict[Key, RowState] = {}
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            sql = ddl.select_states(info.rows, info.shape, len(chunk))
            params = [x for key in chunk for x in key]
            for row in self.conn.execute(sql, params):
                values = tuple(row[width:-2])
                state = RowState(None, row[-2], values) if row[-1] else RowState(values, row[-2])
                out[tuple(row[:width])] = state
        return out

    def truncate(self, info: TableInfo, position: int | None) -> None:
        if not info.shape.columns:
            return  # no row was ever stored
        sql = ddl.truncate(info.rows, position is not None)
        self.conn.execute(sql, () if position is None else (position,))

    def live_rows(self, info: TableInfo) -> Iterator[tuple[Any, ...]]:
        """Every live row as stored: key values, then the value columns."""
        columns = [*info.shape.key_columns, *info.shape.value_columns]
        names = ", ".join(ddl.quote(c.sql) for c in columns) or "NULL"
        yield from self.conn.execute(
            f"SELECT {names} FROM {ddl.quote(info.rows)} WHERE NOT {ddl.DEAD}"
        )


def apply_error(table: str, where: Where, reason: str) -> ApplyError:
    partition, offset, key = where
    shown = "null" if key is None else key.decode("utf-8", "replace")
    return ApplyError(
        f"cannot apply topic {table!r} partition {partition} offset {offset} key {shown}: "
        f"{reason}. Nothing of this batch was applied and the offset was not advanced; "
        f"fix or remove the record (a new table store rebuilds from the log)."
    )


def _row_error(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "mismatch" in text or "constraint" in text or "too big" in text


def _alterable(old: Shape, new: Shape) -> bool:
    """Whether ADD/DROP COLUMN reach ``new``: same key, same type of every kept column."""
    if old.key != new.key or old.key_scalar != new.key_scalar:
        return False
    for column in new.columns:
        before = old.column(column.field)
        if before is not None and (before.kind.sql_type != column.kind.sql_type
                                   or before.sql != column.sql):
            return False
    return True


def _info(row: tuple[Any, ...]) -> TableInfo:
    return TableInfo(
        id=row[0], name=row[1], source=row[2], shape=Shape.from_json(orjson.loads(row[3])),
        schema_id=row[4], schema_position=row[5], watermark=row[6], null_keys=row[7],
        skipped=row[8], view=row[9], spec=row[10], origin=row[11],
    )
