"""Undo of columns of the user's own types, run in PostgreSQL under the default search_path.

Enums and arrays of them, domains (over text, over bytea, over int as the primary key), a
composite, types in schemas whose names need quotes (one holds a double quote), and text
full of backslashes — captured while their schemas were on the capture session's
search_path (the registered schema then names the types without their schema) and while
they were not. The script, run by psql, must give back the table as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Database, capture, duality

pytestmark = pytest.mark.postgres

TOPIC = "t.public.things"
SETUP = r"""
CREATE SCHEMA "my s";
CREATE SCHEMA "we""ird";
CREATE SCHEMA hidden;
CREATE TYPE "my s".mood AS ENUM ('sad', 'ok', 'hap"py', 'back\slash', 'com,ma', ' sp ');
CREATE TYPE public.mood AS ENUM ('sad');
CREATE TYPE hidden.color AS ENUM ('red', 'gr''een');
CREATE TYPE "we""ird"."Col""or" AS ENUM ('a', 'b');
CREATE DOMAIN "my s".d AS text CHECK (VALUE <> 'bad');
CREATE DOMAIN "my s".blob AS bytea;
CREATE DOMAIN "my s".key AS integer CHECK (VALUE > 0);
CREATE TYPE "my s".pair AS (a int, b text);
CREATE TABLE things (id "my s".key PRIMARY KEY, m "my s".mood, ms "my s".mood[],
  sh public.mood, c hidden.color, cs hidden.color[], w "we""ird"."Col""or",
  ws "we""ird"."Col""or"[], d "my s".d, b "my s".blob, p "my s".pair, s text);
ALTER TABLE things REPLICA IDENTITY FULL;
INSERT INTO things VALUES
  (1, 'hap"py', E'{sad,"hap\\"py","back\\\\slash","com,ma"," sp "}', 'sad', 'gr''een',
   '{red,"gr''een"}', 'b', '{a,b}', E'it''s \\ d', '\x5c7841', E'(1,"x\\\\y ""q"" z")',
   E'\\\\\\x41\\n\\u0041 \\'' $$ \\\\'),
  (2, 'back\slash', '{}', NULL, 'red', '{}', 'a', '{}', 'é', convert_to('héllo \ w', 'UTF8'),
   '(2,)', E'\\'),
  (3, ' sp ', NULL, 'sad', NULL, NULL, 'b', NULL, '', '\x00', NULL, E'a\\b\\\\c'),
  (4, 'ok', '{ok}', NULL, 'red', '{red}', 'a', '{b}', 'x', '\xff00', '(,)', ''),
  (5, 'sad', '{sad}', 'sad', 'red', NULL, NULL, '{a}', 'y', 'hello', '(5,"a b")', 'five'),
  (6, 'com,ma', '{"com,ma"}', NULL, NULL, '{}', 'b', '{}', NULL, '', NULL, NULL)
"""
#: Every column of three rows, one column of another, a delete, a key change, an insert.
CHANGES = r"""
UPDATE things SET m = 'sad', ms = '{}', sh = NULL, c = 'red', cs = NULL, w = 'a', ws = '{}',
  d = 'z', b = '\x41', p = '(9,z)', s = 'plain' WHERE id IN (1, 2, 3);
UPDATE things SET b = '\x5c' WHERE id = 4;
DELETE FROM things WHERE id = 5;
UPDATE things SET id = 60 WHERE id = 6;
INSERT INTO things (id, b) VALUES (7, '\x5c30')
"""
ROWS = "SELECT id::int, t::text FROM things t ORDER BY id"


def _psql(db: Database, script: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["psql", db.url, "-v", "ON_ERROR_STOP=1", "-q", "-f", str(script)],
                          check=False, capture_output=True)


def _tried(db: Database, sql: str, setting: str) -> list[tuple[Any, ...]]:
    """The rows after the script under ``standard_conforming_strings`` = ``setting``,
    rolled back."""
    with db.connect() as conn:
        conn.execute(f"SET standard_conforming_strings = {setting}")
        body = sql.rstrip("\n").removesuffix("COMMIT;")
        assert body != sql.rstrip("\n")
        conn.execute("BEGIN")
        conn.execute(body.encode())
        rows = conn.execute(ROWS).fetchall()
        conn.execute("ROLLBACK")
    return rows


@pytest.mark.parametrize("search_path", [None, '"my s", hidden, "we""ird", public'],
                         ids=["schemas-named", "schemas-on-search-path"])
def test_undo_of_own_types_gives_the_table_back(
    db: Database, tmp_path: Path, search_path: str | None
) -> None:
    db.execute(SETUP)
    if search_path is not None:  # capture's format_type then leaves those schemas out
        db.execute(f'ALTER DATABASE "{db.name}" SET search_path = {search_path}')
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(db, log_url)
    before = db.query(ROWS)
    db.execute(CHANGES)
    capture(db, log_url)
    db.execute(f'ALTER DATABASE "{db.name}" RESET search_path')
    sql = duality("undo", TOPIC, "--log", log_url, "--since", str(len(before) - 1)).stdout
    assert sql.count("\n-- ") == 7  # one statement per change (the key change's two as one)
    if search_path is None:
        assert '::"my s".mood' in sql and '::"we""ird"."Col""or"[]' in sql
    else:  # the schema is not known: no cast, the column's type reads the literal
        assert "::mood" not in sql and "::public.mood" in sql
    assert _tried(db, sql, "off") == before
    (tmp_path / "undo.sql").write_text(sql)
    ran = _psql(db, tmp_path / "undo.sql")
    assert ran.returncode == 0, ran.stderr.decode()
    assert db.query(ROWS) == before


def test_bytes_of_an_unmapped_type_are_text_or_fail_whole(db: Database, tmp_path: Path) -> None:
    """With include.unknown.datatypes=true a composite's text arrives as bytes, as a domain
    over bytea's do: ASCII without a backslash is written back as text; other values as
    bytea, which the composite column refuses, so the script changes nothing."""
    db.execute('CREATE SCHEMA "my s";\n'
               'CREATE TYPE "my s".pair AS (a int, b text);\n'
               'CREATE TABLE things (id int PRIMARY KEY, p "my s".pair);\n'
               "ALTER TABLE things REPLICA IDENTITY FULL;\n"
               r"""INSERT INTO things VALUES (1, '(1,plain)'), (2, E'(2,"back\\\\slash")')""")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    options = ("-p", "include.unknown.datatypes=true")
    capture(db, log_url, *options)
    before = db.query(ROWS)
    db.execute("UPDATE things SET p = NULL WHERE id = 1;\nUPDATE things SET p = NULL WHERE id = 2")
    capture(db, log_url, *options)
    first = duality("undo", TOPIC, "--log", log_url, "--since", "1", "--until", "2").stdout
    (tmp_path / "first.sql").write_text(first)
    assert _psql(db, tmp_path / "first.sql").returncode == 0
    assert db.query(ROWS) == [before[0], (2, "(2,)")]
    second = duality("undo", TOPIC, "--log", log_url, "--since", "2").stdout
    assert '::bytea::"my s".pair' in second
    (tmp_path / "second.sql").write_text(second)
    failed = _psql(db, tmp_path / "second.sql")
    assert failed.returncode != 0 and b"bytea" in failed.stderr
    assert db.query(ROWS) == [before[0], (2, "(2,)")]


DOMAINS = """
CREATE SCHEMA "my s";
CREATE DOMAIN "my s".blob AS bytea;
CREATE DOMAIN public.amount AS numeric(8,3);
CREATE DOMAIN public.small_amount AS public.amount CHECK (VALUE < 1000);
CREATE TABLE things (id int PRIMARY KEY, b "my s".blob, bs "my s".blob[], a public.amount,
  sa public.small_amount);
ALTER TABLE things REPLICA IDENTITY FULL;
INSERT INTO things VALUES (1, '\\x00ff5c', '{"\\\\x41"}', 12.345, 0.001)
"""


@pytest.mark.parametrize("options", [(), ("-p", "binary.handling.mode=hex"),
                                     ("-p", "decimal.handling.mode=double")],
                         ids=["exact", "bytea-as-hex", "numeric-as-double"])
def test_domains_are_undone_by_the_type_under_them(
    db: Database, tmp_path: Path, options: tuple[str, ...]
) -> None:
    """The log records what type is under a domain: a domain over bytea and one over
    numeric (and a domain over that) are written back exactly, or refused naming the
    setting where their values lost information (bytea as text, numeric as a double)."""
    db.execute(DOMAINS)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(db, log_url, *options)
    before = db.query(ROWS)
    db.execute("UPDATE things SET b = NULL, bs = NULL, a = NULL, sa = NULL")
    capture(db, log_url, *options)
    undone = duality("undo", TOPIC, "--log", log_url, "--since", "0", check=False)
    if not options:
        assert undone.returncode == 0, undone.stderr
        (tmp_path / "undo.sql").write_text(undone.stdout)
        ran = _psql(db, tmp_path / "undo.sql")
        assert ran.returncode == 0, ran.stderr.decode()
        assert db.query(ROWS) == before
        return
    setting = {"bytea-as-hex": "binary.handling.mode=bytes",
               "numeric-as-double": "decimal.handling.mode=precise"}[
                   "bytea-as-hex" if "hex" in options[1] else "numeric-as-double"]
    assert undone.returncode != 0 and undone.stdout == ""
    assert setting in undone.stderr
