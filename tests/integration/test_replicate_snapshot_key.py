"""A snapshot bulk-loaded into a PostgreSQL table replicate created goes in with the
table's primary key set aside, and the key is back before anything else touches the
table (see :meth:`duality.sinks.sql.SqlSink._unkey`).

- Killed in the middle of the load, the table has no primary key and every row loaded so
  far; run again, the load goes on, the key is back at the end, and streamed changes
  after it apply on the key.
- A snapshot the log holds twice at one position (the same rows): one row per key.
- A table whose key something depends on (another table's foreign key) keeps it.
- The log busy with another topic, a table whose snapshot is over gets its key back at
  the end of the next batch, not only when replicate has nothing left to apply.
- Rows decoded in Python (text ``COPY``) load without the key too.
- A truncate after the load: the key is built at the end of its batch, on the emptied
  table.
- Streamed changes right after the load, in one run with ``--sessions 2``: the batch
  that puts the key back applies them in its own session (another session would wait
  for the key's uncommitted index until its lock timeout, and the batch start again).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sinks import ddl
from duality.sinks.base import Batch, TargetName
from duality.sinks.postgres import PostgresSink
from duality.sinks.target import Target
from tests.helpers import Database
from tests.replicate_support import (
    capture_once,
    captured_log,
    replicate_once,
    run_replicate,
)

pytestmark = pytest.mark.postgres

KEYS = """
SELECT c.conrelid::regclass::text, array_agg(a.attname ORDER BY k.o)
FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(n, o), pg_attribute a
WHERE c.contype = 'p' AND a.attrelid = c.conrelid AND a.attnum = k.n
  AND c.connamespace = 'public'::regnamespace
GROUP BY 1 ORDER BY 1
"""
SOURCE = """
CREATE TABLE t (a int, b text, v text, PRIMARY KEY (a, b));
INSERT INTO t SELECT g, 'k' || (g % 3), 'v' || g FROM generate_series(1, 300) g;
"""
ROWS = "SELECT a, b, v FROM public.t ORDER BY a, b"


@pytest.fixture
def target(db: Database) -> Database:
    database = Database(db.server, f"{db.name}_target")
    db.server.execute(f'CREATE DATABASE "{database.name}"')
    yield database  # type: ignore[misc]
    database.cleanup()


def keys(db: Database) -> list[tuple[str, list[str]]]:
    return [(table, list(columns)) for table, columns in db.query(KEYS)]


def replicate_watching(log_url: str, target: Database, after: Callable[[], None],
                       **options: Any) -> None:
    """``replicate --once`` in this process, calling ``after`` once each batch is
    committed."""

    class Watching(PostgresSink):
        def apply(self, batch: Batch) -> None:
            super().apply(batch)
            after()

    with SqliteLog(log_url, create=False) as log:
        Replicator(log, target.url, once=True, connect=Watching, **options).run()


def test_killed_mid_load_the_key_comes_back_when_the_load_ends(
    db: Database, target: Database, tmp_path: Path
) -> None:
    log_url = captured_log(db, tmp_path, SOURCE)
    killed = run_replicate(log_url, target.url, "--once", "--batch-size", "40",
                           env={"DUALITY_CRASH_AT": "replicate.committed:3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    loaded = target.query("SELECT count(*) FROM public.t")[0][0]
    assert 0 < loaded < 300  # killed inside the load ...
    assert keys(target) == []  # ... which goes into the table without its key

    again = run_replicate(log_url, target.url, "--once", "--batch-size", "40")
    assert again.returncode == 0, again.stderr
    assert keys(target) == [("t", ["a", "b"])]
    assert target.query(ROWS) == db.query(ROWS)

    db.execute("UPDATE t SET v = v || '!' WHERE a % 7 = 0; DELETE FROM t WHERE a % 11 = 0;"
               "INSERT INTO t VALUES (1, 'new', 'n')")
    capture_once(db, log_url)
    streamed = run_replicate(log_url, target.url, "--once")
    assert streamed.returncode == 0, streamed.stderr
    assert target.query(ROWS) == db.query(ROWS)


def test_a_snapshot_logged_twice_at_one_position_keeps_one_row_per_key(
    db: Database, target: Database, tmp_path: Path
) -> None:
    log_url = captured_log(db, tmp_path, SOURCE)
    with SqliteLog(log_url, create=False) as log:
        records = log.read("t.public.t", 0, 0, 1000)
        assert len(records) == 300
        log.append([NewRecord("t.public.t", r.key, r.value) for r in records])
        log.flush()
    done = run_replicate(log_url, target.url, "--once", "--batch-size", "70")
    assert done.returncode == 0, done.stderr
    assert keys(target) == [("t", ["a", "b"])]
    assert target.query(ROWS) == db.query(ROWS)


def test_a_key_another_table_refers_to_stays(target: Database) -> None:
    target.execute("CREATE TABLE public.parent (id int PRIMARY KEY);"
                   "CREATE TABLE public.child (id int REFERENCES public.parent)")
    sink = PostgresSink(target.url)
    try:
        spec = ddl.TableSpec((ddl.ColumnSpec("id", "integer"),), ("id",))
        sql = sink._table_sql(Target(1, "p", TargetName("public", "parent"), True), spec)
        with sink._transaction():
            assert not sink._unkey(sql)  # the foreign key depends on it
        target.execute("DROP TABLE public.child")
        with sink._transaction():
            assert sink._unkey(sql)
        assert keys(target) == []
    finally:
        sink.close()


def test_a_busy_log_does_not_keep_a_loaded_table_without_its_key(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """``t``'s snapshot is over while ``other`` still has changes to apply (each topic
    goes in batches of its own): ``t`` has its key back before replicate is done."""
    log_url = captured_log(db, tmp_path, SOURCE + "CREATE TABLE other (id int PRIMARY KEY, "
                       "n int); INSERT INTO other VALUES (1, 0)")
    for _ in range(400):
        db.execute("UPDATE other SET n = n + 1")
    capture_once(db, log_url)
    seen: list[tuple[int, bool, int]] = []  # after each batch: t's rows, keyed, other's n

    def look() -> None:
        there = target.query("SELECT to_regclass('public.t') IS NOT NULL, "
                             "to_regclass('public.other') IS NOT NULL")[0]
        loaded = target.query("SELECT count(*) FROM public.t")[0][0] if there[0] else 0
        n = target.query("SELECT max(n) FROM public.other")[0][0] if there[1] else -1
        seen.append((loaded, ("t", ["a", "b"]) in keys(target), n))

    replicate_watching(log_url, target, look, batch_records=40)
    assert any(0 < loaded < 300 and not keyed for loaded, keyed, _ in seen)
    assert any(loaded == 300 and keyed and n < 400 for loaded, keyed, n in seen), seen
    assert keys(target) == [("other", ["id"]), ("t", ["a", "b"])]
    assert target.query(ROWS) == db.query(ROWS)


def test_changes_right_after_the_load_do_not_wait_for_the_key(
    db: Database, target: Database, tmp_path: Path
) -> None:
    log_url = captured_log(db, tmp_path, SOURCE)
    db.execute("UPDATE t SET v = v || '!' WHERE a % 2 = 0")
    capture_once(db, log_url)
    alone: list[Batch] = []

    class Watching(PostgresSink):
        def _apply(self, batch: Batch, *, parallel: bool) -> None:
            if not parallel:  # again in one session, after another one failed
                alone.append(batch)
            super()._apply(batch, parallel=parallel)

    with SqliteLog(log_url, create=False) as log:  # batches of 20, 40, 80, 160: the 300
        # snapshot reads, then a batch that begins with the changes
        Replicator(log, target.url, once=True, batch_records=160,
                   connect=lambda url: Watching(url, 2)).run()
    assert alone == []
    assert keys(target) == [("t", ["a", "b"])]
    assert target.query(ROWS) == db.query(ROWS)


def test_transactions_mode_ends_with_the_key(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """``--transactions`` (batches of whole source transactions across topics) leaves
    the table with its key, and the changes after the snapshot apply on it."""
    log_url = captured_log(db, tmp_path, SOURCE, **{"provide.transaction.metadata": "true"})
    replicate_once(log_url, target.url, transactions=True, batch_records=70)
    assert keys(target) == [("t", ["a", "b"])]
    db.execute("UPDATE t SET v = 'x' WHERE a < 50")
    capture_once(db, log_url, **{"provide.transaction.metadata": "true"})
    replicate_once(log_url, target.url, transactions=True)
    assert target.query(ROWS) == db.query(ROWS)


def test_the_python_path_sets_the_key_aside_too(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """Rows decoded in Python (the C encoder off, or a type it does not take) load by
    text ``COPY`` the same way: keyless while loading, keyed at the end."""
    log_url = captured_log(db, tmp_path, SOURCE)
    seen: list[list[tuple[str, list[str]]]] = []
    replicate_watching(log_url, target, lambda: seen.append(keys(target)), encode=False,
                       batch_records=100)
    assert len(seen) > 1 and seen[0] == []  # the first batches load into the bare table
    assert keys(target) == [("t", ["a", "b"])]
    assert target.query(ROWS) == db.query(ROWS)


def test_a_truncate_after_the_load_builds_the_key_on_the_emptied_table(
    db: Database, target: Database, tmp_path: Path
) -> None:
    truncates = {"skipped.operations": "none"}  # Debezium skips truncates by default
    log_url = captured_log(db, tmp_path, SOURCE, **truncates)
    db.execute("TRUNCATE t")
    capture_once(db, log_url, **truncates)
    seen: list[tuple[int, list[tuple[str, list[str]]]]] = []
    replicate_watching(log_url, target, lambda: seen.append(
        (target.query("SELECT count(*) FROM public.t")[0][0], keys(target))),
        batch_records=300)
    assert seen[0] == (37, [])  # loading, keyless
    assert seen[-1] == (0, [("t", ["a", "b"])])  # the truncate's batch: emptied, then keyed
    db.execute("INSERT INTO t VALUES (1, 'after', 'a'), (2, 'after', 'b')")
    capture_once(db, log_url, **truncates)
    replicate_once(log_url, target.url)
    assert keys(target) == [("t", ["a", "b"])]
    assert target.query(ROWS) == db.query(ROWS)
