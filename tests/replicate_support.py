"""Helpers for replicate tests: capture and replicate in-process, read both sides back
and compare them on typed values."""

from __future__ import annotations

import datetime as dt
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from duality.log.sqlite import SqliteLog
from duality.runtime.capture import Capture
from duality.runtime.replicate import Replicator
from duality.sources.postgres.config import parse_config
from duality.tables.api import open_table
from duality.tables.shape import EMPTY, shape_from_schema
from duality.tables.types import Kind, to_python
from tests.helpers import Database


def capture_once(db: Database, log_url: str, prefix: str = "t", **props: str) -> None:
    """``duality capture --once``, in this process."""
    config = parse_config({"topic.prefix": prefix, **props}, source=db.url)
    with SqliteLog(log_url) as log:
        Capture(config, log, once=True).run()


def captured_log(db: Database, folder: Path, source_sql: str, **props: str) -> str:
    """The URL of a log in ``folder`` with a snapshot of ``db`` after ``source_sql``."""
    db.execute(source_sql)
    url = f"sqlite://{folder / 'log.db'}"
    capture_once(db, url, **props)
    return url


def replicate_once(log_url: str, target: str, **options: Any) -> None:
    """``duality replicate --once``, in this process."""
    with SqliteLog(log_url, create=False) as log:
        Replicator(log, target, once=True, **options).run()


def replicate_command(log_url: str, target: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "duality", "replicate", "--log", log_url, "--target", target,
            *args]


def run_replicate(log_url: str, target: str, *args: str, env: Mapping[str, str] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``duality replicate`` as a user runs it."""
    return subprocess.run(replicate_command(log_url, target, *args), capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          check=False)


def rows(conn: psycopg.Connection[Any], table: str, columns: Iterable[str],
         key: str) -> dict[Any, dict[str, Any]]:
    names = ", ".join(f'"{c}"' for c in columns)
    out = {}
    for row in conn.execute(f"SELECT {names} FROM {table}".encode()).fetchall():
        record = dict(zip(columns, row, strict=True))
        out[record[key] if "," not in key else tuple(record[k] for k in key.split(","))] = record
    return out


def same_pg(source: Any, target: Any) -> bool:
    """Typed values of the source and a PostgreSQL target, allowing for what Debezium's
    events cannot carry: durations are computed in doubles (±1 µs), and a time with
    zone travels as UTC."""
    if source is None or target is None:
        return source is None and target is None
    if isinstance(source, dt.timedelta):
        return bool(abs(source - target) <= dt.timedelta(microseconds=1))
    if isinstance(source, dt.time) and source.tzinfo is not None:
        return _utc_seconds(source) == _utc_seconds(target)
    if isinstance(source, float) and math.isnan(source):
        return isinstance(target, float) and math.isnan(target)
    return bool(source == target)


def _utc_seconds(value: dt.time) -> Decimal:
    offset = value.utcoffset() or dt.timedelta()
    seconds = value.hour * 3600 + value.minute * 60 + value.second - offset.total_seconds()
    return Decimal(seconds % 86_400) + Decimal(value.microsecond) / 10**6


def sqlite_rows(path: Path, table: str, kinds: Mapping[str, Kind],
                key: str) -> dict[Any, dict[str, Any]]:
    """A SQLite target table's rows, values as the Python API gives them; none when the
    target has no such table (its topic held only a truncate, which creates nothing)."""
    conn = sqlite3.connect(path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", [table]).fetchone() is None:
            return {}
        names = list(kinds)
        quoted = ", ".join(f'"{c}"' for c in names)
        out = {}
        for row in conn.execute(f'SELECT {quoted} FROM "{table}"'):
            record = {c: to_python(kinds[c], v) for c, v in zip(names, row, strict=True)}
            out[record[key] if "," not in key else tuple(record[k] for k in key.split(","))] = (
                record)
        return out
    finally:
        conn.close()


def store_rows(log_url: str, topic: str, store: Path) -> dict[Any, dict[str, Any]]:
    """A table store's rows of ``topic`` by ``id``, after folding what the log holds."""
    with open_table(topic, log=log_url, store=f"sqlite://{store}") as table:
        return {row["id"]: row for row in table.json_rows()}


def assert_only_counter_moves(
    log_url: str, topic: str, table: str, folder: Path, update: Callable[[], None]
) -> dict[Any, dict[str, Any]]:
    """Fold ``topic`` (rows 1 and 2) into a table store and a SQLite target, run
    ``update`` (which raises each row's ``counter`` and captures it, leaving the other
    columns as unchanged TOAST), fold again: in both, and in a fresh store that folds
    the whole log at once, only ``counter`` moved. Returns the rows before the update."""
    store, replica = folder / "tables.db", folder / "replica.db"

    def replicated() -> dict[Any, dict[str, Any]]:
        replicate_once(log_url, f"sqlite://{replica}")
        return sqlite_rows(replica, table, kinds_of(log_url, topic), "id")

    table_before, replica_before = store_rows(log_url, topic, store), replicated()
    assert sorted(table_before) == sorted(replica_before) == [1, 2]
    update()
    for before, after in (
        (table_before, store_rows(log_url, topic, store)),
        (replica_before, replicated()),
        (table_before, store_rows(log_url, topic, folder / "fresh.db")),
    ):
        for key, row in before.items():
            assert after[key] == dict(row, counter=row["counter"] + 1)
    return table_before


def kinds_of(log_url: str, topic: str) -> dict[str, Kind]:
    """Column kinds of a topic's latest schema (as the SQLite target stores them); none
    for a topic the log does not have."""
    with SqliteLog(log_url, create=False) as log:
        if log.describe(topic) is None:
            return {}
        ends = log.end_offsets(topic)
        schema_id = None
        for partition, end in ends.items():
            for record in log.read(topic, partition, max(0, end - 50), 50):
                if record.schema_id is not None:
                    schema_id = record.schema_id
        if schema_id is None:
            return {}
        shape = shape_from_schema(log.schema(schema_id), EMPTY)
    return {c.field: c.kind for c in shape.columns}


def dump(conn: psycopg.Connection[Any], tables: Iterable[str]) -> dict[str, list[Any]]:
    """Every row of ``tables`` as text, sorted (for before/after comparisons)."""
    return {t: sorted(str(r) for r in conn.execute(f"SELECT t::text FROM {t} t".encode()))
            for t in tables}
