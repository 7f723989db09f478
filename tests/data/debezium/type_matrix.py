"""The PostgreSQL type matrix used by the golden scenarios.

One table per type family. Every family lists its columns and its rows as SQL literals;
:func:`family_sql` turns a family into the setup statements (CREATE TABLE, the rows that
become the snapshot) and the streaming steps (the same rows inserted again with ids offset
by 100, then updated to the next row's values, then deleted). The tables use
``REPLICA IDENTITY FULL`` so that updates and deletes also carry converted ``before`` images.

This module is data for ``generate.py``; it does not touch a database.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Extensions the ``extensions`` family needs (all ship with PostgreSQL's contrib).
EXTENSIONS = ("hstore", "ltree", "citext")

STREAM_ID_OFFSET = 100


@dataclass(frozen=True)
class Family:
    table: str
    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[str, ...], ...]
    prelude: tuple[str, ...] = ()

    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


def _null_row(count: int) -> tuple[str, ...]:
    return ("NULL",) * count


INTS = Family(
    "ints",
    (
        ("c_smallint", "smallint"),
        ("c_int", "integer"),
        ("c_bigint", "bigint"),
        ("c_serial", "serial"),
        ("c_bigserial", "bigserial"),
        ("c_smallserial", "smallserial"),
        ("c_oid", "oid"),
    ),
    (
        ("0", "0", "0", "1", "1", "1", "0"),
        ("-32768", "-2147483648", "-9223372036854775808", "2", "2", "2", "1"),
        (
            "32767",
            "2147483647",
            "9223372036854775807",
            "2147483647",
            "9223372036854775807",
            "32767",
            "4294967295",
        ),
        ("NULL", "NULL", "NULL", "3", "3", "3", "NULL"),
    ),
)

NUMERICS = Family(
    "numerics",
    (
        ("c_num_10_2", "numeric(10,2)"),
        ("c_num", "numeric"),
        ("c_num_38_10", "numeric(38,10)"),
        ("c_num_5_0", "numeric(5,0)"),
        ("c_real", "real"),
        ("c_double", "double precision"),
        ("c_money", "money"),
    ),
    (
        ("0", "0", "0", "0", "0", "0", "0"),
        (
            "12345678.91",
            "3.14159265358979323846264338327950288",
            "1234567890123456789012345678.0123456789",
            "99999",
            "1.5",
            "3.141592653589793",
            "12.34",
        ),
        (
            "-0.01",
            "-1E-30",
            "-0.0000000001",
            "-99999",
            "-3.4028235E38",
            "-1.7976931348623157E308",
            "-92233720368547758.08",
        ),
        (
            "99999999.99",
            "123456789012345678901234567890",
            "0.1",
            "1",
            "1.17549435E-38",
            "4.9E-324",
            "92233720368547758.07",
        ),
        ("1.50", "1.500", "2.5000000000", "7", "0.1", "0.1", "0.5"),
        ("'NaN'", "'NaN'", "'NaN'", "'NaN'", "'NaN'", "'NaN'", "NULL"),
        ("NULL", "'Infinity'", "NULL", "NULL", "'Infinity'", "'Infinity'", "NULL"),
        ("NULL", "'-Infinity'", "NULL", "NULL", "'-Infinity'", "'-Infinity'", "NULL"),
        _null_row(7),
    ),
)

TEXTS = Family(
    "texts",
    (
        ("c_char", "char(5)"),
        ("c_varchar", "varchar(10)"),
        ("c_varchar_nolen", "varchar"),
        ("c_text", "text"),
        ("c_bpchar", "bpchar"),
        ("c_qchar", '"char"'),
        ("c_name", "name"),
    ),
    (
        ("'a'", "'abc'", "'x'", "'hello'", "'b  '", "'q'", "'ident'"),
        ("''", "''", "''", "''", "''", "''", "''"),
        ("'äöü'", "'héllo wö'", "'日本語テキスト'", "'😀 emoji Ωmega ß'", "'ñ'", "'z'", "'名前'"),
        (
            "'ab  '",
            "' lead'",
            "E'tab\\there'",
            "E'line1\\nline2 \"q\" \\\\ back ''s'",
            "' '",
            "' '",
            "'Mixed Case'",
        ),
        _null_row(7),
    ),
)

BINARIES = Family(
    "binaries",
    (("c_bytea", "bytea"),),
    (
        ("'\\x'",),
        ("'\\x00'",),
        ("'\\x00ff10'",),
        ("'\\xdeadbeef'",),
        ("'\\xfbefbeffffff'",),
        ("convert_to('héllo', 'UTF8')",),
        ("NULL",),
    ),
)

TEMPORALS = Family(
    "temporals",
    (
        ("c_date", "date"),
        ("c_time", "time"),
        ("c_time3", "time(3)"),
        ("c_time0", "time(0)"),
        ("c_timetz", "timetz"),
        ("c_ts", "timestamp"),
        ("c_ts3", "timestamp(3)"),
        ("c_ts0", "timestamp(0)"),
        ("c_tstz", "timestamptz"),
        ("c_tstz3", "timestamptz(3)"),
        ("c_interval", "interval"),
    ),
    (
        (
            "'1970-01-01'",
            "'00:00:00'",
            "'00:00:00'",
            "'00:00:00'",
            "'00:00:00+00'",
            "'1970-01-01 00:00:00'",
            "'1970-01-01 00:00:00'",
            "'1970-01-01 00:00:00'",
            "'1970-01-01 00:00:00+00'",
            "'1970-01-01 00:00:00+00'",
            "'0 seconds'",
        ),
        (
            "'2024-02-29'",
            "'13:45:30.123456'",
            "'13:45:30.123'",
            "'13:45:30'",
            "'13:45:30.123456+05:30'",
            "'2024-02-29 13:45:30.123456'",
            "'2024-02-29 13:45:30.123'",
            "'2024-02-29 13:45:30'",
            "'2024-02-29 13:45:30.123456+05:30'",
            "'2024-02-29 13:45:30.123+05:30'",
            "'1 year 2 months 3 days 04:05:06.789'",
        ),
        (
            "'1969-12-31'",
            "'23:59:59.999999'",
            "'23:59:59.999'",
            "'23:59:59'",
            "'00:00:01-08'",
            "'1969-12-31 23:59:59.999999'",
            "'1969-12-31 23:59:59.999'",
            "'1969-12-31 23:59:59'",
            "'1969-12-31 23:59:59.999999-08'",
            "'1969-12-31 23:59:59.999-08'",
            "'-1 days -02:03:04.5'",
        ),
        (
            "'0001-01-01'",
            "'24:00:00'",
            "'24:00:00'",
            "'24:00:00'",
            "'23:59:59.999999-15:59'",
            "'0001-01-01 00:00:00'",
            "'9999-12-31 23:59:59.999'",
            "'9999-12-31 23:59:59'",
            "'0001-01-01 00:00:00+00'",
            "'9999-12-31 23:59:59.999+00'",
            "'-178000000 years'",
        ),
        (
            "'0044-03-15 BC'",
            "'12:00:00.5'",
            "'12:00:00.0005'",
            "'12:00:00.5'",
            "'12:00:00+15:59'",
            "'0044-03-15 12:00:00 BC'",
            "'2000-01-01 00:00:00.0005'",
            "'2000-01-01 00:00:00.5'",
            "'0044-03-15 12:00:00+00 BC'",
            "'2000-01-01 00:00:00.0005+00'",
            "'178000000 years'",
        ),
        (
            "'9999-12-31'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "'1900-01-01 00:00:00'",
            "NULL",
            "NULL",
            "'2100-06-15 12:00:00+02'",
            "NULL",
            "'1 mon -1 days 00:00:00.000001'",
        ),
        (
            "'infinity'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "'infinity'",
            "'infinity'",
            "NULL",
            "'infinity'",
            "'infinity'",
            "NULL",
        ),
        (
            "'-infinity'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "'-infinity'",
            "'-infinity'",
            "NULL",
            "'-infinity'",
            "'-infinity'",
            "NULL",
        ),
        _null_row(11),
    ),
)

#: How many fraction digits the zoned (string) temporal types print.
ZONED_FRACTIONS = Family(
    "zoned_fractions",
    (
        ("c_timetz", "timetz"),
        ("c_timetz3", "timetz(3)"),
        ("c_timetz0", "timetz(0)"),
        ("c_tstz", "timestamptz"),
        ("c_tstz1", "timestamptz(1)"),
        ("c_tstz0", "timestamptz(0)"),
    ),
    (
        (
            "'12:00:00.5+00'",
            "'12:00:00.5+00'",
            "'12:00:00.4+00'",
            "'2024-01-01 12:00:00.5+00'",
            "'2024-01-01 12:00:00.5+00'",
            "'2024-01-01 12:00:00.4+00'",
        ),
        (
            "'12:00:00.120+00'",
            "'12:00:00.120+00'",
            "'12:00:00+00'",
            "'2024-01-01 12:00:00.120+00'",
            "'2024-01-01 12:00:00.120+00'",
            "'2024-01-01 12:00:00+00'",
        ),
        (
            "'12:00:00.000001+01'",
            "'12:00:00.001+01'",
            "'23:59:59.6+00'",
            "'2024-01-01 12:00:00.000001+01'",
            "'2024-01-01 12:00:00.01+01'",
            "'2024-12-31 23:59:59.6+00'",
        ),
        _null_row(6),
    ),
)

MISC = Family(
    "misc",
    (
        ("c_bool", "boolean"),
        ("c_uuid", "uuid"),
        ("c_json", "json"),
        ("c_jsonb", "jsonb"),
        ("c_xml", "xml"),
        ("c_inet", "inet"),
        ("c_cidr", "cidr"),
        ("c_macaddr", "macaddr"),
        ("c_macaddr8", "macaddr8"),
        ("c_bit1", "bit(1)"),
        ("c_bit8", "bit(8)"),
        ("c_bit12", "bit(12)"),
        ("c_varbit", "varbit"),
    ),
    (
        (
            "true",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            '\'{"a": 1, "b": [true, null]}\'',
            '\'{"b": [true, null], "a": 1}\'',
            "'<a>b</a>'",
            "'192.168.0.1'",
            "'10.0.0.0/8'",
            "'08:00:2b:01:02:03'",
            "'08:00:2b:01:02:03:04:05'",
            "B'1'",
            "B'10101010'",
            "B'100000000001'",
            "B'101010101010101'",
        ),
        (
            "false",
            "'00000000-0000-0000-0000-000000000000'",
            "'{}'",
            "'{}'",
            '\'<?xml version="1.0"?><r x="1">t&amp;u</r>\'',
            "'::1'",
            "'2001:db8::/32'",
            "'ff:ff:ff:ff:ff:ff'",
            "'00:00:00:00:00:00:00:00'",
            "B'0'",
            "B'00000000'",
            "B'000000000000'",
            "B''",
        ),
        (
            "true",
            "'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'",
            '\'  {"ü" : "日本",  "n": 1.50e2 }  \'',
            '\'{"ü": "日本", "n": 1.50e2}\'',
            "'<ü>日本</ü>'",
            "'10.1.2.3/24'",
            "'192.168.100.128/25'",
            "'08-00-2b-01-02-03'",
            "'0800.2b01.0203.0405'",
            "B'1'",
            "B'11111111'",
            "B'111111111111'",
            "B'1'",
        ),
        (
            "false",
            "NULL",
            "'[1, \"two\", null]'",
            "'null'",
            "'plain text'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "B'0000000011'",
        ),
        _null_row(13),
    ),
)

ARRAYS = Family(
    "arrays",
    (
        ("c_int_arr", "integer[]"),
        ("c_bigint_arr", "bigint[]"),
        ("c_text_arr", "text[]"),
        ("c_varchar_arr", "varchar(10)[]"),
        ("c_numeric_arr", "numeric(10,2)[]"),
        ("c_numeric_any_arr", "numeric[]"),
        ("c_float_arr", "double precision[]"),
        ("c_bool_arr", "boolean[]"),
        ("c_date_arr", "date[]"),
        ("c_ts_arr", "timestamp[]"),
        ("c_tstz_arr", "timestamptz[]"),
        ("c_uuid_arr", "uuid[]"),
        ("c_jsonb_arr", "jsonb[]"),
    ),
    (
        (
            "'{1,2,3}'",
            "'{-9223372036854775808,9223372036854775807}'",
            "'{a,b,c}'",
            "'{x,yy}'",
            "'{1.50,-2.25}'",
            "'{1.5,2.125,3}'",
            "'{1.5,-0.25}'",
            "'{true,false}'",
            "'{2024-02-29,1970-01-01}'",
            "'{\"2024-02-29 13:45:30.123456\"}'",
            "'{\"2024-02-29 13:45:30.123456+05:30\"}'",
            "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
            "ARRAY['{\"a\": 1}'::jsonb]",
        ),
        (
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
            "'{}'",
        ),
        (
            "'{NULL,1}'",
            "'{NULL}'",
            '\'{NULL,"","a,b","c\\"d","日本"}\'',
            "'{NULL,\"\"}'",
            "'{NULL,0}'",
            "'{NULL,NaN}'",
            "'{NULL,NaN,Infinity}'",
            "'{NULL,true}'",
            "'{NULL,infinity}'",
            "'{NULL}'",
            "'{NULL}'",
            "'{NULL}'",
            "ARRAY[NULL, '[]']::jsonb[]",
        ),
        _null_row(13),
    ),
)

MORE_ARRAYS = Family(
    "more_arrays",
    (
        ("c_smallint_arr", "smallint[]"),
        ("c_real_arr", "real[]"),
        ("c_char_arr", "char(3)[]"),
        ("c_time_arr", "time[]"),
        ("c_timetz_arr", "timetz[]"),
        ("c_interval_arr", "interval[]"),
        ("c_bytea_arr", "bytea[]"),
        ("c_inet_arr", "inet[]"),
        ("c_money_arr", "money[]"),
        ("c_json_arr", "json[]"),
    ),
    (
        (
            "'{1,-32768}'",
            "'{1.5,-0.1}'",
            "'{a,bc}'",
            "'{13:45:30.123456,00:00:00}'",
            "'{13:45:30.123456+05:30}'",
            '\'{"1 day 02:00:00","-1 mon"}\'',
            "ARRAY['\\x00ff'::bytea, '\\x'::bytea]",
            "'{192.168.0.1,::1/128}'",
            "'{1.50,-2}'",
            "ARRAY['{\"a\": 1}'::json]",
        ),
        ("'{}'", "'{}'", "'{}'", "'{}'", "'{}'", "'{}'", "'{}'", "'{}'", "'{}'", "'{}'"),
        (
            "'{NULL}'",
            "'{NULL,NaN}'",
            "'{NULL,\"\"}'",
            "'{NULL,24:00:00}'",
            "'{NULL}'",
            "'{NULL}'",
            "ARRAY[NULL]::bytea[]",
            "'{NULL}'",
            "'{NULL}'",
            "'{NULL}'",
        ),
        _null_row(10),
    ),
)

ENUMS_DOMAINS = Family(
    "enums_domains",
    (
        ("c_enum", "mood"),
        ("c_enum_arr", "mood[]"),
        ("c_posint", "posint"),
        ("c_shorttext", "shorttext"),
        ("c_price", "price"),
    ),
    (
        ("'sad'", "'{sad,happy}'", "1", "'short'", "12345.678"),
        ("'happy'", "'{}'", "2147483647", "''", "-0.001"),
        ("'ok'", "'{ok,NULL}'", "NULL", "'ünï'", "0"),
        _null_row(5),
    ),
    prelude=(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
        "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
        "CREATE DOMAIN shorttext AS text CHECK (length(VALUE) < 10)",
        "CREATE DOMAIN price AS numeric(8,3)",
    ),
)

RANGES = Family(
    "ranges",
    (
        ("c_int4range", "int4range"),
        ("c_int8range", "int8range"),
        ("c_numrange", "numrange"),
        ("c_tsrange", "tsrange"),
        ("c_tstzrange", "tstzrange"),
        ("c_daterange", "daterange"),
    ),
    (
        (
            "'[1,10)'",
            "'[1,9223372036854775806]'",
            "'[1.5,2.25]'",
            "'[2024-01-01 10:00,2024-01-02 10:00)'",
            "'[2024-01-01 10:00+00,2024-01-02 10:00+05:30)'",
            "'[2024-01-01,2024-02-01)'",
        ),
        ("'empty'", "'empty'", "'empty'", "'empty'", "'empty'", "'empty'"),
        (
            "'(,5]'",
            "'(0,)'",
            "'(,)'",
            "'(,2024-01-01 00:00:00.123456]'",
            "'(2024-01-01 00:00:00+00,)'",
            "'[-infinity,infinity]'",
        ),
        _null_row(6),
    ),
)

GEOMETRY = Family(
    "geometry",
    (
        ("c_point", "point"),
        ("c_line", "line"),
        ("c_lseg", "lseg"),
        ("c_box", "box"),
        ("c_path_open", "path"),
        ("c_path_closed", "path"),
        ("c_polygon", "polygon"),
        ("c_circle", "circle"),
    ),
    (
        (
            "'(1,2)'",
            "'{1,-1,0}'",
            "'[(0,0),(1,1)]'",
            "'((0,0),(1,1))'",
            "'[(0,0),(1,1),(2,0)]'",
            "'((0,0),(1,1),(2,0))'",
            "'((0,0),(0,1),(1,1),(1,0))'",
            "'<(0,0),5>'",
        ),
        (
            "'(-1.5,2.25)'",
            "'{0,1,-3.5}'",
            "'[(-1,-1),(1.5,2.5)]'",
            "'((3,3),(-1,-1))'",
            "'[(0,0)]'",
            "'((0,0))'",
            "'((0,0))'",
            "'<(1.5,-2.5),0.5>'",
        ),
        _null_row(8),
    ),
)

EXTENSION_TYPES = Family(
    "extensions",
    (
        ("c_hstore", "hstore"),
        ("c_ltree", "ltree"),
        ("c_citext", "citext"),
    ),
    (
        ('\'"a"=>"1", "b"=>NULL\'', "'Top.Science.Astronomy'", "'MiXeD Case'"),
        ("''", "''", "''"),
        ('\'"ü"=>"日本", "k,=>"=>"v \\"q\\""\'', "'a'", "'ÄÖÜ'"),
        _null_row(3),
    ),
    prelude=tuple(f"CREATE EXTENSION IF NOT EXISTS {name}" for name in EXTENSIONS),
)

ALL_FAMILIES = (
    INTS,
    NUMERICS,
    TEXTS,
    BINARIES,
    TEMPORALS,
    ZONED_FRACTIONS,
    MISC,
    ARRAYS,
    MORE_ARRAYS,
    ENUMS_DOMAINS,
    RANGES,
    GEOMETRY,
    EXTENSION_TYPES,
)


def _values(row_id: int, row: tuple[str, ...]) -> str:
    return "(" + ", ".join((str(row_id), *row)) + ")"


def _insert(family: Family, ids: range) -> str:
    names = ", ".join(("id", *family.column_names()))
    rows = ", ".join(_values(i, r) for i, r in zip(ids, family.rows, strict=True))
    return f"INSERT INTO {family.table} ({names}) VALUES {rows}"


def _rotate_updates(family: Family) -> str:
    """One transaction giving streamed row k the values of row k+1 (the last gets row 1's)."""
    names = ", ".join(family.column_names())
    count = len(family.rows)
    statements = []
    for index in range(count):
        source = family.rows[(index + 1) % count]
        row_id = STREAM_ID_OFFSET + 1 + index
        single = len(family.columns) == 1
        target = names if single else f"({names})"
        value = source[0] if single else "ROW(" + ", ".join(source) + ")"
        statements.append(f"UPDATE {family.table} SET {target} = {value} WHERE id = {row_id}")
    return "BEGIN; " + "; ".join(statements) + "; COMMIT"


def family_setup(family: Family) -> list[str]:
    """CREATE TABLE (after the family's prelude) and the snapshot rows."""
    columns = ", ".join(f"{name} {sqltype}" for name, sqltype in family.columns)
    return [
        *family.prelude,
        f"CREATE TABLE {family.table} (id integer PRIMARY KEY, {columns})",
        f"ALTER TABLE {family.table} REPLICA IDENTITY FULL",
        _insert(family, range(1, len(family.rows) + 1)),
    ]


def family_steps(family: Family) -> list[str]:
    """Insert the same rows while streaming, update each to the next row, delete them."""
    first = STREAM_ID_OFFSET + 1
    return [
        _insert(family, range(first, first + len(family.rows))),
        _rotate_updates(family),
        f"DELETE FROM {family.table} WHERE id >= {first}",
    ]


def matrix(families: tuple[Family, ...]) -> tuple[list[str], list[str]]:
    """Setup statements and streaming steps for several families, family by family."""
    setup: list[str] = []
    steps: list[str] = []
    for family in families:
        setup.extend(family_setup(family))
        steps.extend(family_steps(family))
    return setup, steps
