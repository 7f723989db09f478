"""The table equals the fold of its events, whatever the stream throws at it.

Random source histories — inserts, updates (some leaving a TOASTed column unchanged,
so the event carries Debezium's placeholder), primary-key changes (both as Debezium
writes them, delete + tombstone + create, and as a single update whose key moves),
deletes with tombstones, truncates, a schema change (a column added, another dropped)
and keyless records — become Debezium envelopes in a real log. Windows of events are
then delivered again later (duplicated and reordered redeliveries), and the topic is
folded into a real table store in random batch sizes over several runs, collapsed or
in order. The table must equal a plain model of the source table.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from duality.events.model import NewRecord
from duality.events.schema import TableMeta
from duality.log.sqlite import SqliteLog
from duality.runtime.materialize import Materializer
from duality.sources.postgres.record_schema import table_record_schema
from duality.tables.api import open_table
from duality.tables.sqlite import TableStore

TOPIC = "p.public.things"
P = "__debezium_unavailable_value"
BASE = [
    ("id", {"type": "int32", "optional": False}),
    ("v", {"type": "string", "optional": True}),
    ("b", {"type": "bytes", "optional": True}),
    ("arr", {"type": "array", "items": {"type": "string", "optional": True}, "optional": True}),
]
V1 = [*BASE, ("n", {"type": "int64", "optional": True})]
V2 = [*BASE, ("w", {"type": "string", "optional": True})]
PLACEHOLDER = {"v": P, "b": base64.b64encode(P.encode()).decode(), "arr": [P]}

actions = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "update", "toast", "rekey", "move", "delete",
                         "truncate", "schema", "keyless", "insert", "update"]),
        st.integers(0, 5),
        st.integers(0, 5),
        st.text(alphabet="ab'\";\\é\x00😀", max_size=4),
        st.sampled_from(["v", "b", "arr"]),
    ),
    min_size=1,
    max_size=40,
)


class Source:
    """The source table and the events Debezium writes for each change."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.columns = V1
        self.events: list[list[tuple[Any, ...]]] = []  # groups written together
        self.lsn = 100
        self.version = 1
        self.pending_schema = False

    def _image(self, key: int, text: str, n: int) -> dict[str, Any]:
        row = {"id": key, "v": text, "b": base64.b64encode(text.encode()).decode(),
               "arr": [text, None]}
        row.update({"n": n} if self.version == 1 else {"w": text[::-1]})
        return row

    def _envelope(self, op: str, before: Any, after: Any) -> dict[str, Any]:
        self.lsn += 8
        return {"before": before, "after": after, "op": op, "ts_ms": 0,
                "source": {"lsn": self.lsn, "connector": "postgresql"}}

    def _adopt_schema(self) -> None:
        """The first event after ALTER TABLE carries the new schema; from then on the
        table (in the source, and so in the model) has the new columns."""
        if self.pending_schema:
            self.pending_schema = False
            self.version = 2
            self.columns = V2
            for row in self.rows.values():
                row.pop("n", None)
                row["w"] = None

    def apply(self, action: str, key: int, other: int, text: str, column: str) -> None:
        if action == "schema":
            self.pending_schema = self.version == 1
            return
        if action == "truncate":
            self.rows.clear()
            self.events.append([(None, self._envelope("t", None, None), self.version)])
            return
        if action == "keyless":
            self.events.append([(None, self._envelope("c", None, self._image(99, text, 0)),
                                 self.version)])
            return
        if self._emits(action, key, other):
            self._adopt_schema()
            getattr(self, "_" + action)(key, other, text, column)

    def _emits(self, action: str, key: int, other: int) -> bool:
        if action == "insert":
            return True
        if action in ("rekey", "move"):
            return key in self.rows and other not in self.rows
        return key in self.rows

    def _insert(self, key: int, other: int, text: str, column: str) -> None:
        op = "u" if key in self.rows else "c"
        self.rows[key] = self._image(key, text, other)
        self.events.append([({"id": key}, self._envelope(op, None, self.rows[key]),
                             self.version)])

    def _update(self, key: int, other: int, text: str, column: str) -> None:
        self.rows[key] = self._image(key, text, other)
        self.events.append([({"id": key}, self._envelope("u", None, self.rows[key]),
                             self.version)])

    def _toast(self, key: int, other: int, text: str, column: str) -> None:
        """An update that leaves ``column`` (stored out of line) unchanged."""
        if key not in self.rows:
            return
        old = self.rows[key]
        new = {**self._image(key, text, other), column: old[column]}
        self.rows[key] = new
        after = {**new, column: PLACEHOLDER[column]}
        self.events.append([({"id": key}, self._envelope("u", None, after), self.version)])

    def _rekey(self, key: int, other: int, text: str, column: str) -> None:
        """UPDATE … SET id: Debezium's delete, tombstone and create; the create names the
        old key in a header and, when ``text`` is short, carries the placeholder for the
        TOASTed ``column`` (its value is the old row's)."""
        if key not in self.rows or other in self.rows:
            return
        row = {**self.rows.pop(key), "id": other}
        self.rows[other] = row
        delete = self._envelope("d", {"id": key}, None)
        after = {**row, column: PLACEHOLDER[column]} if len(text) < 2 else row
        create = {**delete, "op": "c", "before": None, "after": after}
        old_key = (("__debezium.oldkey", orjson.dumps({"id": key})),)
        self.events.append([({"id": key}, delete, self.version), ({"id": key}, None, 0)])
        self.events.append([({"id": other}, create, self.version, old_key)])

    def _move(self, key: int, other: int, text: str, column: str) -> None:
        """A key change written as one update under the old key (with a placeholder for
        the unchanged TOASTed ``column`` when ``text`` is short)."""
        if key not in self.rows or other in self.rows:
            return
        row = {**self.rows.pop(key), "id": other}
        self.rows[other] = row
        after = {**row, column: PLACEHOLDER[column]} if len(text) < 2 else row
        self.events.append([({"id": key}, self._envelope("u", None, after), self.version)])

    def _delete(self, key: int, other: int, text: str, column: str) -> None:
        if key not in self.rows:
            return
        del self.rows[key]
        event = self._envelope("d", {"id": key}, None)
        self.events.append([({"id": key}, event, self.version), ({"id": key}, None, 0)])


def _schemas(log: SqliteLog) -> dict[int, int]:
    meta = TableMeta(table="public.things", primary_key=("id",), key_columns=("id",),
                     replica_identity="default", unavailable_placeholder=P)
    return {
        version: log.register_schema(table_record_schema(TOPIC, columns, ["id"], meta))
        for version, columns in ((1, V1), (2, V2))
    }


def _write(log: SqliteLog, groups: list[list[tuple[Any, ...]]], partitions: int) -> int:
    """Append the event groups; returns how many keyless records were written."""
    ids = _schemas(log)
    log.create_topic(TOPIC, partitions, {"cleanup.policy": "delete"})
    keyless = 0
    for group in groups:
        records = []
        for key, value, version, *headers in group:
            if key is None and value is not None and value["op"] != "t":
                keyless += 1
            records.append(NewRecord(
                TOPIC, None if key is None else orjson.dumps(key),
                None if value is None else orjson.dumps(value),
                headers[0] if headers else (),
                schema_id=ids[version] if version else None,
                partition=0 if key is None and partitions > 1 else None,
            ))
        log.append(records)
    log.flush()
    return keyless


def _deliveries(data: st.DataObject, groups: list[Any]) -> list[Any]:
    """The groups as delivered: some windows of groups come again, later."""
    delivered = list(groups)
    for _ in range(data.draw(st.integers(0, 3), label="redeliveries")):
        if not groups:
            break
        start = data.draw(st.integers(0, len(groups) - 1))
        end = data.draw(st.integers(start + 1, min(len(groups), start + 6)))
        at = data.draw(st.integers(min(end, len(delivered)), len(delivered)))
        delivered[at:at] = groups[start:end]
    return delivered


@settings(max_examples=settings.default.max_examples * 4)
@given(program=actions, data=st.data())
def test_table_equals_the_source(tmp_path_factory: Any, program: Any, data: Any) -> None:
    tmp: Path = tmp_path_factory.mktemp("fold")
    source = Source()
    for step in program:
        source.apply(*step)
    partitions = data.draw(st.sampled_from([1, 1, 2]), label="partitions")
    if partitions > 1:  # placeholders need their row's earlier events applied first:
        # no placeholders (short texts make them) when partitions are read in any order
        program = [(*s[:3], s[3] + "xx", s[4]) for s in program if s[0] != "toast"]
        source = Source()
        for step in program:
            source.apply(*step)
    groups = _deliveries(data, source.events)
    log_url = f"sqlite://{tmp / 'log.db'}"
    store_url = f"sqlite://{tmp / 'tables.db'}"
    with SqliteLog(log_url) as log:
        keyless = _write(log, groups, partitions)
        runs = data.draw(st.integers(1, 3), label="runs")
        for _ in range(runs):
            batch = data.draw(st.integers(1, 12), label="batch")
            ordered = data.draw(st.booleans(), label="ordered")
            with TableStore(store_url) as store:
                listener = (lambda info, changes: None) if ordered else None
                Materializer(log, store, [TOPIC], batch_records=batch,
                             listener=listener).catch_up()
    with open_table(TOPIC, log=log_url, store=store_url) as table:
        got = {row["id"]: row for row in table.json_rows()}
        if table.columns:
            assert table.columns == [name for name, _ in source.columns]
        assert table.info.null_keys == keyless
    assert got == source.rows
