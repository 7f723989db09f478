"""Capture into Kafka end to end: PostgreSQL → capture → Kafka (librdkafka's mock
cluster in a helper process) → plain Kafka consumers; kill -9 at random points; Kafka
frozen for over a minute mid-workload; --once giving up while Kafka is down."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from duality.events.partitioner import partition_for
from duality.log.kafka import KafkaLog
from duality.sources.postgres.pgoutput import parse_lsn
from tests.helpers import Database, capture, capture_command
from tests.kafka.support import MockKafka, consume_all, low_watermarks, unique

pytestmark = pytest.mark.postgres


@pytest.fixture
def mock() -> Iterator[MockKafka]:
    cluster = MockKafka()
    yield cluster
    cluster.stop()


def position_name(prefix: str) -> str:
    return orjson.dumps([prefix, {"server": prefix}]).decode()


def change_records(bootstrap: str, topic: str) -> list[tuple[Any, Any, Any]]:
    """(message, key, payload) of a change topic, read by a plain consumer."""
    out = []
    for message in consume_all(bootstrap, topic):
        key = orjson.loads(message.key()) if message.key() else None
        value = orjson.loads(message.value()) if message.value() else None
        out.append((message, key, None if value is None else value["payload"]))
    return out


def fold(rows: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
    """Latest ``after`` per key, per partition in offset order (what a table is)."""
    state: dict[str, Any] = {}
    for _, key, value in rows:
        k = orjson.dumps(key).decode()
        if value is None or value["op"] == "d":
            state.pop(k, None)
        elif value["op"] in ("c", "u", "r"):
            state[k] = value["after"]
    return state


def test_capture_into_kafka_as_debezium_on_connect_would_write_it(
    db: Database, mock: MockKafka
) -> None:
    db.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(10,2));\n"
        "INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.25 FROM generate_series(1, 300) g"
    )
    prefix = unique("shop")
    capture(db, mock.url, prefix=prefix)
    db.execute(
        "UPDATE accounts SET balance = balance + 1 WHERE id <= 100;\n"
        "DELETE FROM accounts WHERE id > 250;\n"
        "UPDATE accounts SET id = 1000 WHERE id = 7;\n"
        "INSERT INTO accounts VALUES (301, 'late', 0)"
    )
    capture(db, mock.url, prefix=prefix)
    topic = f"{prefix}.public.accounts"
    rows = change_records(mock.bootstrap, topic)
    count = len({m.partition() for m, _, _ in rows} | set(low_watermarks(mock.bootstrap, topic)))
    for message, _, value in rows:
        assert message.partition() == partition_for(message.key(), count)
        if value is not None:
            envelope = orjson.loads(message.value())
            assert envelope["schema"]["name"] == f"{prefix}.public.accounts.Envelope"
    assert any(m.key() == b'{"id":7}' and v is None for m, _, v in rows)  # PK change
    table = {int(orjson.loads(k)["id"]): v for k, v in fold(rows).items()}
    source = {r[0]: r for r in db.query("SELECT id, owner, balance::text FROM accounts")}
    assert sorted(table) == sorted(source)
    assert all(table[i]["owner"] == source[i][1] for i in source)
    # The position: Kafka Connect's offsets topic, Debezium's PostgreSQL offset keys.
    stored = [m for m in consume_all(mock.bootstrap, "connect-offsets")
              if m.key() == position_name(prefix).encode()]
    latest = orjson.loads(stored[-1].value())
    assert {"lsn", "lsn_proc", "lsn_commit", "txId", "ts_usec"} <= latest.keys()
    slot = db.query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE database = %s", (db.name,))
    assert parse_lsn(slot[0][0]) <= latest["lsn"]


def test_postgres_to_kafka_to_table_equals_the_source(
    db: Database, mock: MockKafka, tmp_path: Path
) -> None:
    """`duality table` folds the Kafka topic into a typed table (types from the schemas
    that travel with the records) equal to the source table."""
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), "
        "seen timestamptz, tags text[]);\n"
        "INSERT INTO items SELECT g, 'item ' || g, g * 0.25, "
        "'2024-05-01 12:00:00+00'::timestamptz + g * interval '1 hour', ARRAY['a', 'b'] "
        "FROM generate_series(1, 400) g"
    )
    prefix = unique("tbl")
    capture(db, mock.url, prefix=prefix)
    db.execute("UPDATE items SET price = price * 2, tags = ARRAY['c'] WHERE id % 7 = 0;\n"
               "DELETE FROM items WHERE id > 380;\n"
               "INSERT INTO items VALUES (1000, 'new', 9.99, now(), '{}')")
    capture(db, mock.url, prefix=prefix)
    result = subprocess.run(
        [sys.executable, "-m", "duality", "table", f"{prefix}.public.items", "--log", mock.url,
         "--store", f"sqlite://{tmp_path / 'tables.db'}", "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    table = {row["id"]: row for row in map(orjson.loads, result.stdout.splitlines())}
    source = db.query("SELECT id, name, price::text, tags FROM items ORDER BY id")
    assert sorted(table) == [r[0] for r in source]
    for id_, name, price, tags in source:
        assert (table[id_]["name"], table[id_]["price"], table[id_]["tags"]) == (
            name, price, tags)


def test_capture_in_exactly_once_mode(db: Database, mock: MockKafka) -> None:
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text);\n"
               "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g")
    prefix = unique("eos")
    eos = ("-p", "kafka.exactly.once.source.support=enabled")
    first = capture(db, mock.url, *eos, prefix=prefix)
    assert "without exactly-once" not in first.stderr
    db.execute("UPDATE t SET v = 'changed' WHERE id <= 50;\nDELETE FROM t WHERE id > 150")
    capture(db, mock.url, *eos, prefix=prefix)
    table = fold(change_records(mock.bootstrap, f"{prefix}.public.t"))
    assert table == {orjson.dumps({"id": i}).decode(): {"id": i, "v": "changed" if i <= 50
                                                        else f"v{i}"} for i in range(1, 151)}


def test_kafka_settings_come_from_a_config_file_section(
    db: Database, mock: MockKafka, tmp_path: Path
) -> None:
    """A Debezium connector config with a "kafka" object (or kafka.* keys) configures
    the Kafka log: here, payload-only values."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t VALUES (1, 'a')")
    prefix = unique("cfg")
    config = tmp_path / "connector.json"
    config.write_bytes(orjson.dumps({
        "name": prefix,
        "config": {"topic.prefix": prefix, "kafka": {"schemas.enable": False},
                   "kafka.client.id": "from-config"},
    }))
    result = subprocess.run(
        [sys.executable, "-m", "duality", "capture", "--config", str(config), "--source",
         db.url, "--log", mock.url, "--once"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    [message] = consume_all(mock.bootstrap, f"{prefix}.public.t")
    value = orjson.loads(message.value())
    assert "schema" not in value and value["after"] == {"id": 1, "v": "a"}


def test_the_demo_runs_on_kafka(mock: MockKafka) -> None:
    result = subprocess.run([sys.executable, "-m", "duality", "demo", "--log", mock.url],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "Ada Lovelace" in result.stdout and ".public.accounts" in result.stdout
    assert "compacts and expires records itself" in result.stderr


class Workload(threading.Thread):
    """One transaction at a time: a ledger row (a bigger batch every 25th), and the
    counter row updated to the transaction's number."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop_flag = threading.Event()
        self.transactions = 0
        self.seq = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop_flag.is_set():
                rows = 150 if self.transactions % 25 == 24 else 1
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO ledger (seq) SELECT %s + g FROM generate_series(1, %s) g",
                        (self.seq, rows),
                    )
                    conn.execute("UPDATE counter SET n = %s WHERE id = 1",
                                 (self.transactions + 1,))
                self.seq += rows
                self.transactions += 1
                time.sleep(0.005)


WORKLOAD_SCHEMA = (
    "CREATE TABLE ledger (seq bigint PRIMARY KEY);\n"
    "CREATE TABLE counter (id int PRIMARY KEY, n bigint);\n"
    "INSERT INTO counter VALUES (1, 0)"
)


def ends(log: KafkaLog, *topics: str) -> dict[tuple[str, int], int]:
    return {(t, p): o for t in topics for p, o in log.end_offsets(t).items()}


def test_kill_minus_9_at_random_points_loses_nothing_and_duplicates_within_the_bound(
    db: Database, mock: MockKafka
) -> None:
    """Duplicates may only be records delivered after the last stored position: every
    record a restarted capture writes again belongs to a transaction at or after the
    position stored when the previous one was killed. None after a clean stop."""
    db.execute(WORKLOAD_SCHEMA)
    prefix = unique("kill")
    topics = (f"{prefix}.public.ledger", f"{prefix}.public.counter")
    capture(db, mock.url, prefix=prefix)
    log = KafkaLog(mock.url, warn=lambda _m: None)
    runs: list[tuple[dict[tuple[str, int], int], int]] = []  # (start offsets, stored txId)
    workload = Workload(db.dsn)
    workload.start()
    rng = random.Random(8)
    try:
        for kill in range(9):
            start = ends(log, *topics)
            stored = (log.source_position(position_name(prefix)) or {}).get("txId") or 0
            runs.append((start, stored))
            proc = subprocess.Popen(capture_command(db, mock.url, prefix=prefix, once=False),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while ends(log, *topics) == start and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.05, 0.6))
            if kill == 8:
                proc.send_signal(signal.SIGTERM)  # the last stop is a clean one
                assert proc.wait(60) == 0
            else:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        workload.stop_flag.set()
        workload.join()
    start = ends(log, *topics)
    runs.append((start, (log.source_position(position_name(prefix)) or {}).get("txId") or 0))
    capture(db, mock.url, prefix=prefix)
    log.close()
    for topic in topics:
        assert set(low_watermarks(mock.bootstrap, topic).values()) == {0}, "mock dropped data"

    ledger = change_records(mock.bootstrap, topics[0])
    counter = change_records(mock.bootstrap, topics[1])
    # Nothing lost.
    assert {v["after"]["seq"] for _, _, v in ledger} == set(range(1, workload.seq + 1))
    # Per-key order: the counter's values, duplicates aside, in commit order.
    first_seen: list[int] = []
    for _, _, value in counter:
        n = value["after"]["n"]
        if n not in first_seen:
            first_seen.append(n)
    assert first_seen == list(range(workload.transactions + 1))
    # The bound, run by run.
    seen: set[tuple[str, str]] = set()
    for topic, rows in ((topics[0], ledger), (topics[1], counter)):
        for message, key, value in rows:
            identity = (topic, orjson.dumps([key, value["after"]]).decode())
            run = max((i for i, (offsets, _) in enumerate(runs)
                       if message.offset() >= offsets[(topic, message.partition())]),
                      default=-1)  # -1: the first capture (the snapshot)
            if identity in seen:
                stored_tx = runs[run][1]
                assert value["source"]["txId"] >= stored_tx, (run, value, stored_tx)
                assert run != len(runs) - 1, "a duplicate after a clean stop"
            seen.add(identity)
    assert workload.transactions > 100


def test_a_crash_between_delivery_and_position_duplicates_exactly_that_flush(
    db: Database, mock: MockKafka
) -> None:
    """Killed after a flush's records were acknowledged but before its position was
    stored: the restart writes those records again (the documented bound), and only
    them."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    prefix = unique("bound")
    topic = f"{prefix}.public.t"
    capture(db, mock.url, prefix=prefix)
    # One transaction bigger than capture's flush (20,000 records): flushed in parts,
    # each part stored with a position inside the transaction.
    db.execute("INSERT INTO t SELECT g FROM generate_series(1, 45000) g")
    crashed = capture(db, mock.url, prefix=prefix, check=False,
                      env={"DUALITY_CRASH_AT": "kafka.records-delivered:2"})
    assert crashed.returncode == -9
    with KafkaLog(mock.url, warn=lambda _m: None) as log:
        stored = log.source_position(position_name(prefix))
        before = sum(log.end_offsets(topic).values())
    assert stored is not None
    capture(db, mock.url, prefix=prefix)
    assert set(low_watermarks(mock.bootstrap, topic).values()) == {0}, "mock dropped data"
    ids = [v["after"]["id"] for _, _, v in change_records(mock.bootstrap, topic)]
    assert set(ids) == set(range(1, 45001))
    counts: dict[int, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    duplicated = {i for i, n in counts.items() if n > 1}
    # The first flush was stored with its position; the second was delivered without
    # one: exactly its records (rows in commit order, up to what Kafka held at the
    # crash) come twice, nothing before them and nothing Kafka did not have.
    assert max(counts.values()) == 2 and min(duplicated) > 1
    assert duplicated == set(range(min(duplicated), before + 1))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def slot_lsn(db: Database) -> int:
    rows = db.query("SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE database = %s", (db.name,))
    return parse_lsn(rows[0][0])


def test_kafka_frozen_for_over_a_minute_pauses_capture_then_it_recovers(
    db: Database, mock: MockKafka
) -> None:
    db.execute(WORKLOAD_SCHEMA)
    prefix = unique("frozen")
    counter_topic = f"{prefix}.public.counter"
    capture(db, mock.url, prefix=prefix)
    proc = subprocess.Popen(
        capture_command(db, mock.url, "-p", "retriable.restart.connector.wait.ms=1000",
                        prefix=prefix, once=False),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workload = Workload(db.dsn)
    workload.start()
    try:
        time.sleep(4)
        mock.freeze()
        frozen_at = time.monotonic()
        time.sleep(3)  # what was in flight at the freeze settles (or waits)
        slot_before = slot_lsn(db)
        samples = []
        while time.monotonic() - frozen_at < 65:
            samples.append(rss_mb(proc.pid))
            assert slot_lsn(db) == slot_before, "the slot advanced while Kafka was down"
            time.sleep(2)
        mock.thaw()
        time.sleep(5)
        workload.stop_flag.set()
        workload.join()
        wanted = workload.transactions
        deadline = time.monotonic() + 120
        last = -1
        while time.monotonic() < deadline:
            values = [v["after"]["n"] for _, _, v in change_records(mock.bootstrap,
                                                                    counter_topic)]
            last = max(values)
            if last == wanted:
                break
            time.sleep(1)
        assert last == wanted, "capture did not recover"
    finally:
        mock.thaw()
        workload.stop_flag.set()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert max(samples) < 200, samples  # MB: memory stayed bounded while paused
    assert max(samples) - min(samples) < 40, samples
    with KafkaLog(mock.url, warn=lambda _m: None) as log:
        stored = log.source_position(position_name(prefix))
    assert stored is not None and slot_lsn(db) <= stored["lsn"]
    ledger = change_records(mock.bootstrap, f"{prefix}.public.ledger")
    assert {v["after"]["seq"] for _, _, v in ledger} == set(range(1, workload.seq + 1))


def test_once_gives_up_with_exit_3_when_kafka_stays_down(db: Database, mock: MockKafka) -> None:
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    prefix = unique("down")
    capture(db, mock.url, prefix=prefix)
    db.execute("INSERT INTO t SELECT g FROM generate_series(1, 10) g")
    slot_before = slot_lsn(db)
    mock.freeze()
    try:
        started = time.monotonic()
        result = capture(db, mock.url, "-p", "retriable.restart.connector.wait.ms=1000",
                         "-p", "kafka.delivery.timeout.ms=3000", prefix=prefix, check=False,
                         timeout=180)
        elapsed = time.monotonic() - started
    finally:
        mock.thaw()
    assert result.returncode == 3, result.stderr
    assert "Kafka at" in result.stderr and "unavailable" in result.stderr
    assert elapsed < 90
    assert slot_lsn(db) == slot_before
    capture(db, mock.url, prefix=prefix)
    rows = change_records(mock.bootstrap, f"{prefix}.public.t")
    assert {v["after"]["id"] for _, _, v in rows if v} == set(range(1, 11))
