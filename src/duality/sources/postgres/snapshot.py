"""Reading existing rows: ``COPY … TO STDOUT`` inside one repeatable-read transaction.

With an exported snapshot (the slot's), the rows are exactly those committed before
the slot's consistent point, so streaming continues exactly where the snapshot stopped.
Rows come as COPY text fields, converted by the same codecs as streamed tuples, so a
row reads the same in a snapshot and in the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from duality.sources.postgres.catalog import TableInfo, quote_ident
from duality.sources.postgres.types import split_copy_line

Progress = Callable[[TableInfo, int], None]


def begin_snapshot(conn: psycopg.Connection[Any], snapshot_name: str | None) -> int | None:
    """Open the repeatable-read transaction (importing ``snapshot_name`` if given) and
    return the snapshot's transaction id horizon (``txId`` of snapshot records)."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot_name:
        conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
    row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def copy_rows(conn: psycopg.Connection[Any], table: TableInfo) -> Iterator[list[bytes | None]]:
    """Every row of ``table`` as COPY text fields (un-escaped; None for NULL), in the
    column order of :attr:`TableInfo.columns`. Only the table's own rows: pgoutput
    streams a row of an inheriting table as that table's, never its parent's (a
    partitioned table, captured with ``publish_via_partition_root``, holds its
    partitions' rows)."""
    columns = ", ".join(quote_ident(c.name) for c in table.columns)
    only = "" if table.partitioned else "ONLY "  # a partitioned table's rows: its partitions'
    sql = f"COPY (SELECT {columns} FROM {only}{table.quoted}) TO STDOUT"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        rest = b""
        for chunk in copy:
            data = rest + bytes(chunk)
            lines = data.split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield split_copy_line(line)
        if rest:
            yield split_copy_line(rest)


def count_rows(conn: psycopg.Connection[Any], table: TableInfo) -> int:
    """The planner's row estimate, for progress bars (never a full count)."""
    row = conn.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (table.oid,)
    ).fetchone()
    return max(int(row[0]), 0) if row else 0
