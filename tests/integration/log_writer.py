"""A writer process for the log's multi-process and crash tests (run as a script).

    python log_writer.py URL TOPIC BATCHES BATCH_SIZE [--position NAME]

Appends BATCHES batches of BATCH_SIZE records to TOPIC; record i of batch b has key
{"b": b, "i": i} and a ~400-byte value. Each flush stores the position
{"batches": b + 1} under NAME in the same transaction, then prints "flushed b" on
stdout. The parent kills it whenever it likes.
"""

from __future__ import annotations

import sys

import orjson

from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog

FILLER = "x" * 380


def main(argv: list[str]) -> None:
    url, topic, batches, size = argv[0], argv[1], int(argv[2]), int(argv[3])
    position = argv[5] if len(argv) > 5 and argv[4] == "--position" else None
    with SqliteLog(url) as log:
        if log.describe(topic) is None:
            log.create_topic(topic, 1)
        start = (log.source_position(position) or {}).get("batches", 0) if position else 0
        for batch in range(start, start + batches):
            log.append(
                NewRecord(topic, orjson.dumps({"b": batch, "i": i}),
                          orjson.dumps({"b": batch, "i": i, "pad": FILLER}))
                for i in range(size)
            )
            log.flush(positions={position: {"batches": batch + 1}} if position else None)
            sys.stdout.write(f"flushed {batch}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
