"""Column kinds: Debezium payload values decoded, stored in SQLite, rendered back.

Oracles are the standard library (``Decimal``, ``datetime``); values go through a real
(in-memory) SQLite table with the declared types duality uses, so affinity conversions
are part of what is checked.
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
from decimal import Context, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duality.events.schema import ConnectSchema
from duality.tables.types import Kind, column_codec, render_json, to_python

EPOCH = dt.datetime(1970, 1, 1)
BIG = Context(prec=200)


def decimal_schema(scale: int) -> ConnectSchema:
    return ConnectSchema("bytes", True, name="org.apache.kafka.connect.data.Decimal",
                         parameters={"scale": str(scale)})


def stored(kind: Kind, value: Any) -> Any:
    """``value`` written to and read back from a column of ``kind``'s declared type."""
    conn = sqlite3.connect(":memory:")
    conn.execute(f'CREATE TABLE t (c {kind.sql_type})')
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    return conn.execute("SELECT c FROM t").fetchone()[0]


def through(schema: ConnectSchema, payload: Any, source_type: str | None = None) -> Any:
    kind, decode = column_codec(schema, source_type)
    value = payload if decode is None else decode(payload)
    return render_json(kind, stored(kind, value))


def encode_unscaled(unscaled: int) -> str:
    size = (unscaled.bit_length() + 8) // 8
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()


@given(unscaled=st.one_of(st.integers(-10**6, 10**6), st.integers(-10**40, 10**40)),
       scale=st.integers(0, 12))
def test_decimals_keep_every_digit_and_their_scale(unscaled: int, scale: int) -> None:
    got = through(decimal_schema(scale), encode_unscaled(unscaled))
    expected = Decimal(unscaled).scaleb(-scale, BIG)
    assert got == f"{expected:.{scale}f}"


@given(unscaled=st.integers(-10**30, 10**30), scale=st.integers(0, 20))
def test_variable_scale_decimals_keep_their_value(unscaled: int, scale: int) -> None:
    schema = ConnectSchema("struct", True, name="io.debezium.data.VariableScaleDecimal")
    got = through(schema, {"scale": scale, "value": encode_unscaled(unscaled)})
    assert Decimal(got) == Decimal(unscaled).scaleb(-scale, BIG)


@given(text=st.one_of(st.decimals(allow_nan=False, allow_infinity=False, places=4),
                      st.sampled_from(["NAN", "POSITIVE_INFINITY", "NEGATIVE_INFINITY"])))
def test_decimal_strings_of_a_numeric_column(text: Any) -> None:
    got = through(ConnectSchema("string", True), str(text), "numeric(20,4)")
    if isinstance(text, str):
        assert got == {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity",
                       "NEGATIVE_INFINITY": "-Infinity"}[text]
    else:
        assert Decimal(got) == text


@given(days=st.integers(-719_162, 2_932_896))
def test_dates(days: int) -> None:
    schema = ConnectSchema("int32", True, name="io.debezium.time.Date")
    assert through(schema, days) == (EPOCH + dt.timedelta(days=days)).date().isoformat()


@given(micros=st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999))
def test_micro_timestamps(micros: int) -> None:
    schema = ConnectSchema("int64", True, name="io.debezium.time.MicroTimestamp")
    want = (EPOCH + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds")
    assert through(schema, micros) == want


@given(millis=st.integers(-62_135_596_800_000, 253_402_300_799_999))
def test_milli_timestamps(millis: int) -> None:
    schema = ConnectSchema("int64", True, name="io.debezium.time.Timestamp")
    want = (EPOCH + dt.timedelta(milliseconds=millis)).isoformat(timespec="milliseconds")
    assert through(schema, millis) == want


@given(micros=st.integers(0, 86_400_000_000))
def test_micro_times(micros: int) -> None:
    schema = ConnectSchema("int64", True, name="io.debezium.time.MicroTime")
    got = through(schema, micros)
    if micros == 86_400_000_000:
        assert got == "24:00:00.000000"
    else:
        want = (EPOCH + dt.timedelta(microseconds=micros)).time().isoformat("microseconds")
        assert got == want


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("io.debezium.time.Date", -2_147_472_692, "infinity"),
        ("io.debezium.time.Date", -2_147_472_691, "-infinity"),
        ("io.debezium.time.Date", -735_160, "-0043-03-15"),
        ("io.debezium.time.MicroTimestamp", 9_223_372_036_825_200_000, "infinity"),
        ("io.debezium.time.MicroTimestamp", -9_223_372_036_832_400_000, "-infinity"),
        ("io.debezium.time.MicroTimestamp", -63_517_780_800_000_000,
         "-0043-03-15T12:00:00.000000"),
        ("io.debezium.time.Timestamp", 9_223_372_036_825_200, "infinity"),
        ("io.debezium.time.NanoTimestamp", 1_709_214_330_123_456_789,
         "2024-02-29T13:45:30.123456789"),
        ("io.debezium.time.Time", 49_530_123, "13:45:30.123"),
        ("io.debezium.time.MicroDuration", 37_091_106_789_000, "P429DT7H5M6.789S"),
        ("io.debezium.time.MicroDuration", -90_061_000_001, "-P1DT1H1M1.000001S"),
        ("io.debezium.time.ZonedTimestamp", "2024-01-01T10:00:00.123456Z",
         "2024-01-01T10:00:00.123456Z"),
    ],
)
def test_special_temporal_values(name: str, value: Any, expected: str) -> None:
    kind = "int64" if isinstance(value, int) else "string"
    assert through(ConnectSchema(kind, True, name=name), value) == expected


@pytest.mark.parametrize(
    ("payload", "expected"), [(1.5, 1.5), ("NaN", "NaN"), ("Infinity", "Infinity"),
                              ("-Infinity", "-Infinity"), (-0.0, -0.0)],
)
def test_doubles_including_those_sqlite_cannot_hold(payload: Any, expected: Any) -> None:
    assert through(ConnectSchema("double", True), payload) == expected


@given(data=st.binary(max_size=64))
def test_bytes_round_trip_as_base64(data: bytes) -> None:
    encoded = base64.b64encode(data).decode()
    assert through(ConnectSchema("bytes", True), encoded) == encoded
    kind, decode = column_codec(ConnectSchema("bytes", True))
    assert decode is not None
    assert to_python(kind, stored(kind, decode(encoded))) == data


@given(text=st.text())
def test_text_comes_back_unchanged(text: str) -> None:
    for name in (None, "io.debezium.data.Json", "io.debezium.data.Uuid"):
        assert through(ConnectSchema("string", True, name=name), text) == text


def test_arrays_and_structs_are_nested_json_with_elements_decoded() -> None:
    items = ConnectSchema("array", True, items=decimal_schema(2))
    assert through(items, ["AJY=", "/x8=", None]) == ["1.50", "-2.25", None]
    dates = ConnectSchema("array", True, items=ConnectSchema(
        "int32", True, name="io.debezium.time.Date"))
    assert through(dates, [19782, 0]) == ["2024-02-29", "1970-01-01"]
    point = ConnectSchema.from_json({"type": "struct", "optional": True,
                                     "name": "io.debezium.data.geometry.Point", "fields": [
                                         {"field": "x", "type": "double"},
                                         {"field": "y", "type": "double"}]})
    assert through(point, {"x": 1.0, "y": -2.5}) == {"x": 1.0, "y": -2.5}


def test_python_values() -> None:
    kind, decode = column_codec(decimal_schema(2))
    assert decode is not None
    assert to_python(kind, decode("J0I=")) == Decimal("100.50")
    stamp = Kind("timestamp", 6)
    assert to_python(stamp, "2024-02-29T13:45:30.123456") == dt.datetime(
        2024, 2, 29, 13, 45, 30, 123456)
    assert to_python(Kind("timestamptz"), "2024-01-01T10:00:00Z") == dt.datetime(
        2024, 1, 1, 10, tzinfo=dt.UTC)
    assert to_python(Kind("date"), "-0043-03-15") == "-0043-03-15"  # no BC in Python
    assert to_python(Kind("duration"), 1_500_000) == dt.timedelta(seconds=1.5)
    assert to_python(Kind("bool"), 1) is True
    assert to_python(Kind("float"), "NaN") != to_python(Kind("float"), "NaN")  # NaN


@given(value=st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                       st.floats(allow_nan=False, allow_infinity=False), st.text(),
                       st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)))
def test_values_of_topics_without_schemas_come_back_as_json(value: Any) -> None:
    from duality.tables.types import infer_codec

    kind, decode = infer_codec(value)
    assert render_json(kind, stored(kind, None if value is None else decode(value))) == value
