"""As-of and undo over random change streams (see tests/timetravel_streams.py).

For every offset k, the table as of k — folded forward from the start and walked back
from the current table — equals the source table after record k. For a random window,
the undo SQL applied in PostgreSQL to the table as it was at the window's end gives the
table at its start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duality.log.sqlite import SqliteLog
from duality.tables.asof import as_of
from duality.tables.points import OffsetPoint, TimePoint, show_time
from duality.tables.undo import plan_undo
from tests.helpers import Database
from tests.timetravel_streams import DDL, TOPIC, Stream, actions, build, write

pytestmark = pytest.mark.postgres


def _table(log: SqliteLog, k: int, store: str, method: str) -> dict[int, Any]:
    with as_of(TOPIC, OffsetPoint({None: k}, str(k)), log=log, store=store,
               method=method) as result:
        assert result.method == method
        return {row["id"]: row for row in result.table.json_rows()}


@settings(max_examples=max(settings.default.max_examples // 2, 10))
@given(program=actions)
def test_as_of_every_offset_by_both_methods(tmp_path_factory: Any, program: Any) -> None:
    stream = build(program)
    if not stream.records:
        return
    tmp: Path = tmp_path_factory.mktemp("asof")
    store = f"sqlite://{tmp / 'tables.db'}"
    states = stream.states()
    with SqliteLog(f"sqlite://{tmp / 'log.db'}") as log:
        write(log, stream)
        for k in range(len(stream.records)):
            assert _table(log, k, store, "forward") == states[k], k
            assert _table(log, k, store, "backward") == states[k], k
        with as_of(TOPIC, str(len(stream.records) // 2), log=log, store=store) as chosen:
            assert chosen.method in ("forward", "backward")


def test_auto_reads_less_of_the_two(tmp_path: Path) -> None:
    """Near the start the fold forward reads less; near the end (the store caught up),
    walking back does; the one chosen never reads more than the other."""
    program = [[("update", k % 2, 1, {"v": str(k), "n": None, "b": None, "ts": None,
                                      "arr": None, "j": None})] for k in range(40)]
    stream = build(program)
    store = f"sqlite://{tmp_path / 'tables.db'}"
    last = len(stream.records) - 1
    with SqliteLog(f"sqlite://{tmp_path / 'log.db'}") as log:
        write(log, stream)
        for k, expected in ((2, "forward"), (last - 2, "backward")):
            reads = {}
            for method in ("forward", "backward"):
                with as_of(TOPIC, str(k), log=log, store=store, method=method) as forced:
                    reads[method] = forced.read
            with as_of(TOPIC, str(k), log=log, store=store) as chosen:
                assert chosen.method == expected, (k, reads)
                assert {r["id"]: r for r in chosen.table.json_rows()} == stream.states()[k]
            assert reads[expected] == min(reads.values()), (k, reads)


@settings(max_examples=max(settings.default.max_examples // 3, 10))
@given(program=actions)
def test_time_points_on_several_partitions(tmp_path_factory: Any, program: Any) -> None:
    """A time cuts every partition after the transactions committed by then."""
    stream = build(program)
    tmp: Path = tmp_path_factory.mktemp("partitions")
    store = f"sqlite://{tmp / 'tables.db'}"
    states = stream.states()
    ends = [k for k in range(len(stream.times))
            if k + 1 == len(stream.times) or stream.times[k + 1] != stream.times[k]]
    with SqliteLog(f"sqlite://{tmp / 'log.db'}") as log:
        write(log, stream, partitions=3)
        for k in ends:
            point = TimePoint(stream.times[k], show_time(stream.times[k]))
            for method in ("forward", "backward"):
                with as_of(TOPIC, point, log=log, store=store, method=method) as result:
                    assert {r["id"]: r for r in result.table.json_rows()} == states[k], k
        since = ends[len(ends) // 2]
        plan = plan_undo(TOPIC, TimePoint(stream.times[since], "since"), log=log)
        assert _revert(set(stream.rows[-1]), plan.statements) == set(stream.rows[since])


def _revert(keys: set[int], statements: list[Any]) -> set[int]:
    """The keys after the statements, each of which must find the rows it expects (so
    the order across partitions is checked)."""
    for statement in statements:
        sql = statement.sql
        ids = [int(x) for x in re.findall(r"'(-?\d+)'::integer", sql)]
        if sql.startswith("DELETE"):
            keys.remove(ids[0])
        elif sql.startswith("INSERT"):
            assert ids[0] not in keys
            keys.add(ids[0])
        elif '"id" =' in sql.split(" WHERE ")[0]:  # a primary-key change moved back
            keys.remove(ids[-1])
            assert ids[0] not in keys
            keys.add(ids[0])
        else:
            assert ids[-1] in keys
    return keys


@pytest.fixture(scope="module")
def things(pg: Any) -> Iterator[Database]:
    name = "timetravel_props"
    pg.execute(f'DROP DATABASE IF EXISTS "{name}"')
    pg.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    database.execute(DDL)
    yield database
    database.cleanup()


def _load(conn: psycopg.Connection[Any], rows: dict[int, dict[str, Any]]) -> None:
    conn.execute("TRUNCATE things")
    for row in rows.values():
        conn.execute(
            "INSERT INTO things (id, v, n, b, ts, arr, j) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s::jsonb)",
            [row["id"], row["v"], row["n"], row["b"], row["ts"], row["arr"], row["j"]],
        )


def _read(conn: psycopg.Connection[Any]) -> dict[int, dict[str, Any]]:
    out = {}
    for id_, v, n, b, ts, arr, j in conn.execute(
        "SELECT id, v, n, b, ts, arr, j::text FROM things"
    ):
        out[id_] = {"id": id_, "v": v, "n": n, "b": None if b is None else bytes(b), "ts": ts,
                    "arr": arr, "j": None if j is None else json.loads(j)}
    return out


def _expected(rows: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {k: {**r, "j": None if r["j"] is None else json.loads(r["j"])}
            for k, r in rows.items()}


@settings(max_examples=max(settings.default.max_examples // 2, 10),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(program=actions, data=st.data())
def test_undo_of_any_window_gives_its_start(
    things: Database, tmp_path_factory: Any, program: Any, data: Any
) -> None:
    stream: Stream = build(program)
    if not stream.records:
        return
    last = len(stream.records) - 1
    since = data.draw(st.integers(0, last), label="since")
    until = data.draw(st.one_of(st.none(), st.integers(since, last)), label="until")
    end = last if until is None else until
    tmp: Path = tmp_path_factory.mktemp("undo")
    with SqliteLog(f"sqlite://{tmp / 'log.db'}") as log:
        write(log, stream)
        plan = plan_undo(TOPIC, str(since), log=log,
                         until=None if until is None else str(until), force=True)
    script = "\n".join(plan.sql())
    with things.connect() as conn:
        _load(conn, stream.rows[end])
        conn.execute(script.encode())
        assert _read(conn) == _expected(stream.rows[since])
