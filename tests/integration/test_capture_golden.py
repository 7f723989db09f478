"""Capture compared with real Debezium 3.6, record by record.

Each scenario in ``tests/data/debezium`` was run through Debezium's PostgreSQL
connector (see the README there). Here the same setup and steps run against a
throwaway PostgreSQL with duality capturing (snapshot after the setup, then after every
step); the records must be value-equal to Debezium's once the fields that differ by
nature between two runs are set aside: timestamps, transaction ids, LSNs (and the
``sequence`` built from them), the connector version, the database name. Transaction
ids and LSNs are compared by their order within each topic instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from duality.log.sqlite import SqliteLog
from duality.runtime.capture import Capture
from duality.sources.postgres.config import parse_config
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.golden_support import (
    DELIBERATE_TOPICS,
    GOLDEN,
    by_topic,
    golden,
    ours,
    position_order,
)
from tests.helpers import Database

pytestmark = pytest.mark.postgres

#: Scenarios whose every record capture reproduces. The type matrices with values whose
#: streamed form differs from Debezium's (BC dates, ``name`` columns, geometric types),
#: logical messages, transaction metadata, heartbeats, truncates with
#: ``skipped.operations=none``, column filters and schema changes belong to the capture
#: fidelity work and are compared there.
SCENARIOS = [
    "basic_crud",
    "snapshot_markers",
    "pk_change",
    "replica_identity_default",
    "replica_identity_full",
    "replica_identity_index",
    "toast_default",
    "toast_full",
    "no_primary_key",
    "truncate_default",
    "types_decimal_string",
    "types_decimal_double",
    "types_hstore_map",
    "column_filters",
    "schema_change",
    "naming",
    "key_types",
    "tombstones_off",
    "snapshot_no_data",
    "truncate_enabled",
    "logical_messages",
    "transaction_metadata",
    "replica_identity_nothing",
    "unknown_datatypes",
    "propagate_source_type",
    "types_default",
    "types_interval_string",
    "types_time_connect",
    "types_time_adaptive_time_microseconds",
    "types_binary_base64",
    "types_binary_base64_url_safe",
    "types_binary_hex",
    "generated_columns",
    "partitioned",
    "heartbeat",
]

#: Topics whose record count depends on timing (a heartbeat per interval): compared by
#: shape only.
TIMED_TOPICS = {"__debezium-heartbeat.golden"}

#: Debezium creates a FOR ALL TABLES publication that makes UPDATE/DELETE fail on a
#: table without any identity (``nokey_default``); duality refuses to capture a table
#: through such a publication. It captures the table with FULL identity like Debezium.
_PREPARE = {
    "no_primary_key": (
        ["CREATE PUBLICATION dbz_publication FOR TABLE nokey_full"],
        {"publication.autocreate.mode": "disabled", "table.exclude.list": "public.nokey_default"},
    ),
}


def capture_scenario(
    db: Database,
    log_url: str,
    scenario: dict[str, Any],
    props: dict[str, str],
    extra_sql: Sequence[str] = (),
) -> None:
    """Run a golden scenario through capture into ``log_url``: its setup SQL (then
    ``extra_sql``) and a capture, then each step followed by a capture."""
    for statement in [*scenario["setup_sql"], *extra_sql]:
        db.server.execute(statement, dbname=db.name)
    config = parse_config(props, source=db.url)
    with SqliteLog(log_url) as log:
        Capture(config, log, once=True).run()
        for step in scenario["steps"]:
            db.server.execute(step, dbname=db.name)
            Capture(config, log, once=True).run()


@pytest.mark.parametrize("name", SCENARIOS)
def test_capture_matches_debezium(
    pg: ThrowawayPostgres, tmp_path: Path, name: str, db: Database
) -> None:
    if not (GOLDEN / name / "events.jsonl").exists():
        pytest.skip(
            f"golden files for {name} are missing; generate them with "
            f"tests/data/debezium/generate.py"
        )
    scenario, events = golden(name)
    extra_sql, extra_props = _PREPARE.get(name, ([], {}))
    props = {"topic.prefix": "golden", **scenario.get("connector", {}), **extra_props}
    props.pop("database.dbname", None)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_scenario(db, log_url, scenario, props, extra_sql)
    timed = [r for r in events if r["topic"] in TIMED_TOPICS]
    events = [r for r in events if r["topic"] not in TIMED_TOPICS]
    for record in timed:
        assert record["key"] == {"serverName": "golden"}
        assert set(record["value"]) == {"ts_ms"}
    expected = by_topic(events)
    captured = [r for r in ours(log_url) if r["topic"] not in TIMED_TOPICS]
    got = by_topic(captured, shifted=any(r["topic"] in DELIBERATE_TOPICS for r in events))
    assert sorted(got) == sorted(expected)
    for topic in expected:
        assert got[topic] == expected[topic], topic
    assert position_order(captured) == position_order(events)
