"""User predicates run under SQLite's authorizer: one read-only predicate, nothing more."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.errors import ConfigError
from duality.tables.predicate import Probe, guarded, wrap
from duality.tables.shape import Column
from duality.tables.types import Kind

ATTACKS = [
    "1; DROP TABLE t",
    "1); DELETE FROM t; --",
    "1) UNION SELECT name, name FROM sqlite_master --",
    "(SELECT count(*) FROM secret) > 0",
    "v IN (SELECT s FROM secret)",
    "EXISTS (SELECT 1 FROM sqlite_schema)",
    "load_extension('/tmp/evil.so') IS NULL",
    "1 = (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
    "SELECT count(*) FROM c)",
    "1) OR (SELECT 1 FROM pragma_table_info('secret')",
    "1 /* unterminated",
    "",
    "   ",
    "1\x00",
]


@pytest.fixture
def conn() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v TEXT, n INTEGER)")
    db.execute("CREATE TABLE secret (s TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [("a'b;c", 1), ("x\\y", 2), ("z", 3)])
    db.execute("INSERT INTO secret VALUES ('hidden')")
    return db


def select(conn: sqlite3.Connection, predicate: str | None) -> list[tuple[object, ...]]:
    with guarded(conn, ["t"], predicate, subqueries=True):
        return conn.execute(f"SELECT v, n FROM t WHERE {wrap(predicate)} ORDER BY n").fetchall()


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_refused_and_change_nothing(conn: sqlite3.Connection, attack: str) -> None:
    schema = conn.execute("SELECT sql FROM sqlite_master").fetchall()
    with pytest.raises(ConfigError) as refused:
        select(conn, attack)
    assert "refused" in str(refused.value) or "--where" in str(refused.value)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    assert conn.execute("SELECT sql FROM sqlite_master").fetchall() == schema


def test_refusals_say_why(conn: sqlite3.Connection) -> None:
    with pytest.raises(ConfigError, match="reading 'secret'"):
        select(conn, "v IN (SELECT s FROM secret)")
    with pytest.raises(ConfigError, match="more than one statement"):
        select(conn, "1; DROP TABLE t")
    with pytest.raises(ConfigError, match="load_extension"):
        select(conn, "load_extension('x') IS NULL")


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ("v = 'a''b;c'", [1]),
        ("v LIKE '%\\%'", [2]),
        ("n > 1 -- a trailing comment", [2, 3]),
        ("n IN (SELECT n FROM t WHERE v = 'z')", [3]),
        ("lower(v) GLOB '*;*'", [1]),
        (None, [1, 2, 3]),
    ],
)
def test_predicates_select_rows(
    conn: sqlite3.Connection, predicate: str | None, expected: list[int]
) -> None:
    assert [n for _, n in select(conn, predicate)] == expected


def test_a_read_only_connection_refuses_writes_even_without_the_authorizer(
    tmp_path: object,
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "x.db"
    sqlite3.connect(path).execute("CREATE TABLE t (v)").connection.commit()
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    ro.execute("PRAGMA query_only=1")
    with pytest.raises(sqlite3.OperationalError):
        ro.execute("INSERT INTO t VALUES (1)")


def test_aggregate_filters_see_one_row_at_a_time() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (n INTEGER)")
    probe = Probe(db, "1", [Column("v", "v", Kind("text")), Column("n", "n", Kind("int"))])
    rows = [("a", 1), ("b", 5), (None, 7)]
    assert probe.matching("n > 2", rows) == {1, 2}
    assert probe.matching("v IS NOT NULL AND n < 3", rows) == {0}
    with pytest.raises(ConfigError, match=r"aggregate filter .* refused"):
        probe.matching("n > (SELECT avg(n) FROM t)", rows)
    assert probe.matching(None, rows) == {0, 1, 2}


@given(text=st.text())
def test_any_text_is_only_ever_a_predicate(text: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (v TEXT, n INTEGER)")
    db.execute("CREATE TABLE secret (s TEXT)")
    db.execute("INSERT INTO t VALUES ('a', 1)")
    with contextlib.suppress(ConfigError):
        select(db, text)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master ORDER BY name")]
    assert tables == ["secret", "t"]
    assert db.execute("SELECT * FROM t").fetchall() == [("a", 1)]
    assert db.execute("SELECT * FROM secret").fetchall() == []
