"""Undo's literals round-trip through PostgreSQL: a value's text, converted to its
Debezium payload by capture's own converters, written back as a literal by
:mod:`duality.tables.pg_literals`, reads in PostgreSQL as the same value (same text
output under capture's session settings). Representations that lose information are
refused, naming the setting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from duality.events.schema import ConnectSchema
from duality.sources.postgres.types import SESSION_SETTINGS, ValueSettings, builtin_type, codec_for
from duality.tables.pg_literals import (
    Inexact,
    cast_type,
    literal,
    quote_ident,
    quote_text,
    resolvable_cast,
)
from tests.helpers import Database

pytestmark = pytest.mark.postgres

#: (type name as format_type prints it, pg_type name, type modifier, texts, settings)
CASES: list[tuple[str, str, int, list[str], dict[str, str]]] = [
    ("numeric(12,2)", "numeric", (12 << 16 | 2) + 4, ["0.00", "-1.50", "9999999999.99"], {}),
    ("numeric", "numeric", -1,
     ["0", "1.5", "-123456789012345678901234.5678", "0.00000000000000000001"], {}),
    ("numeric", "numeric", -1, ["NaN", "Infinity", "-Infinity", "2.50"],
     {"decimal_handling_mode": "string"}),
    ("money", "money", -1, ["$1,234.56", "-$0.01"], {}),
    ("real", "float4", -1, ["0.1", "-3.4028235e+38", "1e-45", "NaN", "-Infinity"], {}),
    ("double precision", "float8", -1, ["0.1", "1e308", "-0", "Infinity"], {}),
    ("bigint", "int8", -1, ["-9223372036854775808", "9223372036854775807"], {}),
    ("boolean", "bool", -1, ["t", "f"], {}),
    ("bit(12)", "bit", 12, ["000000000000", "100000000001", "010101010101"], {}),
    ("bit(1)", "bit", 1, ["0", "1"], {}),
    ("bytea", "bytea", -1, ["\\x", "\\x00ff27225c", "\\x" + "ab" * 50], {}),
    ("date", "date", -1, ["2024-02-29", "0044-03-15 BC", "0001-01-01 BC", "infinity",
                          "-infinity", "9999-12-31", "12345-01-01"], {}),
    ("time without time zone", "time", -1, ["00:00:00", "24:00:00", "13:45:30.123456"], {}),
    ("time(3) without time zone", "time", 3, ["13:45:30.123", "23:59:59.999"], {}),
    ("timestamp without time zone", "timestamp", -1,
     ["2024-02-29 13:45:30.123456", "0044-03-15 12:00:00 BC", "infinity", "-infinity",
      "1900-01-01 00:00:00"], {}),
    ("timestamp(3) without time zone", "timestamp", 3,
     ["2024-02-29 13:45:30.123", "infinity", "-infinity"], {}),
    ("timestamp(3) without time zone", "timestamp", 3, ["infinity", "-infinity"],
     {"time_precision_mode": "connect"}),
    ("timestamp with time zone", "timestamptz", -1,
     ["2024-02-29 13:45:30.123456+00", "0044-03-15 12:00:00+00 BC", "infinity",
      "2024-01-01 00:00:00+00"], {}),
    ("interval", "interval", -1, ["1 year 2 mons 3 days 04:05:06.789", "-1 days -00:00:01.5",
                                  "00:00:00", "-1 years +2 mons"],
     {"interval_handling_mode": "string"}),
    ("uuid", "uuid", -1, ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"], {}),
    ("json", "json", -1, ['{"a": [1, 2.5, null], "b": "it\'s \\\\ \\"x\\""}'], {}),
    ("jsonb", "jsonb", -1, ['{"a": [1, 2.5, null], "b": "x"}'], {}),
    ("inet", "inet", -1, ["10.0.0.0/8", "::1"], {}),
    ("point", "point", -1, ["(1.5,-2.25)", "(0,0)"], {}),
    ("text", "text", -1, ["", "it's", "back\\slash", "Ünï 😀", "tab\tnl\n", "$$"], {}),
    ("character(4)", "bpchar", 8, ["ab  ", "é   "], {}),
    ("integer[]", "_int4", -1, ["{}", "{1,NULL,-7}"], {}),
    ("text[]", "_text", -1, ['{"a b","it\'s","q\\"uote","back\\\\slash",NULL,""}'], {}),
    ("numeric[]", "_numeric", -1, ["{1.5,-2,NULL}"], {}),
    ("bytea[]", "_bytea", -1, ['{"\\\\x00ff",NULL}'], {}),
]


@pytest.fixture(scope="module")
def conn(pg: Any) -> Iterator[psycopg.Connection[Any]]:
    database = Database(pg, "literals")
    pg.execute('DROP DATABASE IF EXISTS "literals"')
    pg.execute('CREATE DATABASE "literals"')
    with psycopg.connect(database.dsn, autocommit=True) as connection:
        for name, value in SESSION_SETTINGS.items():
            connection.execute(f"SELECT set_config('{name}', %s, false)", [value])
        yield connection
    database.cleanup()


def _payload(pg_type: str, modifier: int, text: str, settings: dict[str, str]) -> tuple[Any, Any]:
    codec = codec_for(builtin_type(pg_type), modifier, optional=True,
                      settings=ValueSettings(**settings))  # type: ignore[arg-type]
    return codec.from_text(text.encode()), ConnectSchema.from_json(codec.schema)


@pytest.mark.parametrize(("type_name", "pg_type", "modifier", "texts", "settings"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_literals_read_back_as_the_same_value(
    conn: psycopg.Connection[Any], type_name: str, pg_type: str, modifier: int,
    texts: list[str], settings: dict[str, str],
) -> None:
    for text in texts:
        value, schema = _payload(pg_type, modifier, text, settings)
        written = literal(value, schema, type_name)
        got, wanted = conn.execute(
            f"SELECT ({written})::text, (%s::{type_name})::text", [text]
        ).fetchone() or (None, None)
        assert got == wanted, (text, value, written)


@pytest.mark.parametrize(("type_name", "pg_type", "modifier", "settings", "setting"), [
    ("numeric(12,2)", "numeric", (12 << 16 | 2) + 4, {"decimal_handling_mode": "double"},
     "decimal.handling.mode=precise"),
    ("interval", "interval", -1, {}, "interval.handling.mode=string"),
    ("time without time zone", "time", -1, {"time_precision_mode": "connect"},
     "time.precision.mode=adaptive"),
    ("bytea", "bytea", -1, {"binary_handling_mode": "base64"}, "binary.handling.mode=bytes"),
    ("date", "date", -1, {"time_precision_mode": "isostring"}, "time.precision.mode=adaptive"),
])
def test_lossy_representations_are_refused(
    type_name: str, pg_type: str, modifier: int, settings: dict[str, str], setting: str
) -> None:
    texts = {"numeric": "1.50", "interval": "1 mon", "time": "10:00:00.123456",
             "bytea": "\\x00", "date": "2024-01-01"}
    value, schema = _payload(pg_type, modifier, texts[pg_type], settings)
    with pytest.raises(Inexact) as refused:
        literal(value, schema, type_name)
    assert refused.value.setting == setting


def test_time_with_time_zone_keeps_the_instant_and_says_so(conn: psycopg.Connection[Any]) -> None:
    value, schema = _payload("timetz", -1, "10:00:00.5+03", {})
    notes: set[str] = set()
    written = literal(value, schema, "time with time zone", notes)
    assert conn.execute(f"SELECT {written} = '07:00:00.5+00'::timetz").fetchone() == (True,)
    assert any("UTC" in note for note in notes)


@pytest.mark.parametrize("bad", ["int); DROP TABLE x; --", "text[]; SELECT 1", "a--b",
                                 "int'", 'x"y', "numeric(1,2))"])
def test_type_names_that_are_not_type_names_are_refused(bad: str) -> None:
    with pytest.raises(Inexact):
        cast_type(bad)


@pytest.mark.parametrize("good", ["numeric(12,2)", "character varying(20)", 'public."Mood"',
                                  "timestamp(3) with time zone", "text[]", "bit varying(5)",
                                  '"we""ird"[]', "interval year to month"])
def test_type_names_format_type_prints_are_accepted(good: str) -> None:
    assert cast_type(good) == good


@pytest.mark.parametrize(("name", "cast"), [
    ("integer", "integer"), ("character varying(20)[]", "character varying(20)[]"),
    ("timestamp(3) with time zone", "timestamp(3) with time zone"), ('"char"', '"char"'),
    ("interval day to second(3)", "interval day to second(3)"), ("bpchar", "bpchar"),
    ('"my s".mood[]', '"my s".mood[]'), ('"we""ird"."Col""or"', '"we""ird"."Col""or"'),
    ("public.hstore", "public.hstore"),
    # schema left out by format_type (it was on capture's search_path): unknown, so no cast
    ("mood", None), ("mood[]", None), ('"Col""or"[]', None), ("hstore", None), ("double", None),
    ("citext", None), (None, None),
])
def test_casts_name_the_same_type_under_any_search_path(name: str | None, cast: str | None) -> None:
    assert resolvable_cast(name) == cast


def test_quoting(conn: psycopg.Connection[Any]) -> None:
    for text in ["it's", "back\\slash'", "\\'; DROP TABLE x; --", "ü\n\t😀", "$$"]:
        assert conn.execute(f"SELECT {quote_text(text)}").fetchone() == (text,)
        assert conn.execute(f"SELECT 1 AS {quote_ident(text)}").description[0].name == text
    with pytest.raises(Inexact):
        quote_text("nul\x00")
