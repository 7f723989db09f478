"""Capture end to end against a real PostgreSQL: snapshot, streaming, positions."""

from __future__ import annotations

from pathlib import Path

import orjson
import psycopg
import pytest

from duality.log.sqlite import SqliteLog
from tests.helpers import Database, capture, fold, records

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, balance numeric(10,2),
                        updated_at timestamptz, active bool);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount numeric(10,2));
INSERT INTO customers VALUES (1, 'Alice', 100.50, '2024-01-02 03:04:05.678+00', true),
                             (2, 'Bob', -3, '2023-12-31 23:59:59+05:30', false)
"""


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def ops(url: str, topic: str) -> list[tuple[object, str | None]]:
    return [(k, v["op"] if v else None) for k, v, _ in records(url, topic)]


def test_snapshot_then_streaming_changes_in_commit_order(db: Database, log_url: str) -> None:
    db.execute(SCHEMA)
    capture(db, log_url)
    snap = records(log_url, "t.public.customers")
    assert [(k, v["op"], v["source"]["snapshot"]) for k, v, _ in snap] == [
        ({"id": 1}, "r", "first"),
        ({"id": 2}, "r", "last"),
    ]
    first = snap[0][1]
    assert first["after"] == {
        "id": 1,
        "name": "Alice",
        "balance": "J0I=",
        "updated_at": "2024-01-02T03:04:05.678000Z",
        "active": True,
    }
    assert first["source"]["connector"] == "postgresql"
    assert first["source"]["name"] == "t" and first["source"]["db"] == db.name
    db.execute("""
        INSERT INTO customers VALUES (3, 'Carol', 0.10, '2024-06-01 12:00:00+00', NULL);
        UPDATE customers SET balance = 200.25, active = false WHERE id = 1;
        DELETE FROM customers WHERE id = 2;
        BEGIN;
        INSERT INTO customers VALUES (4, 'Dave', 42.00, now(), true);
        INSERT INTO orders VALUES (1, 4, 9.99), (2, 4, 0.01);
        UPDATE customers SET name = 'Carol B.' WHERE id = 3;
        COMMIT
    """)
    capture(db, log_url)
    assert ops(log_url, "t.public.customers") == [
        ({"id": 1}, "r"),
        ({"id": 2}, "r"),
        ({"id": 3}, "c"),
        ({"id": 1}, "u"),
        ({"id": 2}, "d"),
        ({"id": 2}, None),
        ({"id": 4}, "c"),
        ({"id": 3}, "u"),
    ]
    assert ops(log_url, "t.public.orders") == [({"id": 1}, "c"), ({"id": 2}, "c")]
    events = [v for _, v, _ in records(log_url, "t.public.customers") if v]
    delete = next(v for v in events if v["op"] == "d")
    # DEFAULT identity: the key, and Debezium's filler for the NOT NULL column.
    assert delete["before"] == {
        "id": 2,
        "name": "",
        "balance": None,
        "updated_at": None,
        "active": None,
    }
    txn = [v for v in events if v["source"]["table"] == "customers" and v["op"] != "r"][-2:]
    assert txn[0]["source"]["txId"] == txn[1]["source"]["txId"]
    assert txn[0]["source"]["ts_ms"] == txn[1]["source"]["ts_ms"]
    lsns = [v["source"]["lsn"] for v in events if v["op"] != "r"]
    assert lsns == sorted(lsns)
    assert fold(log_url, "t.public.customers") == {
        '{"id":1}': {
            "id": 1,
            "name": "Alice",
            "balance": "Tjk=",
            "updated_at": "2024-01-02T03:04:05.678000Z",
            "active": False,
        },
        '{"id":3}': events[-1]["after"],
        '{"id":4}': events[-2]["after"],
    }


def test_rerun_with_nothing_new_adds_nothing(db: Database, log_url: str) -> None:
    db.execute(SCHEMA)
    capture(db, log_url)
    capture(db, log_url)
    capture(db, log_url)
    assert len(records(log_url, "t.public.customers")) == 2


def test_schemas_and_topics_are_registered(db: Database, log_url: str) -> None:
    db.execute(SCHEMA)
    capture(db, log_url)
    with SqliteLog(log_url) as log:
        info = log.describe("t.public.customers")
        assert info is not None
        assert info.config.cleanup_policy == "compact"
        assert info.config.min_compaction_lag_ms == 7 * 86_400_000
        record = log.read("t.public.customers", 0, 0, 1)[0]
        assert record.schema_id is not None
        schema = log.schema(record.schema_id)
    assert schema.meta.primary_key == ("id",)
    assert schema.meta.replica_identity == "default"
    assert schema.meta.source_types["balance"] == "numeric(10,2)"
    assert schema.key is not None and schema.key.name == "t.public.customers.Key"
    assert schema.value is not None
    after = schema.value.field("after")
    assert after is not None
    balance = after.schema.field("balance")
    assert balance is not None
    assert balance.schema.name == "org.apache.kafka.connect.data.Decimal"
    assert balance.schema.parameters == {"scale": "2", "connect.decimal.precision": "10"}


def test_defaults_of_columns_whose_type_names_need_quotes(db: Database, log_url: str) -> None:
    """A default's constant is recognised whatever the name of the type it is cast to."""
    db.execute('CREATE TYPE "odd-enum" AS ENUM (\'a\', \'b\');\n'
               'CREATE SCHEMA "my-schema";\n'
               'CREATE DOMAIN "my-schema"."dom;x" AS text;\n'
               'CREATE TABLE defaults (id int PRIMARY KEY, e "odd-enum" DEFAULT \'b\', '
               'd "my-schema"."dom;x" DEFAULT \'it\'\'s\');\n'
               "INSERT INTO defaults (id) VALUES (1)")
    capture(db, log_url)
    with SqliteLog(log_url) as log:
        record = log.read("t.public.defaults", 0, 0, 1)[0]
        assert record.schema_id is not None
        schema = log.schema(record.schema_id)
    assert schema.value is not None
    after = schema.value.field("after")
    assert after is not None
    found = {name: after.schema.field(name) for name in ("e", "d")}
    assert {name: f.schema.default for name, f in found.items() if f} == {"e": "b", "d": "it's"}


def test_primary_key_change_is_delete_tombstone_create_with_headers(
    db: Database, log_url: str
) -> None:
    db.execute("CREATE TABLE single (id int PRIMARY KEY, v text)")
    capture(db, log_url)
    db.execute("INSERT INTO single VALUES (1, 'one');\nUPDATE single SET id = 2 WHERE id = 1")
    capture(db, log_url)
    got = records(log_url, "t.public.single")
    assert [(k, v and v["op"]) for k, v, _ in got] == [
        ({"id": 1}, "c"),
        ({"id": 1}, "d"),
        ({"id": 1}, None),
        ({"id": 2}, "c"),
    ]
    assert got[1][2] == {"__debezium.newkey": b'{"id":2}'}
    assert got[3][2] == {"__debezium.oldkey": b'{"id":1}'}


def test_table_without_key_goes_to_a_delete_topic(db: Database, log_url: str) -> None:
    db.execute(
        "CREATE TABLE nokey (id int, v text);\n"
        "ALTER TABLE nokey REPLICA IDENTITY FULL;\n"
        "INSERT INTO nokey VALUES (1, 'one')"
    )
    result = capture(db, log_url)
    assert "has no primary key" in result.stderr
    db.execute("UPDATE nokey SET v = 'uno';\nDELETE FROM nokey")
    capture(db, log_url)
    with SqliteLog(log_url) as log:
        info = log.describe("t.public.nokey")
        assert info is not None and info.config.cleanup_policy == "delete"
    got = records(log_url, "t.public.nokey")
    assert [(k, v and v["op"]) for k, v, _ in got] == [
        (None, "r"),
        (None, "u"),
        (None, "d"),
        (None, None),
    ]
    assert got[1][1]["before"] == {"id": 1, "v": "one"}


def test_include_list_limits_tables(db: Database, log_url: str) -> None:
    db.execute(SCHEMA)
    capture(db, log_url, "--table", "public.orders")
    db.execute(
        "INSERT INTO orders VALUES (7, 1, 1.00);\n"
        "INSERT INTO customers VALUES (9, 'Zed', 0, now(), true)"
    )
    capture(db, log_url, "--table", "public.orders")
    with SqliteLog(log_url) as log:
        assert [t.name for t in log.list_topics()] == ["t.public.orders"]
    assert ops(log_url, "t.public.orders") == [({"id": 7}, "c")]


def test_unchanged_toast_gets_the_placeholder(db: Database, log_url: str) -> None:
    db.execute(
        "CREATE TABLE docs (id int PRIMARY KEY, n int, body text, blob bytea);\n"
        "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;\n"
        "ALTER TABLE docs ALTER COLUMN blob SET STORAGE EXTERNAL"
    )
    capture(db, log_url)
    db.execute(
        "INSERT INTO docs SELECT 1, 0, b, convert_to(b, 'UTF8') FROM "
        "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i) s(b);\n"
        "UPDATE docs SET n = 1"
    )
    capture(db, log_url)
    update = records(log_url, "t.public.docs")[-1][1]
    assert update["after"]["body"] == "__debezium_unavailable_value"
    assert update["after"]["blob"] == "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="
    assert update["after"]["n"] == 1


def test_position_is_stored_in_the_log_in_connect_layout(db: Database, log_url: str) -> None:
    db.execute(SCHEMA)
    capture(db, log_url)
    with SqliteLog(log_url) as log:
        stored = log.source_position('["t",{"server":"t"}]')
    assert stored is not None
    assert stored["lsn"] > 0 and stored["duality.snapshot"] == "completed"
    db.execute("INSERT INTO customers VALUES (5, 'Eve', 1, now(), true)")
    capture(db, log_url)
    with SqliteLog(log_url) as log:
        stored = log.source_position('["t",{"server":"t"}]')
    assert stored is not None
    # Acknowledged at once, up to exactly what is durable in the log.
    slot = db.query(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'debezium'"
    )
    high, low = slot[0][0].split("/")
    assert (int(high, 16) << 32) + int(low, 16) == stored["lsn"]


def test_events_are_value_equal_to_the_tail_output(db: Database, log_url: str) -> None:
    db.execute(SCHEMA)
    capture(db, log_url)
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "duality",
            "tail",
            "t.public.customers",
            "--log",
            log_url,
            "--from-beginning",
        ],
        capture_output=True,
        check=True,
    ).stdout
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line["value"] for line in lines] == [
        v for _, v, _ in records(log_url, "t.public.customers")
    ]


def test_an_inherited_table_snapshots_its_own_rows_only(db: Database, log_url: str) -> None:
    """pgoutput streams a change of a child table's row as the child's: the parent's
    snapshot leaves the child's rows out, or they would stay in it, never updated."""
    db.execute("CREATE TABLE par (id int PRIMARY KEY, v text);\n"
               "CREATE TABLE chi (extra int) INHERITS (par);\n"
               "ALTER TABLE chi ADD PRIMARY KEY (id);\n"
               "INSERT INTO par VALUES (1, 'parent');\n"
               "INSERT INTO chi VALUES (2, 'child', 7)")
    capture(db, log_url)
    assert [value["after"]["id"] for _, value, _ in records(log_url, "t.public.par")] == [1]
    assert [value["after"]["id"] for _, value, _ in records(log_url, "t.public.chi")] == [2]


@pytest.mark.parametrize("via_root", [False, True])
def test_partitions_go_where_the_publication_sends_their_changes(
    db: Database, log_url: str, via_root: bool
) -> None:
    """A partitioned table's rows are captured per partition, as pgoutput streams them;
    with a publication that has publish_via_partition_root, under the root's topic
    instead, snapshot and stream alike."""
    db.execute("CREATE TABLE p (id int, k int, v text, PRIMARY KEY (id, k)) "
               "PARTITION BY RANGE (k);\n"
               "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);\n"
               "CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (10) TO (20);\n"
               "INSERT INTO p VALUES (1, 1, 'a'), (2, 15, 'b');\n"
               f"CREATE PUBLICATION pub FOR ALL TABLES WITH (publish_via_partition_root = "
               f"{str(via_root).lower()})")
    capture(db, log_url, "--publication", "pub")
    db.execute("INSERT INTO p VALUES (3, 2, 'c');\nUPDATE p SET v = 'b2' WHERE id = 2")
    capture(db, log_url, "--publication", "pub")
    with SqliteLog(log_url, create=False) as log:
        topics = sorted(t.name for t in log.list_topics())
    seen = {topic: [(value["op"], value["after"]["id"]) for _, value, _ in records(log_url, topic)]
            for topic in topics}
    if via_root:
        assert seen == {"t.public.p": [("r", 1), ("r", 2), ("c", 3), ("u", 2)]}
    else:
        assert seen == {"t.public.p1": [("r", 1), ("c", 3)], "t.public.p2": [("r", 2), ("u", 2)]}


def test_sequence_grows_with_commit_order_when_transactions_interleave(
    db: Database, log_url: str
) -> None:
    """``source.sequence`` is ``[lastCommitLsn, lsn]``, as Debezium writes it: the first
    element is where the stream stood when the transaction began (the end of the one
    before), the same for all of a transaction's events. A transaction that wrote first
    but committed last still comes later; with its own first LSN there instead, its
    events sorted before those of the transaction that committed before it."""
    db.execute(SCHEMA)
    capture(db, log_url)
    with psycopg.connect(db.dsn, autocommit=True) as late, psycopg.connect(
        db.dsn, autocommit=True
    ) as early:
        late.execute("BEGIN")
        late.execute("INSERT INTO orders VALUES (10, 1, 1.00)")
        early.execute("INSERT INTO orders VALUES (11, 1, 2.00)")  # commits first
        late.execute("INSERT INTO orders VALUES (12, 1, 3.00)")
        late.execute("COMMIT")
        early.execute("INSERT INTO orders VALUES (13, 1, 4.00)")
    capture(db, log_url)
    sources = [v["source"] for _, v, _ in records(log_url, "t.public.orders") if v]
    pairs = [tuple(int(x) for x in orjson.loads(s["sequence"])) for s in sources]
    assert pairs == sorted(pairs) and len(set(pairs)) == len(pairs), pairs
    by_tx: dict[int, set[int]] = {}
    for s, (first, lsn) in zip(sources, pairs, strict=True):
        assert lsn == s["lsn"]
        by_tx.setdefault(s["txId"], set()).add(first)
    assert all(len(firsts) == 1 for firsts in by_tx.values()), by_tx
    # The transaction that wrote first (ids 10 and 12) comes after the one that
    # committed first (11), and its sequence starts past the other's commit.
    assert [k["id"] for k, _, _ in records(log_url, "t.public.orders")] == [11, 10, 12, 13]
    assert pairs[1][0] > pairs[0][1]


def test_sequence_carries_the_last_commit_across_restarts(db: Database, log_url: str) -> None:
    """The end of the last transaction streamed is kept in the stored position: after a
    restart, the next transaction's ``sequence`` starts there too, not at its own first
    LSN. Its TOASTed value is written to the WAL before its row, so the two differ."""
    db.execute(SCHEMA)
    capture(db, log_url)
    db.execute("INSERT INTO orders VALUES (20, 1, 1.00)")
    capture(db, log_url)
    db.execute("INSERT INTO customers (id, name) SELECT 30, string_agg(md5(i::text), '') "
               "FROM generate_series(1, 300) AS i")
    capture(db, log_url)
    (order,) = [v["source"] for _, v, _ in records(log_url, "t.public.orders") if v]
    big = [v["source"] for _, v, _ in records(log_url, "t.public.customers") if v][-1]
    last_commit, lsn = (int(x) for x in orjson.loads(big["sequence"]))
    assert order["lsn"] < last_commit < lsn == big["lsn"], (order, big)
