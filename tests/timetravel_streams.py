"""Random change streams as Debezium writes them under REPLICA IDENTITY FULL, with the
source table's state after every record: the reference for as-of and undo.

The source is a table ``public.things`` (integer key, text, numeric(10,2), bytea,
timestamp, text[], jsonb). Transactions of one to three inserts, updates, deletes
(with tombstones) and primary-key changes (Debezium's delete, tombstone and create with
the ``__debezium.oldkey``/``newkey`` headers) get increasing commit times, txIds and
LSNs. ``states[k]`` is the table after the record at offset ``k``, in the JSON form
``duality table --json`` prints; ``rows[k]`` the same rows as Python values (for loading
into PostgreSQL).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import strategies as st

from duality.events.model import NewRecord
from duality.events.schema import TableMeta
from duality.log.sqlite import SqliteLog
from duality.sources.postgres.record_schema import table_record_schema
from duality.sources.postgres.types_schema import twos_complement

TOPIC = "p.public.things"
TEXTS = ["", "plain", "it's", 'say "hi"', "a;b", "back\\slash", "Ünïcødé 😀", "tab\tnl\n",
         "'); DELETE FROM things; --", "$$ $x$"]
COLUMNS = [
    ("id", {"type": "int32", "optional": False}),
    ("v", {"type": "string", "optional": True}),
    ("n", {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
           "version": 1, "parameters": {"scale": "2", "connect.decimal.precision": "10"}}),
    ("b", {"type": "bytes", "optional": True}),
    ("ts", {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp",
            "version": 1}),
    ("arr", {"type": "array", "optional": True, "items": {"type": "string", "optional": True}}),
    ("j", {"type": "string", "optional": True, "name": "io.debezium.data.Json", "version": 1}),
]
SOURCE_TYPES = {"id": "integer", "v": "text", "n": "numeric(10,2)", "b": "bytea",
                "ts": "timestamp without time zone", "arr": "text[]", "j": "jsonb"}
DDL = ("CREATE TABLE things (id integer PRIMARY KEY, v text, n numeric(10,2), b bytea, "
       "ts timestamp, arr text[], j jsonb)")
EPOCH = dt.datetime(1970, 1, 1)

values = st.fixed_dictionaries({
    "v": st.one_of(st.none(), st.sampled_from(TEXTS)),
    "n": st.one_of(st.none(), st.integers(-10**9, 10**9).map(lambda u: Decimal(u).scaleb(-2))),
    "b": st.one_of(st.none(), st.binary(max_size=6)),
    "ts": st.one_of(st.none(), st.integers(-2 * 10**15, 4 * 10**15).map(
        lambda us: EPOCH + dt.timedelta(microseconds=us))),
    "arr": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.sampled_from(TEXTS)),
                                         max_size=3)),
    "j": st.one_of(st.none(), st.sampled_from(TEXTS).map(lambda t: json.dumps({"k": t}))),
})
actions = st.lists(
    st.lists(st.tuples(st.sampled_from(["insert", "insert", "update", "update", "update",
                                        "delete", "rekey"]),
                       st.integers(0, 4), st.integers(0, 4), values),
             min_size=1, max_size=3),
    min_size=2, max_size=10,
)


def payload(row: dict[str, Any]) -> dict[str, Any]:
    """A row as Debezium's JSON converter writes it."""
    n, b, ts = row["n"], row["b"], row["ts"]
    return {
        "id": row["id"], "v": row["v"],
        "n": None if n is None else base64.b64encode(
            twos_complement(int(n.scaleb(2)))).decode(),
        "b": None if b is None else base64.b64encode(b).decode(),
        "ts": None if ts is None else (ts - EPOCH) // dt.timedelta(microseconds=1),
        "arr": row["arr"], "j": row["j"],
    }


def rendered(row: dict[str, Any]) -> dict[str, Any]:
    """A row as ``duality table --json`` prints it."""
    n, b, ts = row["n"], row["b"], row["ts"]
    return {
        "id": row["id"], "v": row["v"], "n": None if n is None else f"{n:.2f}",
        "b": None if b is None else base64.b64encode(b).decode(),
        "ts": None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "arr": row["arr"], "j": row["j"],
    }


@dataclass
class Stream:
    """The records of a random history and the table after each of them."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    rows: list[dict[int, dict[str, Any]]] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # commit time (µs) of each record
    lsns: list[int] = field(default_factory=list)

    def states(self) -> list[dict[int, dict[str, Any]]]:
        return [{k: rendered(r) for k, r in state.items()} for state in self.rows]


class _Builder:
    """Applies actions to the source table and writes their events."""

    def __init__(self) -> None:
        self.stream = Stream()
        self.table: dict[int, dict[str, Any]] = {}
        self.lsn, self.ts, self.txid = 0x1_0000_0000, 1_700_000_000_000_000, 700

    def emit(self, key: int, value: Any, headers: tuple[Any, ...] = ()) -> None:
        stream = self.stream
        stream.records.append((key, value, headers))
        stream.rows.append({k: dict(r) for k, r in self.table.items()})
        stream.times.append(self.ts)
        stream.lsns.append(self.lsn)

    def envelope(self, op: str, before: Any, after: Any) -> dict[str, Any]:
        return {"before": before and payload(before), "after": after and payload(after),
                "op": op, "ts_ms": self.ts // 1000,
                "source": {"ts_ms": self.ts // 1000, "ts_us": self.ts, "lsn": self.lsn,
                           "txId": self.txid, "schema": "public", "table": "things",
                           "snapshot": "false"}}

    def apply(self, action: str, key: int, other: int, fresh: dict[str, Any]) -> None:
        table = self.table
        if action == "insert" and key not in table:
            table[key] = {"id": key, **fresh}
            self.emit(key, self.envelope("c", None, table[key]))
        elif action == "update" and key in table:
            old = table[key]
            table[key] = {**old, **{c: v for c, v in fresh.items()
                                    if c in ("v", "n", "j") or other % 2}}
            self.emit(key, self.envelope("u", old, table[key]))
        elif action == "delete" and key in table:
            old = table.pop(key)
            self.emit(key, self.envelope("d", old, None))
            self.emit(key, None)
        elif action == "rekey" and key in table and other not in table:
            old = table.pop(key)
            moved = (("__debezium.newkey", orjson.dumps({"id": other})),)
            self.emit(key, self.envelope("d", old, None), moved)
            self.emit(key, None, moved)
            table[other] = {**old, "id": other}
            self.emit(other, self.envelope("c", None, table[other]),
                      (("__debezium.oldkey", orjson.dumps({"id": key})),))


def build(program: list[list[tuple[Any, ...]]]) -> Stream:
    """The stream of ``program`` (a list of transactions), after a first transaction
    that inserts keys 0 and 1."""
    empty = dict.fromkeys(("v", "n", "b", "ts", "arr", "j"))
    program = [[("insert", 0, 0, {**empty, "v": "first"}), ("insert", 1, 0, empty)], *program]
    builder = _Builder()
    for number, transaction in enumerate(program):
        builder.ts += 1000 + number
        builder.txid += 1
        for action, key, other, fresh in transaction:
            builder.lsn += 0x100
            builder.apply(action, key, other, fresh)
    return builder.stream


def write(log: SqliteLog, stream: Stream, identity: str = "full", partitions: int = 1) -> None:
    """The stream into ``TOPIC`` (keys placed in partitions by murmur2, as capture does)."""
    meta = TableMeta(table="public.things", source_types=SOURCE_TYPES, primary_key=("id",),
                     key_columns=("id",), replica_identity=identity,
                     unavailable_placeholder="__debezium_unavailable_value")
    schema_id = log.register_schema(table_record_schema(TOPIC, COLUMNS, ["id"], meta))
    log.create_topic(TOPIC, partitions, {"cleanup.policy": "compact",
                                "min.compaction.lag.ms": str(7 * 86_400_000)})
    log.append([
        NewRecord(TOPIC, orjson.dumps({"id": key}),
                  None if value is None else orjson.dumps(value), headers,
                  schema_id=schema_id if value is not None else None)
        for key, value, headers in stream.records
    ])
    log.flush()
