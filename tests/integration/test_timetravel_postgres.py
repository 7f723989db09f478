"""Time travel end to end against a real PostgreSQL with REPLICA IDENTITY FULL.

The table of every captured type (tests/integration/test_tables_postgres.py) gets random
DML, captured between rounds; at several moments in between, the source is read whole.
Afterwards the table as of each moment — by its time and by its LSN, folded forward and
walked back — equals that moment's rows; the undo SQL since each moment, run in the
source, makes the source equal to that moment's rows; and every row's history rebuilds
the row, field by field.
"""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.pgoutput import parse_lsn
from duality.tables.api import open_table
from duality.tables.asof import as_of
from duality.tables.history import key_history
from duality.tables.undo import plan_undo
from tests.helpers import Database, capture, duality
from tests.integration.test_tables_postgres import (
    COLUMNS,
    SCHEMA,
    _insert,
    _same,
    _source,
    change,
    source_sql,
)

pytestmark = pytest.mark.postgres
TOPIC = "t.public.everything"
# interval.handling.mode=string: MicroDuration intervals cannot be written back exactly.
OPTIONS = ("-p", "interval.handling.mode=string")


def _moment(db: Database) -> dict[str, Any]:
    time.sleep(0.003)
    lsn = db.query("SELECT pg_current_wal_lsn()::text")[0][0]
    at = dt.datetime.now(dt.UTC).isoformat()
    rows = _source(db, COLUMNS)
    time.sleep(0.003)
    return {"time": at, "lsn": lsn, "rows": rows}


def _round(db: Database, rng: random.Random, moments: list[dict[str, Any]]) -> None:
    for step in range(12):
        key = rng.randrange(16)
        action = rng.choice(["insert", "update", "update", "rekey", "delete", "tx"])
        if action != "tx":
            change(db, rng, action, key, moved=100)
        else:  # one transaction of several changes, one of them to every row
            with db.connect() as conn, conn.transaction():
                conn.execute("UPDATE everything SET c_bool = NOT coalesce(c_bool, false)")
                conn.execute("DELETE FROM everything WHERE id = %s", [rng.randrange(16)])
        if step % 5 == 2:
            moments.append(_moment(db))


def _check_table(db: Database, rows: dict[int, Any], got: dict[int, Any]) -> None:
    assert sorted(got) == sorted(rows)
    for key, row in rows.items():
        for column in COLUMNS:
            if column == "c_interval":  # an ISO 8601 string (interval.handling.mode=string)
                same = (row[column] is None and got[key][column] is None) or bool(db.query(
                    "SELECT %s::interval = %s", [got[key][column], row[column]])[0][0])
            else:
                same = _same(column, row[column], got[key][column])
            assert same, (key, column, row[column], got[key][column])


def _as_of_rows(log: SqliteLog, point: str, store: str, method: str) -> dict[int, Any]:
    with as_of(TOPIC, point, log=log, store=store, method=method) as result:
        assert result.method == method
        return {row["id"]: row for row in result.table.select()}


def test_as_of_undo_and_history_against_the_source(db: Database, tmp_path: Path) -> None:
    rng = random.Random(7)
    db.execute(SCHEMA)
    db.execute("ALTER TABLE everything REPLICA IDENTITY FULL")
    for key in range(10):
        _insert(db, rng, key)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    store = f"sqlite://{tmp_path / 'tables.db'}"
    capture(db, log_url, *OPTIONS)
    moments = [_moment(db)]
    for _ in range(3):
        _round(db, rng, moments)
        capture(db, log_url, *OPTIONS)
    final = _source(db, COLUMNS)
    with SqliteLog(log_url, create=False) as log:
        for moment in moments:
            for point in (moment["time"], moment["lsn"]):
                for method in ("forward", "backward"):
                    _check_table(db, moment["rows"], _as_of_rows(log, point, store, method))
        for moment in moments:
            script = "\n".join(plan_undo(TOPIC, moment["time"], log=log).sql())
            with db.connect() as conn:
                conn.execute("BEGIN")
                conn.execute(script.removesuffix("COMMIT;").encode())
                restored = {row[0]: dict(zip(["id", *COLUMNS], row, strict=True))
                            for row in conn.execute(source_sql(COLUMNS).encode()).fetchall()}
                conn.execute("ROLLBACK")
            assert restored == moment["rows"]
        assert _source(db, COLUMNS) == final
        _check_histories(log, log_url)


def _check_histories(log: SqliteLog, log_url: str) -> None:
    """Rebuilt from its history, field by field, each row is the table's row; every old
    value is the value the history had before."""
    with open_table(TOPIC, log=log_url) as table:
        current = {row["id"]: row for row in table.json_rows()}
    for key in range(16):
        for wanted in (key, key + 100):
            row: dict[str, Any] | None = None
            for entry in key_history(TOPIC, {"id": wanted}, log=log).entries:
                assert not entry.unknown, entry
                if entry.op in ("c", "r"):
                    row = {name: new for name, (_, new) in entry.changed.items()}
                elif entry.op == "u":
                    assert row is not None
                    for name, (old, new) in entry.changed.items():
                        assert row[name] == old, (wanted, name)
                        row[name] = new
                else:
                    assert row is not None
                    assert {name: old for name, (old, _) in entry.changed.items()} == row
                    row = None
            assert row == current.get(wanted), wanted


def _captured_accounts(db: Database, tmp_path: Path, columns: str, rows: str) -> str:
    """An ``accounts`` table with REPLICA IDENTITY FULL and ``rows``, captured into a
    new log; its URL."""
    db.execute(f"CREATE TABLE accounts (id int PRIMARY KEY, {columns});\n"
               "ALTER TABLE accounts REPLICA IDENTITY FULL;\n"
               f"INSERT INTO accounts VALUES {rows}")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(db, log_url)
    return log_url


def test_undo_a_mistaken_update_with_psql_as_a_user_would(db: Database, tmp_path: Path) -> None:
    log_url = _captured_accounts(
        db, tmp_path, "owner text, balance numeric(12,2)",
        "(1, 'Ada', 1200), (2, 'Grace', 830.50), (3, 'it''s; \"quoted\" \\ Ünï', NULL)",
    )
    before = db.query("SELECT * FROM accounts ORDER BY id")
    time.sleep(0.01)
    mark = dt.datetime.now(dt.UTC).isoformat()
    db.execute("UPDATE accounts SET balance = 0")  # the WHERE was forgotten
    capture(db, log_url)
    shown = duality("table", "t.public.accounts", "--log", log_url, "--as-of", mark, "--json")
    assert [row["balance"] for row in map(orjson.loads, shown.stdout.splitlines())] == \
        ["1200.00", "830.50", None]
    sql = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark).stdout
    (tmp_path / "undo.sql").write_text(sql)
    subprocess.run(["psql", db.url, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                    str(tmp_path / "undo.sql")], check=True, capture_output=True)
    assert db.query("SELECT * FROM accounts ORDER BY id") == before
    history = duality("history", "t.public.accounts", "--log", log_url, "--key", "1").stdout
    assert "balance: 1200.00 → 0.00" in history


def test_history_json_names_when_and_each_changed_field(db: Database, tmp_path: Path) -> None:
    log_url = _captured_accounts(db, tmp_path, "owner text, balance int", "(1, 'Ada', 10)")
    with db.connect() as conn, conn.transaction():
        conn.execute("UPDATE accounts SET balance = 11 WHERE id = 1")
        lsn, xid = conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text, txid_current()").fetchone()
    db.execute("DELETE FROM accounts WHERE id = 1")
    capture(db, log_url)
    shown = duality("history", "t.public.accounts", "--log", log_url, "--key", '{"id":1}',
                    "--json")
    entries = [orjson.loads(line) for line in shown.stdout.splitlines()]
    assert [e["op"] for e in entries] == ["r", "u", "d"]
    update = entries[1]
    assert update["changed"] == {"balance": {"old": 10, "new": 11}}  # owner did not change
    assert update["txId"] == xid and update["key"] == {"id": 1} and update["offset"] == 1
    assert update["time"].endswith("Z") and update["lsn"].count("/") == 1
    assert parse_lsn(update["lsn"]) <= parse_lsn(lsn)  # the update's own change, before the mark
    assert entries[2]["changed"]["owner"] == {"old": "Ada", "new": None}
    assert "(3 change(s))" in shown.stderr


def test_undo_runs_as_one_transaction_newest_first(db: Database, tmp_path: Path) -> None:
    """A statement of the script that fails (the source moved on) leaves nothing changed."""
    log_url = _captured_accounts(db, tmp_path, "balance int", "(1, 10), (2, 20)")
    db.execute("UPDATE accounts SET balance = 11 WHERE id = 1;\n"
               "UPDATE accounts SET balance = 12 WHERE id = 1;\n"
               "DELETE FROM accounts WHERE id = 2")
    capture(db, log_url)
    sql = duality("undo", "t.public.accounts", "--log", log_url, "--since", "1").stdout
    statements = [line for line in sql.splitlines() if not line.startswith("--")]
    assert statements[0] == "BEGIN;" and statements[-1] == "COMMIT;"
    assert [s.split()[0] for s in statements[1:-1]] == ["INSERT", "UPDATE", "UPDATE"]
    assert "'11'::integer" in statements[2] and "'10'::integer" in statements[3]
    db.execute("INSERT INTO accounts VALUES (2, 99)")  # the delete's row is back: INSERT fails
    (tmp_path / "undo.sql").write_text(sql)
    failed = subprocess.run(["psql", db.url, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                             str(tmp_path / "undo.sql")], check=False, capture_output=True)
    assert failed.returncode != 0
    assert db.query("SELECT * FROM accounts ORDER BY id") == [(1, 12), (2, 99)]
