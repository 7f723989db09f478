"""Materializing a change topic into a table against raw SQLite upserts, in the same run.

    python bench/tables.py [--events 1000000] [--keys 200000] [--batch 20000] [--dir DIR]

A topic gets ``--events`` Debezium change events of an ``accounts`` table (id int4,
owner text, email text, balance numeric(12,2) as Connect Decimal bytes, status text,
updated_at timestamp(6) as MicroTimestamp, note text), written the way ``duality
capture`` writes them (full ``source`` block, registered schema): one create per key,
then updates of random keys, and deletes (each followed by a tombstone) of keys that
are not touched again. Then, timed, each side writes the same rows into a fresh SQLite
file (WAL, ``synchronous=NORMAL``, one transaction per ``--batch`` events) with batched
``executemany`` of ``INSERT … ON CONFLICT (id) DO UPDATE SET …`` (and ``DELETE``):

* raw: the twenty lines anyone would write first: read a batch of records from the
  log, parse each value, upsert the ``after`` image as it is (balance still base64,
  timestamps still integers), delete the deletes; no types, positions or offsets
  (with the garbage collector paused, as duality pauses it during a batch);
* SQLite alone: the rows already decoded and in memory as tuples, so only SQLite's own
  work is timed (the floor under any materializer);
* duality: ``Materializer.catch_up()``: read the records from the log, parse the
  envelopes, decode the types, fold, write rows, positions and offsets.

Both sides' final tables are compared; prints events/s of each and the ratios (the
target, duality/raw, is >= 0.6).
"""

from __future__ import annotations

import argparse
import gc
import operator
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from duality.events.model import NewRecord
from duality.events.schema import TableMeta
from duality.log.sqlite import SqliteLog
from duality.runtime.materialize import Materializer
from duality.sources.postgres.record_schema import table_record_schema
from duality.tables import values
from duality.tables.sqlite import TableStore

TOPIC = "bench.public.accounts"
COLUMNS = [
    ("id", {"type": "int32", "optional": False}),
    ("owner", {"type": "string", "optional": False}),
    ("email", {"type": "string", "optional": False}),
    (
        "balance",
        {
            "type": "bytes",
            "optional": False,
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {"scale": "2", "connect.decimal.precision": "12"},
        },
    ),
    ("status", {"type": "string", "optional": True}),
    (
        "updated_at",
        {
            "type": "int64",
            "optional": True,
            "name": "io.debezium.time.MicroTimestamp",
            "version": 1,
        },
    ),
    ("note", {"type": "string", "optional": True}),
]
STATUSES = ("active", "frozen", "closed", "pending")


def source(lsn: int, txid: int) -> dict[str, Any]:
    return {
        "version": "duality-0.1.0",
        "connector": "postgresql",
        "name": "bench",
        "ts_ms": 1_700_000_000_000,
        "snapshot": "false",
        "db": "bench",
        "sequence": f'["{lsn - 8}","{lsn}"]',
        "ts_us": 1_700_000_000_000_000,
        "ts_ns": 1_700_000_000_000_000_000,
        "schema": "public",
        "table": "accounts",
        "txId": txid,
        "lsn": lsn,
        "xmin": None,
        "origin": None,
        "origin_lsn": None,
    }


def row(key: int, rng: random.Random, step: int) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """A row image as Debezium writes it, and the same row as the table stores it."""
    cents = rng.randrange(-(10**8), 10**10)
    micros = 1_700_000_000_000_000 + step * 1_000_003
    note = None if step % 3 else f"note {step}"
    image = {
        "id": key,
        "owner": f"owner {key}",
        "email": f"user{key}@example.com",
        "balance": values.to_base64(cents.to_bytes(8, "big", signed=True)),
        "status": STATUSES[step % 4],
        "updated_at": micros,
        "note": note,
    }
    stored = (
        key,
        image["owner"],
        image["email"],
        cents / 100,
        image["status"],
        values.timestamp(micros, 6),
        note,
    )
    return image, stored


def make_events(count: int, keys: int, seed: int = 7) -> tuple[list[NewRecord], list[Any]]:
    """Records for the log, and (op, stored row or key) for the baseline, in order."""
    rng = random.Random(seed)
    records: list[NewRecord] = []
    plain: list[Any] = []
    live: list[int] = []
    position: dict[int, int] = {}
    lsn = 1_000_000
    for step in range(count):
        lsn += 64
        if step < keys:
            key, op = step, "c"
        elif rng.random() < 0.05 and len(live) > 1:
            index = rng.randrange(len(live))
            live[index], live[-1] = live[-1], live[index]
            key, op = live.pop(), "d"
        else:
            key, op = live[rng.randrange(len(live))], "u"
        image, stored = row(key, rng, step)
        before = {"id": key, **{k: None for k in image if k != "id"}} if op == "d" else None
        value = {
            "before": before,
            "after": None if op == "d" else image,
            "source": source(lsn, 1000 + step),
            "transaction": None,
            "op": op,
            "ts_ms": 1_700_000_000_100,
            "ts_us": 1_700_000_000_100_000,
            "ts_ns": 1_700_000_000_100_000_000,
        }
        key_bytes = orjson.dumps({"id": key})
        records.append(NewRecord(TOPIC, key_bytes, orjson.dumps(value)))
        if op == "d":
            records.append(NewRecord(TOPIC, key_bytes, None))
            plain.append(("d", (key,)))
        else:
            if op == "c":
                live.append(key)
            plain.append(("u", stored))
        position[key] = step
    return records, plain


def write_log(path: Path, records: list[NewRecord]) -> SqliteLog:
    log = SqliteLog(f"sqlite://{path}")
    log.create_topic(TOPIC, 1, {"cleanup.policy": "compact"})
    meta = TableMeta(
        table="public.accounts",
        source_types={},
        primary_key=("id",),
        key_columns=("id",),
        replica_identity="default",
    )
    schema_id = log.register_schema(table_record_schema(TOPIC, COLUMNS, ["id"], meta))
    for start in range(0, len(records), 50_000):
        log.append(
            NewRecord(r.topic, r.key, r.value, schema_id=schema_id)
            for r in records[start : start + 50_000]
        )
        log.flush()
    return log


def _target(path: Path) -> tuple[sqlite3.Connection, str]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, email TEXT, "
        "balance, status TEXT, updated_at TIMESTAMP, note TEXT)"
    )
    names = [name for name, _ in COLUMNS]
    sets = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
    upsert = (
        f"INSERT INTO accounts VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT (id) DO UPDATE SET {sets}"
    )
    return conn, upsert


def run_script(log: SqliteLog, path: Path, batch: int) -> float:
    """The naive script: log → parse → upsert the after image as it is."""
    conn, upsert = _target(path)
    pick = operator.itemgetter(*(name for name, _ in COLUMNS))
    offset = 0
    gc.disable()  # as duality does during a batch: parsed JSON makes no cycles
    start = time.perf_counter()
    while records := log.read(TOPIC, 0, offset, batch):
        offset = records[-1].offset + 1
        rows, deletes = [], []
        for record in records:
            if record.value is None:
                continue
            event = orjson.loads(record.value)
            if event["op"] == "d":
                deletes.append((event["before"]["id"],))
            else:
                rows.append(pick(event["after"]))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(upsert, rows)
        conn.executemany("DELETE FROM accounts WHERE id = ?", deletes)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    gc.enable()
    conn.close()
    return elapsed


def run_sqlite(path: Path, plain: list[Any], batch: int) -> float:
    """SQLite alone: the decoded rows, in memory, written in the same batches."""
    conn, upsert = _target(path)
    start = time.perf_counter()
    for first in range(0, len(plain), batch):
        chunk = plain[first : first + batch]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(upsert, [r for op, r in chunk if op == "u"])
        conn.executemany("DELETE FROM accounts WHERE id = ?", [r for op, r in chunk if op == "d"])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def run_duality(log: SqliteLog, path: Path, batch: int) -> float:
    with TableStore(f"sqlite://{path}") as store:
        start = time.perf_counter()
        Materializer(log, store, [TOPIC], batch_records=batch).catch_up()
        return time.perf_counter() - start


def rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    records, plain = make_events(args.events, args.keys)
    deletes = sum(1 for op, _ in plain if op == "d")
    size = sum(len(r.value or b"") for r in records) / len(records)
    print(
        f"{args.events} change events ({deletes} deletes, each with a tombstone) over "
        f"{args.keys} keys, mean value {size:.0f} bytes, batches of {args.batch}"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        log = write_log(Path(tmp) / "log.db", records)
        script = run_script(log, Path(tmp) / "script.db", args.batch)
        alone = run_sqlite(Path(tmp) / "sqlite.db", plain, args.batch)
        ours = run_duality(log, Path(tmp) / "tables.db", args.batch)
        expected = rows(Path(tmp) / "sqlite.db", "accounts")
        equal = expected == rows(Path(tmp) / "tables.db", TOPIC)
        same_keys = [r[0] for r in expected] == [
            r[0] for r in rows(Path(tmp) / "script.db", "accounts")
        ]
        log.close()
    script_rate, alone_rate, our_rate = (args.events / t for t in (script, alone, ours))
    print(f"raw: log → parse → upsert as it is  : {script_rate:>10,.0f} events/s  ({script:.2f} s)")
    print(f"SQLite alone: decoded rows in memory : {alone_rate:>10,.0f} events/s  ({alone:.2f} s)")
    print(f"duality: log → typed table, offsets  : {our_rate:>10,.0f} events/s  ({ours:.2f} s)")
    print(
        f"duality's table equals the decoded rows: {equal}; raw script has the same keys: "
        f"{same_keys}"
    )
    print(f"ratio duality/raw         : {our_rate / script_rate:.2f}  (target >= 0.60)")
    print(f"ratio duality/SQLite alone: {our_rate / alone_rate:.2f}")


if __name__ == "__main__":
    main()
