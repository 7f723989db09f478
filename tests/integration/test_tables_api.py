"""The Python API: get, select, iterate changes (also across a change of shape)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from duality.errors import GapError
from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog
from duality.tables import journal, open_table


def _produce(url: str, records: list[tuple[object, object]]) -> None:
    with SqliteLog(url) as log:
        if log.describe("t") is None:
            log.create_topic("t", 1, {"cleanup.policy": "compact"})
        log.append(NewRecord("t", orjson.dumps(k), None if v is None else orjson.dumps(v))
                   for k, v in records)
        log.flush()


def test_get_select_and_changes_across_a_new_column(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'log.db'}"
    _produce(url, [({"id": 1}, {"id": 1, "v": "a"}), ({"id": 2}, {"id": 2, "v": "b"})])
    with open_table("t", log=url) as table:
        assert table.get(id=1) == {"id": 1, "v": "a"}
        assert table.get({"id": 3}) is None
        assert [r["id"] for r in table.select("v = 'b'")] == [2]
        _produce(url, [({"id": 1}, {"id": 1, "v": "a2"}),
                       ({"id": 3}, {"id": 3, "v": "c", "extra": True}),
                       ({"id": 2}, None)])
        changes = list(table.changes())
        assert table.columns == ["id", "v", "extra"]
    assert [(c.op, c.key, c.changed) for c in changes] == [
        ("u", {"id": 1}, ("v",)), ("c", {"id": 3}, ()), ("d", {"id": 2}, ())]
    assert changes[1].after == {"id": 3, "v": "c", "extra": True}
    assert changes[2].before == {"id": 2, "v": "b", "extra": None}


def test_python_values_of_a_typed_table(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'log.db'}"
    schema = {"type": "struct", "fields": [
        {"field": "id", "type": "int32"},
        {"field": "amount", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2"}},
        {"field": "at", "type": "int64", "name": "io.debezium.time.MicroTimestamp"}]}
    _produce(url, [({"id": 1}, {"schema": schema,
                                "payload": {"id": 1, "amount": "J0I=", "at": 1_000_000}})])
    with open_table("t", log=url) as table:
        assert table.get(1) == {"id": 1, "amount": Decimal("100.50"),
                                "at": dt.datetime(1970, 1, 1, 0, 0, 1)}
        assert list(table.json_rows()) == [
            {"id": 1, "amount": "100.50", "at": "1970-01-01T00:00:01.000000"}]


def test_a_follower_not_heard_from_for_a_minute_stops_with_a_gap(tmp_path: Path) -> None:
    """Changes applied while a follower was away (stopped, or its output not read) were
    not journaled for it: it stops with exit code 4 instead of printing nothing more."""
    url = f"sqlite://{tmp_path / 'log.db'}"
    _produce(url, [({"id": 1}, {"id": 1, "v": "a"})])
    with open_table("t", log=url) as table:
        deadline = time.monotonic() + 30
        changes = table.changes(follow=True, stop=lambda: time.monotonic() > deadline)
        _produce(url, [({"id": 2}, {"id": 2, "v": "b"})])
        assert next(changes).key == {"id": 2}
        with sqlite3.connect(tmp_path / "log.tables.db") as store:
            store.execute('UPDATE "duality:followers" SET seen_ms = seen_ms - ?',
                          (journal.STALE_MS + 1000,))
        _produce(url, [({"id": 3}, {"id": 3, "v": "c"})])
        with pytest.raises(GapError, match="not heard from for more than 60 s"):
            next(changes)
