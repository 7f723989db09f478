"""The SQL the table store runs, as pure functions of a table's shape.

Every identifier is quoted (:func:`quote`), every value is a bound parameter. A topic's
rows live in ``"duality:rows:<id>"`` with two hidden columns: ``duality:pos``, the
source position of the change that wrote the row, and ``duality:dead``, set on a deleted
row that is kept only for its position (see :mod:`duality.tables.fold`). A view named
after the topic shows the live rows under their field names' SQL names.
"""

from __future__ import annotations

from collections.abc import Sequence

from duality.tables.shape import Column, Shape

POS = '"duality:pos"'
DEAD = '"duality:dead"'
_NEWER = f"excluded.{POS} IS NULL OR {POS} IS NULL OR excluded.{POS} > {POS}"


def quote(name: str) -> str:
    """An SQL identifier for any name without NUL characters."""
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} holds a NUL character")
    return '"' + name.replace('"', '""') + '"'


def rows_table(table_id: int) -> str:
    return f"duality:rows:{table_id}"


def _names(columns: Sequence[Column]) -> str:
    return ", ".join(quote(c.sql) for c in columns)


def _rowid_key(shape: Shape) -> bool:
    keys = shape.key_columns
    return len(keys) == 1 and keys[0].kind.base == "int"


def create_rows(table: str, shape: Shape) -> str:
    """The rows table: an integer key is the rowid; other keys make a WITHOUT ROWID table."""
    parts = []
    rowid_key = _rowid_key(shape)
    for column in shape.columns:
        declared = column.kind.sql_type
        if rowid_key and column.field in shape.key:
            declared = "INTEGER PRIMARY KEY"
        parts.append(f"{quote(column.sql)} {declared}".rstrip())
    parts += [f"{POS} INTEGER", f"{DEAD} INTEGER NOT NULL DEFAULT 0"]
    suffix = ""
    if shape.key and not rowid_key:
        parts.append(f"PRIMARY KEY ({_names(shape.key_columns)})")
        suffix = " WITHOUT ROWID"
    return f"CREATE TABLE {quote(table)} ({', '.join(parts)}){suffix}"


def create_view(view: str, table: str, shape: Shape) -> str:
    columns = _names(shape.columns) or "NULL AS nothing"
    return f"CREATE VIEW {quote(view)} AS SELECT {columns} FROM {quote(table)} WHERE NOT {DEAD}"


def drop_view(view: str) -> str:
    return f"DROP VIEW IF EXISTS {quote(view)}"


def upsert(table: str, shape: Shape, *, dead: bool = False) -> str:
    """Parameters: key values, value-column values (table order), position. With
    ``dead``, the row is written deleted, keeping these values as its last ones."""
    keys, values = shape.key_columns, shape.value_columns
    columns = [*keys, *values]
    marks = ", ".join("?" * (len(columns) + 1))
    flag = int(dead)
    sets = [f"{quote(c.sql)} = excluded.{quote(c.sql)}" for c in values]
    sets += [f"{POS} = excluded.{POS}", f"{DEAD} = {flag}"]
    return (
        f"INSERT INTO {quote(table)} ({_names(columns)}, {POS}, {DEAD}) VALUES ({marks}, {flag}) "
        f"ON CONFLICT ({_names(keys)}) DO UPDATE SET {', '.join(sets)} WHERE {_NEWER}"
    )


def kill(table: str, shape: Shape) -> str:
    """A positioned delete: the row becomes dead, keeping its position (and its last
    values, for a row that moved to another key). Parameters: key values, position."""
    keys = shape.key_columns
    marks = ", ".join("?" * (len(keys) + 1))
    sets = [f"{POS} = excluded.{POS}", f"{DEAD} = 1"]
    return (
        f"INSERT INTO {quote(table)} ({_names(keys)}, {POS}, {DEAD}) VALUES ({marks}, 1) "
        f"ON CONFLICT ({_names(keys)}) DO UPDATE SET {', '.join(sets)} WHERE {_NEWER}"
    )


def _key_match(shape: Shape) -> str:
    return " AND ".join(f"{quote(c.sql)} = ?" for c in shape.key_columns)


def delete(table: str, shape: Shape) -> str:
    """A delete without a position removes the row. Parameters: key values."""
    return f"DELETE FROM {quote(table)} WHERE {_key_match(shape)}"


def truncate(table: str, positioned: bool) -> str:
    """Rows written before the truncate go (parameter: its position, when positioned)."""
    if not positioned:
        return f"DELETE FROM {quote(table)}"
    return f"DELETE FROM {quote(table)} WHERE {POS} IS NULL OR {POS} < ?"


def select_states(table: str, shape: Shape, count: int) -> str:
    """Key, position, dead flag and values of up to ``count`` keys (bound in order)."""
    keys = shape.key_columns
    columns = [*keys, *shape.value_columns]
    if len(keys) == 1:
        match = f"{quote(keys[0].sql)} IN ({', '.join('?' * count)})"
    else:
        one = "(" + ", ".join("?" * len(keys)) + ")"
        match = f"({_names(keys)}) IN (VALUES {', '.join([one] * count)})"
    return f"SELECT {_names(columns)}, {POS}, {DEAD} FROM {quote(table)} WHERE {match}"


def add_column(table: str, column: Column) -> str:
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(column.sql)} {column.kind.sql_type}"


def drop_column(table: str, column: Column) -> str:
    return f"ALTER TABLE {quote(table)} DROP COLUMN {quote(column.sql)}"


def copy_rows(source: str, target: str, old: Shape, new: Shape) -> str:
    """Rows of ``source`` into ``target`` for the columns both shapes have; rows whose
    new key would be NULL cannot be kept."""
    common = [c for c in new.columns if old.column(c.field) is not None]
    target_cols = ", ".join([quote(c.sql) for c in common] + [POS, DEAD])
    source_cols = ", ".join([quote(old_sql(old, c)) for c in common] + [POS, DEAD])
    keys = new.key_columns
    if any(old.column(c.field) is None for c in keys):
        where = "0"  # a new key column: no old row has a value for it
    else:
        where = " AND ".join(f"{quote(old_sql(old, c))} IS NOT NULL" for c in keys) or "1"
    return (
        f"INSERT OR REPLACE INTO {quote(target)} ({target_cols}) "
        f"SELECT {source_cols} FROM {quote(source)} WHERE {where}"
    )


def old_sql(old: Shape, column: Column) -> str:
    found = old.column(column.field)
    assert found is not None
    return found.sql


def rename_table(source: str, target: str) -> str:
    return f"ALTER TABLE {quote(source)} RENAME TO {quote(target)}"


def drop_table(table: str) -> str:
    return f"DROP TABLE IF EXISTS {quote(table)}"
