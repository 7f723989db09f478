"""Predicates written by users (``--where``, aggregate filters), run safely.

A predicate is SQL text placed in ``WHERE (…)`` of a query that duality writes. It is
never filtered as a string; SQLite itself guards it:

- an *authorizer* (``set_authorizer``) allows only SELECT, reading the columns of the
  tables named for the query, and calling functions other than ``load_extension`` and
  ``fts3_tokenizer``; everything else (any write, PRAGMA, ATTACH, a transaction,
  reading another table or ``sqlite_schema``, a recursive CTE) is denied;
- ``--where`` runs on a read-only connection (``mode=ro``, ``PRAGMA query_only``);
- the driver refuses a second statement; the predicate is placed between newlines, so a
  trailing ``--`` comment cannot swallow the rest of the query.

Aggregate filters must be row-local (no subqueries), because they are evaluated on one
row image at a time: a :class:`Probe` holds the images in a temporary table with the
same columns and declared types as the table (so comparisons follow the same affinity
rules) and runs the predicate over it, beside an index column of its own named so that
SQLite does not take it for one of the table's columns.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from duality.errors import ConfigError
from duality.tables.ddl import quote
from duality.tables.shape import Column, free_sql_name

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
_INDEX = "duality:i"


def wrap(predicate: str | None, label: str = "--where") -> str:
    """``(\\n predicate \\n)``, or ``1`` for none; refuses empty text and NUL characters."""
    if predicate is None:
        return "1"
    if not predicate.strip():
        raise ConfigError(f"{label} is empty; give a predicate such as \"balance > 100\"")
    if "\x00" in predicate:
        raise ConfigError(f"{label} holds a NUL character")
    return f"(\n{predicate}\n)"


class Guard:
    """The authorizer of one query: what it may read, whether subqueries are allowed."""

    def __init__(self, tables: Iterable[str], *, subqueries: bool, own: int = 1) -> None:
        self.tables = {t.casefold() for t in tables}
        self.subqueries = subqueries
        #: SELECTs of the query's own, around the predicate
        self.own = own
        self.selects = 0
        self.denied: list[str] = []

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if action == sqlite3.SQLITE_SELECT:
            self.selects += 1
            if self.selects > self.own and not self.subqueries:
                return self._deny("a subquery (aggregate filters see one row at a time)")
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            if (arg1 or "").casefold() in self.tables:
                return sqlite3.SQLITE_OK
            return self._deny(f"reading {arg1!r}")
        if action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in _DENIED_FUNCTIONS:
                return self._deny(f"the function {arg2}()")
            return sqlite3.SQLITE_OK
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        return self._deny(_ACTION_NAMES.get(action, f"action {action}"))

    def _deny(self, what: str) -> int:
        self.denied.append(what)
        return sqlite3.SQLITE_DENY


_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_").lower().replace("_", " ")
    for name in dir(sqlite3)
    if name.startswith("SQLITE_") and isinstance(getattr(sqlite3, name), int)
    and name not in ("SQLITE_OK", "SQLITE_DENY", "SQLITE_IGNORE")
}


@contextlib.contextmanager
def guarded(
    conn: sqlite3.Connection, tables: Iterable[str], predicate: str | None, *, subqueries: bool,
    label: str = "--where", selects: int = 1,
) -> Iterator[Guard]:
    """Run queries under the authorizer; SQLite's refusals become ConfigErrors that
    name what was refused (``label`` names the predicate: ``--where`` …; ``selects``:
    how many SELECTs the query has of its own)."""
    guard = Guard(tables, subqueries=subqueries, own=selects)
    conn.set_authorizer(guard)
    try:
        yield guard
    except (sqlite3.DatabaseError, sqlite3.Warning, sqlite3.ProgrammingError) as exc:
        raise refused(predicate, guard, exc, label) from None
    finally:
        # a reader that stopped early (a closed pipe, Ctrl-C) may close the store first
        with contextlib.suppress(sqlite3.ProgrammingError):
            conn.set_authorizer(None)


def refused(
    predicate: str | None, guard: Guard, exc: Exception, label: str = "--where"
) -> ConfigError:
    text = str(exc)
    if guard.denied:
        reason = f"it tries {guard.denied[0]}, which is not allowed"
    elif "one statement" in text or 'near ";"' in text:
        reason = "it holds more than one statement"
    else:
        reason = f"SQLite says: {text}"
    return ConfigError(
        f"{label} {predicate!r} was refused: {reason}. Give one read-only predicate over "
        f"the table's columns, such as \"balance > 100 AND owner LIKE 'A%'\"."
    )


class Probe:
    """Evaluates a row-local predicate on row images (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, name: str, columns: Sequence[Column]) -> None:
        self.conn = conn
        self.table = f"duality:probe:{name}"
        self.columns = list(columns)
        # Tables named before duality:… names were reserved ignoring case may hold one.
        self._index = quote(free_sql_name(_INDEX, [c.sql for c in columns]))
        defs = ", ".join([self._index + " INTEGER"] +
                         [f"{quote(c.sql)} {c.kind.sql_type}".rstrip() for c in columns])
        conn.execute(f"DROP TABLE IF EXISTS temp.{quote(self.table)}")
        conn.execute(f"CREATE TEMP TABLE {quote(self.table)} ({defs})")
        names = ", ".join([self._index] + [quote(c.sql) for c in columns])
        marks = ", ".join("?" * (len(columns) + 1))
        self._insert = f"INSERT INTO temp.{quote(self.table)} ({names}) VALUES ({marks})"

    def matching(self, predicate: str | None, rows: Sequence[Sequence[Any]]) -> set[int]:
        """Indexes of ``rows`` (values in column order) for which the predicate holds."""
        if predicate is None:
            return set(range(len(rows)))
        if not rows:
            return set()
        self.conn.executemany(self._insert, [(i, *row) for i, row in enumerate(rows)])
        try:
            sql = f"SELECT {self._index} FROM temp.{quote(self.table)} WHERE {wrap(predicate)}"
            with guarded(self.conn, [self.table], predicate, subqueries=False,
                         label="the aggregate filter"):
                found = {row[0] for row in self.conn.execute(sql)}
        finally:
            self.conn.execute(f"DELETE FROM temp.{quote(self.table)}")
        return found

    def close(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS temp.{quote(self.table)}")
