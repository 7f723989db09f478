"""kill -9 of ``duality replicate`` at random points: after restarts the target equals the
source, no row ever moves backwards, and replaying the whole log changes nothing.

The source writes a workload in rounds (inserts, updates, primary-key changes and
deletes on two tables; every write stamps the row with the next value of one sequence,
so a key's stamp only grows). After each round is captured, a replicate process applies
it in small batches and is killed — at the crash points inside a target batch (rows
written, everything written but not committed, committed but nothing after it), or from
outside at a random moment — and started again until it finishes. Between kills the
target is sampled: a row's stamp, its stored source position and the stored offsets
never go down. At the end the target must equal the source, and ``--from-beginning``
(the offsets reset, the whole log applied again) must leave it exactly as it was (a row
the snapshot loaded may gain its stored position), and never older midway.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database
from tests.replicate_support import capture_once, replicate_command, rows, run_replicate

pytestmark = pytest.mark.postgres

POINTS = ["replicate.batch-written", "replicate.before-commit", "replicate.committed"]
#: PostgreSQL only: another session committed its share of a batch, the offsets not yet;
#: the primary keys of tables a snapshot loaded into are being put back (before commit).
PG_POINTS = ["replicate.lane-committed", "replicate.keyed"]
ROUNDS = 6 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 4
KILLS = 10
SCHEMA = """
CREATE SEQUENCE stamp;
CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL, note text);
CREATE TABLE pairs (a int, b text, n bigint NOT NULL, PRIMARY KEY (a, b));
"""
TABLES = {"counters": (["id", "n", "note"], "id"), "pairs": (["a", "b", "n"], "a,b")}
#: A target sample: table → key → stamp, topic → key → stored position, offsets.
Sample = tuple[dict[str, dict[Any, Any]], dict[str, dict[Any, Any]], dict[Any, int]]


def _workload(db: Database, rng: random.Random, transactions: int) -> None:
    with psycopg.connect(db.dsn) as conn:
        for _ in range(transactions):
            for _ in range(rng.randrange(1, 12)):
                _change(conn, rng)
            conn.commit()


def _change(conn: psycopg.Connection[Any], rng: random.Random) -> None:
    key, action = rng.randrange(40), rng.choice(["upsert", "upsert", "upsert", "rekey",
                                                  "delete"])
    note = rng.choice(["", "x", "'); DROP TABLE counters; --", "é" * rng.randrange(50)])
    if rng.random() < 0.6:
        if action == "upsert":
            conn.execute("INSERT INTO counters VALUES (%s, nextval('stamp'), %s) ON CONFLICT "
                         "(id) DO UPDATE SET n = excluded.n, note = excluded.note", [key, note])
        elif action == "rekey":
            conn.execute("UPDATE counters SET id = %s, n = nextval('stamp') WHERE id = %s AND "
                         "NOT EXISTS (SELECT 1 FROM counters WHERE id = %s)",
                         [key + 40, key, key + 40])
        else:
            conn.execute("DELETE FROM counters WHERE id = %s", [key])
        return
    b = rng.choice(["p", "q r"])
    if action == "delete":
        conn.execute("DELETE FROM pairs WHERE a = %s AND b = %s", [key % 10, b])
    elif action == "rekey":
        conn.execute("UPDATE pairs SET b = b || '+', n = nextval('stamp') WHERE a = %s AND "
                     "b = %s AND length(b) < 6 AND NOT EXISTS (SELECT 1 FROM pairs WHERE "
                     "a = %s AND b = %s || '+')", [key % 10, b, key % 10, b])
    else:
        conn.execute("INSERT INTO pairs VALUES (%s, %s, nextval('stamp')) ON CONFLICT (a, b) "
                     "DO UPDATE SET n = excluded.n", [key % 10, b])


class Target:
    """A target as the checks read it: PostgreSQL or SQLite, the same SQL on both."""

    def __init__(self, url: str, database: Database | None = None,
                 path: Path | None = None) -> None:
        self.url, self.database, self.path = url, database, path
        pg = database is not None
        self.meta = "duality." if pg else "duality_"
        self.data = "public." if pg else ""

    def query(self, text: str) -> list[tuple[Any, ...]]:
        if self.database is not None:
            return self.database.query(text)
        assert self.path is not None
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(text).fetchall()
        finally:
            conn.close()

    def side(self, ident: int) -> str:
        return f'{self.meta}"positions_{ident}"' if self.database else (
            f'"duality_positions_{ident}"')

    def sides(self) -> dict[str, str]:
        """Topic → its positions table."""
        return {topic: self.side(i) for i, topic in
                self.query(f"SELECT id, topic FROM {self.meta}tables ORDER BY id")}

    def rows(self, table: str) -> dict[Any, tuple[Any, ...]]:
        columns, key = TABLES[table]
        width = len(key.split(","))
        return {r[:width] if width > 1 else r[0]: r
                for r in self.query(f"SELECT {', '.join(columns)} FROM {self.data}{table}")}


def _sample(target: Target) -> Sample:
    stamps, positions = {}, {}
    for topic, side in target.sides().items():
        table = topic.rsplit(".", 1)[1]
        columns, key = TABLES[table]
        stamps[table] = {k: r[columns.index("n")] for k, r in target.rows(table).items()}
        positions[topic] = {tuple(r[:-1]): r[-1] for r in
                            target.query(f'SELECT {key}, "duality:position" FROM {side}')}
    offsets = {(t, p): o for t, p, o in target.query(
        f"SELECT topic, partition, next_offset FROM {target.meta}offsets")}
    return stamps, positions, offsets


def _never_backwards(before: Sample, after: Sample) -> None:
    for table, old in before[0].items():
        new = after[0].get(table, {})
        for key, stamp in old.items():
            assert key not in new or new[key] >= stamp, (table, key, stamp, new[key])
    for topic, old in before[1].items():
        new = after[1].get(topic, {})
        for key, position in old.items():
            assert key in new, (topic, key, "position forgotten")
            assert new[key] >= position, (topic, key, position, new[key])
    for where, offset in before[2].items():
        assert after[2].get(where, -1) >= offset, (where, offset, after[2].get(where))


def _attempt(log_url: str, target: str, rng: random.Random, points: list[str]) -> int:
    """One replicate run, killed one way or another (or finishing): its exit status."""
    if rng.random() < 0.6:
        crash = f"{rng.choice(points)}:{rng.randrange(1, 12)}"
        result = run_replicate(log_url, target, "--once", "--batch-size", "4",
                               env={"DUALITY_CRASH_AT": crash})
        assert result.returncode in (0, -signal.SIGKILL), result.stderr
        return result.returncode
    proc = subprocess.Popen(replicate_command(log_url, target, "--once", "--batch-size", "4"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(rng.uniform(0.2, 0.9))
    proc.send_signal(signal.SIGKILL)
    status = proc.wait(timeout=120)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    assert status in (0, -signal.SIGKILL), stderr
    return status


def _equal(source: Database, target: Target) -> None:
    with source.connect() as src:
        for table, (columns, key) in TABLES.items():
            want = {k: tuple(r.values()) for k, r in rows(src, table, columns, key).items()}
            assert want, table  # the workload left rows to compare
            assert target.rows(table) == want, table


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_kill_9_while_applying_leaves_the_source_and_never_moves_a_row_back(
    pg: ThrowawayPostgres, db: Database, tmp_path: Path, kind: str
) -> None:
    rng = random.Random(7)
    points = [*POINTS, *PG_POINTS] if kind == "postgresql" else POINTS
    database = Database(pg, f"{db.name}_target")
    if kind == "postgresql":
        pg.execute(f'CREATE DATABASE "{database.name}"')
        target = Target(database.url, database=database)
    else:
        path = tmp_path / "replica.db"
        target = Target(f"sqlite://{path}", path=path)
    try:
        db.execute(SCHEMA)
        _workload(db, rng, 10)  # rows the snapshot reads
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        kills, last, round_ = 0, None, 0
        # More rounds while too few kills landed: a run that finishes before a kill
        # from outside (or before its crash point) had nothing left to apply.
        while round_ < ROUNDS or kills < KILLS:
            assert round_ < ROUNDS + 10, f"only {kills} kills landed"
            if round_:
                _workload(db, rng, 40)
            capture_once(db, log_url)
            for _ in range(30):
                status = _attempt(log_url, target.url, rng, points)
                kills += status == -signal.SIGKILL
                sample = _sample(target)
                if last is not None:
                    _never_backwards(last, sample)
                last = sample
                if status == 0:
                    break
            round_ += 1
        assert last is not None and len(last[1]) == 2 and all(last[1].values())  # sampled
        final = run_replicate(log_url, target.url, "--once")
        assert final.returncode == 0, final.stderr
        _equal(db, target)
        if kind == "postgresql":  # set aside while the snapshot loaded, and back
            assert sorted(target.query(
                "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'p' "
                "AND connamespace = 'public'::regnamespace")) == [("counters",), ("pairs",)]
        _replay_changes_nothing(log_url, target)
    finally:
        if kind == "postgresql":
            database.cleanup()


def _dump(target: Target, tables: list[str]) -> dict[str, list[str]]:
    return {t: sorted(str(r) for r in target.query(f"SELECT * FROM {t}")) for t in tables}


def _replay_changes_nothing(log_url: str, target: Target) -> None:
    sides = list(target.sides().values())
    tables = [f"{target.data}counters", f"{target.data}pairs", *sides, f"{target.meta}offsets"]
    before, sampled = _dump(target, tables), _sample(target)
    # Killed partway through a replay, every row and position is still as new as before:
    # each replayed change is stale and skipped, none applied and then undone.
    partial = run_replicate(log_url, target.url, "--once", "--from-beginning", "--batch-size",
                            "10", env={"DUALITY_CRASH_AT": "replicate.committed:5"})
    assert partial.returncode == -signal.SIGKILL, partial.stderr
    _never_backwards((*sampled[:2], {}), (*_sample(target)[:2], {}))
    replay = run_replicate(log_url, target.url, "--once", "--from-beginning", "--batch-size",
                           "50")
    assert replay.returncode == 0, replay.stderr
    applied = int(replay.stderr.split("applied ", 1)[1].split(" ", 1)[0])
    assert applied > 100, replay.stderr  # the whole log went through again
    after = _dump(target, tables)
    for table in tables:
        gained = sorted(set(after[table]) - set(before[table]))
        lost = sorted(set(before[table]) - set(after[table]))
        assert not lost, (table, lost[:5], gained[:5])
        # A row the snapshot bulk-loaded has no stored position until a change (or the
        # snapshot record, replayed) writes one: a positions table may gain those.
        assert not gained or table in sides, (table, gained[:5])
