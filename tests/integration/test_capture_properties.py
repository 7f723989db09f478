"""Properties of capture against a real PostgreSQL.

* Random interleaved transactions from concurrent connections (inserts, updates, key
  changes, deletes, savepoints rolled back, whole transactions rolled back): folding
  each topic per key gives exactly the source table.
* kill -9 of a running capture at random moments while a workload runs: after
  restarts, the log holds every committed change exactly once, in commit order.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duality.log.sqlite import SqliteLog
from duality.runtime.capture import Capture
from duality.sources.postgres.config import parse_config
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database, capture, capture_command, fold, records

pytestmark = pytest.mark.postgres

CONNECTIONS = 3
EXAMPLES = 25 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 8

steps = st.lists(
    st.tuples(
        st.integers(0, CONNECTIONS - 1),
        st.sampled_from(
            [
                "insert",
                "update",
                "rekey",
                "delete",
                "savepoint",
                "rollback_to",
                "commit",
                "rollback",
                "insert",
                "update",
            ]
        ),
        st.sampled_from(["a", "b"]),
        st.integers(0, 11),
        st.text(alphabet="xyzé'\\\"", max_size=6),
    ),
    min_size=5,
    max_size=60,
)


def _run_program(db: Database, program: list[tuple[int, str, str, int, str]]) -> None:
    """Each connection owns the keys congruent to its number, so nothing blocks."""
    conns = [psycopg.connect(db.dsn, autocommit=True) for _ in range(CONNECTIONS)]
    open_tx = [False] * CONNECTIONS
    savepoint = [False] * CONNECTIONS
    try:
        for c, action, table, slot, text in program:
            conn = conns[c]
            key = slot * CONNECTIONS + c
            if action in ("commit", "rollback"):
                if open_tx[c]:
                    conn.execute(action.upper())
                open_tx[c] = savepoint[c] = False
                continue
            if not open_tx[c]:
                conn.execute("BEGIN")
                open_tx[c] = True
            if action == "savepoint":
                conn.execute("SAVEPOINT s")
                savepoint[c] = True
            elif action == "rollback_to":
                if savepoint[c]:
                    conn.execute("ROLLBACK TO SAVEPOINT s")
            elif action == "insert":
                conn.execute(
                    f"INSERT INTO {table} VALUES (%s, %s, 1) ON CONFLICT (id) DO "
                    f"UPDATE SET v = excluded.v, n = {table}.n + 1",
                    (key, text),
                )
            elif action == "update":
                conn.execute(f"UPDATE {table} SET v = %s, n = n + 1 WHERE id = %s", (text, key))
            elif action == "rekey":
                conn.execute(
                    f"UPDATE {table} SET id = id + 1000 WHERE id = %s AND NOT EXISTS "
                    f"(SELECT 1 FROM {table} WHERE id = %s)",
                    (key, key + 1000),
                )
            elif action == "delete":
                conn.execute(f"DELETE FROM {table} WHERE id = %s", (key,))
        for c, conn in enumerate(conns):
            if open_tx[c]:
                conn.execute("COMMIT")
    finally:
        for conn in conns:
            conn.close()


def _source_table(db: Database, table: str) -> dict[str, Any]:
    rows = db.query(f"SELECT id, v, n FROM {table}")
    return {orjson.dumps({"id": i}).decode(): {"id": i, "v": v, "n": n} for i, v, n in rows}


def _capture_once(db: Database, log_url: str) -> None:
    config = parse_config({"topic.prefix": "p"}, source=db.url)
    with SqliteLog(log_url) as log:
        Capture(config, log, once=True).run()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=steps)
def test_fold_of_each_topic_equals_the_source_table(
    pg: ThrowawayPostgres,
    tmp_path_factory: pytest.TempPathFactory,
    program: list[tuple[int, str, str, int, str]],
) -> None:
    name = f"prop{os.getpid()}_{random.randrange(10**9)}"
    pg.execute(f'CREATE DATABASE "{name}"')
    db = Database(pg, name)
    try:
        db.execute(
            "CREATE TABLE a (id int PRIMARY KEY, v text, n int);\n"
            "CREATE TABLE b (id int PRIMARY KEY, v text NOT NULL, n int);\n"
            "ALTER TABLE b REPLICA IDENTITY FULL;\n"
            "INSERT INTO a VALUES (0, 'seed', 0), (1, 'seed', 0);\n"
            "INSERT INTO b VALUES (2, 'seed', 0)"
        )
        log_url = f"sqlite://{tmp_path_factory.mktemp('prop') / 'log.db'}"
        _capture_once(db, log_url)
        half = len(program) // 2
        _run_program(db, program[:half])
        _capture_once(db, log_url)
        _run_program(db, program[half:])
        _capture_once(db, log_url)
        for table in ("a", "b"):
            assert fold(log_url, f"p.public.{table}") == _source_table(db, table)
    finally:
        db.cleanup()


class Workload(threading.Thread):
    """Single-threaded transactions at a steady pace: each bumps a counter row and
    inserts ledger rows with increasing sequence numbers; every 25th is a big one, and
    every 100th one bigger than a capture flush, so kills also land between the
    flushes of one transaction."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop_flag = threading.Event()
        self.transactions = 0
        self.seq = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop_flag.is_set():
                rows = 1
                if self.transactions % 25 == 24:
                    rows = 400
                if self.transactions % 100 == 60:
                    rows = 30_000
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO ledger (seq) SELECT %s + g FROM generate_series(1, %s) g",
                        (self.seq, rows),
                    )
                    conn.execute("UPDATE counter SET n = %s WHERE id = 1", (self.transactions + 1,))
                self.seq += rows
                self.transactions += 1
                time.sleep(0.004)


@pytest.mark.slow
def test_kill_minus_9_at_random_points_loses_and_duplicates_nothing(
    db: Database, tmp_path: Path
) -> None:
    db.execute(
        "CREATE TABLE ledger (seq bigint PRIMARY KEY, note text DEFAULT 'x');\n"
        "CREATE TABLE counter (id int PRIMARY KEY, n bigint);\n"
        "INSERT INTO counter VALUES (1, 0)"
    )
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    log_path = tmp_path / "log.db"
    capture(db, log_url, prefix="k")  # the snapshot: one counter row, an empty ledger
    workload = Workload(db.dsn)
    workload.start()
    rng = random.Random(3)
    kills = 0
    try:
        while kills < 12:
            proc = subprocess.Popen(
                capture_command(db, log_url, prefix="k", once=False),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            size = log_path.stat().st_size if log_path.exists() else 0
            deadline = time.time() + 30
            while time.time() < deadline and (
                not log_path.exists() or log_path.stat().st_size <= size
            ):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.05, 0.8))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    finally:
        workload.stop_flag.set()
        workload.join()
    capture(db, log_url, prefix="k")
    ledger = [v for _, v, _ in records(log_url, "k.public.ledger")]
    counter = [v for _, v, _ in records(log_url, "k.public.counter")]
    assert [v["op"] for v in ledger] == ["c"] * workload.seq
    assert [v["after"]["seq"] for v in ledger] == list(range(1, workload.seq + 1))
    assert [(v["op"], v["after"]["n"]) for v in counter] == [("r", 0)] + [
        ("u", n) for n in range(1, workload.transactions + 1)
    ]
    assert workload.transactions > 50


@pytest.mark.parametrize("crash_at", ["capture.flushed:1", "capture.flushed:2"])
def test_crash_between_flushes_of_one_transaction(
    db: Database, tmp_path: Path, crash_at: str
) -> None:
    """A transaction bigger than a flush is durable in parts; a crash after a part
    makes the restart skip exactly what is already in the log."""
    db.execute("CREATE TABLE big (id int PRIMARY KEY)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(db, log_url)
    db.execute("INSERT INTO big SELECT g FROM generate_series(1, 50000) g")
    crashed = capture(db, log_url, env={"DUALITY_CRASH_AT": crash_at}, check=False)
    assert crashed.returncode == -9
    with SqliteLog(log_url) as log:
        partial = log.end_offsets("t.public.big")[0]
    assert 0 < partial < 50_000
    capture(db, log_url)
    assert [k["id"] for k, _, _ in records(log_url, "t.public.big")] == list(range(1, 50001))
