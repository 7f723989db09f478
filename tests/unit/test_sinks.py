"""The pure parts of the sinks: the PostgreSQL type map and its widening rules, payload
values in PostgreSQL's syntax (standard-library oracles), target naming, DDL plans and
the quoting of every identifier in the generated SQL, and the split of encoded stage
tuples over sessions."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Context, Decimal
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.errors import ApplyError, ConfigError
from duality.events.schema import ConnectSchema
from duality.sinks import base as sinks_base
from duality.sinks import ddl
from duality.sinks.base import EncodedRows, StageTuples
from duality.sinks.dialects import Dialect
from duality.sinks.dialects import postgres_values as pv
from duality.sinks.dialects.postgres import POSTGRES, quote
from duality.sinks.dialects.postgres_types import column_type, holds
from duality.sinks.dialects.sqlite import SQLITE
from duality.sinks.naming import Naming, split_name
from duality.sinks.statements import RESERVED, TableSql

DECIMAL = "org.apache.kafka.connect.data.Decimal"


def prim(kind: str, name: str | None = None, **params: str) -> ConnectSchema:
    return ConnectSchema(kind, True, name=name, parameters=params or None)


@pytest.mark.parametrize(("schema", "source", "expected"), [
    (prim("int16"), "smallint", "smallint"),
    (prim("int32"), "integer", "integer"),
    (prim("int64"), "bigint", "bigint"),
    (prim("int32"), "public.posint", "integer"),  # a domain: its base type's
    (prim("double"), "double precision", "double precision"),
    (prim("float"), "real", "real"),
    (prim("bytes", DECIMAL, scale="2", **{"connect.decimal.precision": "12"}),
     "numeric(12,2)", "numeric(12,2)"),
    (prim("bytes", DECIMAL, scale="2", **{"connect.decimal.precision": "9"}), None,
     "numeric(9,2)"),
    (prim("bytes", DECIMAL, scale="2"), "money", "money"),
    (prim("string"), "numeric(7,3)", "numeric(7,3)"),  # decimal.handling.mode=string
    (prim("string"), "character varying(20)", "character varying(20)"),
    (prim("string"), "inet", "inet"),
    (prim("string"), "mood", "text"),  # an enum the target lacks
    (prim("string", "io.debezium.data.Enum", allowed="a,b"), "mood", "text"),
    (prim("string", "io.debezium.data.Json"), "json", "json"),
    (prim("string", "io.debezium.data.Json"), "jsonb", "jsonb"),
    (prim("string", "io.debezium.data.Json"), None, "jsonb"),
    (prim("string", "io.debezium.data.Uuid"), "uuid", "uuid"),
    (prim("string", "io.debezium.time.ZonedTimestamp"), "timestamp(3) with time zone",
     "timestamp(3) with time zone"),
    (prim("int64", "io.debezium.time.MicroTimestamp"), "timestamp without time zone",
     "timestamp without time zone"),
    (prim("int32", "io.debezium.time.Time"), "time(3) without time zone",
     "time(3) without time zone"),
    (prim("int64", "io.debezium.time.MicroDuration"), "interval", "interval"),
    (prim("bytes", "io.debezium.data.Bits", length="12"), "bit(12)", "bit(12)"),
    (prim("bytes"), "bytea", "bytea"),
    (prim("string"), 'public."odd type"', "text"),
    (ConnectSchema("array", True, items=prim("int32")), "integer[]", "integer[]"),
    (ConnectSchema("array", True, items=prim("bytes", DECIMAL, scale="2", **{
        "connect.decimal.precision": "5"})), "numeric(5,2)[]", "numeric(5,2)[]"),
    (ConnectSchema("map", True, keys=prim("string"), values=prim("string")), "hstore",
     "jsonb"),
])
def test_type_map(schema: ConnectSchema, source: str | None, expected: str) -> None:
    assert column_type(schema, source) == expected


@pytest.mark.parametrize(("existing", "wanted", "expected"), [
    ("bigint", "integer", True),
    ("integer", "bigint", False),
    ("numeric(12,2)", "numeric(10,2)", True),
    ("numeric(12,2)", "numeric(12,3)", False),
    ("numeric", "numeric(30,10)", True),
    ("numeric(20,0)", "bigint", True),
    ("numeric(10,0)", "bigint", False),
    ("text", "character varying(20)", True),
    ("character varying(10)", "character varying(20)", False),
    ("character varying", "character varying(20)", True),
    ("double precision", "real", True),
    ("timestamp(6) without time zone", "timestamp(3) without time zone", True),
    ("timestamp without time zone", "timestamp(3) without time zone", True),
    ("timestamp(3) without time zone", "timestamp without time zone", False),
    ("bigint[]", "integer[]", True),
    ("integer", "integer[]", False),
    ("integer", "text", False),
    ("text", "integer", False),
    ("character(4)", "text", False),
])
def test_which_columns_hold_which_values(existing: str, wanted: str, expected: bool) -> None:
    assert holds(existing, wanted) is expected


# --- values ------------------------------------------------------------------------------


@given(st.integers(-(10**40), 10**40), st.integers(0, 30))
def test_decimals_are_exact(unscaled: int, scale: int) -> None:
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8 or 1, "big", signed=True)
    text = pv.decoder(prim("bytes", DECIMAL, scale=str(scale)))(  # type: ignore[misc]
        base64.b64encode(raw).decode())
    assert Decimal(text) == Decimal(unscaled).scaleb(-scale, Context(prec=200))
    assert len(text.partition(".")[2]) == scale


@given(st.dates())
def test_days_in_range_are_iso(day: dt.date) -> None:
    assert pv.day((day - dt.date(1970, 1, 1)).days) == day.isoformat()


CYCLE = 146_097  # days in 400 Gregorian years


def postgres_day(days: int) -> str:
    """The oracle: the date in a 400-year cycle Python holds, moved back by whole cycles;
    PostgreSQL counts 1 BC, 2 BC … where ISO counts 0, -1 …"""
    shift = 0
    ordinal = days + dt.date(1970, 1, 1).toordinal()
    while ordinal < 1:
        ordinal, shift = ordinal + CYCLE, shift - 400
    while ordinal > dt.date.max.toordinal():
        ordinal, shift = ordinal - CYCLE, shift + 400
    day = dt.date.fromordinal(ordinal)
    year = day.year + shift
    if year >= 1:
        return f"{year:04d}-{day.month:02d}-{day.day:02d}"
    return f"{1 - year:04d}-{day.month:02d}-{day.day:02d} BC"


@given(st.one_of(st.integers(-3_000_000, -719_163), st.integers(2_932_897, 100_000_000)))
def test_days_out_of_range_in_postgresql_syntax(days: int) -> None:
    assert pv.day(days) == postgres_day(days)


def test_infinite_days_and_times() -> None:
    assert (pv.day(-2_147_472_692), pv.day(-2_147_472_691)) == ("infinity", "-infinity")
    assert pv.timestamp_codec(6)(9_223_372_036_825_200_000) == "infinity"


@given(st.integers(-(10**17), 10**17))
def test_timestamps(micros: int) -> None:
    days, rest = divmod(micros, 86_400_000_000)
    clock = (dt.datetime.min + dt.timedelta(microseconds=rest)).time().isoformat("microseconds")
    day = postgres_day(days)
    expected = f"{day}T{clock}" if not day.endswith("BC") else f"{day[:-3]} {clock} BC"
    assert pv.timestamp_codec(6)(micros) == expected


def test_bits_floats_points_and_arrays() -> None:
    assert pv.bits_codec(12, True)(base64.b64encode((0b101000000001).to_bytes(2, "little"))
                                   .decode()) == "101000000001"
    assert pv.floating("NaN") != pv.floating("NaN")
    assert pv.floating("-Infinity") == float("-inf")
    assert pv.point({"x": 1.5, "y": -2, "wkb": None, "srid": None}) == "(1.5,-2.0)"
    items = ConnectSchema("array", True, items=prim("string"))
    literal = pv.decoder(items)(['a"b', None, "c\\d", "", "NULL"])  # type: ignore[misc]
    assert literal == '{"a\\"b",NULL,"c\\\\d","","NULL"}'
    nested = pv.array_literal([[1, 2], [None, 3]], None)
    assert nested == '{{"1","2"},{NULL,"3"}}'
    assert pv.array_literal([b"\x01\xff", 1.5, True], None) == '{"\\\\x01ff","1.5","t"}'


# --- naming ------------------------------------------------------------------------------


def test_names_with_quotes_and_dots() -> None:
    assert split_name('"my.schema"."odd ""t"""', "--map") == ("my.schema", 'odd "t"')
    with pytest.raises(ConfigError, match=r"not a schema or schema\.table"):
        split_name("a.b.c", "--map source")


def test_map_and_prefix() -> None:
    naming = Naming.parse(["public.accounts=crm.customers", "sales=replica",
                           "public.x=renamed"], "src_")
    assert str(naming.target("public", "accounts", with_schemas=True)) == "crm.src_customers"
    assert str(naming.target("sales", "orders", with_schemas=True)) == "replica.src_orders"
    assert str(naming.target("public", "x", with_schemas=True)) == "public.src_renamed"
    assert str(naming.target("public", "t", with_schemas=False)) == "src_t"
    with pytest.raises(ConfigError, match="SOURCE=TARGET"):
        Naming.parse(["public"])
    with pytest.raises(ConfigError, match="holds duality's own tables"):
        Naming().target("duality", "t", with_schemas=True)


# --- DDL plans ---------------------------------------------------------------------------

SPEC = ddl.TableSpec((ddl.ColumnSpec("id", "integer"), ddl.ColumnSpec("n", "bigint"),
                      ddl.ColumnSpec("s", "text")), ("id",))
CONTEXT = ddl.Context('"public"."t"', "p.public.t", "topic 'p.public.t' partition 0 offset 7")


def existing(*columns: tuple[str, str, bool], keys: tuple[tuple[str, ...], ...] = (("id",),)
             ) -> ddl.ExistingTable:
    return ddl.ExistingTable(tuple(ddl.ExistingColumn(n, t, nn) for n, t, nn in columns), keys)


def test_plans_follow_the_source() -> None:
    assert ddl.plan(None, SPEC, holds, ours=True, context=CONTEXT) == [ddl.CreateTable(SPEC)]
    table = existing(("id", "integer", True), ("n", "integer", False), ("gone", "text", True))
    assert ddl.plan(table, SPEC, holds, ours=True, context=CONTEXT) == [
        ddl.AlterType("n", "integer", "bigint"),
        ddl.AddColumn(ddl.ColumnSpec("s", "text")),
        ddl.DropNotNull("gone"),
    ]
    narrowed = existing(("id", "bigint", True), ("n", "numeric", False), ("s", "text", False))
    assert ddl.plan(narrowed, SPEC, holds, ours=True, context=CONTEXT) == []


def test_incompatible_changes_name_the_column_and_the_choices() -> None:
    table = existing(("id", "integer", True), ("n", "text", False), ("s", "text", False))
    with pytest.raises(ApplyError, match=r"column 'n'.*bigint.*offset 7.*Choices: alter"):
        ddl.plan(table, SPEC, holds, ours=True, context=CONTEXT)
    with pytest.raises(ApplyError, match=r"primary key.*\(id\)"):
        ddl.plan(existing(("id", "integer", True), keys=()), SPEC, holds, ours=True,
                 context=CONTEXT)


def test_tables_duality_did_not_create_are_used_as_they_are_or_refused() -> None:
    fits = existing(("id", "integer", True), ("n", "numeric", False), ("s", "text", False),
                    ("extra", "text", False))
    assert ddl.plan(fits, SPEC, holds, ours=False, context=CONTEXT) == []
    other = existing(("id", "integer", True), ("name", "text", True))
    with pytest.raises(ConfigError, match=r"already exists with other columns.*no column 'n'"
                                          r".*'name' is NOT NULL.*--map"):
        ddl.plan(other, SPEC, holds, ours=False, context=CONTEXT)
    with pytest.raises(ConfigError, match="no primary key or unique index on"):
        ddl.plan(existing(("id", "integer", True), ("n", "bigint", False),
                          ("s", "text", False), keys=()), SPEC, holds, ours=False,
                 context=CONTEXT)
    with pytest.raises(ConfigError, match="without a key"):
        ddl.plan(None, ddl.TableSpec(SPEC.columns, ()), holds, ours=True, context=CONTEXT)


ODD = ['a"b', "semi;colon", "sp ace", "ünï", "'); DROP TABLE x; --", "x\\y"]


@given(st.sampled_from(ODD), st.lists(st.sampled_from(ODD), min_size=1, max_size=4,
                                      unique=True))
def test_every_identifier_is_quoted(table: str, columns: list[str]) -> None:
    spec = ddl.TableSpec(tuple(ddl.ColumnSpec(c, "text") for c in columns), (columns[0],))
    sql = TableSql(quote, "%s", quote(table), quote("side"), quote("stage"), spec, True,
                   POSTGRES.position_type, POSTGRES.fold)
    statements = [sql.create_table(), sql.create_side(), sql.apply_with_positions(),
                  sql.merge_with_positions(),
                  sql.apply_without_positions(), sql.load_states(2), sql.occupied(),
                  *sql.delete_older()]
    for statement in statements:
        unquoted = statement
        for name in [table, *columns]:
            unquoted = unquoted.replace(quote(name), '"…"')
        for name in [table, *columns]:
            assert name not in unquoted.replace('"…"', "") or name in ("x\\y",), statement
    assert quote('a"b') == '"a""b"'
    with pytest.raises(ConfigError, match="63 bytes"):
        quote("x" * 64)


@pytest.mark.parametrize("name", sorted(RESERVED))
def test_columns_named_like_the_statements_own_are_refused(name: str) -> None:
    def table(column: str, dialect: Dialect) -> TableSql:
        spec = ddl.TableSpec((ddl.ColumnSpec("id", "integer"), ddl.ColumnSpec(column, "text")),
                             ("id",))
        return TableSql(dialect.quote, dialect.param, "t", "side", "stage", spec,
                        dialect.casts, dialect.position_type, dialect.fold)

    for column, dialect in ((name, POSTGRES), (name, SQLITE), (name.upper(), SQLITE)):
        with pytest.raises(ConfigError, match=f"column '{column}' has a name duality uses"):
            table(column, dialect)
    table(name.upper(), POSTGRES)  # PostgreSQL tells quoted names apart by case


@given(st.lists(st.tuples(st.integers(0, 2**62), st.binary(min_size=1, max_size=9)),
                max_size=40),
       st.integers(1, 8))
def test_stage_tuples_split_into_contiguous_runs_of_whole_tuples(
    rows: list[tuple[int, bytes]], parts: int
) -> None:
    tuples = StageTuples.of(rows)
    with mock.patch.object(sinks_base, "_native_join", None):  # the Python half
        assert StageTuples.of(rows) == tuples
    if not rows:
        assert tuples is None
        return
    assert tuples is not None
    assert (tuples.low, tuples.high) == (min(p for p, _ in rows), max(p for p, _ in rows))
    shares = tuples.split(parts)
    assert len(shares) == parts
    counts, taken = [], 0
    for share in shares:  # each share is the next whole tuples, as many as the others ±1
        size = 0
        while size < len(share):
            size += len(rows[taken][1])
            taken += 1
        assert size == len(share)
        counts.append(taken - sum(counts))
    assert taken == len(rows) and max(counts) - min(counts) <= 1
    assert b"".join(shares) == b"".join(data for _, data in rows)


@pytest.mark.skipif(sinks_base._native_join is None, reason="the C extension "
                    "duality._binarycopy is not built (a build without a C compiler)")
def test_stage_tuples_in_c_refuse_what_are_not_pairs() -> None:
    for rows in ([(1, "text")], [(1,)], [("1", b"x")], 5):
        with pytest.raises(TypeError):
            StageTuples.of(rows)


def test_encoded_rows_make_their_tuples_once() -> None:
    step = EncodedRows("t", {b"1": (7, b"ab"), b"2": (3, b"c")}, (), lambda: None)
    made = step.tuples()
    assert made is step.tuples() and made is not None
    assert (made.data, made.ends, made.low, made.high) == (b"abc", [2, 3], 3, 7)
    assert EncodedRows("t", {}, (), lambda: None).tuples() is None
