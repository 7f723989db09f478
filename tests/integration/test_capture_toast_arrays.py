"""Unchanged TOASTed arrays and hstore: capture writes Debezium's placeholder in the
column's own form, and the table store and replicate keep the row's earlier value.

The golden scenarios ``toast_arrays`` and ``toast_arrays_modes`` (``tests/data/debezium``)
were recorded from real Debezium 3.6: an update under REPLICA IDENTITY DEFAULT that leaves
arrays of 22 element types and an hstore unchanged (pgoutput sends them as unchanged
TOAST). Debezium's ``UnchangedToastedPlaceholder`` has a form for some array types (the
placeholder's bytes as numbers for int, date and bigint arrays, a one-element list for
text-like, bytea and uuid arrays, a placeholder map for hstore); for the others its
placeholder fails the field's own schema and it writes null with a warning. duality
writes a placeholder in the element's form there (:data:`DELIBERATE`), because a null
would make every table and target store NULL over the value the row still has.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog
from duality.runtime.capture import Capture
from duality.sources.postgres.config import parse_config
from tests.golden_support import by_topic, golden, ours
from tests.helpers import Database
from tests.replicate_support import assert_only_counter_moves, store_rows

pytestmark = pytest.mark.postgres

GOLDEN = Path(__file__).parents[1] / "data" / "debezium"
SCENARIOS = ["toast_arrays", "toast_arrays_modes"]
TOPIC = "golden.public.arrs"
PLACEHOLDER = "__debezium_unavailable_value"
_RAW = PLACEHOLDER.encode()
_B64 = base64.b64encode(_RAW).decode()
#: The placeholder's bytes as numbers (Debezium's form for int, date and bigint arrays).
_BYTES = list(_RAW)
_BITS = [bool(b >> (7 - i) & 1) for b in _RAW for i in range(8)]

#: Columns whose unchanged TOAST value Debezium writes as null (its placeholder fails the
#: field's schema: "Failed to properly convert data value"), and the placeholder duality
#: writes instead, per scenario.
DELIBERATE: dict[str, dict[str, Any]] = {
    "c_smallint": {"toast_arrays": _BYTES, "toast_arrays_modes": _BYTES},
    "c_timestamp": {"toast_arrays": _BYTES, "toast_arrays_modes": _BYTES},
    "c_time": {"toast_arrays": _BYTES, "toast_arrays_modes": _BYTES},
    "c_float8": {"toast_arrays": _BYTES, "toast_arrays_modes": _BYTES},
    "c_real": {"toast_arrays": _BYTES, "toast_arrays_modes": _BYTES},
    "c_bool": {"toast_arrays": _BITS, "toast_arrays_modes": _BITS},
    "c_numeric": {
        "toast_arrays": [{"scale": 0, "value": _B64}],
        "toast_arrays_modes": [PLACEHOLDER],
    },
    "c_numeric_10_2": {"toast_arrays": [_B64], "toast_arrays_modes": [PLACEHOLDER]},
    "c_timestamptz": {"toast_arrays": [PLACEHOLDER], "toast_arrays_modes": [PLACEHOLDER]},
    "c_timetz": {"toast_arrays": [PLACEHOLDER], "toast_arrays_modes": [PLACEHOLDER]},
    "c_enum": {"toast_arrays": [PLACEHOLDER], "toast_arrays_modes": [PLACEHOLDER]},
    "c_inet": {"toast_arrays": [PLACEHOLDER], "toast_arrays_modes": [PLACEHOLDER]},
    "c_bytea": {"toast_arrays_modes": [PLACEHOLDER]},  # binary.handling.mode=hex
}
_FLOATS = {"c_float8", "c_real"}


def _config(db: Database, scenario: dict[str, Any]) -> Any:
    props = {"topic.prefix": "golden", **scenario.get("connector", {})}
    return parse_config(props, source=db.url)


def _capture(db: Database, log_url: str, scenario: dict[str, Any], steps: int) -> None:
    """The scenario's setup (captured as the snapshot), then its first ``steps`` steps,
    each captured on its own."""
    config = _config(db, scenario)
    for statement in scenario["setup_sql"]:
        db.server.execute(statement, dbname=db.name)
    with SqliteLog(log_url) as log:
        Capture(config, log, once=True).run()
        for step in scenario["steps"][:steps]:
            db.server.execute(step, dbname=db.name)
            Capture(config, log, once=True).run()


def _set_aside(name: str, golden: list[dict[str, Any]], ours: list[dict[str, Any]]) -> int:
    """Check duality's placeholder where Debezium wrote null, then null it for the
    comparison; how many were set aside."""
    done = 0
    for theirs, mine in zip(golden, ours, strict=True):
        if (theirs["value"] or {}).get("op") != "u" or mine["value"]["op"] != "u":
            continue
        for column, forms in DELIBERATE.items():
            if name in forms and theirs["value"]["after"][column] is None:
                got = mine["value"]["after"][column]
                assert got == forms[name], (column, got)
                if column in _FLOATS:
                    assert all(type(x) is float for x in got), column
                mine["value"]["after"][column] = None
                done += 1
    return done


@pytest.mark.parametrize("name", SCENARIOS)
def test_capture_writes_debeziums_placeholder_forms(
    db: Database, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    scenario, events = golden(name)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    with caplog.at_level(logging.WARNING):
        _capture(db, log_url, scenario, len(scenario["steps"]))
    assert not [r for r in caplog.records if PLACEHOLDER in r.getMessage()]
    expected = by_topic(events)[TOPIC]
    got = by_topic(ours(log_url))[TOPIC]
    deliberate = sum(name in forms for forms in DELIBERATE.values())
    assert _set_aside(name, expected, got) == 2 * deliberate  # two rows updated
    assert got == expected


@pytest.mark.parametrize("name", SCENARIOS)
def test_table_and_replicate_keep_the_unchanged_arrays(
    db: Database, tmp_path: Path, name: str
) -> None:
    """Fold after the insert, then after the update that leaves every array unchanged:
    only ``counter`` moves, in the table store, a SQLite target, and a store that folds
    the whole log at once."""
    scenario, _ = golden(name)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    _capture(db, log_url, scenario, 1)

    def update() -> None:
        db.server.execute(scenario["steps"][1], dbname=db.name)
        with SqliteLog(log_url) as log:
            Capture(_config(db, scenario), log, once=True).run()

    before = assert_only_counter_moves(log_url, TOPIC, "arrs", tmp_path, update)
    assert len(before[1]["c_int"]) == 700 and before[1]["c_hstore"]
    assert PLACEHOLDER not in str(store_rows(log_url, TOPIC, tmp_path / "tables.db"))


def _with_schema(name: str) -> list[dict[str, Any]]:
    with gzip.open(GOLDEN / name / "events_with_schema.jsonl.gz") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _produce(log_url: str, events: list[dict[str, Any]]) -> None:
    with SqliteLog(log_url) as log:
        log.create_topic(TOPIC, 1, {"cleanup.policy": "delete"})
        log.append(
            NewRecord(TOPIC, json.dumps(e["key"]).encode(), json.dumps(e["value"]).encode())
            for e in events
        )
        log.flush()


@pytest.mark.parametrize("name", SCENARIOS)
def test_debeziums_own_placeholders_keep_the_stored_value(tmp_path: Path, name: str) -> None:
    """Debezium's records (snapshot, insert, then the two updates that leave the arrays
    unchanged) folded: where Debezium wrote a placeholder form, the value stays. (Where it
    wrote null, the value is lost at the source.)"""
    events = [e for e in _with_schema(name) if e["topic"] == TOPIC][:4]
    assert [e["value"]["payload"]["op"] for e in events] == ["r", "c", "u", "u"]
    _produce(f"sqlite://{tmp_path / 'before.db'}", events[:2])
    _produce(f"sqlite://{tmp_path / 'after.db'}", events)
    before = store_rows(f"sqlite://{tmp_path / 'before.db'}", TOPIC, tmp_path / "t1.db")
    after = store_rows(f"sqlite://{tmp_path / 'after.db'}", TOPIC, tmp_path / "t2.db")
    kept = {k for k, x in events[2]["value"]["payload"]["after"].items() if x is not None}
    assert {"c_int", "c_bigint", "c_date", "c_uuid", "c_text", "c_hstore"} <= kept
    for key in (1, 2):
        assert {k: after[key][k] for k in kept} == {
            k: before[key][k] for k in kept if k != "counter"
        } | {"counter": 1}
