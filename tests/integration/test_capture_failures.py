"""Capture's mistakes and failures, as a new user meets them: each gets a clear message,
the right exit code, and loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.conftest import PASSWORD, PASSWORD_ROLE
from tests.helpers import Database, capture, capture_command, records

pytestmark = pytest.mark.postgres

TABLES = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2));
INSERT INTO customers SELECT i, 'c' || i, i FROM generate_series(1, 3) i
"""


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_password_is_a_configuration_error(db: Database, log_url: str) -> None:
    url = f"postgresql://{PASSWORD_ROLE}:wrong@127.0.0.1:{db.server.port}/{db.name}"
    cmd = capture_command(db, log_url)
    cmd[cmd.index("--source") + 1] = url
    assert_clean_error(run(cmd), 2, "password", "Check the user, password and database")
    good = url.replace(":wrong@", f":{PASSWORD}@")
    cmd[cmd.index("--source") + 1] = good
    result = run(cmd)  # the password is right now; the role lacks SELECT on nothing yet
    assert "password" not in result.stderr


def test_unreachable_server_is_unavailable(db: Database, log_url: str) -> None:
    cmd = capture_command(db, log_url, "-p", "retriable.restart.connector.wait.ms=200")
    cmd[cmd.index("--source") + 1] = "postgresql://postgres@127.0.0.1:1/x"
    assert_clean_error(run(cmd), 3, "cannot connect", "running and reachable")


def test_wal_level_replica_says_how_to_fix(log_url: str) -> None:
    with ThrowawayPostgres(settings={"wal_level": "replica"}) as server:
        db = Database(server, "postgres")
        assert_clean_error(
            run(capture_command(db, log_url)),
            2,
            "wal_level is 'replica'",
            "ALTER SYSTEM SET wal_level = logical",
        )


def test_table_name_typo_is_refused_with_a_suggestion(db: Database, log_url: str) -> None:
    db.execute(TABLES)
    result = capture(db, log_url, "--table", "public.customer", check=False)
    assert_clean_error(result, 2, "matches no table", "did you mean 'public.customers'")


def test_tables_without_identity_block_a_for_all_tables_publication(
    db: Database, log_url: str
) -> None:
    db.execute(TABLES + ";\nCREATE TABLE loose (a int, b text)")
    result = capture(db, log_url, check=False)
    assert_clean_error(
        result, 2, "public.loose", "REPLICA IDENTITY FULL", "publication.autocreate.mode=filtered"
    )
    assert not db.query("SELECT 1 FROM pg_publication")
    assert not db.query("SELECT 1 FROM pg_replication_slots WHERE database = current_database()")
    capture(
        db, log_url, "-p", "publication.autocreate.mode=filtered", "--table", "public.customers"
    )
    assert len(records(log_url, "t.public.customers")) == 3


def test_role_without_replication_privilege(db: Database, log_url: str) -> None:
    db.execute(TABLES + ";\nCREATE ROLE plain LOGIN")
    cmd = capture_command(db, log_url)
    cmd[cmd.index("--source") + 1] = f"postgresql://plain@127.0.0.1:{db.server.port}/{db.name}"
    assert_clean_error(
        run(cmd),
        2,
        "lacks the REPLICATION privilege",
        'ALTER ROLE "plain" WITH REPLICATION',
        "GRANT SELECT ON",
    )


def test_dropped_slot_is_a_gap_not_a_silent_new_slot(db: Database, log_url: str) -> None:
    db.execute(TABLES)
    capture(db, log_url)
    db.execute("INSERT INTO customers VALUES (10, 'lost', 0)")
    db.execute("SELECT pg_drop_replication_slot('debezium')")
    result = capture(db, log_url, check=False)
    assert_clean_error(result, 4, "does not exist", "changes since LSN", "--snapshot when_needed")
    assert not db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'debezium'")
    result = capture(db, log_url, "--snapshot", "when_needed")
    assert "taking a new snapshot" in result.stderr
    snapshots = [v for _, v, _ in records(log_url, "t.public.customers") if v["op"] == "r"]
    assert len(snapshots) == 3 + 4


def test_a_dropped_publication_is_a_gap_that_says_how_to_start_again(
    db: Database, log_url: str
) -> None:
    """pgoutput reads the publication as it was at each change: once it is dropped, the
    slot cannot be read past that point, and creating it again does not help."""
    db.execute(TABLES)
    capture(db, log_url)
    db.execute("DROP PUBLICATION dbz_publication")
    db.execute("INSERT INTO customers VALUES (12, 'after the drop', 0)")
    for _ in range(2):
        assert_clean_error(capture(db, log_url, check=False), 4,
                           'publication "dbz_publication" does not exist',
                           "Drop the replication slot", "--snapshot when_needed")
    db.execute("SELECT pg_drop_replication_slot('debezium')")
    capture(db, log_url, "--snapshot", "when_needed")
    rows = [v["after"]["id"] for _, v, _ in records(log_url, "t.public.customers")
            if v["op"] == "r"]
    assert 12 in rows


def test_slot_acknowledged_elsewhere_is_a_gap(db: Database, log_url: str) -> None:
    db.execute(TABLES)
    capture(db, log_url)
    db.execute("INSERT INTO customers VALUES (11, 'consumed elsewhere', 0)")
    db.execute("SELECT pg_replication_slot_advance('debezium', pg_current_wal_lsn())")
    assert_clean_error(
        capture(db, log_url, check=False),
        4,
        "acknowledged up to",
        "consumed elsewhere and are lost",
    )


def test_crash_mid_snapshot_restarts_it_cleanly(db: Database, log_url: str) -> None:
    db.execute(
        "CREATE TABLE big (id int PRIMARY KEY, v text);\n"
        "INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 12000) i"
    )
    crashed = capture(
        db, log_url, env={"DUALITY_CRASH_AT": "capture.snapshot-batch:2"}, check=False
    )
    assert crashed.returncode == -9
    with SqliteLog(log_url) as log:  # nothing of the half snapshot is visible
        info = log.describe("t.public.big")
        assert info is None or info.records == 0
    assert db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'debezium'")
    db.execute("INSERT INTO big VALUES (20000, 'after the crash')")
    result = capture(db, log_url)
    assert "did not complete" in result.stderr
    got = records(log_url, "t.public.big")
    assert sorted(k["id"] for k, _, _ in got) == [*range(1, 12001), 20000]
    assert {v["op"] for _, v, _ in got} == {"r"}


def test_crash_after_marker_before_slot(db: Database, log_url: str) -> None:
    db.execute(TABLES)
    crashed = capture(db, log_url, env={"DUALITY_CRASH_AT": "capture.marker-stored:1"}, check=False)
    assert crashed.returncode == -9
    capture(db, log_url)
    assert len(records(log_url, "t.public.customers")) == 3


def test_second_capture_on_the_same_slot_is_refused(db: Database, tmp_path: Path) -> None:
    db.execute(TABLES)
    first_log = f"sqlite://{tmp_path / 'a.db'}"
    capture(db, first_log)
    runner = subprocess.Popen(
        capture_command(db, first_log, once=False), stderr=subprocess.PIPE, text=True
    )
    try:
        assert runner.stderr is not None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = runner.stderr.readline()
            if "streaming from" in line:
                break
        second = capture(
            db,
            first_log,
            "-p",
            "slot.max.retries=1",
            "-p",
            "slot.retry.delay.ms=100",
            "-p",
            "retriable.restart.connector.wait.ms=100",
            check=False,
        )
        assert_clean_error(second, 3, "in use by another process", "only one capture")
    finally:
        runner.terminate()
        assert runner.wait(timeout=30) == 0


def test_debezium_connector_config_runs_as_is(db: Database, tmp_path: Path) -> None:
    db.execute(TABLES + ";\nCREATE TABLE other (id int PRIMARY KEY)")
    config = {
        "name": "inventory-connector",
        "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "database.hostname": "127.0.0.1",
            "database.port": str(db.server.port),
            "database.user": "postgres",
            "database.password": "ignored-by-trust",
            "database.dbname": db.name,
            "topic.prefix": "dbserver1",
            "plugin.name": "pgoutput",
            "slot.name": "inventory_slot",
            "publication.name": "inventory_pub",
            "publication.autocreate.mode": "filtered",
            "table.include.list": "public.customers",
            "decimal.handling.mode": "string",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "unwrap",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        },
    }
    path = tmp_path / "connector.json"
    path.write_text(json.dumps(config))
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    result = run(
        [
            sys.executable,
            "-m",
            "duality",
            "capture",
            "--config",
            str(path),
            "--log",
            log_url,
            "--once",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "'key.converter' has no effect" in result.stderr
    got = records(log_url, "dbserver1.public.customers")
    # The config's ExtractNewRecordState transform applies: values are plain rows.
    assert [v["balance"] for _, v, _ in got] == ["1.00", "2.00", "3.00"]
    assert db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'inventory_slot'")
    assert db.query(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = 'inventory_pub'"
    ) == [("customers",)]
    config["config"]["decimal.handing.mode"] = "string"
    path.write_text(json.dumps(config))
    result = run(
        [
            sys.executable,
            "-m",
            "duality",
            "capture",
            "--config",
            str(path),
            "--log",
            log_url,
            "--once",
        ]
    )
    assert_clean_error(
        result,
        2,
        "unknown connector property 'decimal.handing.mode'",
        "did you mean 'decimal.handling.mode'",
    )


def test_running_capture_survives_a_database_restart(tmp_path: Path) -> None:
    """Without --once, an unavailable database is retried with backoff; capture resumes
    from its stored position when the server is back."""
    with ThrowawayPostgres() as server:
        server.create_database("app")
        db = Database(server, "app")
        db.execute(TABLES)
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        runner = subprocess.Popen(
            capture_command(
                db, log_url, "-p", "retriable.restart.connector.wait.ms=500", once=False
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert runner.stderr is not None
            lines: list[str] = []
            for line in runner.stderr:
                lines.append(line)
                if "streaming from" in line:
                    break
            server.restart()
            db.execute("INSERT INTO customers VALUES (50, 'after restart', 5)")
            deadline = time.time() + 60
            while time.time() < deadline:
                if any(k == {"id": 50} for k, _, _ in _safe_records(log_url)):
                    break
                time.sleep(0.2)
        finally:
            runner.terminate()
            _, err = runner.communicate(timeout=30)
        assert runner.returncode == 0, err
        assert "Retrying in" in "".join(lines) + err
        keys = [k["id"] for k, v, _ in records(log_url, "t.public.customers") if v]
        assert keys == [1, 2, 3, 50]


def _safe_records(log_url: str) -> list[tuple[object, object, object]]:
    try:
        return records(log_url, "t.public.customers")
    except Exception:
        return []


def test_embedded_server_from_pypi_runs_capture(tmp_path: Path) -> None:
    """Without server binaries and not as root, the demo falls back to the pgserver
    package's embedded PostgreSQL; it must be a working logical-replication server."""
    from duality.sources.postgres.throwaway import embedded_bindir

    bindir = embedded_bindir()
    if bindir is None:
        pytest.skip("the pgserver package is not installed (it is in the test extra)")
    if os.geteuid() == 0:
        # As root the server runs as an unprivileged account, which cannot reach the
        # binaries inside a virtual environment in a private directory (a fresh clone in
        # a mktemp directory): give it a copy it can read.
        shared = Path(tempfile.mkdtemp(prefix="duality-pgserver-"))
        shared.chmod(0o755)
        copied = shared
        install, libs = bindir.parent, bindir.parent.parent.parent / "pgserver.libs"
        shutil.copytree(install, shared / "pgserver" / "pginstall", symlinks=True)
        if libs.is_dir():  # the binaries' rpath: $ORIGIN/../../../pgserver.libs
            shutil.copytree(libs, shared / "pgserver.libs", symlinks=True)
        (shared / "pgserver").chmod(0o755)
        bindir = shared / "pgserver" / "pginstall" / "bin"
    else:
        copied = None
    try:
        _capture_with_embedded_server(bindir, tmp_path)
    finally:
        if copied is not None:
            shutil.rmtree(copied, ignore_errors=True)


def _capture_with_embedded_server(bindir: Path, tmp_path: Path) -> None:
    with ThrowawayPostgres(bindir=bindir) as server:
        server.create_database("app")
        db = Database(server, "app")
        db.execute(TABLES)
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        capture(db, log_url)
        assert len(records(log_url, "t.public.customers")) == 3


def test_two_tables_on_one_topic_are_refused(db: Database, tmp_path: Path) -> None:
    """A topic name holds only what Kafka allows (others become ``_``, as in Debezium),
    so ``"a b"`` and ``a_b`` would share a topic and mix their rows: refused before
    anything is written, and when such a table appears while capture runs (exit 2, the
    offending change not written)."""
    clash = ('"public"."a b" and "public"."a_b" would both be written to topic '
             "'t.public.a_b'")
    db.execute('CREATE TABLE "a b" (id int PRIMARY KEY, v text);\n'
               "CREATE TABLE a_b (id int PRIMARY KEY, v text);\n"
               "INSERT INTO \"a b\" VALUES (1, 'space')")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    assert_clean_error(capture(db, log_url, check=False), 2, clash, "table.exclude.list")
    if (tmp_path / "log.db").exists():
        with SqliteLog(log_url, create=False) as log:
            assert log.list_topics() == []
    db.execute("DROP TABLE a_b")
    runner = subprocess.Popen(capture_command(db, log_url, once=False),
                              stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stderr is not None
        deadline = time.time() + 60
        while time.time() < deadline and "streaming from" not in runner.stderr.readline():
            pass
        db.execute("CREATE TABLE a_b (id int PRIMARY KEY, v text);\n"
                   "INSERT INTO a_b VALUES (2, 'underscore')")
        assert runner.wait(timeout=60) == 2
        stderr = runner.stderr.read()
    finally:
        if runner.poll() is None:
            runner.kill()
    assert clash in stderr, stderr
    assert "Traceback" not in stderr
    assert [(k["id"], v["after"]["v"]) for k, v, _ in records(log_url, "t.public.a_b")] == [
        (1, "space")]


def test_a_setting_libpq_refuses_is_not_retried(db: Database, log_url: str) -> None:
    """A port that is no number, an unknown sslmode, a replication parameter or a
    statement_timeout too short for anything is a configuration mistake (exit 2 at once),
    not a server that is down (retried, then exit 3)."""
    for url in (f"postgresql://postgres@127.0.0.1:abc/{db.name}",
                f"host=127.0.0.1 port={db.server.port} dbname={db.name} sslmode=bogus"):
        cmd = capture_command(db, log_url)
        cmd[cmd.index("--source") + 1] = url
        started = time.monotonic()
        assert_clean_error(run(cmd), 2, "invalid", "Fix that setting")
        assert time.monotonic() - started < 20
    base = f"postgresql://postgres@127.0.0.1:{db.server.port}/{db.name}"
    for url, said in ((f"{base}?replication=database", "sets replication='database': remove it"),
                      (f"{base}?options=-c%20statement_timeout%3D1", "statement_timeout")):
        cmd = capture_command(db, log_url)
        cmd[cmd.index("--source") + 1] = url
        started = time.monotonic()
        assert_clean_error(run(cmd), 2, said)
        assert time.monotonic() - started < 20


def test_a_topic_name_kafka_cannot_hold_is_refused_before_anything_is_created(
    db: Database, tmp_path: Path
) -> None:
    db.execute(f"CREATE TABLE {'t' * 60} (id int PRIMARY KEY)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    refused = capture(db, log_url, prefix="p" * 190, check=False)
    assert_clean_error(refused, 2, "topic name", "choose a shorter topic.prefix")
    assert db.query("SELECT count(*) FROM pg_replication_slots "
                    "WHERE database = current_database()") == [(0,)]
