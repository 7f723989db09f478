"""Incremental aggregates equal the same aggregates recomputed from scratch.

Random histories of a typed table (rows moving between groups, values changing,
deletes, truncates) are applied batch by batch; after every batch each aggregate's
stored rows must equal a recomputation from the table, and for integers also SQLite's
own GROUP BY.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duality.errors import ApplyError
from duality.events.model import NewRecord
from duality.events.schema import TableMeta
from duality.log.sqlite import SqliteLog
from duality.runtime.materialize import Materializer
from duality.sources.postgres.record_schema import table_record_schema
from duality.tables import derived
from duality.tables.aggregate_spec import parse_spec
from duality.tables.aggregates import Aggregate
from duality.tables.api import open_table
from duality.tables.sqlite import TableStore

TOPIC = "p.public.sales"
COLUMNS = [
    ("id", {"type": "int32", "optional": False}),
    ("grp", {"type": "string", "optional": True}),
    ("n", {"type": "int64", "optional": True}),
    ("amount", {"type": "bytes", "optional": True,
                "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                "parameters": {"scale": "2"}}),
    ("f", {"type": "double", "optional": True}),
    ("ts", {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp",
            "version": 1}),
]
SPECS = [
    {"name": "by_group", "from": TOPIC, "group_by": ["grp"],
     "select": ["count(*)", "count(n) as n_count", "sum(n)", "avg(n)", "min(n)", "max(n)",
                "sum(amount)", "avg(amount)", "min(amount)", "max(amount)", "sum(f)",
                "avg(f)", "min(ts)", "max(ts) as latest"]},
    {"name": "filtered", "from": TOPIC, "group_by": ["grp", "n"], "where": "n > 2 OR f < 0",
     "select": ["count(*)", "sum(amount) as total", "max(f)"]},
    {"name": "everything", "from": TOPIC, "select": ["count(*)", "sum(n)", "min(grp)"]},
]

values = st.tuples(
    st.sampled_from(["a", "b", "c", None]),
    st.one_of(st.none(), st.integers(-5, 5)),
    st.one_of(st.none(), st.integers(-10**4, 10**4), st.integers(-10**20, 10**20)),
    st.one_of(st.none(), st.sampled_from([0.1, -2.5, 3.0, 1e300, "NaN", "Infinity"])),
    st.one_of(st.none(), st.integers(0, 10**16)),
)
steps = st.lists(
    st.tuples(st.sampled_from(["upsert", "upsert", "upsert", "delete", "truncate"]),
              st.integers(0, 6), values),
    min_size=1,
    max_size=50,
)


def _amount(cents: int | None) -> str | None:
    if cents is None:
        return None
    return base64.b64encode(cents.to_bytes(12, "big", signed=True)).decode()


def _write(log: SqliteLog, program: list[Any]) -> None:
    meta = TableMeta(table="public.sales", primary_key=("id",), key_columns=("id",))
    schema_id = log.register_schema(table_record_schema(TOPIC, COLUMNS, ["id"], meta))
    log.create_topic(TOPIC, 1, {"cleanup.policy": "delete"})
    lsn = 0
    for action, key, (grp, n, cents, f, ts) in program:
        lsn += 10
        source = {"lsn": lsn}
        if action == "truncate":
            value = {"op": "t", "before": None, "after": None, "source": source}
            log.append([NewRecord(TOPIC, None, orjson.dumps(value), schema_id=schema_id)])
            continue
        row = {"id": key, "grp": grp, "n": n, "amount": _amount(cents), "f": f, "ts": ts}
        op = "d" if action == "delete" else "u"
        value = {"op": op, "before": {"id": key} if op == "d" else None,
                 "after": None if op == "d" else row, "source": source}
        log.append([NewRecord(TOPIC, orjson.dumps({"id": key}), orjson.dumps(value),
                              schema_id=schema_id)])
    log.flush()


def _check(store: TableStore) -> None:
    source = store.info(TOPIC)
    assert source is not None
    for spec in SPECS:
        info = store.info(str(spec["name"]))
        assert info is not None
        aggregate = Aggregate(store, info, source)
        assert aggregate.stored() == aggregate.recompute(), spec["name"]
    view = sqlite3.connect(store.path)
    try:
        expected = {
            (grp,): (count, sum_n, min_n, max_n)
            for grp, count, sum_n, min_n, max_n in view.execute(
                f'SELECT grp, count(*), sum(n), min(n), max(n) FROM "{TOPIC}" GROUP BY grp'
            )
        }
        got = view.execute('SELECT grp, count, sum_n, min_n, max_n FROM "by_group"').fetchall()
        assert {(g,): tuple(rest) for g, *rest in got} == expected
    finally:
        view.close()


@settings(max_examples=settings.default.max_examples * 2)
@given(program=steps, batch=st.integers(1, 7))
def test_incremental_aggregates_equal_recomputed(
    tmp_path_factory: Any, program: Any, batch: int
) -> None:
    tmp: Path = tmp_path_factory.mktemp("agg")
    with SqliteLog(f"sqlite://{tmp / 'log.db'}") as log, \
            TableStore(f"sqlite://{tmp / 'tables.db'}") as store:
        first = [("upsert", 0, ("a", 1, 100, 0.5, 0))]
        _write(log, first + program)
        applier = Materializer(log, store, [TOPIC], batch_records=1)
        ends = log.end_offsets(TOPIC)
        applier.apply_batch(TOPIC, ends)  # the table exists: aggregates can be defined
        with store.writing():
            for spec in SPECS:
                derived.define(store, parse_spec(spec))
        _check(store)
        applier.batch_records = batch
        while applier.apply_batch(TOPIC, ends):
            _check(store)


@pytest.mark.parametrize(("select", "where", "refused", "back"), [
    ("sum(n)", None, r"has no column\(s\) \['n'\]", {"grp": "a", "sum_n": 10}),
    ("count(*)", "n > 0", "no such column: n", {"grp": "a", "count": 1}),
])
def test_an_aggregate_a_schema_change_no_longer_fits_stops_alone(
    tmp_path: Path, select: str, where: str | None, refused: str, back: dict[str, Any]
) -> None:
    """Dropping a column an aggregate uses leaves the table applied; reading the
    aggregate says why it is not kept current (exit 5). Adding the column back
    recomputes it from the table."""
    log_url, store_url = f"sqlite://{tmp_path / 'log.db'}", f"sqlite://{tmp_path / 't.db'}"
    meta = TableMeta(table="public.sales", primary_key=("id",), key_columns=("id",))
    with SqliteLog(log_url) as log:
        _write(log, [("upsert", 1, ("a", 2, None, None, None)),
                     ("upsert", 2, ("a", 3, None, None, None))])
    with open_table(TOPIC, log=log_url, store=store_url) as table, \
            table.store.writing():
        derived.define(table.store, parse_spec(
            {"name": "sums", "from": TOPIC, "group_by": ["grp"], "select": [select],
             "where": where}))

    def change(columns: list[Any], row: dict[str, Any]) -> None:
        with SqliteLog(log_url) as log:
            sid = log.register_schema(table_record_schema(TOPIC, columns, ["id"], meta))
            value = {"op": "u", "before": None, "after": row, "source": {"lsn": 999}}
            log.append([NewRecord(TOPIC, orjson.dumps({"id": row["id"]}),
                                  orjson.dumps(value), schema_id=sid)])
            log.flush()

    without_n = [c for c in COLUMNS if c[0] in ("id", "grp")]
    change(without_n, {"id": 3, "grp": "a"})
    with open_table(TOPIC, log=log_url, store=store_url) as table:
        assert sorted(r["id"] for r in table.json_rows()) == [1, 2, 3]
    with pytest.raises(ApplyError, match=f"{refused}.*no longer kept current"):
        open_table("sums", log=log_url, store=store_url)
    change([*without_n, COLUMNS[2]], {"id": 4, "grp": "a", "n": 10})
    with open_table("sums", log=log_url, store=store_url) as sums:
        assert list(sums.json_rows()) == [back]
