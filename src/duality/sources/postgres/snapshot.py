"""Reading existing rows: ``COPY … TO STDOUT`` inside one repeatable-read transaction.

With an exported snapshot (the slot's), the rows are exactly those committed before
the slot's consistent point, so streaming continues exactly where the snapshot stopped.
Rows come as COPY text fields, converted by the same codecs as streamed tuples, so a
row reads the same in a snapshot and in the stream; :func:`marked_batches` turns them
into batches of records with Debezium's snapshot markers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from duality.events.model import NewRecord
from duality.sources.postgres.catalog import TableInfo, quote_ident
from duality.sources.postgres.events import EventBuilder
from duality.sources.postgres.tables import TableCodec
from duality.sources.postgres.types import split_copy_line

Progress = Callable[[TableInfo, int], None]


def begin_snapshot(conn: psycopg.Connection[Any], snapshot_name: str | None) -> int | None:
    """Open the repeatable-read transaction (importing ``snapshot_name`` if given) and
    return its own transaction id, the ``txId`` of snapshot records.

    As Debezium does, the snapshot transaction is given an id of its own
    (``txid_current()``; none on a standby), so no streamed transaction shares the
    snapshot's ``txId``: the snapshot horizon (``pg_snapshot_xmin``) is the id the next
    transaction gets when none is running. The id is never written with: the
    transaction rolls back, which logs an abort record and nothing else."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot_name:
        conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
    row = conn.execute(
        "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE txid_current() END"
    ).fetchone()
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


def marked_batches(
    conn: psycopg.Connection[Any],
    build: EventBuilder,
    codecs: list[tuple[TableInfo, TableCodec]],
    started_us: int,
    lsn: int,
    txid: int | None,
    progress: Callable[[str, int, int], None],
    batch_size: int = 5000,
) -> Iterator[list[NewRecord]]:
    """Snapshot records with markers: the first record overall is ``first``, the first of
    each later table ``first_in_data_collection``, the last of each table but the final
    one ``last_in_data_collection``, the very last ``last``, the rest ``true``. One row
    of look-ahead tells which row is last."""
    batch: list[NewRecord] = []
    held: tuple[TableCodec, dict[str, Any], str] | None = None
    seen_any = False
    for number, (table, codec) in enumerate(codecs):
        estimate = count_rows(conn, table)
        count = 0
        for row in copy_rows(conn, table):
            if held is not None:
                batch.extend(
                    build.snapshot_records(held[0], held[1], held[2], started_us, lsn, txid)
                )
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
                    build.tick()
            marker = "true"
            if count == 0:
                marker = "first_in_data_collection" if seen_any else "first"
            held = (codec, codec.image(row), marker)
            count += 1
            seen_any = True
            if count % 10_000 == 0:
                progress(table.qualified, count, estimate)
        if held is not None and count > 0 and number < len(codecs) - 1:
            held = (held[0], held[1], _last_marker(held[2], final=False))
        progress(table.qualified, count, count)
    if held is not None:
        held = (held[0], held[1], _last_marker(held[2], final=True))
        batch.extend(build.snapshot_records(held[0], held[1], held[2], started_us, lsn, txid))
    if batch:
        yield batch


def _last_marker(current: str, *, final: bool) -> str:
    if final:
        return "last"
    return "first" if current == "first" else "last_in_data_collection"
