"""The early start: where the stored position says where streaming starts, capture sends
``START_REPLICATION`` before it imports psycopg 3 and runs the preflight, so the server
decodes meanwhile (``Capture._start_early``). The source's plan keeps that stream only
when it streams from there straight away, and closes it before it touches the slot
otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from duality.log.sqlite import SqliteLog
from duality.runtime.capture import Capture, CaptureStats
from duality.sources.postgres.config import parse_config
from duality.sources.postgres.source import PostgresSource
from tests.helpers import Database, records

pytestmark = pytest.mark.postgres

TABLES = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 3) i
"""
TOPIC = "t.public.customers"


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def run(db: Database, log_url: str, **props: str) -> CaptureStats:
    config = parse_config({"topic.prefix": "t", **props}, source=db.url)
    with SqliteLog(log_url) as log:
        return Capture(config, log, once=True).run()


def ops(log_url: str) -> list[tuple[str, int]]:
    return [(v["op"], k["id"]) for k, v, _ in records(log_url, TOPIC) if v is not None]


def slot_active(db: Database) -> bool:
    return bool(db.query(
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'debezium'"
    )[0][0])


def test_a_resumed_capture_streams_on_the_early_connection(db: Database, log_url: str) -> None:
    db.execute(TABLES)
    assert not run(db, log_url).started_early  # a first start: slot and snapshot
    db.execute("INSERT INTO customers VALUES (10, 'ten')")
    db.execute("UPDATE customers SET name = 'one' WHERE id = 1")
    stats = run(db, log_url)
    assert stats.started_early
    assert stats.events == 2
    assert ops(log_url) == [("r", 1), ("r", 2), ("r", 3), ("c", 10), ("u", 1)]
    db.execute("DELETE FROM customers WHERE id = 2")
    stats = run(db, log_url)
    assert stats.started_early
    assert ops(log_url)[5:] == [("d", 2)]  # from where it stopped: nothing twice
    assert not slot_active(db)


def test_no_data_on_an_existing_slot_starts_early_from_the_slot(
    db: Database, log_url: str
) -> None:
    db.execute(TABLES)
    db.execute("CREATE PUBLICATION dbz_publication FOR ALL TABLES")
    db.execute("SELECT pg_create_logical_replication_slot('debezium', 'pgoutput')")
    db.execute("INSERT INTO customers VALUES (20, 'after the slot')")
    stats = run(db, log_url, **{"snapshot.mode": "no_data"})
    assert stats.started_early
    assert ops(log_url) == [("c", 20)]


def test_modes_that_snapshot_first_do_not_start_early(db: Database, log_url: str) -> None:
    db.execute(TABLES)
    run(db, log_url)
    db.execute("INSERT INTO customers VALUES (30, 'thirty')")
    stats = run(db, log_url, **{"snapshot.mode": "always"})
    assert not stats.started_early
    assert stats.snapshot_rows == 4
    assert ("c", 30) in ops(log_url)


def test_a_plan_that_does_not_stream_from_there_closes_the_early_stream_first(
    db: Database, log_url: str
) -> None:
    """The slot was acknowledged past the stored position elsewhere: with
    ``snapshot.mode=when_needed`` the plan takes a snapshot, so the early stream (at the
    stored position) must be gone before the plan returns, and capture goes on."""
    db.execute(TABLES)
    run(db, log_url)
    db.execute("INSERT INTO customers VALUES (40, 'consumed elsewhere')")
    db.execute("SELECT pg_replication_slot_advance('debezium', pg_current_wal_lsn())")
    config = parse_config({"topic.prefix": "t", "snapshot.mode": "when_needed"},
                          source=db.url)
    with SqliteLog(log_url) as log:
        capture = Capture(config, log, once=True)
        stored = capture._stored()
        early = capture._start_early(stored)
        assert early is not None
        assert slot_active(db)
        source = PostgresSource(config, say=lambda _m: None, warn=lambda _m: None,
                                early=early)
        try:
            plan = source.plan(stored)
            assert plan.snapshot is not None
            assert source.early is None
            assert not slot_active(db)
        finally:
            source.close()
    stats = run(db, log_url, **{"snapshot.mode": "when_needed"})
    assert not stats.started_early
    assert ("r", 40) in ops(log_url)
