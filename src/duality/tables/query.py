"""Reading tables: the Python API and what ``duality table`` prints.

:func:`open_table` catches a table up with its topic and returns a :class:`Table`,
read through its own read-only connection: :meth:`Table.get` a row by key,
:meth:`Table.select` rows matching a predicate, :meth:`Table.changes` to iterate
changes as they are applied. Rows are dicts from field name to value; :meth:`select`
gives Python values (Decimal, date, datetime, bytes …), :meth:`json_rows` the JSON-ready
values ``--json`` prints.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from duality.errors import ConfigError
from duality.tables import ddl
from duality.tables import store_file as files
from duality.tables import values as v
from duality.tables.journal import Entry
from duality.tables.predicate import guarded, wrap
from duality.tables.shape import Column, Shape
from duality.tables.sqlite import TableInfo
from duality.tables.types import Kind, render_json, to_python

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableChange:
    """A change as the API reports it: ``op`` (``c``, ``u``, ``d``, ``t``), the key and
    the row before/after as field → Python value, and the fields an update changed."""

    table: str
    op: str
    key: Row | None
    before: Row | None
    after: Row | None
    changed: tuple[str, ...] = ()


class Table:
    """One table of a store, read-only (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, info: TableInfo) -> None:
        self._conn = conn
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def shape(self) -> Shape:
        return self.info.shape

    @property
    def columns(self) -> list[str]:
        """Field names in table order."""
        return [c.field for c in self.shape.columns]

    @property
    def key(self) -> tuple[str, ...]:
        return self.shape.key

    def rows(self, where: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Stored values of the live rows matching ``where``, in key order."""
        columns = self.shape.columns
        if not columns:
            return
        names = ", ".join(ddl.quote(c.sql) for c in columns)
        order = ", ".join(ddl.quote(c.sql) for c in self.shape.key_columns)
        live = f"SELECT {names} FROM {ddl.quote(self.info.rows)} WHERE NOT {ddl.DEAD}"
        # the predicate filters the live rows from outside: no text of it can reach them
        sql = (f"SELECT {names} FROM ({live}) WHERE {wrap(where)}"
               + (f" ORDER BY {order}" if order else ""))
        with guarded(self._conn, [self.info.rows], where, subqueries=True):
            cursor = self._conn.execute(sql)
            while batch := cursor.fetchmany(1000):
                yield from batch

    def select(self, where: str | None = None) -> Iterator[Row]:
        """Rows matching the predicate ``where`` (SQL over the columns) as Python values."""
        for row in self.rows(where):
            yield self._python(self.shape.columns, row)

    def json_rows(self, where: str | None = None) -> Iterator[Row]:
        """Rows as ``--json`` prints them (see :func:`~.types.render_json`)."""
        columns = self.shape.columns
        for row in self.rows(where):
            yield {c.field: render_json(c.kind, x) for c, x in zip(columns, row, strict=True)}

    def get(self, key: Any = None, /, **fields: Any) -> Row | None:
        """The row with this key: ``get(1)``, ``get(id=1)`` or ``get({"id": 1})``."""
        wanted = dict(key) if isinstance(key, Mapping) else dict(fields)
        keys = self.shape.key_columns
        if key is not None and not isinstance(key, Mapping):
            if len(keys) != 1:
                raise ConfigError(f"table {self.name!r} has the key {list(self.key)}; "
                                  f"give every key field by name")
            wanted = {keys[0].field: key}
        if set(wanted) != set(self.key):
            raise ConfigError(f"table {self.name!r} has the key {list(self.key)}, got "
                              f"{sorted(wanted)}")
        match = " AND ".join(f"{ddl.quote(c.sql)} = ?" for c in keys)
        names = ", ".join(ddl.quote(c.sql) for c in self.shape.columns)
        params = [stored_value(c.kind, wanted[c.field]) for c in keys]
        found = self._conn.execute(
            f"SELECT {names} FROM {ddl.quote(self.info.rows)} WHERE NOT {ddl.DEAD} AND {match}",
            params,
        ).fetchone()
        return None if found is None else self._python(self.shape.columns, found)

    def count(self, where: str | None = None) -> int:
        return sum(1 for _ in self.rows(where))

    def change(self, entry: Entry) -> TableChange:
        """A journaled change as Python values."""
        key = self.render(entry.key, to_python)
        old, new = self.render(entry.before, to_python), self.render(entry.after, to_python)
        changed = tuple(f for f, x in (new or {}).items() if old is None or old.get(f) != x)
        return TableChange(self.name, entry.op, key, _whole(key, old), _whole(key, new),
                           changed if entry.op == "u" else ())

    def render(
        self, values: Mapping[str, Any] | None, render: Callable[[Kind, Any], Any] = render_json
    ) -> Row | None:
        """Stored values by field (of any shape the table had) → rendered by the kinds
        the table's columns have now (a field it no longer has is shown as stored)."""
        if values is None:
            return None
        kinds = {c.field: c.kind for c in self.shape.columns}
        return {f: render(kinds[f], x) if f in kinds else x for f, x in values.items()}

    def full_row(self, entry: Entry, image: Mapping[str, Any]) -> tuple[Any, ...]:
        """A change's key and one of its row images → one row in table (column) order."""
        by_field = {**(entry.key or {}), **image}
        return tuple(by_field.get(c.field) for c in self.shape.columns)

    @staticmethod
    def _python(columns: tuple[Column, ...], row: Any) -> Row:
        return {c.field: to_python(c.kind, x) for c, x in zip(columns, row, strict=True)}


def _whole(key: Row | None, values: Row | None) -> Row | None:
    return None if values is None else {**(key or {}), **values}


def stored_value(kind: Kind, value: Any) -> Any:
    """A Python key value as the table stores it."""
    if value is None or (isinstance(value, (str, bytes, int, float)) and type(value) is not bool):
        if kind.base == "decimal" and isinstance(value, str):
            return v.decimal_text(value)
        return value
    if type(value) is bool:
        return int(value)
    if isinstance(value, Decimal):
        return v.decimal_text(str(value))
    if isinstance(value, dt.datetime) and kind.base == "timestamp":
        digits = kind.scale if kind.scale is not None else 6
        fraction = f"{value.microsecond:06d}"[:digits].ljust(digits, "0")
        return f"{value.strftime('%Y-%m-%dT%H:%M:%S')}.{fraction}"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def open_connection(store_url: str) -> sqlite3.Connection:
    """A read-only connection to a store (``mode=ro`` and ``PRAGMA query_only``)."""
    return files.connect(files.store_path(store_url), read_only=True)
