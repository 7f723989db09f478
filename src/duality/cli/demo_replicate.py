"""The replicate part of ``duality demo``: the demo's change topics applied to a second
database of the throwaway server, then source and target compared table by table."""

from __future__ import annotations

from typing import Any

import psycopg

from duality.cli.common import say
from duality.cli.table_output import print_rows
from duality.log.base import Log
from duality.runtime.replicate import Replicator

TABLES = ("accounts", "meeting_notes", "tasks")
#: Rows and a digest of the rows in key order, each row as PostgreSQL prints it.
CHECKSUM = (
    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '-') "
    "FROM public.{} AS t"
)
COLUMNS = ["table", "source rows", "target rows", "source md5", "target md5", "agree"]


def tour(log: Log, prefix: str, source_url: str, target_url: str, first: int) -> None:
    """Steps ``first`` and ``first + 1``."""
    say(f"{first}. Replicate: the change topics applied to a second database, {target_url} "
        f"(duality replicate --once): tables created from the log's schemas, upserts and "
        f"deletes with each row's source position, offsets in the same transaction:")
    topics = [f"{prefix}.public.{table}" for table in TABLES]
    stats = Replicator(log, target_url, topics=topics, once=True).run()
    say(f"   applied {stats.records} record(s) of {len(stats.topics)} topic(s) in "
        f"{stats.batches} batch(es)")
    say(f"{first + 1}. Source and target agree: rows, and an md5 over each table's rows in "
        f"key order:")
    rows = []
    with psycopg.connect(source_url) as source, psycopg.connect(target_url) as target:
        for table in TABLES:
            (mine, digest), (theirs, copied) = _checksum(source, table), _checksum(target, table)
            rows.append(dict(zip(COLUMNS, (table, mine, theirs, digest[:12], copied[:12],
                                            mine == theirs and digest == copied), strict=True)))
    print_rows(COLUMNS, rows, indent="   ")
    if all(row["agree"] for row in rows):
        say("   source and target agree on every table")
    else:
        say("   source and target differ: a bug in duality; please report it with this output")


def _checksum(conn: psycopg.Connection[Any], table: str) -> tuple[int, str]:
    count, digest = conn.execute(CHECKSUM.format(table).encode()).fetchall()[0]
    return int(count), str(digest)
