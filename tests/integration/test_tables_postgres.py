"""End to end against a real PostgreSQL: random DML → capture → table equal to the source.

A table with a column of every kind of type the capture converts (integers, floats,
numerics of fixed and variable scale, money, booleans, text of every flavour, bytea,
bits, dates, times, timestamps with and without zone, intervals, uuid, json, jsonb,
inet, enums, points, arrays) and a TOASTed text column gets a snapshot, then random
inserts, updates (some leaving the TOASTed value unchanged, so Debezium's placeholder
travels), primary-key changes, deletes and an added column, captured with ``duality
capture --once`` between rounds. After every round the table folded from the log must
equal the source table, value by value, compared as Python values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from duality.tables.api import open_table
from tests.helpers import Database, capture

pytestmark = pytest.mark.postgres

SEEDS = range(4 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 2)
BIG = "".join(f"{i:08x}" for i in range(400))  # 3,200 characters: stored out of line

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything (
    id int PRIMARY KEY, c_smallint smallint, c_bigint bigint, c_real real,
    c_double double precision, c_numeric numeric(12,2), c_numeric_any numeric,
    c_money money, c_bool boolean, c_text text, c_varchar varchar(20), c_char char(4),
    c_bytea bytea, c_bits bit(12), c_date date, c_time time, c_time3 time(3),
    c_timestamp timestamp, c_timestamp3 timestamp(3), c_timestamptz timestamptz,
    c_timetz timetz, c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb,
    c_inet inet, c_mood mood, c_point point, c_int_arr int[], c_text_arr text[],
    c_big text);
ALTER TABLE everything ALTER COLUMN c_big SET STORAGE EXTERNAL;
"""
COLUMNS = [
    "c_smallint", "c_bigint", "c_real", "c_double", "c_numeric", "c_numeric_any", "c_money",
    "c_bool", "c_text", "c_varchar", "c_char", "c_bytea", "c_bits", "c_date", "c_time",
    "c_time3", "c_timestamp", "c_timestamp3", "c_timestamptz", "c_timetz", "c_interval",
    "c_uuid", "c_json", "c_jsonb", "c_inet", "c_mood", "c_point", "c_int_arr", "c_text_arr",
    "c_big",
]
TEXTS = ["", "plain", "it's", 'a "quote"', "semi;colon", "back\\slash", "Ünïcødé 😀", "tab\tnl\n"]


def _value(rng: random.Random, column: str) -> Any:
    """A random value of the column (or NULL), as psycopg sends it, with its cast."""
    if rng.random() < 0.1:
        return None
    stamp = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=rng.randrange(-10**16, 10**16))
    makers: dict[str, Any] = {
        "c_smallint": lambda: rng.randrange(-32768, 32768),
        "c_bigint": lambda: rng.randrange(-(2**63), 2**63),
        "c_real": lambda: rng.choice([0.1, -2.5, 3.4e38, 1e-30, 0.0]),
        "c_double": lambda: rng.choice([0.1, -1e300, 2.5, 1 / 3]),
        "c_numeric": lambda: Decimal(rng.randrange(-10**11, 10**11)) / 100,
        "c_numeric_any": lambda: Decimal(rng.randrange(-10**30, 10**30)).scaleb(
            -rng.randrange(0, 25)),
        "c_money": lambda: Decimal(rng.randrange(-10**9, 10**9)) / 100,
        "c_bool": lambda: rng.random() < 0.5,
        "c_text": lambda: rng.choice(TEXTS),
        "c_varchar": lambda: rng.choice(TEXTS)[:20],
        "c_char": lambda: rng.choice(["ab", "abcd", "é"]),
        "c_bytea": lambda: rng.randbytes(rng.randrange(0, 40)),
        "c_bits": lambda: "".join(rng.choice("01") for _ in range(12)),
        "c_date": stamp.date,
        "c_time": stamp.time,
        "c_time3": lambda: stamp.time().replace(microsecond=stamp.microsecond // 1000 * 1000),
        "c_timestamp": lambda: stamp,
        "c_timestamp3": lambda: stamp.replace(microsecond=stamp.microsecond // 1000 * 1000),
        "c_timestamptz": lambda: stamp.replace(tzinfo=dt.timezone(dt.timedelta(
            minutes=rng.randrange(-720, 720)))),
        "c_timetz": lambda: stamp.time().replace(tzinfo=dt.timezone(dt.timedelta(
            hours=rng.randrange(-12, 13)))),
        "c_interval": lambda: dt.timedelta(microseconds=rng.randrange(-10**12, 10**12)),
        "c_uuid": lambda: uuid.UUID(int=rng.getrandbits(128)),
        "c_json": lambda: json.dumps({"a": [1, 2.5, None], "b": rng.choice(TEXTS)}),
        "c_jsonb": lambda: json.dumps({"k": rng.randrange(100), "s": rng.choice(TEXTS)}),
        "c_inet": lambda: rng.choice(["192.168.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"]),
        "c_mood": lambda: rng.choice(["sad", "ok", "happy"]),
        "c_point": lambda: f"({rng.randrange(-100, 100) / 4},{rng.randrange(-100, 100) / 8})",
        "c_int_arr": lambda: [rng.choice([1, -7, None, 2**31 - 1]) for _ in range(3)],
        "c_text_arr": lambda: [rng.choice([*TEXTS, None]) for _ in range(2)],
        "c_big": lambda: BIG[rng.randrange(100):],
    }
    return makers[column]()


CASTS = {"c_bits": "::bit(12)", "c_json": "::json", "c_jsonb": "::jsonb", "c_inet": "::inet",
         "c_mood": "::mood", "c_point": "::point", "c_money": "::numeric::money"}


def _insert(db: Database, rng: random.Random, key: int) -> None:
    marks = ", ".join(f"%s{CASTS.get(c, '')}" for c in COLUMNS)
    db.query(f"INSERT INTO everything (id, {', '.join(COLUMNS)}) VALUES (%s, {marks}) "
             f"ON CONFLICT (id) DO NOTHING RETURNING id",
             [key, *(_value(rng, c) for c in COLUMNS)])


def _update(db: Database, rng: random.Random, key: int) -> None:
    """Some columns, never ``c_big``: its unchanged TOASTed value becomes a placeholder."""
    chosen = rng.sample(COLUMNS[:-1], 3)
    sets = ", ".join(f"{c} = %s{CASTS.get(c, '')}" for c in chosen)
    db.query(f"UPDATE everything SET {sets} WHERE id = %s RETURNING id",
             [*(_value(rng, c) for c in chosen), key])


def change(db: Database, rng: random.Random, action: str, key: int, moved: int = 1000) -> None:
    """One random change of the row ``key``: insert, update, rekey (to ``key + moved``)
    or delete."""
    if action == "insert":
        _insert(db, rng, key)
    elif action == "update":
        _update(db, rng, key)
    elif action == "rekey":
        db.query("UPDATE everything SET id = %s WHERE id = %s AND NOT EXISTS "
                 "(SELECT 1 FROM everything WHERE id = %s) RETURNING id",
                 [key + moved, key, key + moved])
    else:
        db.query("DELETE FROM everything WHERE id = %s RETURNING id", [key])


def _round(db: Database, rng: random.Random, keys: range) -> None:
    for _ in range(25):
        action, key = rng.choice(["insert", "insert", "update", "update", "rekey", "delete"]), \
            rng.choice(keys)
        change(db, rng, action, key)


def source_sql(columns: list[str]) -> str:
    """The query that reads the source table as the comparisons want it."""
    exprs = [
        "c_money::numeric" if c == "c_money" else
        "(c_timetz AT TIME ZONE 'UTC')::time::text" if c == "c_timetz" else
        "c_bits::text" if c == "c_bits" else
        "c_point::text" if c == "c_point" else c
        for c in columns
    ]
    return f"SELECT id, {', '.join(exprs)} FROM everything"


def _source(db: Database, columns: list[str]) -> dict[int, dict[str, Any]]:
    rows = db.query(source_sql(columns))
    return {row[0]: dict(zip(["id", *columns], row, strict=True)) for row in rows}


def _same(column: str, source: Any, table: Any) -> bool:
    if source is None or table is None:
        return source is None and table is None
    if column == "c_real":
        return struct.pack("f", source) == struct.pack("f", table)
    if column in ("c_json", "c_jsonb"):
        return bool(json.loads(table) == source)
    if column in ("c_uuid", "c_inet"):
        return str(source) == table
    if column == "c_timestamptz":
        return bool(source == table)
    if column == "c_timetz":
        return _seconds(source) == _seconds(table.rstrip("Z"))
    if column == "c_bits":
        return int(source, 2).to_bytes(2, "little").rstrip(b"\0") == table
    if column == "c_interval":  # Debezium computes MicroDuration in doubles
        return bool(abs(source - table) <= dt.timedelta(microseconds=1))
    if column == "c_point":
        x, y = (float(p) for p in source.strip("()").split(","))
        return (table["x"], table["y"]) == (x, y)
    return bool(source == table)


def _seconds(clock: str) -> Decimal:
    hours, minutes, seconds = clock.split(":")
    return (int(hours) * 60 + int(minutes)) * 60 + Decimal(seconds)


def _check(db: Database, log_url: str, columns: list[str]) -> None:
    source = _source(db, columns)
    with open_table("t.public.everything", log=log_url) as table:
        got = {row["id"]: row for row in table.select()}
        assert table.columns == ["id", *columns]
    assert sorted(got) == sorted(source)
    for key, row in source.items():
        for column in columns:
            assert _same(column, row[column], got[key][column]), (key, column, row[column],
                                                                  got[key][column])


@pytest.mark.parametrize("seed", SEEDS)
def test_random_dml_captured_and_folded_equals_the_source(
    db: Database, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    db.execute(SCHEMA)
    for key in range(12):
        _insert(db, rng, key)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture(db, log_url)  # the snapshot
    _check(db, log_url, COLUMNS)
    for _ in range(2):
        _round(db, rng, range(20))
        capture(db, log_url)
        _check(db, log_url, COLUMNS)
    db.execute("ALTER TABLE everything ADD COLUMN c_added numeric(6,3)")
    db.execute("UPDATE everything SET c_added = id / 8.0 WHERE id % 2 = 0")
    _round(db, rng, range(20))
    capture(db, log_url)
    _check(db, log_url, [*COLUMNS, "c_added"])
