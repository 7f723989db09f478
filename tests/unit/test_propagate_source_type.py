"""``column.propagate.source.type`` and ``datatype.propagate.source.type``: which columns
they select, and the type, length and scale each of Debezium's descriptions gives (the
expected values are what Debezium 3.6.3 wrote; see
``tests/integration/test_capture_propagate_source_type.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from duality.errors import ConfigError
from duality.events.schema import TableMeta
from duality.sources.postgres.catalog import ColumnInfo
from duality.sources.postgres.columns import ColumnRules
from duality.sources.postgres.config import parse_config
from duality.sources.postgres.jdbc_metadata import display_size, precision, scale
from duality.sources.postgres.propagate import (
    SourceColumn,
    field_parameters,
    snapshot_column,
    streamed_column,
)
from duality.sources.postgres.record_schema import table_record_schema
from duality.sources.postgres.tables import build_codec
from duality.sources.postgres.types import BUILTIN_TYPES, builtin_type
from duality.sources.postgres.types_model import PgType, ValueSettings

SOURCE = "postgresql://u@127.0.0.1:5432/db"
INT4, NUMERIC, VARCHAR = builtin_type("int4"), builtin_type("numeric"), builtin_type("varchar")
#: ``numeric(8,3)`` and ``varchar(20)`` as atttypmod.
NUMERIC_8_3, VARCHAR_20 = (8 << 16 | 3) + 4, 24


def _propagating(rules: ColumnRules, column: str, type_name: str = "int4") -> bool:
    return rules.propagates("public", "orders", column, type_name)


# --- which columns -----------------------------------------------------------------------------


def test_column_patterns_match_the_whole_qualified_name_in_any_case() -> None:
    rules = ColumnRules.from_properties(
        {"column.propagate.source.type": r"PUBLIC\.Orders\.total, .*\.note_\d"})
    assert rules.propagating
    assert _propagating(rules, "total") and _propagating(rules, "TOTAL")
    assert _propagating(rules, "note_1")
    assert not _propagating(rules, "total_cents")  # a full match, not a prefix
    assert not _propagating(rules, "id")
    assert not rules.propagates("other", "orders", "total", "int4")


def test_datatype_patterns_match_schema_table_and_type_name() -> None:
    rules = ColumnRules.from_properties(
        {"datatype.propagate.source.type": r".+\.VARCHAR,public\.orders\._int4"})
    assert _propagating(rules, "any", "varchar")
    assert _propagating(rules, "any", "_int4")
    assert not _propagating(rules, "any", "_varchar")
    assert not _propagating(rules, "any", "int4")
    assert not rules.propagates("other", "orders", "any", "_int4")
    assert not _propagating(rules, "varchar", "text")  # never the column name


def test_no_property_or_no_match_selects_nothing() -> None:
    assert not ColumnRules().propagating
    assert not ColumnRules.from_properties({"column.propagate.source.type": " , "}).propagating
    rules = ColumnRules.from_properties({"column.propagate.source.type": r"public\.other\..*"})
    assert rules.propagating and not _propagating(rules, "total")


def test_both_properties_select_the_union() -> None:
    rules = ColumnRules.from_properties({
        "column.propagate.source.type": r"public\.orders\.id",
        "datatype.propagate.source.type": r".*\.numeric",
    })
    assert _propagating(rules, "id", "int4")
    assert _propagating(rules, "total", "numeric")
    assert not _propagating(rules, "qty", "int4")


def test_masks_and_truncation_win_but_hashing_does_not() -> None:
    """Debezium applies the first rule that matches a column: masks and truncation come
    before propagation, hashing after it."""
    rules = ColumnRules.from_properties({
        "column.propagate.source.type": ".*",
        "column.mask.with.3.chars": r"public\.orders\.masked",
        "column.truncate.to.2.chars": r"public\.orders\.cut",
        "column.mask.hash.SHA-256.with.salt.s": r"public\.orders\.hashed",
    })
    assert not _propagating(rules, "masked", "text")
    assert not _propagating(rules, "cut", "text")
    assert _propagating(rules, "hashed", "text")


@pytest.mark.parametrize("key", ["column.propagate.source.type", "datatype.propagate.source.type"])
def test_an_invalid_pattern_names_the_property(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}: 'a\(' is not a valid regular expression"):
        parse_config({"topic.prefix": "p", key: "ok,a("}, source=SOURCE)


def test_the_properties_are_implemented_not_ignored() -> None:
    warnings: list[str] = []
    config = parse_config(
        {"topic.prefix": "p", "column.propagate.source.type": ".*",
         "datatype.propagate.source.type": r".*\.varchar"},
        source=SOURCE, warn=warnings.append,
    )
    assert warnings == []
    assert config.columns.propagating


# --- what pgjdbc reports -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "typmod", "size", "digits", "display"),
    [
        ("int2", -1, 5, 0, 6),
        ("int8", -1, 19, 0, 20),
        ("float4", -1, 8, 8, 15),
        ("float8", -1, 17, 17, 25),
        ("bool", -1, 1, 0, 1),
        ("numeric", -1, 0, 0, 131089),
        ("numeric", NUMERIC_8_3, 8, 3, 10),
        ("numeric", (5 << 16) + 4, 5, 0, 6),
        ("varchar", -1, 2147483647, 0, 2147483647),
        ("varchar", VARCHAR_20, 20, 0, 20),
        ("bpchar", 5, 1, 0, 1),
        ("date", -1, 13, 0, 13),
        ("time", 0, 8, 0, 8),
        ("time", 1, 11, 1, 11),
        ("timetz", -1, 21, 6, 21),
        ("timestamp", 3, 26, 3, 26),
        ("timestamptz", -1, 35, 6, 35),
        ("interval", -1, 49, 6, 49),
        ("interval", 0x7FFF0003, 49, 3, 49),
        ("bit", 4, 4, 0, 4),
        ("varbit", -1, 2147483647, 0, 2147483647),
        ("text", -1, 2147483647, 0, 2147483647),
        ("jsonb", -1, 2147483647, 0, 2147483647),
    ],
)
def test_driver_precision_scale_and_display_size(
    name: str, typmod: int, size: int, digits: int, display: int
) -> None:
    oid = builtin_type(name).oid
    assert (precision(oid, typmod), scale(oid, typmod), display_size(oid, typmod)) == (
        size, digits, display)


# --- the snapshot's and the stream's descriptions ----------------------------------------------


def test_snapshot_and_stream_describe_unconstrained_numerics_differently() -> None:
    assert snapshot_column(NUMERIC, -1, None) == SourceColumn("numeric", 0, None)
    assert streamed_column(NUMERIC, -1) == SourceColumn("numeric", 131089, 0)
    assert snapshot_column(NUMERIC, NUMERIC_8_3, None) == SourceColumn("numeric", 8, 3)
    assert streamed_column(NUMERIC, NUMERIC_8_3) == SourceColumn("numeric", 8, 3)
    numerics = builtin_type("numeric[]")  # an array is not JDBC's NUMERIC: display size
    assert snapshot_column(numerics, -1, None) == SourceColumn("_numeric", 131089, 0)


def test_arrays_of_the_drivers_core_types_count_as_their_element() -> None:
    assert streamed_column(builtin_type("int4[]"), -1) == SourceColumn("_int4", 10, 0)
    assert streamed_column(builtin_type("varchar[]"), 11) == SourceColumn("_varchar", 7, 0)
    assert streamed_column(builtin_type("uuid[]"), -1) == SourceColumn("_uuid", 2147483647, 0)
    intervals = builtin_type("interval[]")  # not a core type of the driver
    assert streamed_column(intervals, -1) == SourceColumn("_interval", 2147483647, 0)


def test_a_serial_column_is_named_serial_in_the_snapshot_only() -> None:
    default = "nextval('orders_id_seq'::regclass)"
    assert snapshot_column(INT4, -1, default).type_name == "serial"
    assert snapshot_column(builtin_type("int8"), -1, default).type_name == "bigserial"
    assert snapshot_column(builtin_type("int2"), -1, default).type_name == "smallserial"
    assert snapshot_column(NUMERIC, -1, default).type_name == "numeric"
    assert snapshot_column(INT4, -1, "42").type_name == "int4"
    assert streamed_column(INT4, -1).type_name == "int4"


def test_a_type_off_the_search_path_is_qualified_in_the_snapshot_only() -> None:
    color = PgType(16500, "color", schema="other", typtype="e", category="E", on_path=False)
    assert snapshot_column(color, -1, None) == SourceColumn('"other"."color"', 2147483647, 0)
    assert streamed_column(color, -1) == SourceColumn("color", 2147483647, 0)
    core = PgType(VARCHAR.oid, "varchar", on_path=False)  # the driver knows its name
    assert snapshot_column(core, -1, None).type_name == "varchar"


def test_domains_take_the_defaults_of_their_base_type() -> None:
    money83 = PgType(16600, "money83", schema="public", typtype="d", base=NUMERIC,
                     typmod=NUMERIC_8_3)
    anynum = PgType(16601, "anynum", schema="public", typtype="d", base=NUMERIC)
    posint = PgType(16602, "posint", schema="other", typtype="d", base=INT4, on_path=False)
    for domain, length, digits in ((money83, 8, 3), (anynum, 131089, 0), (posint, 10, 0)):
        for found in (snapshot_column(domain, -1, None), streamed_column(domain, -1)):
            assert (found.length, found.scale) == (length, digits)
    assert snapshot_column(posint, -1, None).type_name == '"other"."posint"'


def test_parameters_leave_out_an_unknown_length_and_an_unset_scale() -> None:
    assert SourceColumn("numeric", 0, None).parameters("n") == {
        "__debezium.source.column.type": "NUMERIC",
        "__debezium.source.column.length": "0",
        "__debezium.source.column.name": "n",
    }
    assert SourceColumn("bit", -1, 0).parameters("b") == {
        "__debezium.source.column.type": "BIT",
        "__debezium.source.column.scale": "0",
        "__debezium.source.column.name": "b",
    }


# --- in the record schema ------------------------------------------------------------------------

COLUMNS = [
    ColumnInfo("id", INT4.oid, -1, True, "integer", "nextval('t_id_seq'::regclass)"),
    ColumnInfo("total", NUMERIC.oid, NUMERIC_8_3, False, "numeric(8,3)"),
    ColumnInfo("note", VARCHAR.oid, VARCHAR_20, False, "character varying(20)"),
]


def test_source_parameters_by_column() -> None:
    rules = ColumnRules.from_properties({"datatype.propagate.source.type": r".*\.(int4|serial)"})
    snapshot = field_parameters("public", "t", COLUMNS, BUILTIN_TYPES, rules, snapshot=True)
    streamed = field_parameters("public", "t", COLUMNS, BUILTIN_TYPES, rules, snapshot=False)
    assert snapshot["id"]["__debezium.source.column.type"] == "SERIAL"
    assert streamed["id"]["__debezium.source.column.type"] == "INT4"
    assert set(snapshot) == set(streamed) == {"id"}


def test_marks_of_masks_hashes_and_truncation() -> None:
    """Debezium's marks, unless the source type comes first (a hash: it does)."""
    rules = ColumnRules.from_properties({
        "column.mask.with.4.chars": "public.t.id",
        "column.truncate.to.07.chars": "public.t.note",
        "column.mask.hash.SHA-256.with.salt.s": "public.t.total",
    })
    assert field_parameters("public", "t", COLUMNS, BUILTIN_TYPES, rules, snapshot=False) == {
        "id": {"masked": "true"}, "note": {"truncateLength": "7"}, "total": {"masked": "true"}}
    propagating = ColumnRules.from_properties({
        "column.mask.hash.SHA-256.with.salt.s": "public.t.total",
        "column.truncate.to.7.chars": "public.t.note",
        "column.propagate.source.type": "public.t.(total|note)",
    })
    found = field_parameters("public", "t", COLUMNS, BUILTIN_TYPES, propagating, snapshot=False)
    assert found["note"] == {"truncateLength": "7"}
    assert found["total"]["__debezium.source.column.type"] == "NUMERIC"
    assert "masked" not in found["total"]


def _codec_fields(rules: ColumnRules, *, snapshot: bool) -> tuple[dict[str, Any], ...]:
    codec = build_codec(
        prefix="p", schema="public", table="t", columns=COLUMNS, key_names=["id"],
        replica_identity="default", types=BUILTIN_TYPES, settings=ValueSettings(),
        placeholder="__debezium_unavailable_value", rules=rules, snapshot=snapshot,
    )
    schema = codec.record_schema
    assert schema.key is not None and schema.value is not None
    key = schema.key.fields[0].schema
    assert key.parameters is None  # key fields never carry them
    after = schema.value.field("after")
    assert after is not None
    return tuple(f.schema.to_json() for f in after.schema.fields)


def test_value_fields_get_the_parameters_after_their_own() -> None:
    rules = ColumnRules.from_properties({"column.propagate.source.type": ".*"})
    identity, total, note = _codec_fields(rules, snapshot=False)
    assert identity["parameters"]["__debezium.source.column.type"] == "INT4"
    assert total["parameters"] == {
        "scale": "3",
        "connect.decimal.precision": "8",
        "__debezium.source.column.type": "NUMERIC",
        "__debezium.source.column.length": "8",
        "__debezium.source.column.scale": "3",
        "__debezium.source.column.name": "total",
    }
    assert list(total["parameters"])[:2] == ["scale", "connect.decimal.precision"]
    assert note["parameters"]["__debezium.source.column.length"] == "20"


def test_without_the_properties_the_schema_is_unchanged() -> None:
    plain = _codec_fields(ColumnRules(), snapshot=True)
    assert [f.get("parameters") for f in plain] == [
        None, {"scale": "3", "connect.decimal.precision": "8"}, None]
    fields = [("id", {"type": "int32", "optional": False})]
    assert table_record_schema("p.public.t", fields, ["id"], TableMeta()) == table_record_schema(
        "p.public.t", fields, ["id"], TableMeta(), {})
