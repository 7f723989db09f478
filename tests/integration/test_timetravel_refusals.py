"""What time travel refuses, as a user meets it: exit code 4, the keys and offsets at
fault, the setting that keeps history, and nothing printed as if it were known.
Also: undo SQL is safe for any table name, column name and value."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Database, capture, duality

pytestmark = pytest.mark.postgres


def _now() -> str:
    time.sleep(0.01)
    moment = dt.datetime.now(dt.UTC).isoformat()
    time.sleep(0.01)
    return moment


def _changed(db: Database, log_url: str, sql: str, *capture_args: str) -> str:
    """Capture what is there, run ``sql`` and capture it too: the moment between the two
    (a --since that takes in just ``sql``)."""
    capture(db, log_url, *capture_args)
    mark = _now()
    db.execute(sql)
    capture(db, log_url, *capture_args)
    return mark


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def _accounts(db: Database, identity: str) -> None:
    db.execute("CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int);\n"
               f"ALTER TABLE accounts REPLICA IDENTITY {identity};\n"
               "INSERT INTO accounts SELECT i, 'owner ' || i, i * 10 FROM generate_series(1, 5) i")


def test_the_identity_a_change_was_made_under_counts(db: Database, log_url: str) -> None:
    """A delete made under DEFAULT identity, then ALTER TABLE … REPLICA IDENTITY FULL
    before capture reads it: its before-image is the key alone, so undo refuses (it
    re-inserted the row with NULLs when the catalog's newer identity was registered)."""
    _accounts(db, "DEFAULT")
    mark = _changed(db, log_url, "DELETE FROM accounts WHERE id = 3;\n"
                                 "ALTER TABLE accounts REPLICA IDENTITY FULL")
    refused = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark, check=False)
    assert refused.returncode == 4, refused.stdout
    assert '{"id":3}' in refused.stderr and refused.stdout == ""
    db.execute("UPDATE accounts SET balance = 1 WHERE id = 2")  # now under FULL
    capture(db, log_url)
    later = duality("undo", "t.public.accounts", "--log", log_url, "--since", "6")
    assert "\"balance\" = '20'::integer" in later.stdout, later.stdout


def test_a_key_that_is_not_a_primary_key_names_no_row(db: Database, log_url: str) -> None:
    """message.key.columns gives a table without a primary key a record key, which need
    not be unique: a DELETE or UPDATE by it would reach other rows, so undo refuses."""
    db.execute("CREATE TABLE np (name text, n int);\n"
               "ALTER TABLE np REPLICA IDENTITY FULL;\n"
               "INSERT INTO np VALUES ('a', 1), ('a', 2)")
    keyed = ("-p", "message.key.columns=public.np:name")
    mark = _changed(db, log_url, "INSERT INTO np VALUES ('a', 3)", *keyed)
    refused = duality("undo", "t.public.np", "--log", log_url, "--since", mark, check=False)
    assert refused.returncode == 4 and refused.stdout == "", refused.stdout
    assert "no primary key" in refused.stderr and "message.key.columns" in refused.stderr


def test_undo_writes_back_a_generated_always_identity(db: Database, log_url: str) -> None:
    db.execute("CREATE TABLE ia (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);\n"
               "ALTER TABLE ia REPLICA IDENTITY FULL;\n"
               "INSERT INTO ia (v) VALUES ('one'), ('two')")
    before = db.query("SELECT id, v FROM ia ORDER BY id")
    mark = _changed(db, log_url, "DELETE FROM ia WHERE id = 2")
    undo = duality("undo", "t.public.ia", "--log", log_url, "--since", mark)
    assert "OVERRIDING SYSTEM VALUE" in undo.stdout
    db.execute(undo.stdout)
    assert db.query("SELECT id, v FROM ia ORDER BY id") == before


def test_default_identity_undo_names_the_keys_and_the_setting(db: Database, log_url: str) -> None:
    _accounts(db, "DEFAULT")
    mark = _changed(db, log_url, "UPDATE accounts SET balance = 0 WHERE id IN (2, 4);\n"
                                 "INSERT INTO accounts VALUES (9, 'new', 1)")
    refused = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark, check=False)
    assert refused.returncode == 4, refused.stderr
    assert refused.stdout == ""
    assert '{"id":2}' in refused.stderr and '{"id":4}' in refused.stderr
    assert '{"id":9}' not in refused.stderr  # an insert is undone by its key alone
    assert "REPLICA IDENTITY FULL" in refused.stderr
    # An insert alone needs no before-image.
    only_insert = duality("undo", "t.public.accounts", "--log", log_url, "--since", "6")
    assert 'DELETE FROM "public"."accounts" WHERE "id" = \'9\'::integer;' in only_insert.stdout
    # As of the mark, the table is folded forward: the history is all there.
    shown = duality("table", "t.public.accounts", "--log", log_url, "--as-of", mark, "--json")
    assert [r.count('"balance"') for r in shown.stdout.splitlines()] == [1] * 5
    assert '"balance":20' in shown.stdout
    assert "folded from the start" in shown.stderr


def test_compacted_history_is_refused_with_the_offsets_and_the_setting(
    db: Database, log_url: str
) -> None:
    _accounts(db, "DEFAULT")
    duality("topics", "--log", log_url, "--create", "t.public.accounts", "--config",
            "cleanup.policy=compact", "--config", "min.compaction.lag.ms=0",
            "--config", "delete.retention.ms=0")
    mark = _changed(db, log_url, "UPDATE accounts SET balance = balance + 1;\n"
                                 "UPDATE accounts SET owner = 'x'")
    duality("compact", "--log", log_url)
    refused = duality("table", "t.public.accounts", "--log", log_url, "--as-of", mark,
                      check=False)
    assert refused.returncode == 4, refused.stderr
    assert refused.stdout == ""
    assert "min.compaction.lag.ms=0" in refused.stderr
    assert "offsets 0-" in refused.stderr
    assert "REPLICA IDENTITY FULL" in refused.stderr  # walking back needs whole images
    undo = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark, check=False)
    assert undo.returncode == 4 and "min.compaction.lag.ms" in undo.stderr
    history = duality("history", "t.public.accounts", "--log", log_url, "--key", '{"id":1}')
    assert "?" in history.stdout and "min.compaction.lag.ms" in history.stderr
    # The current table (a point at the end) is still known.
    end = duality("table", "t.public.accounts", "--log", log_url, "--as-of", "14", "--json")
    assert end.stdout.count('"owner":"x"') == 5


def test_compacted_history_with_whole_before_images_walks_back(
    db: Database, log_url: str
) -> None:
    _accounts(db, "FULL")
    duality("topics", "--log", log_url, "--create", "t.public.accounts", "--config",
            "cleanup.policy=compact", "--config", "min.compaction.lag.ms=0")
    capture(db, log_url)
    db.execute("UPDATE accounts SET balance = balance + 1")
    capture(db, log_url)
    duality("compact", "--log", log_url)  # the snapshot's records are gone
    mark = _now()
    db.execute("UPDATE accounts SET owner = 'y' WHERE id = 3")
    capture(db, log_url)
    shown = duality("table", "t.public.accounts", "--log", log_url, "--as-of", mark, "--json")
    assert "walked back" in shown.stderr
    assert '"owner":"owner 3","balance":31' in shown.stdout


def test_a_window_followed_by_later_changes_needs_force(db: Database, log_url: str) -> None:
    _accounts(db, "FULL")
    capture(db, log_url)
    since = _now()
    db.execute("UPDATE accounts SET balance = -1 WHERE id = 1;\n"
               "UPDATE accounts SET balance = -2 WHERE id = 2")
    until = _now()
    db.execute("UPDATE accounts SET owner = 'later' WHERE id = 1")
    capture(db, log_url)
    args = ("undo", "t.public.accounts", "--log", log_url, "--since", since, "--until", until)
    refused = duality(*args, check=False)
    assert refused.returncode == 4, refused.stderr
    assert refused.stdout == ""
    assert '{"id":1} at offset 7' in refused.stderr and '{"id":2}' not in refused.stderr
    assert "--force" in refused.stderr
    forced = duality(*args, "--force")
    assert "overwrites a later change" in forced.stderr
    assert forced.stdout.count("UPDATE ") == 2


def test_truncates_and_points_before_the_snapshot_are_refused(db: Database, log_url: str) -> None:
    before = _now()
    _accounts(db, "FULL")
    mark = _changed(db, log_url, "TRUNCATE accounts", "-p", "skipped.operations=none")
    refused = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark, check=False)
    assert refused.returncode == 4
    assert "truncate" in refused.stderr and "offset 5" in refused.stderr
    shown = duality("table", "t.public.accounts", "--log", log_url, "--as-of", mark, "--json")
    assert len(shown.stdout.splitlines()) == 5  # folded forward: the truncate is after it
    early = duality("table", "t.public.accounts", "--log", log_url, "--as-of", before,
                    check=False)
    assert early.returncode == 4 and "before the snapshot" in early.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--as-of", "yesterday"), "is not an offset"),
    (("--as-of", "99"), "past the end"),
    (("--as-of", "0:1,0:2"), "twice"),
    (("--as-of", "1:0"), "no partition 1"),
    (("--as-of", "0", "--follow"), "cannot --follow"),
])
def test_bad_points_are_usage_errors(
    db: Database, log_url: str, args: tuple[str, ...], message: str
) -> None:
    _accounts(db, "FULL")
    capture(db, log_url)
    refused = duality("table", "t.public.accounts", "--log", log_url, *args, check=False)
    assert refused.returncode == 2, refused.stderr
    assert message in refused.stderr and "Traceback" not in refused.stderr


NAMES = ['we"ird; DROP TABLE canary; --', "Ünï 😀", "semi;colon", "back\\slash", "$$"]
VALUES = ["it's", 'say "hi"', "a;b", "back\\slash\\", "'); DROP TABLE canary; --",
          "Ünïcødé 😀", "tab\tnew\nline", "$$ $x$ $$", "\\x00", "E'\\''"]


def test_undo_sql_is_safe_for_any_name_and_value(db: Database, log_url: str,
                                                 tmp_path: Path) -> None:
    columns = ", ".join(f'"{n.replace(chr(34), chr(34) * 2)}" text' for n in NAMES)
    table = '"Sch ema"."T\'a""b;le"'
    db.execute(f'CREATE SCHEMA "Sch ema";\nCREATE TABLE canary (x int);\n'
               f"CREATE TABLE {table} (id text PRIMARY KEY, {columns}, n numeric, b bytea, "
               f"arr text[]);\nALTER TABLE {table} REPLICA IDENTITY FULL")
    with db.connect() as conn:
        for i, value in enumerate(VALUES):
            conn.execute(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * (len(NAMES) + 4))})",
                         [value, *[VALUES[(i + j) % len(VALUES)] for j in range(len(NAMES))],
                          i, value.encode(), [value, None]])
    capture(db, log_url, "--table", "Sch ema.T'a\"b;le")
    before = _rows(db, table)
    mark = _now()
    with db.connect() as conn:
        quoted = [f'"{n.replace(chr(34), chr(34) * 2)}"' for n in NAMES]
        conn.execute(f"UPDATE {table} SET {', '.join(f'{q} = %s' for q in quoted)}, "
                     f"n = n * 2, id = id || %s", [*VALUES[: len(NAMES)], "'; --"])
        conn.execute(f"DELETE FROM {table} WHERE n > 10")
        conn.execute(f"INSERT INTO {table} (id) VALUES ('new '' row')")
    capture(db, log_url, "--table", "Sch ema.T'a\"b;le")
    topic = duality("topics", "--log", log_url).stdout.split()[0]
    sql = duality("undo", topic, "--log", log_url, "--since", mark).stdout
    (tmp_path / "undo.sql").write_text(sql)
    subprocess.run(["psql", db.url, "-v", "ON_ERROR_STOP=1", "-q", "-f",
                    str(tmp_path / "undo.sql")], check=True, capture_output=True)
    assert _rows(db, table) == before
    assert db.query("SELECT count(*) FROM canary") == [(0,)]


def _rows(db: Database, table: str) -> list[tuple[Any, ...]]:
    return db.query(f"SELECT * FROM {table} ORDER BY id")


def test_values_changed_at_capture_are_not_written_back(db: Database, log_url: str) -> None:
    _accounts(db, "FULL")
    masked = ("-p", "column.mask.with.4.chars=public.accounts.owner")
    mark = _changed(db, log_url, "UPDATE accounts SET balance = 0 WHERE id = 1", *masked)
    only_balance = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark)
    assert "SET \"balance\" = '10'::integer WHERE \"id\" = '1'::integer" in only_balance.stdout
    db.execute("DELETE FROM accounts WHERE id = 2")
    capture(db, log_url, *masked)
    refused = duality("undo", "t.public.accounts", "--log", log_url, "--since", mark, check=False)
    assert refused.returncode == 4 and refused.stdout == ""
    assert "'owner'" in refused.stderr and "column.mask.with.4.chars" in refused.stderr
    assert '{"id":2}' in refused.stderr and "****" not in refused.stderr


def test_a_sign_of_zero_is_a_change(db: Database, log_url: str) -> None:
    """-0.0 equals 0.0 in Python, not in the source: undo and history see the change."""
    db.execute("CREATE TABLE f (id int PRIMARY KEY, d double precision, a float8[]);\n"
               "ALTER TABLE f REPLICA IDENTITY FULL;\n"
               "INSERT INTO f VALUES (1, 0, '{0}'), (2, '-0', '{-0}')")
    before = db.query("SELECT id, d::text, a::text FROM f ORDER BY id")
    mark = _changed(db, log_url, "UPDATE f SET d = '-0', a = '{-0}' WHERE id = 1;\n"
                                 "UPDATE f SET d = 0, a = '{0}' WHERE id = 2")
    undo = duality("undo", "t.public.f", "--log", log_url, "--since", mark)
    assert "2 statement(s)" in undo.stderr, undo.stderr
    db.execute(undo.stdout)
    assert db.query("SELECT id, d::text, a::text FROM f ORDER BY id") == before
    shown = duality("history", "t.public.f", "--log", log_url, "--key", '{"id":1}', "--json")
    assert '"d"' in shown.stdout.splitlines()[-1], shown.stdout
