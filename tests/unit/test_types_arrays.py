"""PostgreSQL arrays: the ``array_out`` text parser and Debezium's array element quirks.

Expected element values were checked against real Debezium 3.6.3 (embedded engine, the
same rows captured by snapshot and by streaming) unless said otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.sources.postgres.types import PgType, ValueSettings, builtin_type, codec_for
from duality.sources.postgres.types_array import parse_array


def convert(type_: str | PgType, text: bytes, modifier: int = -1, **modes: Any) -> Any:
    pg_type = builtin_type(type_) if isinstance(type_, str) else type_
    codec = codec_for(pg_type, modifier, optional=True, settings=ValueSettings(**modes))
    return codec.from_text(text)


def schema(type_: str | PgType, modifier: int = -1, **modes: Any) -> dict[str, Any]:
    pg_type = builtin_type(type_) if isinstance(type_, str) else type_
    return codec_for(pg_type, modifier, optional=True, settings=ValueSettings(**modes)).schema


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (b"{}", []),
        (b"{1,2,3}", [b"1", b"2", b"3"]),
        (b"{NULL,1}", [None, b"1"]),
        (b'{"NULL",null,""}', [b"NULL", None, b""]),
        (b'{"a,b","c\\"d","e\\\\f"}', [b"a,b", b'c"d', b"e\\f"]),
        ('{"日本",ü}'.encode(), ["日本".encode(), "ü".encode()]),
        (b"{{1,2},{3,NULL}}", [[b"1", b"2"], [b"3", None]]),
        (b"[0:1]={7,8}", [b"7", b"8"]),
        (b'{"{\\"a\\":1}"}', [b'{"a":1}']),
    ],
)
def test_parse_array(text: bytes, items: list[Any]) -> None:
    assert parse_array(text) == items


def test_parse_array_with_another_delimiter() -> None:
    assert parse_array(b"{(1,1),(0,0);(2,2),(1,1)}", ord(";")) == [
        b"(1,1),(0,0)",
        b"(2,2),(1,1)",
    ]


def _array_literal(items: list[str | None]) -> bytes:
    """What array_out prints for a text[] (quoting as PostgreSQL does)."""
    out = []
    for item in items:
        if item is None:
            out.append("NULL")
        elif item == "" or item.upper() == "NULL" or any(c in item for c in '{},"\\ \t\n\r\v\f'):
            escaped = item.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{escaped}"')
        else:
            out.append(item)
    return ("{" + ",".join(out) + "}").encode()


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(
                alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
            ),
        )
    )
)
def test_text_array_round_trip(items: list[str | None]) -> None:
    assert convert("_text", _array_literal(items)) == items


# --- element values --------------------------------------------------------------------------


def test_common_arrays() -> None:
    assert schema("_int4") == {
        "type": "array",
        "items": {"type": "int32", "optional": True},
        "optional": True,
    }
    assert convert("_int4", b"{1,NULL,3}") == [1, None, 3]
    assert convert("_int2", b"{-32768,32767}") == [-32768, 32767]
    assert convert("_oid", b"{1,4294967295}") == [1, 4294967295]
    assert convert("_bool", b"{t,NULL,f}") == [True, None, False]
    assert convert("_bpchar", b'{"a  ","bc "}', 7) == ["a  ", "bc "]
    assert convert("_jsonb", b'{"{\\"a\\": 1}",NULL}') == ['{"a": 1}', None]
    assert convert("_tstzrange", b'{"[\\"2024-01-01 00:00:00+00\\",)"}') == [
        '["2024-01-01 00:00:00+00",)'
    ]
    assert convert("_uuid", b"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}") == [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    ]
    assert convert("_bytea", b'{"\\\\x00ff","\\\\x"}') == ["AP8=", ""]
    assert convert("_float4", b"{1.1754944e-38,0.1,3.4028235e+38,NaN,1e+10,1.2345679e+08}") == [
        1.17549435e-38, 0.1, 3.4028235e38, "NaN", 10000000000.0, 123456792.0,
    ]  # fmt: skip


def test_numeric_arrays() -> None:
    fixed = (10 << 16 | 2) + 4
    assert schema("_numeric", fixed)["items"]["parameters"] == {
        "scale": "2",
        "connect.decimal.precision": "10",
    }
    assert convert("_numeric", b"{1.50,-2.00}", fixed) == ["AJY=", "/zg="]
    assert convert("_numeric", b"{1.5,0.000}") == [
        {"scale": 1, "value": "Dw=="},
        {"scale": 0, "value": "AA=="},
    ]
    # pgjdbc cannot read NaN inside a numeric array: the whole array is null, in every mode
    assert convert("_numeric", b"{NULL,NaN}") is None
    assert convert("_numeric", b"{1,NaN}", decimal_handling_mode="string") is None


def test_time_elements_are_java_sql_time() -> None:
    # milliseconds only, and 24:00:00 rolls over to midnight
    assert convert("_time", b"{00:00:01.123456,24:00:00,23:59:59.999999}") == [
        1123000,
        0,
        86399999000,
    ]
    assert convert("_time", b"{12:00:00.123}", 3) == [43200123]
    # timetz elements keep whole seconds only
    assert convert("_timetz", b'{"12:00:00.123456+05:30","23:59:59.999999-08",00:00:00+00}') == [
        "06:30:00Z",
        "07:59:59Z",
        "00:00:00Z",
    ]


def test_timestamp_elements_use_the_julian_calendar_before_1582() -> None:
    text = b'{"1000-01-01 00:00:00","0044-03-15 12:00:00 BC",infinity,"2024-02-29 13:45:30.5"}'
    assert convert("_timestamp", text) == [
        -30609792000000000,  # 1000-01-06 on the proleptic Gregorian calendar
        -63517953600000000,
        9223372036825200000,
        1709214330500000,
    ]
    assert convert("_timestamp", text, time_precision_mode="isostring") == [
        "1000-01-06T00:00:00Z",
        "-0043-03-13T12:00:00Z",
        "+294247-01-10T04:00:25.2Z",
        "2024-02-29T13:45:30.5Z",
    ]
    # out of the nanosecond range: that element is null, not the array
    assert convert("_timestamp", text, time_precision_mode="nanoseconds") == [
        None,
        None,
        2**63 - 1,
        1709214330500000000,
    ]
    assert convert("_timestamp", b'{"2024-01-01 00:00:00.123"}', 3) == [1704067200123]


def test_timestamptz_and_date_elements_lose_the_era() -> None:
    text = b'{"1000-01-01 00:00:00+00",infinity,"0044-03-15 12:00:00+00 BC"}'
    assert convert("_timestamptz", text) == [
        "1000-01-01T00:00:00.000000Z",
        "infinity",
        "0044-03-15T12:00:00.000000Z",
    ]
    assert convert("_date", b'{"0044-03-15 BC",-infinity,1000-01-01,infinity}') == [
        -703383,
        -625821272,
        -354285,
        -622191234,
    ]


def test_arrays_whose_null_elements_fail() -> None:
    mood = PgType(16600, "mood", schema="public", typtype="e", category="E",
                  enum_labels=("sad", "ok", "happy"))  # fmt: skip
    moods = PgType(16601, "_mood", schema="public", category="A", element=mood)
    assert schema(moods)["items"] == {
        "type": "string",
        "optional": False,
        "name": "io.debezium.data.Enum",
        "version": 1,
        "parameters": {"allowed": "sad,ok,happy"},
    }
    assert convert(moods, b"{happy,sad}") == ["happy", "sad"]
    assert convert(moods, b"{ok,NULL}") is None
    assert schema("_tsvector")["items"]["optional"] is False
    assert convert("_tsvector", b"{NULL}") is None
    ltree = PgType(16700, "ltree", schema="public")
    ltrees = PgType(16701, "_ltree", schema="public", category="A", element=ltree)
    assert schema(ltrees)["items"]["name"] == "io.debezium.data.Ltree"
    assert convert(ltrees, b"{a.b,c}") == ["a.b", "c"]
    assert convert(ltrees, b"{NULL}") is None


def test_multidimensional_arrays_have_null_rows(caplog: pytest.LogCaptureFixture) -> None:
    codec = codec_for(builtin_type("_int4"), -1, optional=True, settings=ValueSettings(),
                      column="public.grid.cells")
    assert codec.from_text(b"{1,2}") == [1, 2]
    assert not caplog.records
    assert codec.from_text(b"{{1,2},{3,4}}") == [None, None]
    assert codec.from_text(b"{{5}}") == [None]
    [warning] = caplog.records  # once per column
    assert "column public.grid.cells holds a multi-dimensional array" in warning.getMessage()


def test_vectors_are_empty_arrays() -> None:
    int2vector = PgType(22, "int2vector", category="A", element=builtin_type("int2"))
    assert schema(int2vector) == {
        "type": "array",
        "items": {"type": "int16", "optional": False},
        "optional": True,
    }
    assert convert(int2vector, b"1 2 3") == []
    assert convert(int2vector, b"") is None


def test_arrays_of_unknown_types() -> None:
    posint = PgType(16800, "posint", schema="public", typtype="d", base=builtin_type("int4"))
    posints = PgType(16801, "_posint", schema="public", category="A", element=posint)
    omitted = codec_for(posints, -1, optional=True, settings=ValueSettings())
    assert omitted.unknown
    assert omitted.schema == {"type": "string", "optional": True}
    assert omitted.from_text(b"{1,2}") == "{1,2}"
    assert schema(posints, include_unknown_datatypes=True) == {
        "type": "array",
        "items": {"type": "bytes", "optional": False},
        "optional": True,
    }
    assert convert(posints, b"{1,2}", include_unknown_datatypes=True) == ["MQ==", "Mg=="]
    assert convert(posints, b"{}", include_unknown_datatypes=True) == []
    assert convert(posints, b"{NULL}", include_unknown_datatypes=True) is None
    hexed = convert(posints, b"{1,2}", include_unknown_datatypes=True, binary_handling_mode="hex")
    assert hexed == ["31", "32"]
