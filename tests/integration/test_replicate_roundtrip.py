"""Round trip: random DML on a real PostgreSQL → capture → replicate → a second
PostgreSQL database and a SQLite file, every table equal to its source on typed values.

Hypothesis writes the history: inserts, updates (some leaving a TOASTed value
unchanged, so Debezium's placeholder travels), primary-key changes and deletes from two
connections whose transactions interleave (each works on its own keys, so neither
waits for the other), truncates, and a column added and dropped mid-stream, on three
tables — one with a column of every type capture converts, one with a composite key,
one with REPLICA IDENTITY FULL. At random points the changes are captured and
replicated (incrementally: the targets are not rebuilt), the SQLite target in small
batches. At the end both targets must equal the source, row by row, value by value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import random
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duality.errors import ApplyError
from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sources.postgres.throwaway import ThrowawayPostgres
from duality.tables.api import open_table
from tests.helpers import Database
from tests.integration import test_tables_postgres as everything
from tests.replicate_support import (
    capture_once,
    kinds_of,
    replicate_once,
    rows,
    same_pg,
    sqlite_rows,
)

pytestmark = pytest.mark.postgres

EXAMPLES = 8 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 3
SCHEMA = everything.SCHEMA + """
CREATE TABLE pairs (a int, b text, v numeric(8,3), tags text[], at timestamptz,
                    PRIMARY KEY (a, b));
CREATE TABLE notes (id bigint PRIMARY KEY, body text, score double precision);
ALTER TABLE notes REPLICA IDENTITY FULL;
"""
TABLES = ("everything", "pairs", "notes")
CAPTURE = {"skipped.operations": "none"}
_names = itertools.count()


class OnConnection:
    """The ``query`` the tables test's row makers call, inside an open transaction."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql.encode(), params).fetchall()


class Source:
    """The source database and two connections with interleaving transactions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conns = [psycopg.connect(db.dsn) for _ in range(2)]
        self.extra = False

    def close(self) -> None:
        for conn in self.conns:
            conn.close()

    def commit(self) -> None:
        for conn in self.conns:
            conn.commit()

    def dml(self, side: int, table: str, action: str, key: int, seed: int) -> None:
        rng = random.Random(seed)
        key = key * 2 + side  # each connection its own keys: no waiting on locks
        target = OnConnection(self.conns[side])
        if table == "everything":
            self._everything(target, rng, action, key)
        elif table == "pairs":
            self._pairs(target, rng, action, key)
        else:
            self._notes(target, rng, action, key)

    def _everything(self, on: OnConnection, rng: random.Random, action: str, key: int) -> None:
        if action == "insert":
            everything._insert(on, rng, key)  # type: ignore[arg-type]
        elif action == "update":
            everything._update(on, rng, key)  # type: ignore[arg-type]
        elif action == "rekey":
            on.query("UPDATE everything SET id = %s WHERE id = %s AND NOT EXISTS "
                     "(SELECT 1 FROM everything WHERE id = %s) RETURNING id",
                     [key + 100, key, key + 100])
        else:
            on.query("DELETE FROM everything WHERE id = %s RETURNING id", [key])

    def _pairs(self, on: OnConnection, rng: random.Random, action: str, key: int) -> None:
        b = rng.choice(["x", "y;'z"])
        v = Decimal(rng.randrange(-10**7, 10**7)).scaleb(-3)
        tags = [rng.choice(everything.TEXTS) for _ in range(rng.randrange(3))]
        at = dt.datetime(2024, 2, 29, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(10**8))
        extra = ", extra = %s" if self.extra else ""
        params: list[Any] = [v, tags, at, *([Decimal(rng.randrange(9999)) / 100]
                                            if self.extra else [])]
        if action == "insert":
            on.query(f"INSERT INTO pairs AS p VALUES (%s, %s) ON CONFLICT (a, b) DO UPDATE "
                     f"SET v = %s, tags = %s, at = %s{extra} RETURNING a", [key, b, *params])
        elif action == "update":
            on.query(f"UPDATE pairs SET v = %s, tags = %s, at = %s{extra} WHERE a = %s "
                     f"RETURNING a", [*params, key])
        elif action == "rekey":
            on.query("UPDATE pairs SET a = a + 100 WHERE a = %s AND NOT EXISTS (SELECT 1 FROM "
                     "pairs WHERE a = %s) RETURNING a", [key, key + 100])
        else:
            on.query("DELETE FROM pairs WHERE a = %s RETURNING a", [key])

    def _notes(self, on: OnConnection, rng: random.Random, action: str, key: int) -> None:
        body = rng.choice([*everything.TEXTS, None])
        score = rng.choice([0.1, -2.5e300, 1 / 3, None])
        if action in ("insert", "update"):
            on.query("INSERT INTO notes VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                     "body = excluded.body, score = excluded.score RETURNING id",
                     [key, body, score])
        elif action == "rekey":
            on.query("UPDATE notes SET id = %s WHERE id = %s AND NOT EXISTS (SELECT 1 FROM "
                     "notes WHERE id = %s) RETURNING id", [key + 100, key, key + 100])
        else:
            on.query("DELETE FROM notes WHERE id = %s RETURNING id", [key])

    def truncate(self, table: str) -> None:
        self.commit()
        self.db.execute(f"TRUNCATE {table}")

    def alter(self, how: str) -> None:
        self.commit()
        if how == "add" and not self.extra:
            self.db.execute("ALTER TABLE pairs ADD COLUMN extra numeric(6,2)")
            self.extra = True
        elif how == "drop" and self.extra:
            self.db.execute("ALTER TABLE pairs DROP COLUMN extra")
            self.extra = False


dml = st.tuples(st.just("dml"), st.integers(0, 1), st.sampled_from(TABLES),
                st.sampled_from(["insert", "insert", "update", "update", "rekey", "delete"]),
                st.integers(0, 6), st.integers(0, 2**32))
steps = st.lists(st.one_of(
    dml, dml, dml, dml, dml, dml,
    st.tuples(st.just("commit"), st.integers(0, 1)),
    st.tuples(st.just("truncate"), st.sampled_from(TABLES)),
    st.tuples(st.just("alter"), st.sampled_from(["add", "drop"])),
    st.tuples(st.just("sync")),
), min_size=15, max_size=60)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                        HealthCheck.too_slow])
@given(history=steps)
def test_random_history_replicates_to_postgresql_and_sqlite(
    pg: ThrowawayPostgres, tmp_path: Path, history: list[tuple[Any, ...]]
) -> None:
    run = next(_names)
    source_db, target_db = Database(pg, f"rt_src_{run}"), Database(pg, f"rt_dst_{run}")
    pg.execute(f'CREATE DATABASE "{source_db.name}"')
    pg.execute(f'CREATE DATABASE "{target_db.name}"')
    source_db.execute(SCHEMA)
    for key in range(4):
        everything._insert(source_db, random.Random(key), key)  # the snapshot's rows
    log_url = f"sqlite://{tmp_path / f'log{run}.db'}"
    sqlite_path = tmp_path / f"replica{run}.db"
    source = Source(source_db)
    try:
        for step in [*history, ("sync",)]:
            _do(source, step, log_url, target_db, sqlite_path)
        _check_postgres(source_db, target_db, source.extra)
        _check_sqlite(source_db, log_url, sqlite_path, source.extra)
    finally:
        source.close()
        source_db.cleanup()
        target_db.cleanup()


def _do(source: Source, step: tuple[Any, ...], log_url: str, target: Database,
        sqlite_path: Path) -> None:
    kind = step[0]
    if kind == "dml":
        source.dml(*step[1:])
    elif kind == "commit":
        source.conns[step[1]].commit()
    elif kind == "truncate":
        source.truncate(step[1])
    elif kind == "alter":
        source.alter(step[1])
    else:
        source.commit()
        capture_once(source.db, log_url, **CAPTURE)
        replicate_once(log_url, target.url)
        replicate_once(log_url, f"sqlite://{sqlite_path}", batch_records=7)


def _columns(table: str, extra: bool) -> list[str]:
    if table == "everything":
        return ["id", *everything.COLUMNS]
    if table == "pairs":
        return ["a", "b", "v", "tags", "at", *(["extra"] if extra else [])]
    return ["id", "body", "score"]


def _key(table: str) -> str:
    return "a,b" if table == "pairs" else "id"


def _present(conn: psycopg.Connection[Any], table: str, columns: list[str],
             wanted: dict[Any, dict[str, Any]]) -> list[str]:
    """The columns the target has. A table or column the log never showed (no change
    came after it was created or added) is absent there, and must be empty here."""
    found = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", [table])}
    for column in columns:
        if column not in found:
            assert all(row[column] is None for row in wanted.values()), (table, column)
    return [c for c in columns if c in found]


def _check_postgres(source: Database, target: Database, extra: bool) -> None:
    with source.connect() as src, target.connect() as dst:
        for table in TABLES:
            want = rows(src, table, _columns(table, extra), _key(table))
            columns = _present(dst, table, _columns(table, extra), want)
            if not columns:
                continue
            got = rows(dst, f"public.{table}", columns, _key(table))
            assert sorted(got) == sorted(want), table
            for key, row in want.items():
                for column in columns:
                    assert same_pg(row[column], got[key][column]), (
                        table, key, column, row[column], got[key][column])


def _check_sqlite(source: Database, log_url: str, path: Path, extra: bool) -> None:
    expected = everything._source(source, everything.COLUMNS)
    got = sqlite_rows(path, "everything", kinds_of(log_url, "t.public.everything"), "id")
    assert sorted(got) == sorted(expected)
    for key, row in expected.items():
        for column in everything.COLUMNS:
            assert everything._same(column, row[column], got[key][column]), (
                key, column, row[column], got[key][column])
    with source.connect() as src:
        for table in TABLES[1:]:
            want = rows(src, table, _columns(table, extra), _key(table))
            known = kinds_of(log_url, f"t.public.{table}")
            columns = [c for c in _columns(table, extra) if c in known]
            if not columns:
                assert not want, table
                continue
            assert all(row[c] is None for row in want.values()
                       for c in _columns(table, extra) if c not in known), table
            kinds = {c: known[c] for c in columns}
            got = sqlite_rows(path, table, kinds, _key(table))
            assert sorted(got) == sorted(want), table
            for key, row in want.items():
                for column in columns:
                    assert same_pg(row[column], got[key][column]), (
                        table, key, column, row[column], got[key][column])


MOVES = """
CREATE TABLE moves (id int PRIMARY KEY, small text, big text);
INSERT INTO moves SELECT g, 's',
    (SELECT string_agg(md5(random()::text || g || n), '') FROM generate_series(1, 400) n)
FROM generate_series(1, 3) g
"""


@pytest.mark.parametrize("batch", [1, 2, 3, 5])
def test_a_key_change_a_batch_would_split_keeps_its_unchanged_toast_value(
    db: Database, target: Database, tmp_path: Path, batch: int
) -> None:
    """A primary-key change under the default replica identity is a delete of the old
    key, its tombstone and a create of the new one whose unchanged TOASTed value is
    Debezium's placeholder: the value comes from the row under the old key, so no batch
    ends between the delete and the create (the target no longer holds the row once the
    delete is committed)."""
    db.execute(MOVES)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    db.execute("UPDATE moves SET id = 10 WHERE id = 1")
    db.execute("UPDATE moves SET id = 20, small = 'x' WHERE id = 2")
    db.execute("BEGIN;\nUPDATE moves SET id = 30 WHERE id = 3;\n"
               "UPDATE moves SET small = 'y' WHERE id = 30;\nCOMMIT")
    capture_once(db, log_url)
    query = "SELECT id, small, md5(big) FROM moves ORDER BY id"
    want = db.query(query)
    assert [row[0] for row in want] == [10, 20, 30] and all(row[2] for row in want)
    replica = tmp_path / "replica.db"
    replicate_once(log_url, f"sqlite://{replica}", batch_records=batch)
    replicate_once(log_url, target.url, batch_records=batch)
    assert target.query(query) == want
    with closing(sqlite3.connect(replica)) as conn:
        got = conn.execute("SELECT id, small, big FROM moves ORDER BY id").fetchall()
    assert [(i, s, hashlib.md5(b.encode()).hexdigest() if b else b) for i, s, b in got] == want


def test_columns_added_with_a_default_hold_it_in_the_rows_already_there(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """PostgreSQL fills a column added with a default in every existing row and writes no
    change for them: the target's rows get the default from the registered schema."""
    db.execute("CREATE TABLE grown (id int PRIMARY KEY, v text);\n"
               "INSERT INTO grown VALUES (1, 'a'), (2, 'b')")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    replica = f"sqlite://{tmp_path / 'replica.db'}"
    capture_once(db, log_url)
    for url in (target.url, replica):
        replicate_once(log_url, url)
    db.execute("ALTER TABLE grown ADD COLUMN n int DEFAULT 42, "
               "ADD COLUMN d numeric(5,2) DEFAULT 1.5, ADD COLUMN s text DEFAULT 'it''s', "
               "ADD COLUMN e text;\n"
               "INSERT INTO grown VALUES (3, 'c', 7, 2.25, 'x', 'y')")
    capture_once(db, log_url)
    for url in (target.url, replica):
        replicate_once(log_url, url)
    query = "SELECT id, v, n, d::text, s, e FROM grown ORDER BY id"
    want = [(1, "a", 42, "1.50", "it's", None), (2, "b", 42, "1.50", "it's", None),
            (3, "c", 7, "2.25", "x", "y")]
    assert db.query(query) == want and target.query(query) == want
    with closing(sqlite3.connect(tmp_path / "replica.db")) as conn:
        got = conn.execute("SELECT id, v, n, d, s, e FROM grown ORDER BY id").fetchall()
    assert got == [(i, v, n, Decimal(d), s, e) for i, v, n, d, s, e in want]


@pytest.mark.parametrize("mode", ["precise", "string"])
def test_bc_timestamps_and_special_numerics_reach_a_postgresql_target(
    db: Database, target: Database, tmp_path: Path, mode: str
) -> None:
    """A ``timestamptz`` before year 1 (ISO-8601 ``-0043-…``), and with
    ``decimal.handling.mode=string`` numeric NaN and infinities (Debezium's ``NAN``,
    ``POSITIVE_INFINITY`` names), in PostgreSQL's own syntax."""
    db.execute("CREATE TABLE eras (id int PRIMARY KEY, at timestamptz, n numeric);\n"
               "INSERT INTO eras VALUES (1, '0044-03-15 12:00:00+00 BC', 'NaN'), "
               "(2, '0001-01-01 00:00:00+00 BC', 'Infinity'), "
               "(3, '2024-02-29 23:59:59.5+00', '-Infinity'), (4, 'infinity', 1.5)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url, **{"decimal.handling.mode": mode})
    replicate_once(log_url, target.url)
    want = db.query("SELECT id, at::text FROM eras ORDER BY id")
    assert target.query("SELECT id, at::text FROM eras ORDER BY id") == want
    if mode == "string":
        assert target.query("SELECT n::text FROM eras ORDER BY id") == db.query(
            "SELECT n::text FROM eras ORDER BY id")


def test_a_new_source_key_the_target_lacks_says_what_to_run(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """The primary key moves to other columns in the source: replicate stops, naming a
    unique index to create; the statement it names works on both targets, and then
    replicate goes on."""
    db.execute("CREATE TABLE rekeyed (id int PRIMARY KEY, k int NOT NULL);\n"
               "INSERT INTO rekeyed VALUES (1, 10)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    replica = tmp_path / "replica.db"
    capture_once(db, log_url)
    for url in (target.url, f"sqlite://{replica}"):
        replicate_once(log_url, url)
    db.execute("ALTER TABLE rekeyed DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (k);\n"
               "INSERT INTO rekeyed VALUES (2, 20)")
    capture_once(db, log_url)
    for url, table in ((target.url, '"public"."rekeyed"'), (f"sqlite://{replica}", '"rekeyed"')):
        with pytest.raises(ApplyError) as refused:
            replicate_once(log_url, url)
        message = " ".join(str(refused.value).split())
        assert f"CREATE UNIQUE INDEX new_key ON {table} (k)" in message, message
        statement = f"CREATE UNIQUE INDEX new_key ON {table} (k)"
        if url == target.url:
            target.execute(statement)
        else:
            with closing(sqlite3.connect(replica)) as conn:
                conn.execute(statement)
                conn.commit()
        replicate_once(log_url, url)
    assert target.query("SELECT id, k FROM rekeyed ORDER BY k") == [(1, 10), (2, 20)]


def test_deletes_that_carry_no_key_are_refused_not_lost(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """REPLICA IDENTITY USING INDEX on columns that leave the primary key out: a delete
    holds the index's columns only and Debezium keys it by filler values ({"id": 0}), so
    replicate and the table store stop with exit 5 naming the fix, instead of leaving
    the row in place. An identity index that covers the primary key works as usual."""
    db.execute("CREATE TABLE coded (id int PRIMARY KEY, code int NOT NULL, note text);\n"
               "CREATE UNIQUE INDEX coded_code ON coded (code);\n"
               "ALTER TABLE coded REPLICA IDENTITY USING INDEX coded_code;\n"
               "CREATE TABLE covered (id int PRIMARY KEY, code int NOT NULL);\n"
               "CREATE UNIQUE INDEX covered_both ON covered (id, code);\n"
               "ALTER TABLE covered REPLICA IDENTITY USING INDEX covered_both;\n"
               "INSERT INTO coded VALUES (1, 10, 'a'), (2, 20, 'b');\n"
               "INSERT INTO covered VALUES (1, 10), (2, 20)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    replicate_once(log_url, target.url)
    db.execute("DELETE FROM coded WHERE id = 1;\nDELETE FROM covered WHERE id = 1")
    capture_once(db, log_url)
    with pytest.raises(ApplyError) as refused:
        replicate_once(log_url, target.url)
    message = " ".join(str(refused.value).split())
    assert "REPLICA IDENTITY USING INDEX on (code)" in message, message
    assert "primary-key column(s) id" in message and "REPLICA IDENTITY DEFAULT" in message
    with pytest.raises(ApplyError, match="USING INDEX"), open_table(
            "t.public.coded", log=log_url):
        pass
    replicate_once(log_url, target.url, topics=["t.public.covered"])
    assert target.query("SELECT id FROM covered") == [(2,)]


def test_the_first_batches_ramp_up_to_the_batch_size(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """An eighth of ``batch_records``, then twice as many each batch: the target starts
    on a small batch while the next is read (the records reach it all the same)."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    db.execute("CREATE TABLE ramp (id int PRIMARY KEY);\n"
               "INSERT INTO ramp SELECT generate_series(1, 2000)")
    capture_once(db, log_url)
    with SqliteLog(log_url, create=False) as log:
        replicator = Replicator(log, target.url, once=True, batch_records=800)
        replicator.run()
    # 100, 200, 400, 800, then the last 500 (without the ramp: 800, 800, 400)
    assert (replicator.stats.records, replicator.stats.batches) == (2000, 5)
    assert target.query("SELECT count(*) FROM public.ramp") == [(2000,)]
