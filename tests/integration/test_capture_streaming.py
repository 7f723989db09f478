"""Large transactions, streamed while in progress (protocol 2) or sent at commit
(protocol 1), against a server that streams anything over 64 kB
(``logical_decoding_work_mem``): memory stays flat, aborts and rolled-back savepoints
leave nothing behind, a disconnect mid-stream loses and duplicates nothing."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database, capture, capture_command, fresh_database, records, stderr_line

pytestmark = pytest.mark.postgres

PROTOCOLS = ["1", "2"]


@pytest.fixture
def sdb(small_memory: ThrowawayPostgres) -> Iterator[Database]:
    """A database of the small-memory cluster (conftest) with an ``items`` table."""
    with fresh_database(small_memory, "s") as database:
        database.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        yield database


def ids(log_url: str) -> list[int]:
    return [k["id"] for k, v, _ in records(log_url, "t.public.items") if v is not None]


def proto(version: str) -> list[str]:
    return ["-p", f"pgoutput.protocol.version={version}"]


def check_streamed(db: Database, version: str) -> None:
    """Protocol 2 really streamed (and protocol 1 really spilled) a transaction."""
    streamed, spilled = db.query(
        "SELECT stream_txns, spill_txns FROM pg_stat_replication_slots WHERE slot_name = 'debezium'"
    )[0]
    if version == "2":
        assert streamed > 0
    else:
        assert streamed == 0 and spilled > 0


@pytest.mark.parametrize("version", PROTOCOLS)
def test_large_transaction_captured_once_in_order(
    sdb: Database, tmp_path: Path, version: str
) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(sdb, log_url, *proto(version))
    sdb.execute(
        "INSERT INTO items SELECT g, repeat('x', 50) FROM generate_series(1, 60000) g;\n"
        "INSERT INTO items VALUES (60001, 'after')"
    )
    capture(sdb, log_url, *proto(version))
    assert ids(log_url) == list(range(1, 60002))
    check_streamed(sdb, version)
    assert not glob.glob(os.path.join(tempfile.gettempdir(), f"duality-spool-*/{os.getpid()}"))


@pytest.mark.parametrize("version", PROTOCOLS)
def test_aborted_streamed_transaction_leaves_nothing(
    sdb: Database, tmp_path: Path, version: str
) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(sdb, log_url, *proto(version))
    sdb.execute(
        "BEGIN;\n"
        "INSERT INTO items SELECT g, repeat('y', 50) FROM generate_series(1, 20000) g;\n"
        "ROLLBACK;\n"
        "INSERT INTO items VALUES (1, 'kept')"
    )
    capture(sdb, log_url, *proto(version))
    assert ids(log_url) == [1]
    check_streamed(sdb, version)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_rolled_back_savepoint_inside_a_streamed_transaction(
    sdb: Database, tmp_path: Path, version: str
) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(sdb, log_url, *proto(version))
    sdb.execute(
        "BEGIN;\n"
        "INSERT INTO items SELECT g, 'a' FROM generate_series(1, 10000) g;\n"
        "SAVEPOINT s1;\n"
        "INSERT INTO items SELECT g, 'gone' FROM generate_series(10001, 20000) g;\n"
        "SAVEPOINT s2;\n"
        "UPDATE items SET v = 'also gone' WHERE id <= 5000;\n"
        "ROLLBACK TO SAVEPOINT s1;\n"
        "INSERT INTO items SELECT g, 'b' FROM generate_series(20001, 30000) g;\n"
        "COMMIT"
    )
    capture(sdb, log_url, *proto(version))
    got = records(log_url, "t.public.items")
    assert [k["id"] for k, _, _ in got] == [*range(1, 10001), *range(20001, 30001)]
    assert {v["after"]["v"] for _, v, _ in got} == {"a", "b"}  # type: ignore[index]
    check_streamed(sdb, version)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_disconnect_in_the_middle_of_a_streamed_transaction(
    sdb: Database, tmp_path: Path, version: str
) -> None:
    """The capture's connection is cut while a big transaction streams in; it reconnects
    (retrying), the server sends the transaction again, and it lands exactly once."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    args = [*proto(version), "-p", "retriable.restart.connector.wait.ms=200"]
    capture(sdb, log_url, *args)
    runner = subprocess.Popen(
        capture_command(sdb, log_url, *args, once=False), stderr=subprocess.PIPE, text=True
    )
    writer = psycopg.connect(sdb.dsn)
    try:
        assert runner.stderr is not None
        assert "streaming from" in stderr_line(runner, "streaming from")
        with writer.cursor() as cur:
            for start in range(1, 40001, 10000):
                cur.execute(
                    "INSERT INTO items SELECT g, repeat('z', 50) "
                    "FROM generate_series(%s::int, %s::int) g",
                    (start, start + 9999),
                )
            time.sleep(1.0)  # let the first blocks stream in
            sdb.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
            cur.execute("INSERT INTO items SELECT g, 'tail' FROM generate_series(40001, 50000) g")
        writer.commit()
        deadline = time.time() + 90
        while time.time() < deadline and len(_safe_ids(log_url)) < 50000:
            time.sleep(0.3)
    finally:
        writer.close()
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert "Retrying in" in err
    assert ids(log_url) == list(range(1, 50001))
    check_streamed(sdb, version)


#: Inside one streamed transaction: a savepoint rolled back before anything else, so its
#: first change is not the first one streamed; inserts, updates and deletes; a primary
#: key change (a delete and a create with headers); a column added midway (a Relation
#: message inside the stream); a logical message; a column added in a savepoint that
#: is rolled back, with rows written in it and after it; while other, small
#: transactions commit on the same table (until the ALTER locks it).
_ALTER = "ALTER TABLE items ADD COLUMN extra int DEFAULT 4"
_MIXED = [
    "SAVEPOINT early",
    "INSERT INTO items SELECT g, 'gone' FROM generate_series(900001, 902000) g",
    "ROLLBACK TO SAVEPOINT early",
    "INSERT INTO items SELECT g, repeat('m', 40) FROM generate_series(1, 6000) g",
    "UPDATE items SET v = 'changed' WHERE id % 3 = 0",
    "DELETE FROM items WHERE id % 5 = 0",
    "UPDATE items SET id = id + 100000 WHERE id = 7",
    _ALTER,
    "INSERT INTO items SELECT g, 'late', g FROM generate_series(6001, 9000) g",
    "SELECT pg_logical_emit_message(true, 'note', 'inside')",
    "SAVEPOINT altered",
    "ALTER TABLE items ADD COLUMN undone text DEFAULT 'u'",
    "INSERT INTO items SELECT g, 'undone', g, 'x' FROM generate_series(9001, 9500) g",
    "ROLLBACK TO SAVEPOINT altered",
    "INSERT INTO items SELECT g, 'kept', g FROM generate_series(9501, 9800) g",
    "UPDATE items SET v = 'again' WHERE id BETWEEN 6001 AND 6100",
]


def _events(log_url: str) -> list[tuple[str, Any, Any, Any]]:
    """Every record of every topic but the processing times, which differ by run."""
    out = []
    with SqliteLog(log_url, create=False) as log:
        topics = sorted(t.name for t in log.list_topics())
    for topic in topics:
        for key, value, headers in records(log_url, topic):
            kept = value
            if isinstance(value, dict) and "op" in value:
                kept = {k: v for k, v in value.items() if k not in ("ts_ms", "ts_us", "ts_ns")}
            out.append((topic, key, kept, headers))
    return out


@pytest.mark.parametrize("metadata", [False, True], ids=["plain", "transaction-metadata"])
def test_streamed_transaction_gives_the_events_of_protocol_1(
    sdb: Database, tmp_path: Path, metadata: bool
) -> None:
    """Protocol 2 builds a streamed transaction's changes as they arrive (or, with
    transaction metadata, decodes them at commit); either way its events equal those of
    protocol 1, which sends the transaction whole at commit."""
    extra = ["-p", "provide.transaction.metadata=true"] if metadata else []
    logs = {v: f"sqlite://{tmp_path / f'p{v}.db'}" for v in PROTOCOLS}
    for version, log_url in logs.items():
        capture(sdb, log_url, *proto(version), "--slot", f"p{version}", *extra)
    with psycopg.connect(sdb.dsn) as big, psycopg.connect(sdb.dsn, autocommit=True) as small:
        for n, statement in enumerate(_MIXED):
            if n < _MIXED.index(_ALTER):
                small.execute("INSERT INTO items (id, v) VALUES (%s, 'small')", (500000 + n,))
            big.execute(statement)
        big.commit()
    reports = {}
    for version, log_url in logs.items():
        stderr = capture(sdb, log_url, *proto(version), "--slot", f"p{version}", *extra).stderr
        reports[version] = [line for line in stderr.splitlines() if "schema of" in line]
    # Only committed shape changes are reported (not the rolled-back column), once.
    assert reports["1"] == reports["2"], reports
    assert len(reports["1"]) == 1 and "added extra" in reports["1"][0], reports
    one, two = (_events(logs[v]) for v in PROTOCOLS)
    assert len(one) > 10000
    assert len(two) == len(one)
    assert next((pair for pair in zip(one, two, strict=True) if pair[0] != pair[1]), None) is None
    streamed = sdb.query(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'p2'"
    )[0][0]
    assert streamed > 0


def test_column_of_a_rolled_back_savepoint_streamed_live(sdb: Database, tmp_path: Path) -> None:
    """Captured while the transaction runs, the server streams a savepoint's ALTER and
    rows before the savepoint is rolled back: those rows and that column are left out,
    the rows after the rollback have the table's shape without it, and no shape change
    is reported that never committed; as protocol 1 gives it at commit."""
    logs = {v: f"sqlite://{tmp_path / f'p{v}.db'}" for v in PROTOCOLS}
    for version, log_url in logs.items():
        capture(sdb, log_url, *proto(version), "--slot", f"p{version}")
    runner = subprocess.Popen(capture_command(sdb, logs["2"], *proto("2"), "--slot", "p2",
                                              once=False), stderr=subprocess.PIPE, text=True)
    try:
        assert "streaming from" in stderr_line(runner, "streaming from")
        with psycopg.connect(sdb.dsn) as conn:
            conn.execute("INSERT INTO items SELECT g, repeat('a', 40) "
                         "FROM generate_series(1, 5000) g")
            conn.execute("SAVEPOINT altered")
            conn.execute("ALTER TABLE items ADD COLUMN undone text DEFAULT 'u'")
            conn.execute("INSERT INTO items SELECT g, 'gone', repeat('u', 40) "
                         "FROM generate_series(5001, 25000) g")
            time.sleep(1.5)  # streamed while the savepoint is still open
            conn.execute("ROLLBACK TO SAVEPOINT altered")
            conn.execute("INSERT INTO items SELECT g, 'kept' FROM generate_series(25001, 26000) g")
            conn.execute("UPDATE items SET v = 'again' WHERE id <= 100")
            time.sleep(1.0)
        deadline = time.time() + 60
        while time.time() < deadline and len(_safe_ids(logs["2"])) < 6100:
            time.sleep(0.3)
    finally:
        runner.send_signal(signal.SIGTERM)
        _, live = runner.communicate(timeout=60)
    assert runner.returncode == 0, live
    at_commit = capture(sdb, logs["1"], *proto("1"), "--slot", "p1").stderr
    assert not [line for line in (live + at_commit).splitlines() if "schema of" in line]
    one, two = (_events(logs[v]) for v in PROTOCOLS)
    assert len(one) == 6100
    assert two == one
    streamed = sdb.query(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'p2'"
    )[0][0]
    assert streamed > 0


@pytest.mark.parametrize("crash_at", ["capture.flushed:1", "capture.flushed:2"])
def test_crash_while_a_streamed_transaction_is_written_in_parts(
    sdb: Database, tmp_path: Path, crash_at: str
) -> None:
    """A streamed transaction is written in parts at its commit; killed after a part,
    capture restarts, the server streams the transaction again, and exactly the rest
    lands: the log then holds what a capture that never crashed holds."""
    crashed_log, clean_log = (f"sqlite://{tmp_path / n}" for n in ("crashed.db", "clean.db"))
    for log_url, slot in ((crashed_log, "crashed"), (clean_log, "clean")):
        capture(sdb, log_url, *proto("2"), "--slot", slot)
    sdb.execute("INSERT INTO items SELECT g, repeat('x', 50) FROM generate_series(1, 50000) g")
    crashed = capture(
        sdb, crashed_log, *proto("2"), "--slot", "crashed",
        env={"DUALITY_CRASH_AT": crash_at}, check=False,
    )
    assert crashed.returncode == -9
    with SqliteLog(crashed_log, create=False) as log:
        assert 0 < log.end_offsets("t.public.items")[0] < 50_000
    for log_url, slot in ((crashed_log, "crashed"), (clean_log, "clean")):
        capture(sdb, log_url, *proto("2"), "--slot", slot)
    assert ids(crashed_log) == list(range(1, 50001))
    assert _events(crashed_log) == _events(clean_log)
    streamed = sdb.query(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'crashed'"
    )[0][0]
    assert streamed > 0




def _safe_ids(log_url: str) -> list[int]:
    try:
        return ids(log_url)
    except Exception:
        return []


PEAK_RSS = Path(__file__).resolve().parents[2] / "bench" / "peak_rss.py"


@pytest.mark.slow
@pytest.mark.parametrize("version", PROTOCOLS)
def test_five_million_row_transaction_with_flat_memory(
    small_memory: ThrowawayPostgres, tmp_path: Path, version: str
) -> None:
    name = f"big{version}_{os.getpid()}"
    small_memory.execute(f'CREATE DATABASE "{name}"')
    db = Database(small_memory, name)
    try:
        db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        capture(db, log_url, *proto(version))
        db.execute("INSERT INTO items SELECT g, 'v' FROM generate_series(1, 5000000) g")
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(PEAK_RSS), *capture_command(db, log_url, *proto(version))],
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        fields = done.stderr.split()
        peak_mb = int(fields[fields.index("peak-rss-kb") + 1]) / 1024
        print(
            f"\n5M-row transaction, protocol {version}: peak RSS {peak_mb:.0f} MB, "
            f"{time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
        assert peak_mb < 300
        with __import__("duality.log.sqlite", fromlist=["SqliteLog"]).SqliteLog(log_url) as log:
            assert log.end_offsets("t.public.items") == {0: 5_000_000}
    finally:
        db.cleanup()
