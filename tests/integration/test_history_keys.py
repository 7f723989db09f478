"""``duality history``: which records are the key's, and what the history knows of each
field. Records are written to an embedded log as Debezium writes them under REPLICA
IDENTITY DEFAULT: a primary-key change is a delete, a tombstone and a create, and an
unchanged TOAST value is the placeholder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from duality.cli.timetravel_commands import entry_lines
from duality.events.model import NewRecord
from duality.events.schema import TableMeta
from duality.log.sqlite import SqliteLog
from duality.sources.postgres.record_schema import table_record_schema
from duality.tables.history import Entry, key_history
from tests.helpers import duality

TOPIC = "h.public.a"
UNAVAILABLE = "__debezium_unavailable_value"
BIG = "x" * 50
COLUMNS = [("id", {"type": "int32", "optional": False}),
           ("n", {"type": "int32", "optional": True}),
           ("big", {"type": "string", "optional": True})]
NEW_KEY = ("__debezium.newkey", b'{"id":2}')
OLD_KEY = ("__debezium.oldkey", b'{"id":1}')


def _envelope(op: str, before: Any, after: Any, lsn: int) -> bytes:
    source = {"ts_us": 1_704_067_200_000_000 + lsn, "lsn": lsn, "txId": lsn,
              "schema": "public", "table": "a"}
    return orjson.dumps({"before": before, "after": after, "op": op, "source": source})


def _write(log: SqliteLog, records: list[tuple[int, bytes | None, tuple[Any, ...]]]) -> None:
    meta = TableMeta(table="public.a", source_types={"id": "integer", "n": "integer",
                                                     "big": "text"},
                     primary_key=("id",), key_columns=("id",), replica_identity="default",
                     unavailable_placeholder=UNAVAILABLE)
    schema_id = log.register_schema(table_record_schema(TOPIC, COLUMNS, ["id"], meta))
    log.create_topic(TOPIC)
    log.append([NewRecord(TOPIC, orjson.dumps({"id": key}), value, headers,
                          schema_id=None if value is None else schema_id)
                for key, value, headers in records])
    log.flush()


def _moved(log: SqliteLog, *, snapshot: bool, then: list[tuple[int, bytes | None]]
           ) -> list[Entry]:
    """``UPDATE a SET id = 2 WHERE id = 1`` of the row (1, 0, BIG), whose ``big`` is
    TOASTed, then ``then`` under key 2; the history of key 2."""
    key_only = {"id": 1, "n": None, "big": None}
    records: list[tuple[int, bytes | None, tuple[Any, ...]]] = []
    if snapshot:
        records.append((1, _envelope("r", None, {"id": 1, "n": 0, "big": BIG}, 100), ()))
    records += [
        (1, _envelope("d", key_only, None, 200), (NEW_KEY,)),
        (1, None, (NEW_KEY,)),
        (2, _envelope("c", None, {"id": 2, "n": 0, "big": UNAVAILABLE}, 200), (OLD_KEY,)),
        *((key, value, ()) for key, value in then),
    ]
    _write(log, records)
    return key_history(TOPIC, 2, log=log).entries


def _lines(entries: list[Entry]) -> list[str]:
    return [line for entry in entries for line in entry_lines(entry, 1)[1:]]


def test_a_moved_row_keeps_its_toast_value_and_every_other_old_value(log: SqliteLog) -> None:
    """The create under the new key holds the placeholder for ``big``: its value is the
    one the row had under the old key, and later changes know every old value (they
    showed each field as ``? → new`` when one field was unknown)."""
    entries = _moved(log, snapshot=True, then=[
        (2, _envelope("u", None, {"id": 2, "n": 2, "big": UNAVAILABLE}, 300)),
        (2, _envelope("u", None, {"id": 2, "n": 3, "big": "y"}, 400)),
    ])
    assert [(e.offset, e.op) for e in entries] == [(3, "c"), (4, "u"), (5, "u")]
    assert entries[0].changed == {"id": (None, 2), "n": (None, 0), "big": (None, BIG)}
    assert entries[1].changed == {"n": (0, 2)}
    assert entries[2].changed == {"n": (2, 3), "big": (BIG, "y")}
    assert [e.unknown for e in entries] == [(), (), ()]
    assert "    n: 0 → 2" in _lines(entries)


def test_only_the_unknown_toast_value_is_unknown(log: SqliteLog) -> None:
    """Without the row's history under the old key (no snapshot), only ``big`` is
    unknown: the insert shows it as ?, the next update shows n's old value."""
    entries = _moved(log, snapshot=False, then=[
        (2, _envelope("u", None, {"id": 2, "n": 2, "big": UNAVAILABLE}, 300)),
        (2, _envelope("u", None, {"id": 2, "n": 3, "big": "y"}, 400)),
        (2, _envelope("u", None, {"id": 2, "n": 4, "big": UNAVAILABLE}, 500)),
    ])
    assert entries[0].changed == {"id": (None, 2), "n": (None, 0)}
    assert entries[0].unknown == ("big",)
    assert entries[1].changed == {"n": (0, 2)} and entries[1].unknown == ()
    assert entries[2].changed == {"n": (2, 3), "big": (None, "y")}
    assert entries[2].unknown == ("big",)
    assert entries[3].changed == {"n": (3, 4)} and entries[3].unknown == ()
    lines = _lines(entries)
    assert lines[:4] == ["    id = 2", "    n = 0", "    big = ?", "    moved from key {\"id\":1}"]
    assert "    n: 0 → 2" in lines and "    big: ? → y" in lines


def test_a_delete_names_the_unknown_value_as_unknown(log: SqliteLog) -> None:
    entries = _moved(log, snapshot=False, then=[
        (2, _envelope("d", {"id": 2, "n": None, "big": None}, None, 300)),
    ])
    assert entries[1].changed == {"id": (2, None), "n": (0, None), "big": (None, None)}
    assert entries[1].unknown == ("big",)
    assert "    big: ? → (gone)" in _lines(entries)


def test_keys_match_as_json_values(log: SqliteLog) -> None:
    """``true`` is not ``1`` (Python's ``True == 1``); numbers match by value."""
    log.create_topic("k")
    log.append([
        NewRecord("k", orjson.dumps(key), _envelope("c", None, {**key, "v": i}, 100 + i))
        for i, key in enumerate([{"id": 1}, {"flag": True}, {"id": 0}, {"flag": False},
                                 {"a": 1, "b": True}, {"n": 2.5}])
    ])
    log.flush()

    def offsets(key: Any) -> list[int]:
        return [e.offset for e in key_history("k", key, log=log).entries]

    assert offsets(True) == [1] and offsets(False) == [3]
    assert offsets(1) == [0] and offsets(0) == [2]
    assert offsets({"flag": 1}) == [] and offsets({"id": True}) == []
    assert offsets({"a": 1, "b": True}) == [4] and offsets({"a": True, "b": 1}) == []
    assert offsets(1.0) == [0] and offsets(2.5) == [5]


def test_a_key_whose_changes_were_all_compacted_away_says_so(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'log.db'}"
    with SqliteLog(url) as log:
        log.create_topic("cp", 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0",
                                   "delete.retention.ms": "0"})
        log.append([
            NewRecord("cp", b'{"id":1}', _envelope("c", None, {"id": 1}, 100)),
            NewRecord("cp", b'{"id":2}', _envelope("c", None, {"id": 2}, 200)),
            NewRecord("cp", b'{"id":2}', _envelope("d", {"id": 2}, None, 300)),
            NewRecord("cp", b'{"id":2}', None),
            NewRecord("cp", b'{"id":3}', _envelope("c", None, {"id": 3}, 400)),
        ])
        log.flush()
        log.compact("cp", now=2**42)
        found = key_history("cp", 2, log=log)
    assert found.entries == [] and found.removed is not None
    assert "offsets 1-3 were removed" in found.removed
    shown = duality("history", "cp", "--log", url, "--key", "2")
    assert shown.stdout == ""
    assert "no change of topic 'cp' has the key 2; offsets 1-3 were removed from the log " \
           "(min.compaction.lag.ms=0" in shown.stderr
    assert "changes of the key may have been among them" in shown.stderr
