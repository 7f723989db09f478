"""Source names that mean something to the target or to replicate's own statements.

- A table named ``excluded`` (the name an upsert gives the row it could not insert) and
  a table named ``v``, each updated while a TOASTed value stays unchanged (so the stored
  rows of those keys are read back), replicate exactly into PostgreSQL and SQLite.
- On SQLite, where names ignore ASCII case and replicate's own tables share the
  namespace of the replicated ones, a table named like those (``duality_offsets``), two
  tables or two columns whose names differ only in case, and a column named like a
  reserved one in other case are refused with exit code 2 and a message saying what to
  do; nothing of replicate's own state is overwritten.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Database
from tests.replicate_support import capture_once, run_replicate

pytestmark = pytest.mark.postgres

BIG = ("(SELECT string_agg(md5(random()::text || g || n), '') "
       "FROM generate_series(1, 400) n)")
SOURCE = f"""
CREATE TABLE excluded (id int PRIMARY KEY, n int, big text);
CREATE TABLE v (id int PRIMARY KEY, n int, big text);
INSERT INTO excluded SELECT g, g, {BIG} FROM generate_series(1, 4) g;
INSERT INTO v SELECT g, g, {BIG} FROM generate_series(1, 4) g;
CREATE TABLE duality_offsets (topic text, partition int, next_offset bigint, carry bytea,
                              PRIMARY KEY (topic, partition));
INSERT INTO duality_offsets VALUES ('t.public.excluded', 0, 0, NULL);
CREATE TABLE "Acc" (id int PRIMARY KEY, n int);
CREATE TABLE acc (id int PRIMARY KEY, n int);
INSERT INTO "Acc" VALUES (1, 1);
INSERT INTO acc VALUES (1, 2);
CREATE TABLE two (id int PRIMARY KEY, "Name" text, name text);
INSERT INTO two VALUES (1, 'a', 'b');
CREATE TABLE odd (id int PRIMARY KEY, "Duality:Op" text);
INSERT INTO odd VALUES (1, 'x')
"""
APPLIED = ("t.public.excluded", "t.public.v")


def _sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f'SELECT id, n, big FROM "{table}" ORDER BY id').fetchall()
    finally:
        conn.close()


def _topics(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--topic", name)]


def test_names_the_statements_use_replicate_exactly(
    db: Database, target: Database, tmp_path: Path
) -> None:
    db.execute(SOURCE)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    replica = tmp_path / "replica.db"
    capture_once(db, log_url)
    urls = (target.url, f"sqlite://{replica}")
    for url in urls:
        assert run_replicate(log_url, url, "--once", *_topics(*APPLIED)).returncode == 0
    db.execute("UPDATE excluded SET n = n + 100 WHERE id % 2 = 0;\n"
               "UPDATE v SET n = n + 100 WHERE id % 2 = 0;\n"
               "UPDATE excluded SET big = 'short' WHERE id = 3;\n"
               "DELETE FROM v WHERE id = 1")
    capture_once(db, log_url)
    for url in urls:
        applied = run_replicate(log_url, url, "--once", *_topics(*APPLIED))
        assert applied.returncode == 0, applied.stderr
    for table in ("excluded", "v"):
        want = db.query(f"SELECT id, n, big FROM {table} ORDER BY id")
        assert len(want) >= 3 and any(row[1] > 100 for row in want)
        assert target.query(f"SELECT id, n, big FROM public.{table} ORDER BY id") == want
        assert _sqlite_rows(replica, table) == want


@pytest.mark.parametrize(("topics", "message"), [
    (["t.public.duality_offsets"],
     'would go to "duality_offsets" in .*names starting with duality_ or duality: are '
     "duality's own.*--map or --table-prefix"),
    (["t.public.Acc", "t.public.acc"],
     r"topics 't.public.Acc' \(as \"Acc\"\) and 't.public.acc' would both go to \"acc\".*"
     "--map or --table-prefix"),
    (["t.public.two"],
     "would have columns 'Name' and 'name', which .* cannot tell apart.*--topic"),
    (["t.public.odd"], "column 'Duality:Op' has a name duality uses for its own columns"),
])
def test_names_sqlite_cannot_tell_apart_are_refused(
    db: Database, tmp_path: Path, topics: list[str], message: str
) -> None:
    db.execute(SOURCE)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    replica = tmp_path / "replica.db"
    capture_once(db, log_url)
    url = f"sqlite://{replica}"
    assert run_replicate(log_url, url, "--once", "--topic", APPLIED[0]).returncode == 0
    offsets_before = _offsets(replica)
    refused = run_replicate(log_url, url, "--once", *_topics(*topics))
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert re.search(message, refused.stderr), refused.stderr
    assert set(offsets_before) <= set(_offsets(replica))  # replicate's own state intact


def _offsets(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT topic, partition, next_offset FROM duality_offsets "
                            "ORDER BY topic").fetchall()
    finally:
        conn.close()


def test_flattened_events_of_a_schema_with_a_dot_keep_their_table(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """Flattened events (after.state.only) carry no source block; the registered schema
    names the table, and "x.y".z must not become x."y.z"."""
    db.execute('CREATE SCHEMA "x.y";\n'
               'CREATE TABLE "x.y".z (id int PRIMARY KEY, v text);\n'
               "INSERT INTO \"x.y\".z VALUES (1, 'a')")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url, **{"after.state.only": "true"})
    applied = run_replicate(log_url, target.url, "--once")
    assert applied.returncode == 0, applied.stderr
    assert target.query('SELECT id, v FROM "x.y".z') == [(1, "a")]
