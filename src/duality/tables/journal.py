"""The change journal: what ``--follow`` prints, whichever process applied it.

Any process may apply a topic to a store (a follower, another ``duality table``, an
aggregate definition), so a follower cannot rely on seeing the changes it applies
itself. Instead, while at least one follower of a table is registered, every process
that applies changes to that table also appends them to ``duality:journal`` in the same
transaction; each follower reads the journal from where it left off. With no follower,
nothing is journaled (a bulk catch-up pays nothing for it).

A follower registers (``duality:followers``) with the journal's current end, refreshes its
registration as it reads, and removes it when it stops; a registration not refreshed for
:data:`STALE_MS` (a follower killed with -9) no longer counts, and that follower, should it
read again (it was stopped, or its output was not read), stops with a
:class:`~duality.errors.GapError`: changes applied meanwhile were not kept for it. Entries
every follower has read are pruned.
"""

from __future__ import annotations

import marshal
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from duality.errors import GapError
from duality.tables.batch import RowChange
from duality.tables.shape import Shape

STALE_MS = 60_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _pack(fields: Sequence[str], values: Sequence[Any] | None) -> bytes | None:
    # marshal holds exactly what a table stores: None, bool, int, float (NaN and the
    # infinities too), str, bytes, in dicts; and it only ever builds such values.
    return None if values is None else marshal.dumps(dict(zip(fields, values, strict=True)))


def _unpack(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    value = marshal.loads(data)
    return value if isinstance(value, dict) else None


def followed(conn: sqlite3.Connection, tables: Iterable[str]) -> set[str]:
    """Which of ``tables`` have a live follower."""
    names = list(tables)
    if not names:
        return set()
    marks = ", ".join("?" * len(names))
    rows = conn.execute(
        f'SELECT DISTINCT tbl FROM "duality:followers" WHERE tbl IN ({marks}) AND seen_ms > ?',
        [*names, _now_ms() - STALE_MS],
    )
    return {row[0] for row in rows}


@dataclass(frozen=True, slots=True)
class Entry:
    """A journaled change: key and row images as field → stored value (so an entry
    reads the same after the table's shape changed)."""

    op: str
    key: dict[str, Any] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def append(
    conn: sqlite3.Connection, table: str, shape: Shape, changes: Iterable[RowChange]
) -> None:
    """Journal ``changes``, made while the table had ``shape``."""
    keys = shape.key
    fields = tuple(c.field for c in shape.value_columns)
    conn.executemany(
        'INSERT INTO "duality:journal" (tbl, op, key, before, after) VALUES (?, ?, ?, ?, ?)',
        [(table, c.op, _pack(keys, c.key), _pack(fields, c.before), _pack(fields, c.after))
         for c in changes],
    )


def register(conn: sqlite3.Connection, table: str) -> int:
    """A new follower of ``table``, reading from the journal's end; returns its id."""
    end = conn.execute('SELECT coalesce(max(seq), 0) FROM "duality:journal"').fetchone()[0]
    cur = conn.execute(
        'INSERT INTO "duality:followers" (tbl, seq, seen_ms) VALUES (?, ?, ?)',
        (table, end, _now_ms()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def read(conn: sqlite3.Connection, follower: int) -> Iterator[Entry]:
    """The follower's table's changes since it last read (in a write transaction:
    it moves the follower on and prunes what every follower has read)."""
    row = conn.execute(
        'SELECT tbl, seq, seen_ms FROM "duality:followers" WHERE id = ?', (follower,)
    ).fetchone()
    if row is None or row[2] <= _now_ms() - STALE_MS:
        raise GapError(
            f"this follower of the table was not heard from for more than "
            f"{STALE_MS // 1000} s (stopped, or its output was not read), so changes "
            f"applied meanwhile were not kept for it; start following again (from the "
            f"table as it is now)"
        )
    table, seq, _ = row
    entries = conn.execute(
        'SELECT seq, op, key, before, after FROM "duality:journal" WHERE seq > ? AND tbl = ? '
        "ORDER BY seq", (seq, table),
    ).fetchall()
    end = conn.execute('SELECT coalesce(max(seq), 0) FROM "duality:journal"').fetchone()[0]
    conn.execute('UPDATE "duality:followers" SET seq = ?, seen_ms = ? WHERE id = ?',
                 (end, _now_ms(), follower))
    prune(conn)
    for _, op, key, before, after in entries:
        yield Entry(op, _unpack(key), _unpack(before), _unpack(after))


def prune(conn: sqlite3.Connection) -> None:
    """Drop stale followers and the entries every live follower has read."""
    conn.execute('DELETE FROM "duality:followers" WHERE seen_ms <= ?', (_now_ms() - STALE_MS,))
    low = conn.execute('SELECT min(seq) FROM "duality:followers"').fetchone()[0]
    if low is None:
        conn.execute('DELETE FROM "duality:journal"')
    else:
        conn.execute('DELETE FROM "duality:journal" WHERE seq <= ?', (low,))


def unregister(conn: sqlite3.Connection, follower: int) -> None:
    conn.execute('DELETE FROM "duality:followers" WHERE id = ?', (follower,))
    prune(conn)
