"""Masked, hashed and truncated columns against real Debezium 3.6: their value fields carry
Debezium's marks (``masked``: ``true``; ``truncateLength``: N), their key fields do not.

The golden scenario ``column_filters`` (``tests/data/debezium``) masks, hashes (v1 and v2)
and truncates columns of ``people``; ``test_capture_golden`` compares its payloads, this
compares the key and value schema of every record, topic by topic.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from duality.log.sqlite import SqliteLog
from tests.golden_support import GOLDEN
from tests.helpers import Database
from tests.integration.test_capture_golden import capture_scenario

pytestmark = pytest.mark.postgres

SCENARIO = "column_filters"


def _schemas(records: list[dict[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    out: dict[str, list[tuple[Any, Any]]] = {}
    for record in records:
        key, value = record["key"], record["value"]
        out.setdefault(record["topic"], []).append(
            (key and key["schema"], value and value["schema"]))
    return out


def test_marked_fields_equal_debeziums(db: Database, tmp_path: Path) -> None:
    folder = GOLDEN / SCENARIO
    scenario = json.loads((folder / "scenario.json").read_text())
    with gzip.open(folder / "events_with_schema.jsonl.gz") as lines:
        golden = _schemas([json.loads(line) for line in lines if line.strip()])
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_scenario(db, log_url, scenario, {"topic.prefix": "golden", **scenario["connector"]})
    ours: dict[str, list[tuple[Any, Any]]] = {}
    with SqliteLog(log_url) as log:
        for topic in golden:
            for record in log.read(topic, 0, 0, 1000):
                schema = log.schema(record.schema_id) if record.schema_id is not None else None
                ours.setdefault(topic, []).append((
                    schema.key.to_json() if schema and record.key and schema.key else None,
                    schema.value.to_json() if schema and record.value and schema.value
                    else None,
                ))
    assert sorted(ours) == sorted(golden)
    for topic, expected in golden.items():
        for mine, theirs in zip(ours[topic], expected, strict=True):
            assert mine[0] == theirs[0], topic
            assert mine[1] == theirs[1], topic
    after = next(f for f in golden["golden.public.people"][0][1]["fields"]
                 if f["field"] == "after")
    marks = {f["field"]: f.get("parameters") for f in after["fields"]}
    assert marks == {"id": None, "email": {"masked": "true"}, "email2": {"masked": "true"},
                     "ssn": {"masked": "true"}, "notes": {"truncateLength": "3"},
                     "nick": {"truncateLength": "3"}, "region": None}
