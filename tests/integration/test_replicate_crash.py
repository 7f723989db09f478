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
the snapshot loaded may gain its stored position).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database
from tests.replicate_support import capture_once, dump, replicate_command, rows, run_replicate

pytestmark = pytest.mark.postgres

POINTS = ["replicate.batch-written", "replicate.before-commit", "replicate.committed"]
ROUNDS = 6 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 4
KILLS = 10
SCHEMA = """
CREATE SEQUENCE stamp;
CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL, note text);
CREATE TABLE pairs (a int, b text, n bigint NOT NULL, PRIMARY KEY (a, b));
"""
TABLES = {"counters": (["id", "n", "note"], "id"), "pairs": (["a", "b", "n"], "a,b")}
#: A target sample: table → key → stamp, topic → key → stored position, offsets.
Sample = tuple[dict[str, dict[Any, int]], dict[str, dict[Any, int]], dict[Any, int]]


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


def _sample(target: Database) -> Sample:
    with target.connect() as conn:
        stamps = {}
        for table, (_, key) in TABLES.items():
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 [f"public.{table}"]).fetchone()
            if found and found[0]:
                stamps[table] = {k: r["n"] for k, r in rows(conn, table, ["a", "b", "n"] if
                                 table == "pairs" else ["id", "n"], key).items()}
        positions = {}
        for ident, topic in conn.execute("SELECT id, topic FROM duality.tables").fetchall():
            side = f'duality."positions_{ident}"'
            got = conn.execute(f"SELECT (to_jsonb(p) - 'duality:position')::text, "
                               f'p."duality:position" FROM {side} p'.encode())
            positions[topic] = {str(k): pos for k, pos in got.fetchall()}
        offsets = {(t, p): o for t, p, o in conn.execute(
            "SELECT topic, partition, next_offset FROM duality.offsets").fetchall()}
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


def _attempt(log_url: str, target: Database, rng: random.Random) -> int:
    """One replicate run, killed one way or another (or finishing): its exit status."""
    if rng.random() < 0.6:
        crash = f"{rng.choice(POINTS)}:{rng.randrange(1, 12)}"
        result = run_replicate(log_url, target.url, "--once", "--batch-size", "4",
                               env={"DUALITY_CRASH_AT": crash})
        assert result.returncode in (0, -signal.SIGKILL), result.stderr
        return result.returncode
    proc = subprocess.Popen(replicate_command(log_url, target.url, "--once", "--batch-size", "4"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(rng.uniform(0.2, 0.9))
    proc.send_signal(signal.SIGKILL)
    status = proc.wait(timeout=120)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    assert status in (0, -signal.SIGKILL), stderr
    return status


def _equal(source: Database, target: Database) -> None:
    with source.connect() as src, target.connect() as dst:
        for table, (columns, key) in TABLES.items():
            want = rows(src, table, columns, key)
            assert want, table  # the workload left rows to compare
            assert rows(dst, f"public.{table}", columns, key) == want, table


def test_kill_9_while_applying_leaves_the_source_and_never_moves_a_row_back(
    pg: ThrowawayPostgres, db: Database, tmp_path: Path
) -> None:
    rng = random.Random(7)
    target = Database(pg, f"{db.name}_target")
    pg.execute(f'CREATE DATABASE "{target.name}"')
    try:
        db.execute(SCHEMA)
        _workload(db, rng, 10)  # rows the snapshot reads
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        kills, last = 0, None
        for round_ in range(ROUNDS):
            if round_:
                _workload(db, rng, 40)
            capture_once(db, log_url)
            for _ in range(30):
                status = _attempt(log_url, target, rng)
                kills += status == -signal.SIGKILL
                sample = _sample(target)
                if last is not None:
                    _never_backwards(last, sample)
                last = sample
                if status == 0 and (round_ < ROUNDS - 1 or kills >= KILLS):
                    break
        assert kills >= KILLS
        final = run_replicate(log_url, target.url, "--once")
        assert final.returncode == 0, final.stderr
        _equal(db, target)
        _replay_changes_nothing(log_url, target)
    finally:
        target.cleanup()


def _replay_changes_nothing(log_url: str, target: Database) -> None:
    with target.connect() as conn:
        sides = [f'duality."positions_{i}"' for (i,) in
                 conn.execute("SELECT id FROM duality.tables ORDER BY id").fetchall()]
        tables = ["public.counters", "public.pairs", *sides, "duality.offsets"]
        before = dump(conn, tables)
    replay = run_replicate(log_url, target.url, "--once", "--from-beginning", "--batch-size",
                           "50")
    assert replay.returncode == 0, replay.stderr
    applied = int(replay.stderr.split("applied ", 1)[1].split(" ", 1)[0])
    assert applied > 100, replay.stderr  # the whole log went through again
    with target.connect() as conn:
        after = dump(conn, tables)
    for table in tables:
        gained = sorted(set(after[table]) - set(before[table]))
        lost = sorted(set(before[table]) - set(after[table]))
        assert not lost, (table, lost[:5], gained[:5])
        # A row the snapshot bulk-loaded has no stored position until a change (or the
        # snapshot record, replayed) writes one: a positions table may gain those.
        assert not gained or table in sides, (table, gained[:5])
