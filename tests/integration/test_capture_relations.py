"""Changes are captured as the table was when they were made, as pgoutput's Relation
message describes it (schema, name, columns, replica identity, key flags), not as the
catalog says now: capture may be behind a rename, a drop, a new primary key, or read a
transaction that is still in progress (protocol 2) and made the table."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from duality.events.schema import RecordSchema
from duality.log.sqlite import SqliteLog
from tests.helpers import Database, capture, capture_command, records, stderr_line

pytestmark = pytest.mark.postgres


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def changes(log_url: str, topic: str) -> list[tuple[Any, str | None, Any]]:
    """(key, op, after or before) of each record; op None for a tombstone."""
    out: list[tuple[Any, str | None, Any]] = []
    for key, value, _ in records(log_url, topic):
        if value is None:
            out.append((key, None, None))
        else:
            out.append((key, value["op"], value["after"] or value["before"]))
    return out


def schemas(log_url: str, topic: str) -> list[RecordSchema]:
    with SqliteLog(log_url, create=False) as log:
        ids = [r.schema_id for r in log.read(topic, 0, 0, 1_000_000)]
        return [log.schema(i) for i in ids if i is not None]


def test_changes_to_a_table_dropped_since_keep_their_key(db: Database, log_url: str) -> None:
    """The catalog no longer knows the table, but the Relation message's key flags say
    which columns were its primary key: the events keep their keys (a null key would be
    refused by the compacted topic on every restart), also for a table of the same name
    made since."""
    db.execute("CREATE TABLE a (id int PRIMARY KEY, v text);\n"
               "INSERT INTO a VALUES (1, 'x')")
    capture(db, log_url)
    db.execute("INSERT INTO a VALUES (2, 'y');\n"
               "UPDATE a SET v = 'x2' WHERE id = 1;\n"
               "DELETE FROM a WHERE id = 2;\n"
               "DROP TABLE a;\n"
               "CREATE TABLE a (code text PRIMARY KEY);\n"
               "INSERT INTO a VALUES ('k')")
    capture(db, log_url)
    assert changes(log_url, "t.public.a") == [
        ({"id": 1}, "r", {"id": 1, "v": "x"}),
        ({"id": 2}, "c", {"id": 2, "v": "y"}),
        ({"id": 1}, "u", {"id": 1, "v": "x2"}),
        ({"id": 2}, "d", {"id": 2, "v": None}),
        ({"id": 2}, None, None),
        ({"code": "k"}, "c", {"code": "k"}),
    ]
    first, dropped = schemas(log_url, "t.public.a")[:2]
    assert dropped.meta.primary_key == ("id",)
    assert dropped.canonical() == first.canonical()  # the key column NOT NULL, as it was


def test_a_full_identity_table_dropped_before_capture_started_keeps_its_key(
    db: Database, log_url: str
) -> None:
    """Under REPLICA IDENTITY FULL the Relation message marks every column, not the
    primary key, and the catalog no longer knows the table: the key comes from the
    schema the log last holds for its topic (null keys would stop capture for good)."""
    db.execute("CREATE TABLE a (id int PRIMARY KEY, v text);\n"
               "ALTER TABLE a REPLICA IDENTITY FULL;\n"
               "INSERT INTO a VALUES (1, 'x')")
    capture(db, log_url)
    db.execute("INSERT INTO a VALUES (2, 'y');\nDELETE FROM a WHERE id = 1;\nDROP TABLE a")
    capture(db, log_url)
    assert [(key, op) for key, op, _ in changes(log_url, "t.public.a")] == [
        ({"id": 1}, "r"), ({"id": 2}, "c"), ({"id": 1}, "d"), ({"id": 1}, None)]


def test_a_type_dropped_with_its_table_is_captured_in_its_text_form(
    db: Database, log_url: str
) -> None:
    """A type the catalog no longer holds does not stop capture: its values are
    captured as text, with a warning."""
    db.execute("CREATE TYPE mood AS ENUM ('sad', 'ok');\n"
               "CREATE TABLE a (id int PRIMARY KEY, m mood)")
    capture(db, log_url)
    db.execute("INSERT INTO a VALUES (1, 'ok');\nDROP TABLE a;\nDROP TYPE mood")
    result = capture(db, log_url)
    assert "public.a.m: its type" in result.stderr and "text form" in result.stderr
    assert changes(log_url, "t.public.a") == [({"id": 1}, "c", {"id": 1, "m": "ok"})]
    assert schemas(log_url, "t.public.a")[0].meta.source_types == {"id": "integer", "m": "text"}


def test_changes_before_a_rename_keep_the_old_name(db: Database, log_url: str) -> None:
    """Debezium names a change's table (topic, ``source.table``, ``source.schema``) by
    the Relation message: changes made before ALTER TABLE … RENAME TO or SET SCHEMA
    belong to the old name."""
    db.execute("CREATE TABLE a (id int PRIMARY KEY, v text);\n"
               "CREATE SCHEMA other;\n"
               "INSERT INTO a VALUES (1, 'x')")
    capture(db, log_url)
    db.execute("INSERT INTO a VALUES (2, 'y');\n"
               "UPDATE a SET v = 'x2' WHERE id = 1;\n"
               "ALTER TABLE a RENAME TO b;\n"
               "INSERT INTO b VALUES (3, 'z');\n"
               "ALTER TABLE b SET SCHEMA other;\n"
               "INSERT INTO other.b VALUES (4, 'w')")
    result = capture(db, log_url)

    def where(topic: str) -> list[tuple[int, str, str, str]]:
        return [(k["id"], v["op"], v["source"]["schema"], v["source"]["table"])
                for k, v, _ in records(log_url, topic)]

    assert where("t.public.a") == [
        (1, "r", "public", "a"), (2, "c", "public", "a"), (1, "u", "public", "a")]
    assert where("t.public.b") == [(3, "c", "public", "b")]
    assert where("t.other.b") == [(4, "c", "other", "b")]
    assert "schema of public.a changed: renamed to public.b" in result.stderr


def test_a_primary_key_changed_since_does_not_key_older_changes(
    db: Database, log_url: str
) -> None:
    """Under REPLICA IDENTITY DEFAULT the key flags are the primary key when the change
    was made: a delete made before the key moved to another column is keyed by the
    column its old tuple holds, not by the new key (which it lacks)."""
    db.execute("CREATE TABLE a (id int PRIMARY KEY, k int NOT NULL UNIQUE);\n"
               "INSERT INTO a VALUES (1, 10), (2, 20)")
    capture(db, log_url)
    db.execute("DELETE FROM a WHERE id = 1;\n"
               "ALTER TABLE a DROP CONSTRAINT a_pkey, ADD PRIMARY KEY (k);\n"
               "DELETE FROM a WHERE id = 2")
    capture(db, log_url)
    assert [(key, op) for key, op, _ in changes(log_url, "t.public.a")] == [
        ({"id": 1}, "r"), ({"id": 2}, "r"),
        ({"id": 1}, "d"), ({"id": 1}, None),
        ({"k": 20}, "d"), ({"k": 20}, None),
    ]


def test_a_table_made_by_a_streamed_transaction_is_captured_as_with_protocol_1(
    sdb: Database, tmp_path: Path
) -> None:
    """Streamed live (protocol 2), the Relation message of a table made by the same
    transaction arrives while the catalog cannot see the table yet: its events still
    get their key and a compacted topic, and equal what protocol 1 (sent at commit)
    gives. (What only the catalog knows, NOT NULL and defaults of other columns, is
    not known then; this table has none.)"""
    logs = {v: f"sqlite://{tmp_path / f'log{v}.db'}" for v in ("1", "2")}
    for version, log_url in logs.items():
        capture(sdb, log_url, *_proto(version))
    runner = subprocess.Popen(capture_command(sdb, logs["2"], *_proto("2"), once=False),
                              stderr=subprocess.PIPE, text=True)
    try:
        assert stderr_line(runner, "streaming from"), "capture did not start streaming"
        with psycopg.connect(sdb.dsn) as conn:
            conn.execute("CREATE TABLE n (id int PRIMARY KEY, v text, w int)")
            conn.execute("INSERT INTO n SELECT g, repeat('x', 40), g "
                         "FROM generate_series(1, 2500) g")
            lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
            conn.execute("INSERT INTO n SELECT g, repeat('x', 40), g "
                         "FROM generate_series(2501, 5000) g")
            conn.execute("DELETE FROM n WHERE id = 7")
            _wait_until_sent(sdb, lsn)
            time.sleep(1.0)  # capture reads the Relation message before the commit
        deadline = time.time() + 60
        while time.time() < deadline and len(_events(logs["2"], "t.public.n")) < 5002:
            time.sleep(0.3)
    finally:
        runner.send_signal(signal.SIGTERM)
        _, live = runner.communicate(timeout=60)
    assert runner.returncode == 0, live
    capture(sdb, logs["1"], *_proto("1"))
    assert sdb.query("SELECT stream_txns > 0 FROM pg_stat_replication_slots "
                     "WHERE slot_name = 'p2'") == [(True,)]
    one, two = (_events(logs[v], "t.public.n") for v in ("1", "2"))
    assert len(one) == 5002 and two == one
    assert one[-2:] == [({"id": 7}, "d", {"id": 7, "v": None, "w": None}), ({"id": 7}, None, None)]
    assert [s.canonical() for s in schemas(logs["2"], "t.public.n")] == [
        s.canonical() for s in schemas(logs["1"], "t.public.n")]
    with SqliteLog(logs["2"], create=False) as log:
        info = log.describe("t.public.n")
        assert info is not None and info.config.compacted


def _proto(version: str) -> list[str]:
    return ["--slot", f"p{version}", "-p", f"pgoutput.protocol.version={version}"]


def _events(log_url: str, topic: str) -> list[tuple[Any, Any, Any]]:
    """(key, op, after or before) of each record, but [] while the topic is missing."""
    try:
        return changes(log_url, topic)
    except Exception:
        return []


def _wait_until_sent(db: Database, lsn: str) -> None:
    """Until the WAL sender has read the WAL up to ``lsn``: past 64 kB of a transaction,
    so its first part, with the Relation message, was streamed."""
    deadline = time.time() + 30
    while time.time() < deadline:
        sent = db.query("SELECT bool_or(sent_lsn >= %s::pg_lsn) FROM pg_stat_replication",
                        (lsn,))[0][0]
        if sent:
            return
        time.sleep(0.1)
    raise AssertionError("the WAL sender did not send the streamed transaction")
