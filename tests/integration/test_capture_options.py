"""Capture options beyond the defaults: flattened output, masking, heartbeats,
skipped operations, message prefixes, a Debezium config from a real deployment."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson
import pytest

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database, capture, capture_command, records

pytestmark = pytest.mark.postgres

PEOPLE = """
CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, ssn text, email text, note text);
INSERT INTO people VALUES (1, 'Ada', '111-22-3333', 'ada@example.com', 'first')
"""


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def values(log_url: str, topic: str) -> list[object]:
    return [v for _, v, _ in records(log_url, topic)]


UNWRAP = [
    "-p",
    "transforms=unwrap",
    "-p",
    "transforms.unwrap.type=io.debezium.transforms.ExtractNewRecordState",
]


def test_extract_new_record_state_rewrite_with_added_fields(db: Database, log_url: str) -> None:
    db.execute(PEOPLE)
    args = [
        *UNWRAP,
        "-p",
        "transforms.unwrap.delete.tombstone.handling.mode=rewrite",
        "-p",
        "transforms.unwrap.add.fields=op,table,source.ts_ms",
    ]
    capture(db, log_url, *args)
    db.execute(
        "INSERT INTO people VALUES (2, 'Grace', NULL, NULL, NULL);\n"
        "UPDATE people SET note = 'second' WHERE id = 1;\n"
        "DELETE FROM people WHERE id = 2"
    )
    capture(db, log_url, *args)
    got = values(log_url, "t.public.people")
    assert [v["__op"] for v in got] == ["r", "c", "u", "d"]  # type: ignore[index]
    assert got[0] == {
        "id": 1,
        "name": "Ada",
        "ssn": "111-22-3333",
        "email": "ada@example.com",
        "note": "first",
        "__op": "r",
        "__table": "people",
        "__source_ts_ms": got[0]["__source_ts_ms"],
        "__deleted": "false",
    }  # type: ignore[index]
    assert got[3]["__deleted"] == "true" and got[3]["id"] == 2  # type: ignore[index]
    with SqliteLog(log_url) as log:
        record = log.read("t.public.people", 0, 0, 1)[0]
        schema = log.schema(record.schema_id or 0)
    assert schema.value is not None and schema.value.name == "t.public.people.Value"
    assert [f.name for f in schema.value.fields][-4:] == [
        "__op",
        "__table",
        "__source_ts_ms",
        "__deleted",
    ]


def test_after_state_only_turns_deletes_into_tombstones(db: Database, log_url: str) -> None:
    db.execute(PEOPLE)
    capture(db, log_url, "-p", "after.state.only=true")
    db.execute("UPDATE people SET note = 'x' WHERE id = 1;\nDELETE FROM people WHERE id = 1")
    capture(db, log_url, "-p", "after.state.only=true")
    got = records(log_url, "t.public.people")
    assert [(k, v) for k, v, _ in got] == [
        (
            {"id": 1},
            {
                "id": 1,
                "name": "Ada",
                "ssn": "111-22-3333",
                "email": "ada@example.com",
                "note": "first",
            },
        ),
        (
            {"id": 1},
            {"id": 1, "name": "Ada", "ssn": "111-22-3333", "email": "ada@example.com", "note": "x"},
        ),
        ({"id": 1}, None),
    ]


def test_masked_values_never_appear_anywhere(db: Database, tmp_path: Path) -> None:
    secret = "s3cr3t-4242-planted"
    db.execute(
        "CREATE TABLE vault (id int PRIMARY KEY, owner text NOT NULL, pin text, "
        "code text, note text);\n"
        f"INSERT INTO vault VALUES (1, 'x', '{secret}', '{secret}', '{secret}')"
    )
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    args = [
        "-p",
        "column.mask.with.6.chars=public.vault.pin",
        "-p",
        "column.mask.hash.v2.SHA-256.with.salt.pepper=public.vault.code",
        "-p",
        "column.exclude.list=public.vault.note",
    ]
    outputs = [capture(db, log_url, *args)]
    db.execute(
        f"UPDATE vault SET owner = 'y', pin = '{secret}x' WHERE id = 1;\n"
        f"INSERT INTO vault VALUES (2, 'z', '{secret}', '{secret}', '{secret}');\n"
        "DELETE FROM vault WHERE id = 2"
    )
    outputs.append(capture(db, log_url, *args))
    tail = subprocess.run(
        ["python3", "-c", "import sys"], capture_output=True, text=True, check=False
    )
    got = values(log_url, "t.public.vault")
    assert got[0]["after"]["pin"] == "******"  # type: ignore[index]
    assert "note" not in got[0]["after"]  # type: ignore[operator]
    blobs = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    for text in [*(o.stdout + o.stderr for o in outputs), tail.stdout]:
        assert secret not in text
    for blob in blobs:
        assert secret.encode() not in blob


def test_skipped_operations_and_message_prefixes(db: Database, log_url: str) -> None:
    db.execute(PEOPLE)
    args = ["-p", "skipped.operations=u,t", "-p", "message.prefix.include.list=audit.*"]
    capture(db, log_url, *args)
    db.execute(
        "UPDATE people SET note = 'skipped' WHERE id = 1;\n"
        "SELECT pg_logical_emit_message(true, 'audit', 'kept');\n"
        "SELECT pg_logical_emit_message(true, 'noise', 'dropped');\n"
        "INSERT INTO people VALUES (3, 'Barbara', NULL, NULL, NULL)"
    )
    capture(db, log_url, *args)
    assert [v["op"] for v in values(log_url, "t.public.people")] == ["r", "c"]  # type: ignore[index]
    messages = values(log_url, "t.message")
    assert [(m["message"]["prefix"], m["op"]) for m in messages] == [("audit", "m")]  # type: ignore[index]


def test_truncates_on_a_delete_topic(db: Database, log_url: str) -> None:
    db.execute(PEOPLE)
    result = capture(db, log_url, "-p", "skipped.operations=none")
    assert "may be truncated" in result.stderr
    db.execute("TRUNCATE people")
    capture(db, log_url, "-p", "skipped.operations=none")
    got = records(log_url, "t.public.people")
    assert [(k, v["op"]) for k, v, _ in got] == [({"id": 1}, "r"), (None, "t")]  # type: ignore[index]
    with SqliteLog(log_url) as log:
        info = log.describe("t.public.people")
        assert info is not None and info.config.cleanup_policy == "delete"


def test_truncates_refused_for_an_existing_compacted_topic(db: Database, log_url: str) -> None:
    db.execute(PEOPLE)
    capture(db, log_url)
    result = capture(db, log_url, "-p", "skipped.operations=none", check=False)
    assert result.returncode == 2
    assert "skipped.operations=t" in result.stderr and "compacted" in result.stderr


def test_heartbeats_advance_an_idle_slot_while_another_database_is_busy(
    db: Database, tmp_path: Path
) -> None:
    db.execute(PEOPLE)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(db, log_url)
    busy_name = db.name + "_busy"
    db.server.execute(f'CREATE DATABASE "{busy_name}"')
    busy = Database(db.server, busy_name)
    busy.execute("CREATE TABLE churn (id serial PRIMARY KEY, v text)")

    def slot_lsn() -> str:
        rows = db.query(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
            "WHERE slot_name = 'debezium' AND database = current_database()"
        )
        return str(rows[0][0])

    before = slot_lsn()
    runner = subprocess.Popen(
        capture_command(db, log_url, "-p", "heartbeat.interval.ms=200", once=False),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(40):
            busy.execute("INSERT INTO churn (v) SELECT md5(g::text) FROM generate_series(1, 200) g")
            time.sleep(0.05)
        time.sleep(1.5)
    finally:
        runner.terminate()
        assert runner.wait(timeout=30) == 0
        busy.cleanup()
    after = slot_lsn()
    assert _lsn(after) > _lsn(before)
    beats = records(log_url, "__debezium-heartbeat.t")
    assert len(beats) >= 3
    assert beats[0][0] == {"serverName": "t"} and isinstance(beats[0][1]["ts_ms"], int)  # type: ignore[index]


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def test_config_from_a_real_deployment_runs_unchanged(db: Database, tmp_path: Path) -> None:
    """A connector config as teams run it: decimals as strings, masking, include lists,
    the unwrap transform and converter settings that only matter to Kafka Connect."""
    db.execute(
        "CREATE SCHEMA sales;\n"
        "CREATE TABLE sales.orders (id bigint PRIMARY KEY, customer text NOT NULL, "
        "email text, total numeric(12,2), placed timestamptz);\n"
        "CREATE TABLE sales.audit (id int PRIMARY KEY, what text);\n"
        "INSERT INTO sales.orders VALUES (1, 'acme', 'buyer@acme.test', 99.90, "
        "'2024-05-01 10:00:00+00')"
    )
    config = {
        "name": "sales-cdc",
        "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "plugin.name": "pgoutput",
            "database.hostname": "127.0.0.1",
            "database.port": str(db.server.port),
            "database.user": "postgres",
            "database.password": "unused",
            "database.dbname": db.name,
            "topic.prefix": "prod",
            "schema.include.list": "sales",
            "table.include.list": "sales\\.orders",
            "publication.autocreate.mode": "filtered",
            "slot.name": "sales_cdc",
            "decimal.handling.mode": "string",
            "time.precision.mode": "adaptive_time_microseconds",
            "column.mask.hash.SHA-256.with.salt.x9": "sales.orders.email",
            "tombstones.on.delete": "true",
            "heartbeat.interval.ms": "10000",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "route",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": "prod\\.sales\\.(.*)",
            "transforms.route.replacement": "$1",
            "errors.tolerance": "none",
            "snapshot.mode": "initial",
        },
    }
    path = tmp_path / "sales.json"
    path.write_bytes(orjson.dumps(config))
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    import sys

    result = subprocess.run(
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
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "transform route (org.apache.kafka.connect.transforms.RegexRouter) is not applied"
        in result.stderr
    )
    (order,) = values(log_url, "prod.sales.orders")
    assert order["after"]["total"] == "99.90"  # type: ignore[index]
    assert order["after"]["email"] != "buyer@acme.test"  # type: ignore[index]
    assert len(order["after"]["email"]) == 64  # type: ignore[index]
    with SqliteLog(log_url) as log:
        assert [t.name for t in log.list_topics()] == ["prod.sales.orders"]


def test_unknown_types_warn_or_refuse(pg: ThrowawayPostgres, db: Database, log_url: str) -> None:
    db.execute(
        "CREATE TABLE shapes (id int PRIMARY KEY, b box);\n"
        "INSERT INTO shapes VALUES (1, '((0,0),(1,1))')"
    )
    result = capture(db, log_url)
    assert "public.shapes.b: type not mapped by Debezium" in result.stderr
    assert values(log_url, "t.public.shapes")[0]["after"]["b"] == "(1,1),(0,0)"  # type: ignore[index]


def test_unknown_types_refused_when_configured(db: Database, log_url: str) -> None:
    db.execute("CREATE TABLE shapes (id int PRIMARY KEY, b box, l lseg)")
    result = capture(db, log_url, "-p", "unknown.datatypes.handling=fail", check=False)
    assert result.returncode == 2
    assert "public.shapes.b, public.shapes.l" in result.stderr
    assert "column.exclude.list" in result.stderr
    assert not db.query("SELECT 1 FROM pg_replication_slots WHERE database = current_database()")


def test_schema_changes_are_reported(db: Database, log_url: str) -> None:
    db.execute("CREATE TABLE evolving (id int PRIMARY KEY, a text, b int)")
    capture(db, log_url)
    db.execute(
        "INSERT INTO evolving VALUES (1, 'one', 1);\n"
        "ALTER TABLE evolving ADD COLUMN c numeric(6,2);\n"
        "INSERT INTO evolving VALUES (2, 'two', 2, 2.5);\n"
        "ALTER TABLE evolving ALTER COLUMN b TYPE text;\n"
        "INSERT INTO evolving VALUES (3, 'three', 'x', 3)"
    )
    result = capture(db, log_url)
    assert "schema of public.evolving changed: added c (numeric(6,2))" in result.stderr
    assert "retyped b integer -> text" in result.stderr
    got = values(log_url, "t.public.evolving")
    assert [v["after"] for v in got] == [  # type: ignore[index]
        {"id": 1, "a": "one", "b": 1},
        {"id": 2, "a": "two", "b": 2, "c": "APo="},  # 2.50: unscaled 250
        {"id": 3, "a": "three", "b": "x", "c": "ASw="},  # 3.00: unscaled 300
    ]
    with SqliteLog(log_url) as log:
        ids = {r.schema_id for r in log.read("t.public.evolving", 0, 0, 10)}
    assert len(ids) == 3


def test_existing_publication_that_breaks_updates_is_refused(db: Database, log_url: str) -> None:
    db.execute(
        "CREATE TABLE logbook (at timestamptz, line text);\n"
        "CREATE PUBLICATION dbz_publication FOR TABLE logbook"
    )
    result = capture(db, log_url, check=False)
    assert result.returncode == 2
    assert "publishes UPDATE and DELETE" in result.stderr
    assert "publish = 'insert'" in result.stderr
    db.execute(
        "ALTER PUBLICATION dbz_publication SET (publish = 'insert');\n"
        "INSERT INTO logbook VALUES (now(), 'appended')"
    )
    capture(db, log_url)
    assert [v["after"]["line"] for v in values(log_url, "t.public.logbook")] == ["appended"]  # type: ignore[index]


@pytest.mark.parametrize("name", ["Mixed Case", "dbz-pub,2"])
def test_an_existing_publication_with_any_name(db: Database, log_url: str, name: str) -> None:
    """Publication names are not slot names: case, spaces, '-' and ',' are theirs to
    have (pgoutput is given the name quoted)."""
    quoted = '"' + name.replace('"', '""') + '"'
    db.execute(f"CREATE TABLE pub (id int PRIMARY KEY, v text);\n"
               f"CREATE PUBLICATION {quoted} FOR TABLE pub;\n"
               f"INSERT INTO pub VALUES (1, 'snapshot')")
    options = ("--publication", name, "-p", "publication.autocreate.mode=disabled")
    capture(db, log_url, *options)
    db.execute("UPDATE pub SET v = 'streamed'")
    capture(db, log_url, *options)
    assert [v["after"]["v"] for v in values(log_url, "t.public.pub")] == [  # type: ignore[index]
        "snapshot", "streamed"]


def test_heartbeat_action_query_and_metadata_for_skipped_transactions(
    db: Database, log_url: str
) -> None:
    db.execute(
        "CREATE TABLE kept (id int PRIMARY KEY);\n"
        "CREATE TABLE ignored (id int PRIMARY KEY);\n"
        "CREATE TABLE beats (id int PRIMARY KEY, at timestamptz);\n"
        "INSERT INTO beats VALUES (1, now())"
    )
    args = [
        "--table",
        "public.kept",
        "-p",
        "provide.transaction.metadata=true",
        "-p",
        "heartbeat.interval.ms=100",
        "-p",
        "heartbeat.action.query=UPDATE beats SET at = now() WHERE id = 1",
    ]
    capture(db, log_url, *args)
    before = db.query("SELECT at FROM beats")[0][0]
    db.execute("INSERT INTO ignored VALUES (1)")
    runner = subprocess.Popen(
        capture_command(db, log_url, *args, once=False), stderr=subprocess.DEVNULL
    )
    time.sleep(2)
    runner.terminate()
    assert runner.wait(timeout=30) == 0
    assert db.query("SELECT at FROM beats")[0][0] > before
    statuses = [(v["status"], v["event_count"]) for v in values(log_url, "t.transaction")]  # type: ignore[index]
    assert ("BEGIN", None) in statuses and ("END", 0) in statuses


def test_filtered_publication_follows_the_include_list_at_every_start(
    db: Database, tmp_path: Path
) -> None:
    """publication.autocreate.mode=filtered: a table added to table.include.list joins
    the publication at the next start (with a warning: captured from then on), as
    Debezium does; it was never captured."""
    db.execute("CREATE TABLE a1 (id int PRIMARY KEY);\nCREATE TABLE z (id int PRIMARY KEY);\n"
               "INSERT INTO a1 VALUES (1)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    filtered = ("-p", "publication.autocreate.mode=filtered")
    capture(db, log_url, *filtered, "-p", "table.include.list=public.a1")
    db.execute("INSERT INTO z VALUES (5)")
    widened = capture(db, log_url, *filtered, "-p", "table.include.list=public.a1,public.z")
    assert "now also publishes public.z" in widened.stderr, widened.stderr
    db.execute("INSERT INTO z VALUES (6)")
    capture(db, log_url, *filtered, "-p", "table.include.list=public.a1,public.z")
    assert [value["after"]["id"] for _, value, _ in records(log_url, "t.public.z")] == [6]
    assert db.query("SELECT tablename FROM pg_publication_tables ORDER BY 1") == [("a1",),
                                                                                  ("z",)]


def test_a_topic_is_warned_about_only_when_it_is_not_as_capture_makes_it(
    db: Database, tmp_path: Path
) -> None:
    """With truncates captured, capture makes the topic with cleanup.policy=delete, and
    says nothing about it at the next start; a keyed table's topic made so by someone
    else is warned about."""
    db.execute("CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    for n in range(2, 4):
        again = capture(db, log_url, "-p", "skipped.operations=none")
        assert "not compacted" not in again.stderr, again.stderr
        db.execute(f"INSERT INTO a VALUES ({n})")
    other = f"sqlite://{tmp_path / 'other.db'}"
    with SqliteLog(other) as log:
        log.create_topic("t.public.a", 1, {"cleanup.policy": "delete"})
    made = capture(db, other, "-p", "slot.name=other")
    assert "topic 't.public.a' exists and is not compacted" in made.stderr, made.stderr
