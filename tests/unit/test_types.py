"""PostgreSQL text → Debezium payload values and schemas, without a database.

Expected values come from Debezium 3.6 itself where possible (its golden events, its test
suite) and are marked so; the rest follow its documented and coded rules.
"""

from __future__ import annotations

import base64
import json
import logging
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.errors import ConfigError
from duality.sources.postgres.types import (
    SESSION_SETTINGS,
    ColumnCodec,
    PgType,
    ValueConversionError,
    ValueSettings,
    builtin_type,
    codec_for,
    split_copy_line,
)
from duality.sources.postgres.types_model import pinned_options

DEFAULT = ValueSettings()


def codec(
    type_: str | PgType, modifier: int = -1, *, optional: bool = True, **modes: Any
) -> ColumnCodec:
    pg_type = builtin_type(type_) if isinstance(type_, str) else type_
    return codec_for(pg_type, modifier, optional=optional, settings=ValueSettings(**modes))


def convert(type_: str | PgType, text: bytes | str, modifier: int = -1, **modes: Any) -> Any:
    raw = text.encode() if isinstance(text, str) else text
    return codec(type_, modifier, **modes).from_text(raw)


def numeric_mod(precision: int, scale: int) -> int:
    return (precision << 16 | scale) + 4


def unscaled(b64: str) -> int:
    return int.from_bytes(base64.b64decode(b64), "big", signed=True)


# --- settings -------------------------------------------------------------------------------


def test_defaults_are_debeziums() -> None:
    settings = ValueSettings.from_properties({})
    assert settings == ValueSettings(
        decimal_handling_mode="precise",
        time_precision_mode="adaptive",
        binary_handling_mode="bytes",
        interval_handling_mode="numeric",
        hstore_handling_mode="json",
        money_fraction_digits=2,
        include_unknown_datatypes=False,
        event_converting_failure_handling_mode="warn",
    )


def test_properties_are_read_case_insensitively_and_others_ignored() -> None:
    settings = ValueSettings.from_properties(
        {
            "decimal.handling.mode": " STRING ",
            "time.precision.mode": "Connect",
            "binary.handling.mode": "base64-url-safe",
            "interval.handling.mode": "string",
            "hstore.handling.mode": "map",
            "money.fraction.digits": "4",
            "include.unknown.datatypes": "TRUE",
            "topic.prefix": "ignored",
        }
    )
    assert settings.decimal_handling_mode == "string"
    assert settings.time_precision_mode == "connect"
    assert settings.binary_handling_mode == "base64-url-safe"
    assert settings.money_fraction_digits == 4
    assert settings.include_unknown_datatypes is True


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("decimal.handling.mode", "exact", "precise, string, double"),
        ("time.precision.mode", "millis", "adaptive, adaptive_time_microseconds, connect"),
        ("binary.handling.mode", "base32", "bytes, base64, base64-url-safe, hex"),
        ("interval.handling.mode", "iso", "numeric, string"),
        ("hstore.handling.mode", "text", "json, map"),
        ("include.unknown.datatypes", "yes", "true, false"),
        ("event.converting.failure.handling.mode", "ignore", "fail, warn, skip"),
        ("money.fraction.digits", "two", "integer from 0"),
        ("money.fraction.digits", "-1", "integer from 0"),
    ],
)
def test_bad_values_name_the_property_the_value_and_the_choices(
    name: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        ValueSettings.from_properties({name: value})
    message = str(info.value)
    assert name in message
    assert repr(value) in message
    assert allowed in message


def test_session_settings_and_options() -> None:
    assert SESSION_SETTINGS["TimeZone"] == "UTC"
    assert SESSION_SETTINGS["DateStyle"] == "ISO"
    assert SESSION_SETTINGS["IntervalStyle"] == "postgres"
    assert SESSION_SETTINGS["extra_float_digits"] == "3"
    assert SESSION_SETTINGS["bytea_output"] == "hex"
    assert SESSION_SETTINGS["lc_monetary"] == "C"
    options = pinned_options()
    for name, value in SESSION_SETTINGS.items():
        assert f"-c {name}={value}" in options


# --- COPY text format -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (b"1\tabc\n", [b"1", b"abc"]),
        (b"1\t\\N\t\n", [b"1", None, b""]),
        (b"a\\tb\\nc\\\\d\\re", [b"a\tb\nc\\d\re"]),
        (b"\\\\N", [b"\\N"]),  # the text \N, not NULL
        (b"\\b\\f\\v\\101\\x41\\x4", [b"\b\f\vAA\x04"]),
        (b"\\q", [b"q"]),
        (b"", [b""]),
        ("ünï\\t😀".encode(), ["ünï\t😀".encode()]),
    ],
)
def test_split_copy_line(line: bytes, fields: list[bytes | None]) -> None:
    assert split_copy_line(line) == fields


# --- integers, booleans, floats -------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "text", "schema_type", "value"),
    [
        ("int2", "-32768", "int16", -32768),
        ("int4", "2147483647", "int32", 2147483647),
        ("int8", "-9223372036854775808", "int64", -9223372036854775808),
        ("oid", "4294967295", "int64", 4294967295),
        ("bool", "t", "boolean", True),
        ("bool", "f", "boolean", False),
        ("float8", "3.141592653589793", "double", 3.141592653589793),
        ("float8", "4.9e-324", "double", 5e-324),
        ("float8", "-1.7976931348623157e+308", "double", -1.7976931348623157e308),
        ("float8", "NaN", "double", "NaN"),  # Jackson writes non-finite doubles as strings
        ("float8", "-Infinity", "double", "-Infinity"),
        ("float4", "Infinity", "float", "Infinity"),
        ("float4", "1.5", "float", 1.5),
        ("float4", "1.1754944e-38", "float", 1.17549435e-38),  # Java's Float.toString digits
        ("float4", "-3.4028235e+38", "float", -3.4028235e38),
    ],
)
def test_simple_types(type_: str, text: str, schema_type: str, value: Any) -> None:
    built = codec(type_)
    assert built.schema == {"type": schema_type, "optional": True}
    assert built.from_text(text.encode()) == value


def test_optional_follows_the_column() -> None:
    assert codec("int4", optional=False).schema == {"type": "int32", "optional": False}


# --- numeric ---------------------------------------------------------------------------------


def test_fixed_scale_decimal_schema_and_golden_values() -> None:
    built = codec("numeric", numeric_mod(10, 2))
    assert built.schema == {
        "type": "bytes",
        "optional": True,
        "name": "org.apache.kafka.connect.data.Decimal",
        "version": 1,
        "parameters": {"scale": "2", "connect.decimal.precision": "10"},
    }
    # Debezium 3.6 golden events
    assert built.from_text(b"12345678.91") == "SZYC0w=="
    assert built.from_text(b"-0.01") == "/w=="
    assert built.from_text(b"0.00") == "AA=="
    assert built.from_text(b"1.50") == "AJY="
    assert built.from_text(b"99999999.99") == "AlQL4/8="


def test_variable_scale_decimal_strips_trailing_zeros() -> None:
    built = codec("numeric")
    assert built.schema["name"] == "io.debezium.data.VariableScaleDecimal"
    assert built.schema["doc"] == "Variable scaled decimal"
    assert [f["field"] for f in built.schema["fields"]] == ["scale", "value"]
    # Debezium 3.6 golden events
    assert built.from_text(b"3.14159265358979323846264338327950288") == {
        "scale": 35,
        "value": "PIE/ZjbZhPJZW2o3KlPQ",
    }
    assert built.from_text(b"1.500") == {"scale": 1, "value": "Dw=="}
    assert built.from_text(b"123456789012345678901234567890") == {
        "scale": 0,
        "value": "AY7pD/bDc+DuTj8K0g==",
    }
    assert built.from_text(b"-0.000000000000000000000000000001") == {"scale": 30, "value": "/w=="}
    assert built.from_text(b"1200") == {"scale": 0, "value": "BLA="}
    assert built.from_text(b"0.000") == {"scale": 0, "value": "AA=="}


@pytest.mark.parametrize("text", [b"NaN", b"Infinity", b"-Infinity"])
def test_special_numerics_are_null_under_precise(
    text: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert convert("numeric", text) is None
        assert convert("numeric", text, numeric_mod(10, 2)) is None
    assert "decimal.handling.mode" in caplog.text


def test_special_numerics_fail_when_asked() -> None:
    with pytest.raises(ValueConversionError, match=r"decimal\.handling\.mode"):
        convert("numeric", b"NaN", event_converting_failure_handling_mode="fail")


@pytest.mark.parametrize(
    ("text", "as_string", "as_double"),
    [
        (b"NaN", "NAN", "NaN"),
        (b"Infinity", "POSITIVE_INFINITY", "Infinity"),
        (b"-Infinity", "NEGATIVE_INFINITY", "-Infinity"),
        (b"-12.340", "-12.340", -12.34),
        (b"0.1", "0.1", 0.1),
    ],
)
def test_string_and_double_modes(text: bytes, as_string: str, as_double: Any) -> None:
    string = codec("numeric", decimal_handling_mode="string")
    double = codec("numeric", numeric_mod(10, 3), decimal_handling_mode="double")
    assert string.schema == {"type": "string", "optional": True}
    assert double.schema == {"type": "double", "optional": True}
    assert string.from_text(text) == as_string
    assert double.from_text(text) == as_double


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_variable_scale_round_trip(value: Decimal) -> None:
    text = format(value, "f").encode()  # PostgreSQL prints numerics without exponent
    out = convert("numeric", text)
    with localcontext(prec=10_000):
        decoded = Decimal(unscaled(out["value"])).scaleb(-out["scale"])
    assert decoded == value
    assert out["scale"] >= 0
    assert out["scale"] == 0 or unscaled(out["value"]) % 10 != 0


@given(st.decimals(min_value=-(10**8), max_value=10**8, places=3))
def test_fixed_scale_round_trip(value: Decimal) -> None:
    text = format(value.quantize(Decimal("0.001")), "f").encode()
    out = convert("numeric", text, numeric_mod(12, 3))
    with localcontext(prec=100):
        assert Decimal(unscaled(out)).scaleb(-3) == value


# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "precise", "string", "double"),
    [
        (b"$1,234.11", 123411, "1234.11", 1234.11),
        (b"-$1,234.50", -123450, "-1234.50", -1234.5),
        (b"($1,234.11)", -123411, "-1234.11", -1234.11),
        (
            b"-$92,233,720,368,547,758.08",
            -9223372036854775808,
            "-92233720368547758.08",
            -9.223372036854776e16,
        ),
        (b"$0.00", 0, "0.00", 0.0),
    ],
)
def test_money(text: bytes, precise: int, string: str, double: float) -> None:
    built = codec("money")
    assert built.schema["parameters"] == {"scale": "2"}
    assert unscaled(built.from_text(text)) == precise
    assert convert("money", text, decimal_handling_mode="string") == string
    assert convert("money", text, decimal_handling_mode="double") == double


def test_money_fraction_digits_round_half_up() -> None:
    one = codec("money", money_fraction_digits=1)
    assert one.schema["parameters"] == {"scale": "1"}
    assert unscaled(one.from_text(b"$12.35")) == 124
    assert unscaled(one.from_text(b"-$12.35")) == -124
    assert unscaled(convert("money", b"$12.34", money_fraction_digits=4)) == 123400


# --- bit strings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "modifier", "text", "value"),
    [  # Debezium's own test expectations (RecordsSnapshotProducerIT, bitbin_table)
        ("bit", 2, b"11", bytes([3])),
        ("bit", 7, b"1000000", bytes([64])),
        ("bit", 2, b"00", b""),
        ("bit", 24, b"000000110000001000000001", bytes([1, 2, 3])),
        ("bit", 64, b"1" + b"0" * 63, bytes([0, 0, 0, 0, 0, 0, 0, 128])),
        ("varbit", -1, b"101", bytes([5])),
        ("varbit", -1, b"111011010001000110000001000000001", bytes([1, 2, 35, 218, 1])),
    ],
)
def test_bits(type_: str, modifier: int, text: bytes, value: bytes) -> None:
    built = codec(type_, modifier)
    length = "2147483647" if modifier == -1 else str(modifier)
    assert built.schema == {
        "type": "bytes",
        "optional": True,
        "name": "io.debezium.data.Bits",
        "version": 1,
        "parameters": {"length": length},
    }
    assert built.from_text(text) == base64.b64encode(value).decode()


def test_single_bits_are_booleans() -> None:
    assert codec("bit").schema == {"type": "boolean", "optional": True}
    assert convert("bit", b"1") is True
    assert convert("varbit", b"0", 1) is False


# --- text-like, binary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "name"),
    [
        ("text", None), ("varchar", None), ("bpchar", None), ("name", None), ("char", None),
        ("inet", None), ("cidr", None), ("macaddr", None), ("macaddr8", None),
        ("int4range", None), ("tstzrange", None), ("daterange", None),
        ("json", "io.debezium.data.Json"), ("jsonb", "io.debezium.data.Json"),
        ("xml", "io.debezium.data.Xml"), ("uuid", "io.debezium.data.Uuid"),
        ("tsvector", "io.debezium.data.Tsvector"),
    ],
)  # fmt: skip
def test_text_like_types_keep_their_text(type_: str, name: str | None) -> None:
    built = codec(type_)
    expected: dict[str, Any] = {"type": "string", "optional": True}
    if name:
        expected.update(name=name, version=1)
    assert built.schema == expected
    assert built.from_text('ünï 😀 "q" \\ '.encode()) == 'ünï 😀 "q" \\ '


@pytest.mark.parametrize(
    ("mode", "schema_type", "value"),
    [
        ("bytes", "bytes", "++++////"),  # Debezium 3.6 golden events
        ("base64", "string", "++++////"),
        ("base64-url-safe", "string", "----____"),
        ("hex", "string", "fbefbeffffff"),
    ],
)
def test_bytea_modes(mode: str, schema_type: str, value: str) -> None:
    built = codec("bytea", binary_handling_mode=mode)
    assert built.schema == {"type": schema_type, "optional": True}
    assert built.from_text(b"\\xfbefbeffffff") == value
    assert built.from_text(b"\\x") == ""


# --- dates and times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [  # Debezium 3.6 golden events (streaming) and its infinity sentinels
        (b"1970-01-01", 0), (b"2024-02-29", 19782), (b"1969-12-31", -1),
        (b"0001-01-01", -719162), (b"9999-12-31", 2932896),
        (b"0044-03-15 BC", -735160), (b"0001-01-01 BC", -719528),
        (b"infinity", -2147472692), (b"-infinity", -2147472691),
    ],
)  # fmt: skip
def test_date(text: bytes, days: int) -> None:
    assert codec("date").schema["name"] == "io.debezium.time.Date"
    assert convert("date", text) == days
    assert convert("date", text, time_precision_mode="connect") == days


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        (b"2024-02-29", "2024-02-29Z"),
        (b"0001-01-01 BC", "0000-01-01Z"),
        (b"0044-03-15 BC", "-0043-03-15Z"),
        (b"12345-01-01", "+12345-01-01Z"),
        (b"infinity", "-5877611-06-21Z"),
    ],
)
def test_iso_date(text: bytes, iso: str) -> None:
    assert convert("date", text, time_precision_mode="isostring") == iso


@pytest.mark.parametrize(
    ("modifier", "mode", "name", "text", "value"),
    [  # Debezium 3.6 golden events
        (-1, "adaptive", "io.debezium.time.MicroTime", b"13:45:30.123456", 49530123456),
        (3, "adaptive", "io.debezium.time.Time", b"13:45:30.123", 49530123),
        (0, "adaptive", "io.debezium.time.Time", b"24:00:00", 86400000),
        (-1, "adaptive", "io.debezium.time.MicroTime", b"24:00:00", 86400000000),
        (
            3,
            "adaptive_time_microseconds",
            "io.debezium.time.MicroTime",
            b"12:00:00.001",
            43200001000,
        ),
        (-1, "connect", "org.apache.kafka.connect.data.Time", b"23:59:59.999999", 86399999),
        (-1, "microseconds", "io.debezium.time.MicroTime", b"00:00:01.5", 1500000),
        (-1, "nanoseconds", "io.debezium.time.NanoTime", b"00:00:01.000001", 1000001000),
        (-1, "isostring", "io.debezium.time.IsoTime", b"13:45:30.1200", "13:45:30.12Z"),
        (-1, "isostring", "io.debezium.time.IsoTime", b"24:00:00", "00:00:00Z"),
    ],
)
def test_time(modifier: int, mode: str, name: str, text: bytes, value: Any) -> None:
    built = codec("time", modifier, time_precision_mode=mode)
    assert built.schema["name"] == name
    assert built.from_text(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [  # Debezium 3.6 golden events
        (b"13:45:30.123456+05:30", "08:15:30.123456Z"),
        (b"00:00:01-08", "08:00:01Z"),
        (b"23:59:59.999999-15:59", "15:58:59.999999Z"),
        (b"12:00:00+15:59", "20:01:00Z"),
        (b"00:00:00+00", "00:00:00Z"),
        (b"12:00:00.120+05:30", "06:30:00.12Z"),
    ],
)
def test_timetz_is_utc(text: bytes, value: str) -> None:
    built = codec("timetz", time_precision_mode="connect")  # the mode does not matter
    assert built.schema == {
        "type": "string", "optional": True, "name": "io.debezium.time.ZonedTime", "version": 1,
    }  # fmt: skip
    assert built.from_text(text) == value


@pytest.mark.parametrize(
    ("modifier", "text", "value"),
    [  # Debezium 3.6 golden events
        (-1, b"2024-02-29 13:45:30.123456", 1709214330123456),
        (3, b"2024-02-29 13:45:30.123", 1709214330123),
        (0, b"1969-12-31 23:59:59", -1000),
        (-1, b"1969-12-31 23:59:59.999999", -1),
        (3, b"1969-12-31 23:59:59.999", -1),
        (-1, b"0001-01-01 00:00:00", -62135596800000000),
        (-1, b"0044-03-15 12:00:00 BC", -63517780800000000),
        (3, b"9999-12-31 23:59:59.999", 253402300799999),
        (-1, b"infinity", 9223372036825200000),
        (-1, b"-infinity", -9223372036832400000),
        (3, b"infinity", 9223372036825200),
        (3, b"-infinity", -9223372036832400),
        (-1, b"294276-12-31 23:59:59.999999", -9223372036853775810),  # Java long wrap
        (-1, b"21016-11-04 13:51:30.123456", 601060312290123456),
    ],
)
def test_timestamp_adaptive(modifier: int, text: bytes, value: int) -> None:
    built = codec("timestamp", modifier)
    name = "io.debezium.time.Timestamp" if 0 <= modifier <= 3 else "io.debezium.time.MicroTimestamp"
    assert built.schema == {"type": "int64", "optional": True, "name": name, "version": 1}
    assert built.from_text(text) == value


def test_timestamp_other_modes() -> None:
    text = b"2024-02-29 13:45:30.123456"
    assert convert("timestamp", text, time_precision_mode="connect") == 1709214330123
    assert convert("timestamp", text, 3, time_precision_mode="microseconds") == 1709214330123456
    assert convert("timestamp", text, time_precision_mode="nanoseconds") == 1709214330123456000
    assert (
        convert("timestamp", text, time_precision_mode="isostring") == "2024-02-29T13:45:30.123456Z"
    )
    assert convert("timestamp", b"infinity", time_precision_mode="nanoseconds") == 2**63 - 1
    assert convert("timestamp", b"-infinity", time_precision_mode="nanoseconds") == -(2**63)
    assert (
        convert("timestamp", b"infinity", time_precision_mode="isostring")
        == "+294247-01-10T04:00:25.2Z"
    )
    assert codec("timestamp", time_precision_mode="connect").schema["name"] == (
        "org.apache.kafka.connect.data.Timestamp"
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # Debezium 3.6 golden events: the day is multiplied first, so all of 1677-09-21
        # overflows; past the range the value is null (with a warning).
        (b"2262-04-11 23:47:16.854775", 9223372036854775000),
        (b"1677-09-22 00:00:00", -9223286400000000000),
        (b"1677-09-21 00:12:43.145225", None),
        (b"1677-09-21 23:59:59", None),
        (b"2262-04-11 23:47:16.854776", None),
    ],
)
def test_nanosecond_range(text: bytes, value: int | None) -> None:
    assert convert("timestamp", text, time_precision_mode="nanoseconds") == value


@pytest.mark.parametrize(
    ("modifier", "text", "value"),
    [  # Debezium 3.6 golden events and test suite
        (-1, b"2024-02-29 08:15:30.123456+00", "2024-02-29T08:15:30.123456Z"),
        (3, b"2024-02-29 08:15:30.123+00", "2024-02-29T08:15:30.123Z"),
        (-1, b"1970-01-01 00:00:00+00", "1970-01-01T00:00:00.000000Z"),
        (3, b"2000-01-01 00:00:00.001+00", "2000-01-01T00:00:00.001Z"),
        (-1, b"0044-03-15 12:00:00+00 BC", "-0043-03-15T12:00:00.000000Z"),
        (-1, b"21016-11-04 06:51:30.123456+00", "+21016-11-04T06:51:30.123456Z"),
        (-1, b"294247-01-01 23:59:59.999999+00", "+294247-01-01T23:59:59.999999Z"),
        (0, b"2024-01-01 00:00:01+00", "2024-01-01T00:00:01Z"),
        (-1, b"2024-01-01 05:30:00+05:30", "2024-01-01T00:00:00.000000Z"),
        (-1, b"infinity", "infinity"),
        (-1, b"-infinity", "-infinity"),
    ],
)
def test_timestamptz(modifier: int, text: bytes, value: str) -> None:
    built = codec("timestamptz", modifier, time_precision_mode="microseconds")
    assert built.schema["name"] == "io.debezium.time.ZonedTimestamp"
    assert built.from_text(text) == value


@pytest.mark.parametrize(
    ("text", "micros", "iso"),
    [  # Debezium 3.6 golden events
        (b"00:00:00", 0, "P0Y0M0DT0H0M0S"),
        (b"1 year 2 mons 3 days 04:05:06.789", 37091106789000, "P1Y2M3DT4H5M6.789S"),
        (b"-1 days -02:03:04.5", -93784500000, "P0Y0M-1DT-2H-3M-4.5S"),
        (b"-178000000 years", -(2**63), "P-178000000Y0M0DT0H0M0S"),
        (b"178000000 years", 2**63 - 1, "P178000000Y0M0DT0H0M0S"),
        (b"1 mon -1 days 00:00:00.000001", 2543400000001, "P0Y1M-1DT0H0M0.000001S"),
        (b"-00:00:00.5", -500000, "P0Y0M0DT0H0M-0.5S"),
        (b"2147483647:59:59.999999", 7730941132800000000, "P0Y0M0DT2147483647H59M59.999999S"),
    ],
)
def test_interval(text: bytes, micros: int, iso: str) -> None:
    assert codec("interval").schema["name"] == "io.debezium.time.MicroDuration"
    assert codec("interval", interval_handling_mode="string").schema["name"] == (
        "io.debezium.time.Interval"
    )
    assert convert("interval", text) == micros
    assert convert("interval", text, interval_handling_mode="string") == iso


# --- point, hstore, enums, domains, unknown types ---------------------------------------------


def test_point() -> None:
    built = codec("point")
    assert built.schema["name"] == "io.debezium.data.geometry.Point"
    assert built.schema["doc"] == "Geometry (POINT)"
    assert [(f["field"], f["type"], f["optional"]) for f in built.schema["fields"]] == [
        ("x", "double", False), ("y", "double", False),
        ("wkb", "bytes", True), ("srid", "int32", True),
    ]  # fmt: skip
    assert built.from_text(b"(-1.5,2.25)") == {  # Debezium 3.6 golden event
        "x": -1.5,
        "y": 2.25,
        "wkb": "AQEAAAAAAAAAAAD4vwAAAAAAAAJA",
        "srid": None,
    }


HSTORE = PgType(16500, "hstore", schema="public")


def test_hstore_json_follows_java_hashmap_order() -> None:
    keys = sorted((f"key{i}" for i in range(1, 31)), key=lambda k: (len(k), k))
    text = ", ".join(f'"{k}"=>"v{k[3:]}"' for k in keys).encode()
    # Debezium 3.6 output for these 30 keys
    order = (1, 2, 5, 6, 3, 4, 9, 7, 8, 22, 21, 20, 15, 14, 13, 12, 19, 18, 17, 16, 11, 10, 30,
             26, 25, 24, 23, 29, 28, 27)  # fmt: skip
    expected = [f"key{i}" for i in order]
    out = convert(HSTORE, text)
    assert list(json.loads(out)) == expected
    assert out.startswith('{"key1":"v1","key2":"v2","key5":"v5"')


def test_hstore_escapes() -> None:
    text = b'"a"=>"1", "b"=>NULL'
    assert convert(HSTORE, text) == '{"a":"1","b":null}'  # golden
    text = b'"tab"=>"a\tb", "k\\"q"=>"v\\\\w", "nl"=>NULL'
    assert convert(HSTORE, text) == '{"tab":"a\\tb","k\\"q":"v\\\\w","nl":null}'  # golden
    assert convert(HSTORE, b'"x"=>"\x01"') == '{"x":"\\u0001"}'
    assert convert(HSTORE, b"") == "{}"


def test_hstore_map() -> None:
    built = codec(HSTORE, hstore_handling_mode="map")
    assert built.schema == {
        "type": "map",
        "keys": {"type": "string", "optional": False},
        "values": {"type": "string", "optional": True},
        "optional": True,
    }
    assert built.from_text('"ü"=>"日本", "k,=>"=>"v \\"q\\""'.encode()) == {
        "ü": "日本",
        "k,=>": 'v "q"',
    }


MOOD = PgType(16600, "mood", schema="public", typtype="e", category="E",
              enum_labels=("sad", "ok", "happy"))  # fmt: skip


def test_enum() -> None:
    built = codec(MOOD)
    assert built.schema == {
        "type": "string",
        "optional": True,
        "name": "io.debezium.data.Enum",
        "version": 1,
        "parameters": {"allowed": "sad,ok,happy"},
    }
    assert built.from_text(b"ok") == "ok"


def test_domains_read_as_their_base_with_the_domain_modifier() -> None:
    price = PgType(16700, "price", schema="public", typtype="d", category="N",
                   base=builtin_type("numeric"), typmod=numeric_mod(8, 3))  # fmt: skip
    built = codec(price)
    assert built.schema["parameters"] == {"scale": "3", "connect.decimal.precision": "8"}
    assert built.from_text(b"12345.678") == "ALxhTg=="  # golden
    posint = PgType(16701, "posint", schema="public", typtype="d", base=builtin_type("int4"))
    nested = PgType(16702, "posint2", schema="public", typtype="d", base=posint)
    assert codec(nested).schema == {"type": "int32", "optional": True}
    dts = PgType(
        16703, "dts", schema="public", typtype="d", base=builtin_type("timestamp"), typmod=3
    )
    assert codec(dts).schema["name"] == "io.debezium.time.Timestamp"


UNKNOWN = ["box", "circle", "line", "lseg", "path", "polygon", "pg_lsn", "tsquery", "jsonpath",
           "_money", "_interval", "_xml"]  # fmt: skip


@pytest.mark.parametrize("type_", UNKNOWN)
def test_unknown_types_are_marked_and_passed_through_as_text(type_: str) -> None:
    built = codec(type_)
    assert built.unknown
    assert "Debezium" in built.note
    assert built.schema == {"type": "string", "optional": True}
    assert built.from_text(b"(1,2),(0,0)") == "(1,2),(0,0)"


def test_unknown_types_with_include_unknown_datatypes_are_debeziums_bytes() -> None:
    built = codec("tsquery", include_unknown_datatypes=True)
    assert built.unknown
    assert built.schema == {"type": "bytes", "optional": True}
    assert built.from_text(b"'a' & 'b'") == base64.b64encode(b"'a' & 'b'").decode()
    # geometric values as pgjdbc's objects print them (Debezium 3.6, snapshot and streaming)
    box = codec("box", include_unknown_datatypes=True, binary_handling_mode="hex")
    assert bytes.fromhex(box.from_text(b"(1.5,1),(0,0)")) == b"(1.5,1.0),(0.0,0.0)"
    circle = codec("circle", include_unknown_datatypes=True, binary_handling_mode="hex")
    assert bytes.fromhex(circle.from_text(b"<(0,0),5>")) == b"<(0.0,0.0),5.0>"
    line = codec("line", include_unknown_datatypes=True, binary_handling_mode="hex")
    assert bytes.fromhex(line.from_text(b"{1,-1,1e-05}")) == b"{1.0,-1.0,1.0E-5}"
    hexed = codec("pg_lsn", include_unknown_datatypes=True, binary_handling_mode="hex")
    assert hexed.from_text(b"0/16B3748") == b"0/16B3748".hex()
    # Debezium leaves these arrays out whatever include.unknown.datatypes says
    assert codec("_money", include_unknown_datatypes=True).schema == {
        "type": "string",
        "optional": True,
    }
