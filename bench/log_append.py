"""Append throughput of the embedded log against raw SQLite, in the same run.

    python bench/log_append.py [--records 1000000] [--batch 5000] [--dir DIR]

Both sides write the same 1M realistic change events (Debezium envelopes of ~400
bytes with compact JSON keys) in batches, with fsync on (WAL, synchronous=FULL), one
commit per batch:

* baseline: ``executemany`` of (key, value) rows into a bare SQLite table;
* duality: ``SqliteLog.append`` + ``flush`` into a topic (offsets, partitions,
  timestamps, schema ids, durable commit).

Prints records/s of each and the ratio (the target is >= 0.7).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson

from duality.events.model import NewRecord
from duality.events.schema import ConnectSchema, RecordSchema
from duality.log.sqlite import SqliteLog


def make_events(count: int) -> list[tuple[bytes, bytes]]:
    events = []
    for i in range(count):
        key = orjson.dumps({"id": i})
        after = {
            "id": i,
            "name": f"customer {i}",
            "email": f"c{i}@example.com",
            "balance": "AJiWgA==",
            "updated_at": 1_700_000_000_000_000 + i,
        }
        value = orjson.dumps(
            {
                "before": None,
                "after": after,
                "source": {
                    "version": "0.1.0",
                    "connector": "postgresql",
                    "name": "bench",
                    "ts_ms": 1_700_000_000_000,
                    "snapshot": "false",
                    "db": "bench",
                    "sequence": None,
                    "schema": "public",
                    "table": "customers",
                    "txId": 1000 + i // 100,
                    "lsn": 24_000_000 + i * 120,
                    "xmin": None,
                },
                "op": "c",
                "ts_ms": 1_700_000_000_100,
                "transaction": None,
            }
        )
        events.append((key, value))
    return events


def run_raw(
    path: Path, events: list[tuple[bytes, bytes]], batch: int, page_size: int = 4096
) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (k BLOB, v BLOB)")
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t VALUES (?, ?)", events[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def run_duality(path: Path, events: list[tuple[bytes, bytes]], batch: int) -> float:
    with SqliteLog(f"sqlite://{path}") as log:
        log.create_topic("bench.public.customers", 1, {"cleanup.policy": "compact"})
        schema_id = log.register_schema(RecordSchema(None, ConnectSchema("struct")))
        records = [
            NewRecord("bench.public.customers", k, v, schema_id=schema_id) for k, v in events
        ]
        start = time.perf_counter()
        for i in range(0, len(records), batch):
            log.append(records[i : i + batch])
            log.flush(positions={"bench": {"lsn": i}})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    events = make_events(args.records)
    size = sum(len(v) for _, v in events) / len(events)
    print(f"{args.records} events, mean value {size:.0f} bytes, batches of {args.batch}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        raw = run_raw(Path(tmp) / "raw.db", events, args.batch)
        ours = run_duality(Path(tmp) / "log.db", events, args.batch)
        raw16 = run_raw(Path(tmp) / "raw16.db", events, args.batch, page_size=16384)
    raw_rate, our_rate, raw16_rate = (args.records / t for t in (raw, ours, raw16))
    print(f"raw SQLite executemany (default 4 KiB pages): {raw_rate:>10,.0f} records/s")
    print(f"raw SQLite executemany (16 KiB pages)       : {raw16_rate:>10,.0f} records/s")
    print(f"duality embedded log (16 KiB pages)         : {our_rate:>10,.0f} records/s")
    print(f"ratio duality/raw default : {our_rate / raw_rate:.2f}  (target >= 0.70)")
    print(f"ratio duality/raw 16 KiB  : {our_rate / raw16_rate:.2f}")


if __name__ == "__main__":
    main()
