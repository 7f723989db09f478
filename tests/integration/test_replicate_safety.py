"""Nothing from the source executes in the target, and a record the target refuses stops
replicate with exit code 5.

Injection: a source schema, tables and columns whose names hold quotes, semicolons,
spaces, SQL and unicode, and values that look like SQL (and like COPY's own markers:
``\\N``, ``\\.``, tabs, newlines, array braces) are replicated to a PostgreSQL target
that logs every statement (``log_statement=all``) and to SQLite. Both targets must hold
the source's values byte for byte; every statement duality sent must be one statement
once its quoted identifiers and literals are set aside; no value may appear in any
statement's text (values are bound parameters or COPY data), and the tables the
injected SQL names must still be there.

Refusal: a target-side unique index that a source change violates stops
``replicate --once`` with exit code 5, a message naming topic, partition, offset and key
and no traceback; the stored offsets stay where they were, and once the index is gone
the same command applies the record.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.conninfo import APPLICATION_NAME
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database
from tests.replicate_support import capture_once, run_replicate

pytestmark = pytest.mark.postgres

SCHEMA = "Sch'ema\"; ü x"
TABLE = "t\"x'); DROP TABLE name_victim;--☃"
KEY = "ké\"y; '"
COLUMNS = ["co\"l'; DROP", "sp ace ü", "semi;colon", "raw", "tags", "doc"]
ADDED = "new \"col\"; -- ✓"
PLAIN = "Mixed Case"
#: The plain table's columns: names the statements that apply changes use inside.
PLAIN_COLUMNS = ["Ké y", "n", "stored", "known", "fresh", "s", "p"]
VALUES = [
    "'); DROP TABLE payload_victim; --",
    "\"; DELETE FROM payload_victim; --",
    "\\N",
    "\\.",
    "tab\there\nnew line\r\\\\ back",
    "ünï©ødé 🐘 e\u0301",
    "$$; DROP TABLE payload_victim; $$",
    "",
]
CHECKER = "checker"


@pytest.fixture(scope="module")
def logged() -> Iterator[ThrowawayPostgres]:
    """A target server that logs every statement, each line prefixed so it can be read
    back: ``@@database|application|pid@@``."""
    settings = {"log_statement": "'all'", "log_line_prefix": "'@@%d|%a|%p@@ '"}
    with ThrowawayPostgres(settings=settings) as server:
        yield server


def _source(db: Database) -> None:
    with db.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL(
            "CREATE TABLE {}.{} ({} int PRIMARY KEY, {} text, {} varchar(200), {} text, "
            "{} bytea, {} text[], {} jsonb)"
        ).format(sql.Identifier(SCHEMA), sql.Identifier(TABLE), sql.Identifier(KEY),
                 *map(sql.Identifier, COLUMNS)))
        conn.execute(sql.SQL(
            "CREATE TABLE {} ({} text PRIMARY KEY, n int, stored int, known boolean, "
            "fresh text, s int, p int)").format(sql.Identifier(PLAIN), sql.Identifier("Ké y")))
        for i in range(6):
            _upsert(conn, i, i)


def _upsert(conn: psycopg.Connection[Any], key: int, seed: int) -> None:
    def value(k: int) -> str:
        return VALUES[(seed + k) % len(VALUES)]
    table = sql.Identifier(SCHEMA, TABLE)
    conn.execute(sql.SQL(
        "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT ({}) DO UPDATE SET "
        "({}, {}, {}, {}, {}, {}) = ROW(excluded.{}, excluded.{}, excluded.{}, excluded.{}, "
        "excluded.{}, excluded.{})"
    ).format(table, sql.Identifier(KEY), *map(sql.Identifier, COLUMNS),
             *map(sql.Identifier, COLUMNS)),
        [key, value(0), value(1), value(2), value(3).encode() + b"\x00\xff'\\",
         [value(4), "{\"}", "NULL", None, "a,b"], Jsonb({value(5): value(6)})])
    conn.execute(sql.SQL(
        "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    ).format(sql.Identifier(PLAIN)), [value(0) + str(key), key, key, key % 2 == 0, value(1),
                                      key, -key])


def _changes(db: Database) -> None:
    """Updates, deletes, a key change and a new column after the snapshot."""
    with db.connect() as conn:
        for i in range(3, 9):
            _upsert(conn, i, i * 3)
        table = sql.Identifier(SCHEMA, TABLE)
        conn.execute(sql.SQL("DELETE FROM {} WHERE {} = 1").format(table, sql.Identifier(KEY)))
        conn.execute(sql.SQL("UPDATE {} SET {} = 100 WHERE {} = 2").format(
            table, sql.Identifier(KEY), sql.Identifier(KEY)))
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} text").format(
            table, sql.Identifier(ADDED)))
        conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {} = 4").format(
            table, sql.Identifier(ADDED), sql.Identifier(KEY)), [VALUES[0]])
        conn.execute(sql.SQL("DELETE FROM {} WHERE n = 0").format(sql.Identifier(PLAIN)))
        conn.execute(sql.SQL("UPDATE {} SET stored = -stored, known = NOT known WHERE n = 1")
                     .format(sql.Identifier(PLAIN)))


def _rows(conn: psycopg.Connection[Any], schema: str, table: str,
          columns: list[str]) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema, table))
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in conn.execute(query).fetchall()]


def _statements(log: str, database: str) -> list[tuple[str, str]]:
    """(application, SQL text) of every statement the server logged in ``database``;
    parameter values (DETAIL lines) are not statements and are left out."""
    entries: list[str] = []
    for line in log.splitlines():
        if line.startswith("@@"):
            entries.append(line)
        elif entries:
            entries[-1] += "\n" + line
    out = []
    pattern = re.compile(r"@@([^|]*)\|([^|]*)\|\d+@@ LOG:  (?:statement|execute [^:]*): (.*)",
                         re.DOTALL)
    for entry in entries:
        found = pattern.fullmatch(entry)
        if found and found.group(1) == database:
            out.append((found.group(2), found.group(3)))
    return out


def _unquoted(statement: str) -> str:
    """The statement with its quoted identifiers, string literals and dollar-quoted
    strings taken out (standard_conforming_strings: a quote is escaped by doubling)."""
    return re.sub(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|\$\$.*?\$\$', " ", statement,
                  flags=re.DOTALL)


def test_names_and_values_from_the_source_never_execute_in_the_target(
    db: Database, logged: ThrowawayPostgres, tmp_path: Path
) -> None:
    target = Database(logged, "target")
    logged.execute('CREATE DATABASE "target"')
    try:
        with psycopg.connect(target.dsn, autocommit=True, application_name=CHECKER) as conn:
            conn.execute("CREATE TABLE public.payload_victim (x int); "
                         "CREATE TABLE public.name_victim (x int)")
        _source(db)
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        replica = tmp_path / "replica.db"
        capture_once(db, log_url)
        for url in (target.url, f"sqlite://{replica}"):
            first = run_replicate(log_url, url, "--once")
            assert first.returncode == 0, first.stderr
        _changes(db)
        capture_once(db, log_url)
        for url in (target.url, f"sqlite://{replica}"):
            second = run_replicate(log_url, url, "--once", "--batch-size", "3")
            assert second.returncode == 0, second.stderr
        _check_statements(logged.server_log(), target.name)
        _check_postgres(db, target)
        _check_sqlite(db, replica)
    finally:
        target.cleanup()


def _check_statements(log: str, database: str) -> None:
    statements = _statements(log, database)
    ours = [text for application, text in statements if application == APPLICATION_NAME]
    assert len(ours) > 20, ours  # the log was read: duality's statements are there
    assert any("COPY" in text for text in ours)
    assert {application for application, _ in statements} <= {APPLICATION_NAME, CHECKER}
    assert any("payload_victim" in text for application, text in statements
               if application == CHECKER)  # the log shows SQL text where there is some
    for text in ours:
        assert "payload_victim" not in text, text  # values never travel as SQL text
        bare = _unquoted(text)
        assert ";" not in bare.rstrip().rstrip(";"), text
        assert "--" not in bare and "name_victim" not in bare and "$$" not in bare, text
    assert any(TABLE.replace('"', '""') in text for text in ours)  # names went quoted


def _check_postgres(source: Database, target: Database) -> None:
    columns = [KEY, *COLUMNS, ADDED]
    with source.connect() as src, psycopg.connect(target.dsn, autocommit=True,
                                                  application_name=CHECKER) as dst:
        want = _rows(src, SCHEMA, TABLE, columns)
        assert len(want) == 8 and any(VALUES[0] in row for row in want)
        assert _rows(dst, SCHEMA, TABLE, columns) == want
        assert _rows(dst, "public", PLAIN, PLAIN_COLUMNS) == _rows(src, "public", PLAIN,
                                                                     PLAIN_COLUMNS)
        for victim in ("payload_victim", "name_victim"):
            assert dst.execute("SELECT to_regclass(%s)", [f"public.{victim}"]).fetchone() != (
                None,)


def _check_sqlite(source: Database, path: Path) -> None:
    scalar = [KEY, *COLUMNS[:4], ADDED]
    with source.connect() as src:
        want = _rows(src, SCHEMA, TABLE, scalar)
        want_plain = _rows(src, "public", PLAIN, PLAIN_COLUMNS)
    conn = sqlite3.connect(path)
    try:
        names = ", ".join('"' + c.replace('"', '""') + '"' for c in scalar)
        table = '"' + TABLE.replace('"', '""') + '"'
        got = [tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)
               for row in conn.execute(f"SELECT {names} FROM {table} ORDER BY 1")]
        assert got == want
        plain = conn.execute('SELECT "Ké y", n, stored, known, fresh, s, p FROM "Mixed Case" '
                             'ORDER BY 1').fetchall()
        assert [(*row[:3], bool(row[3]), *row[4:]) for row in plain] == want_plain
    finally:
        conn.close()


#: Columns named like the aliases and common table expressions of the statements that
#: apply rows, and a key named like their own index column was; ``fresh`` is TOASTed.
ODD = """
CREATE TABLE odd (i int PRIMARY KEY, stored int, known boolean, fresh text, v text,
                  s int, p int, t int, f int);
INSERT INTO odd SELECT g, g, g % 2 = 0,
    (SELECT string_agg(md5(random()::text || g || n), '') FROM generate_series(1, 400) n),
    'v' || g, g, -g, g * 2, g * 3 FROM generate_series(1, 6) g
"""
ODD_COLUMNS = "i, stored, known, fresh, v, s, p, t, f"


def test_columns_named_like_the_statements_own_names(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """Updates that leave the TOASTed column unchanged carry Debezium's placeholder, so
    the stored rows of their keys are read back (a query with an index column of its
    own); the others go through the stage and the positions (common table expressions
    and aliases of their own)."""
    log_url = _replicated(db, target, tmp_path, ODD)
    replica = tmp_path / "replica.db"
    assert run_replicate(log_url, f"sqlite://{replica}", "--once").returncode == 0
    db.execute("UPDATE odd SET stored = -stored, known = NOT known WHERE i % 2 = 0;\n"
               "UPDATE odd SET fresh = 'short', v = NULL WHERE i = 3;\n"
               "DELETE FROM odd WHERE i = 5")
    capture_once(db, log_url)
    with SqliteLog(log_url, create=False) as log:
        values = [r.value for r in log.read("t.public.odd", 0, 0, 100) if r.value]
    assert any(b"__debezium_unavailable_value" in value for value in values)
    for url in (target.url, f"sqlite://{replica}"):
        applied = run_replicate(log_url, url, "--once")
        assert applied.returncode == 0, applied.stderr
    query = f"SELECT {ODD_COLUMNS} FROM odd ORDER BY i"
    want = db.query(query)
    assert len(want) == 5 and target.query(query) == want
    conn = sqlite3.connect(replica)
    try:
        got = [(*row[:2], bool(row[2]), *row[3:]) for row in conn.execute(query)]
    finally:
        conn.close()
    assert got == want


def _offsets(target: Database) -> list[tuple[Any, ...]]:
    return target.query("SELECT topic, partition, next_offset, carry FROM duality.offsets "
                        "ORDER BY 1, 2")


def _offset_of(log_url: str, topic: str, key: bytes) -> tuple[int, int]:
    """Partition and offset of the last change of ``key``."""
    found = []
    with SqliteLog(log_url, create=False) as log:
        for partition, end in log.end_offsets(topic).items():
            found += [(partition, record.offset) for record in log.read(topic, partition, 0, end)
                      if record.key == key and record.value is not None]
    assert found, (topic, key)
    return found[-1]


def _replicated(db: Database, target: Database, tmp_path: Path, sql: str) -> str:
    """Run ``sql`` on the source, capture it into a new log and replicate that into the
    target; the log's URL."""
    db.execute(sql)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    assert run_replicate(log_url, target.url, "--once").returncode == 0
    return log_url


def test_a_record_the_target_refuses_exits_5_without_advancing(
    db: Database, target: Database, tmp_path: Path
) -> None:
    log_url = _replicated(db, target, tmp_path,
                          "CREATE TABLE people (id int PRIMARY KEY, email text);\n"
                          "INSERT INTO people VALUES (1, 'a@example.com')")
    replica = tmp_path / "replica.db"
    assert run_replicate(log_url, f"sqlite://{replica}", "--once").returncode == 0
    target.execute("CREATE UNIQUE INDEX people_email ON public.people (email)")
    with closing(sqlite3.connect(replica)) as conn:
        conn.execute("CREATE UNIQUE INDEX people_email ON people (email)")
        conn.commit()
    db.execute("INSERT INTO people VALUES (2, 'b@example.com');\n"
               "INSERT INTO people VALUES (3, 'a@example.com');\n"
               "INSERT INTO people VALUES (4, 'c@example.com')")
    capture_once(db, log_url)
    partition, offset = _offset_of(log_url, "t.public.people", b'{"id":3}')
    in_sqlite = run_replicate(log_url, f"sqlite://{replica}", "--once")
    assert in_sqlite.returncode == 5, in_sqlite.stderr
    assert f"offset {offset} " in in_sqlite.stderr and 'key {"id":3}' in in_sqlite.stderr
    assert "UNIQUE constraint failed" in in_sqlite.stderr, in_sqlite.stderr
    before = _offsets(target)
    refused = run_replicate(log_url, target.url, "--once")
    assert refused.returncode == 5, refused.stderr
    message = refused.stderr
    assert "'t.public.people'" in message and f"partition {partition} " in message
    assert f"offset {offset} " in message and 'key {"id":3}' in message, message
    assert "people_email" in message and "Traceback" not in message, message
    assert _offsets(target) == before
    assert target.query("SELECT id FROM people ORDER BY id") == [(1,)]  # nothing of the batch
    target.execute("DROP INDEX people_email")
    again = run_replicate(log_url, target.url, "--once")
    assert again.returncode == 0, again.stderr
    assert target.query("SELECT id, email FROM people ORDER BY id") == db.query(
        "SELECT id, email FROM people ORDER BY id")
    assert _offsets(target) != before


def test_a_missing_privilege_on_a_target_table_exits_5_naming_it(
    db: Database, target: Database, tmp_path: Path
) -> None:
    log_url = _replicated(db, target, tmp_path,
                          "CREATE TABLE items (id int PRIMARY KEY, name text);\n"
                          "INSERT INTO items VALUES (1, 'one')")
    role = f"{target.name}_writer"
    target.execute(f'CREATE ROLE "{role}" LOGIN;\n'
                   f'GRANT USAGE, CREATE ON SCHEMA duality TO "{role}";\n'
                   f'GRANT ALL ON ALL TABLES IN SCHEMA duality TO "{role}";\n'
                   f'GRANT USAGE ON SCHEMA public TO "{role}";\n'
                   f'GRANT SELECT ON public.items TO "{role}"')
    try:
        db.execute("UPDATE items SET name = 'uno' WHERE id = 1")
        capture_once(db, log_url)
        before = _offsets(target)
        url = target.server.url(target.name, user=role)
        refused = run_replicate(log_url, url, "--once")
        assert refused.returncode == 5, refused.stderr
        partition, offset = _offset_of(log_url, "t.public.items", b'{"id":1}')
        assert f"partition {partition} offset {offset} key {{\"id\":1}}" in refused.stderr
        assert "permission denied" in refused.stderr and "Traceback" not in refused.stderr
        assert _offsets(target) == before
        target.execute(f'GRANT INSERT, UPDATE, DELETE ON public.items TO "{role}"')
        assert run_replicate(log_url, url, "--once").returncode == 0
        assert target.query("SELECT name FROM items") == [("uno",)]
    finally:
        target.execute(f'DROP OWNED BY "{role}";\nDROP ROLE "{role}"')
