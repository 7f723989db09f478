"""Record raw pgoutput messages from a throwaway PostgreSQL into ``tests/data/pgoutput/``.

Run by hand, not by the test suite, whenever the recordings should be refreshed (for
example against a new PostgreSQL major version), from the repository root::

    .venv/bin/python tests/data/pgoutput/record.py

It starts a :class:`~duality.sources.postgres.throwaway.ThrowawayPostgres` with
``logical_decoding_work_mem=64kB`` (so a few thousand rows are enough to make PostgreSQL
stream an in-progress transaction), creates the tables and a publication ``FOR ALL TABLES``,
and then, per scenario: creates one ``pgoutput`` slot per output file, starts reading each
slot in a thread through a psycopg2 ``LogicalReplicationConnection`` (``decode=False``: the
bytes exactly as the walsender sent them), runs the scenario's SQL, emits a non-transactional
end marker (``pg_logical_emit_message(false, 'duality.record.end', '')``), waits for each
reader to reach the marker, and drops the slots. The marker itself is not saved.

Reading live matters for streamed transactions that roll back: PostgreSQL only streams
changes of a transaction that is still in progress when the walsender decodes them (for one
already aborted it sends an empty Stream Start/Stop), so those scenarios wait until a Stream
Stop has arrived before they roll back.

Output, one ``<scenario>.bin`` per output plus ``scenarios.json`` describing them all.
Each ``.bin`` file is a sequence of frames, one per replication message, in arrival order::

    uint32 big-endian   payload length n
    uint64 big-endian   data_start: the WAL position of the XLogData message that carried it
    n bytes             payload: one pgoutput message, first byte is its type

Transaction ids, relation and type OIDs and timestamps differ between recordings; tests must
not hard-code them, only relations between them.
"""

from __future__ import annotations

import json
import select
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import psycopg2
from psycopg2.extras import LogicalReplicationConnection

from duality.sources.postgres.throwaway import ThrowawayPostgres

HERE = Path(__file__).resolve().parent
FRAME = struct.Struct(">IQ")
PUBLICATION = "duality_pub"
END_PREFIX = b"duality.record.end\x00"

V1 = {"proto_version": "1", "publication_names": PUBLICATION, "messages": "true"}
V2 = {**V1, "proto_version": "2", "streaming": "on"}

SCHEMA = f"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 100);
CREATE TABLE t_default (id int PRIMARY KEY, name text, dropped int, note text,
                        twice int GENERATED ALWAYS AS (id * 2) STORED);
ALTER TABLE t_default DROP COLUMN dropped;
CREATE TABLE t_full (id int PRIMARY KEY, name text, amount numeric(12,2));
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_index (id int NOT NULL, code varchar(10) NOT NULL, val text);
CREATE UNIQUE INDEX t_index_code ON t_index (code);
ALTER TABLE t_index REPLICA IDENTITY USING INDEX t_index_code;
CREATE TABLE t_types (id int PRIMARY KEY, m mood, s short_text, ms mood[]);
CREATE TABLE t_toast (id int PRIMARY KEY, counter int, big text);
ALTER TABLE t_toast ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE t_toast_full (id int PRIMARY KEY, counter int, big text);
ALTER TABLE t_toast_full ALTER COLUMN big SET STORAGE EXTERNAL;
ALTER TABLE t_toast_full REPLICA IDENTITY FULL;
CREATE TABLE parent (id serial PRIMARY KEY, name text);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent (id));
CREATE TABLE small (id int PRIMARY KEY);
CREATE TABLE big (id int PRIMARY KEY, m mood, note text);
CREATE TABLE t_binary (id int PRIMARY KEY, name text, flag boolean, at timestamptz);
CREATE PUBLICATION {PUBLICATION} FOR ALL TABLES;
SELECT pg_replication_origin_create('upstream');
"""

# 3,000 characters stored out of line uncompressed (STORAGE EXTERNAL): a TOASTed value.
BIG_VALUE = "repeat('0123456789', 300)"


WaitStreamed = Callable[[], None]


@dataclass
class Scenario:
    """SQL to run (each string one autocommit round trip) and the files to record it into.

    ``run``, when given, runs after ``sql`` and receives the server and a function that
    blocks until every reader has received a Stream Stop.
    """

    name: str
    description: str
    outputs: dict[str, dict[str, str]]
    sql: list[str] = field(default_factory=list)
    setup: str = ""
    run: Callable[[ThrowawayPostgres, WaitStreamed], None] | None = None


def _origin(pg: ThrowawayPostgres, wait_streamed: WaitStreamed) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_replication_origin_session_setup('upstream')")
        with conn.transaction():
            conn.execute(
                "SELECT pg_replication_origin_xact_setup('0/ABCDEF01', '2024-01-02 03:04:05+00')"
            )
            conn.execute("INSERT INTO small VALUES (100)")
        conn.execute("SELECT pg_replication_origin_session_reset()")


def _stream_abort(pg: ThrowawayPostgres, wait_streamed: WaitStreamed) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute(
            "INSERT INTO big SELECT g, 'sad', 'gone ' || g FROM generate_series(1, 1500) g"
        )
        wait_streamed()
        conn.rollback()


def _stream_subxact(pg: ThrowawayPostgres, wait_streamed: WaitStreamed) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute("INSERT INTO big VALUES (1, 'ok', 'kept')")
        conn.execute("SAVEPOINT sp")
        conn.execute(
            "INSERT INTO big SELECT g, 'sad', 'undone ' || g FROM generate_series(2, 1501) g"
        )
        wait_streamed()
        conn.execute("ROLLBACK TO SAVEPOINT sp")
        conn.execute("INSERT INTO big VALUES (2, 'ok', 'kept too')")
        conn.commit()


def _interleaved(pg: ThrowawayPostgres, wait_streamed: WaitStreamed) -> None:
    """A large transaction streamed in segments while a small one commits in between."""
    with psycopg.connect(pg.dsn()) as big, psycopg.connect(pg.dsn(), autocommit=True) as small:
        big.execute("INSERT INTO big SELECT g, 'ok', 'a' || g FROM generate_series(1, 700) g")
        wait_streamed()
        small.execute("INSERT INTO small VALUES (200)")
        big.execute("INSERT INTO big SELECT g, 'ok', 'b' || g FROM generate_series(701, 1400) g")
        big.commit()


SCENARIOS = [
    Scenario(
        "identity",
        "inserts/updates/deletes under replica identity DEFAULT (t_default, with a dropped and "
        "a generated column), FULL (t_full) and USING INDEX (t_index); NULL, empty string, "
        "unicode; key-changing updates; one two-table transaction",
        {"identity_v1": V1, "identity_v2": V2},
        [
            "INSERT INTO t_default (id, name, note) VALUES (1, 'alice', NULL), "
            "(2, '', 'ünïcødé ✓ 🐘')",
            "UPDATE t_default SET note = 'changed' WHERE id = 1",
            "UPDATE t_default SET id = 10 WHERE id = 2",
            "DELETE FROM t_default WHERE id = 1",
            "INSERT INTO t_full VALUES (1, 'bob', 12.50)",
            "UPDATE t_full SET amount = 99.99 WHERE id = 1",
            "DELETE FROM t_full WHERE id = 1",
            "INSERT INTO t_index VALUES (1, 'A1', 'x')",
            "UPDATE t_index SET val = 'y' WHERE id = 1",
            "UPDATE t_index SET code = 'B2' WHERE id = 1",
            "DELETE FROM t_index WHERE code = 'B2'",
            "BEGIN; INSERT INTO t_default (id, name) VALUES (3, 'carol');"
            " INSERT INTO t_full VALUES (2, 'dave', NULL); COMMIT",
        ],
    ),
    Scenario(
        "types",
        "a table with an enum, a domain over text and an enum array: Type messages first",
        {"types_v1": V1},
        [
            "INSERT INTO t_types VALUES (1, 'happy', 'short', '{sad,ok}')",
            "UPDATE t_types SET m = 'sad' WHERE id = 1",
        ],
    ),
    Scenario(
        "toast",
        "a 3000-byte out-of-line value, then updates that leave it unchanged (DEFAULT and FULL)",
        {"toast_v1": V1},
        [
            f"INSERT INTO t_toast VALUES (1, 0, {BIG_VALUE})",
            "UPDATE t_toast SET counter = 1 WHERE id = 1",
            f"INSERT INTO t_toast_full VALUES (1, 0, {BIG_VALUE})",
            "UPDATE t_toast_full SET counter = 1 WHERE id = 1",
            "DELETE FROM t_toast WHERE id = 1",
        ],
    ),
    Scenario(
        "truncate",
        "TRUNCATE of one table, of parent with RESTART IDENTITY CASCADE, and of two tables",
        {"truncate_v1": V1},
        [
            "TRUNCATE small",
            "TRUNCATE parent RESTART IDENTITY CASCADE",
            "TRUNCATE small, t_index",
        ],
        setup="INSERT INTO parent (name) VALUES ('p'); INSERT INTO child (parent_id) VALUES (1)",
    ),
    Scenario(
        "messages",
        "pg_logical_emit_message: non-transactional, transactional alone and beside an insert, "
        "both kinds in a rolled-back transaction (only the non-transactional one arrives)",
        {"messages_v1": V1},
        [
            "SELECT pg_logical_emit_message(false, 'duality.nontx', 'hello')",
            "SELECT pg_logical_emit_message(true, 'duality.tx', '\\x00ff00'::bytea)",
            "BEGIN; INSERT INTO small VALUES (1);"
            " SELECT pg_logical_emit_message(true, 'préfixe', 'ünïcode'); COMMIT",
            "BEGIN; SELECT pg_logical_emit_message(false, 'duality.nontx.aborted', 'survives');"
            " SELECT pg_logical_emit_message(true, 'duality.tx.aborted', 'gone'); ROLLBACK",
            "SELECT pg_logical_emit_message(false, 'duality.empty', '')",
        ],
        setup="DELETE FROM small",
    ),
    Scenario(
        "origin",
        "a transaction replayed under replication origin 'upstream' (origin lsn 0/ABCDEF01)",
        {"origin_v1": V1},
        run=_origin,
    ),
    Scenario(
        "binary",
        "the binary option: int4, text, bool and timestamptz values in binary send format",
        {"binary_v1": {**V1, "binary": "true"}},
        ["INSERT INTO t_binary VALUES (1, 'x', true, '2024-01-02 03:04:05+00'), "
         "(2, NULL, false, NULL)"],
    ),
    Scenario(
        "stream_commit",
        "a streamed transaction (1500 inserts, a transactional message, updates, deletes, "
        "a truncate) that commits",
        {"stream_commit_v2": V2},
        [
            "BEGIN; INSERT INTO big SELECT g, 'happy', 'row ' || g FROM generate_series(1, 1500) g;"
            " SELECT pg_logical_emit_message(true, 'duality.stream', 'inside');"
            " UPDATE big SET note = 'updated' WHERE id <= 2;"
            " DELETE FROM big WHERE id > 1498; TRUNCATE small; COMMIT",
        ],
        setup="TRUNCATE big; INSERT INTO small VALUES (7)",
    ),
    Scenario(
        "stream_abort",
        "a streamed transaction (1500 inserts) that rolls back",
        {"stream_abort_v2": V2},
        run=_stream_abort,
        setup="TRUNCATE big",
    ),
    Scenario(
        "stream_subxact",
        "a streamed transaction whose savepoint (1500 inserts) is rolled back, then commits",
        {"stream_subxact_v2": V2},
        run=_stream_subxact,
        setup="TRUNCATE big",
    ),
    Scenario(
        "stream_interleaved",
        "a streamed transaction (1400 inserts) with a small transaction committed meanwhile",
        {"stream_interleaved_v2": V2},
        run=_interleaved,
        setup="TRUNCATE big; DELETE FROM small",
    ),
]


class SlotReader(threading.Thread):
    """Reads one slot, from start_replication to the end marker, into ``frames``."""

    def __init__(self, pg: ThrowawayPostgres, slot: str, options: dict[str, str]) -> None:
        super().__init__(name=f"read {slot}", daemon=True)
        self.dsn = pg.dsn() + " client_encoding=UTF8"
        self.slot = slot
        self.options = options
        self.frames: list[tuple[int, bytes]] = []  # (data_start, payload)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._read()
        except BaseException as exc:
            self.error = exc

    def _read(self) -> None:
        conn = psycopg2.connect(self.dsn, connection_factory=LogicalReplicationConnection)
        try:
            cur = conn.cursor()
            cur.start_replication(slot_name=self.slot, decode=False, options=self.options)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                msg = cur.read_message()
                if msg is None:
                    select.select([cur], [], [], 0.2)
                    continue
                payload = bytes(msg.payload)
                if payload[:1] == b"M" and END_PREFIX in payload[:40]:
                    return
                self.frames.append((msg.data_start, payload))
            raise TimeoutError(f"no end marker from slot {self.slot} within 120 s")
        finally:
            conn.close()

    def wait_streamed(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(payload[:1] == b"E" for _, payload in list(self.frames)):
            if self.error is not None or time.monotonic() > deadline:
                raise TimeoutError(f"slot {self.slot} sent no Stream Stop") from self.error
            time.sleep(0.05)

    def finish(self) -> list[tuple[int, bytes]]:
        self.join(150)
        if self.error is not None or self.is_alive():
            raise RuntimeError(f"reading slot {self.slot} failed") from self.error
        return self.frames


def record(pg: ThrowawayPostgres, scenario: Scenario) -> dict[str, object]:
    if scenario.setup:
        pg.execute(scenario.setup)
    readers = []
    for output, options in scenario.outputs.items():
        pg.execute(f"SELECT pg_create_logical_replication_slot('{output}', 'pgoutput')")
        readers.append(SlotReader(pg, output, options))
    for reader in readers:
        reader.start()
    for sql in scenario.sql:
        pg.execute(sql)

    def wait_streamed() -> None:
        for reader in readers:
            reader.wait_streamed()

    if scenario.run is not None:
        scenario.run(pg, wait_streamed)
    pg.execute("SELECT pg_logical_emit_message(false, 'duality.record.end', '')")
    described: dict[str, object] = {}
    for reader in readers:
        frames = reader.finish()
        pg.execute(f"SELECT pg_drop_replication_slot('{reader.slot}')")
        with (HERE / f"{reader.slot}.bin").open("wb") as fh:
            for start, payload in frames:
                fh.write(FRAME.pack(len(payload), start) + payload)
        described[f"{reader.slot}.bin"] = {
            "scenario": scenario.name,
            "description": scenario.description,
            "options": reader.options,
            "sql": scenario.sql,
            "run": scenario.run.__name__ if scenario.run else None,
            "messages": len(frames),
            "types": dict(sorted(Counter(chr(p[0]) for _, p in frames).items())),
        }
    return described


def main() -> None:
    with ThrowawayPostgres(settings={"logical_decoding_work_mem": "64kB"}) as pg:
        pg.execute(SCHEMA)
        with psycopg.connect(pg.dsn()) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        files: dict[str, object] = {}
        for scenario in SCENARIOS:
            files.update(record(pg, scenario))
            print(f"recorded {scenario.name}")
    sidecar = {
        "server_version": version[0] if version else None,
        "frame": "uint32 BE payload length, uint64 BE data_start LSN, payload (one message)",
        "publication": f"{PUBLICATION} FOR ALL TABLES",
        "settings": {"logical_decoding_work_mem": "64kB"},
        "schema": SCHEMA.strip().splitlines(),
        "files": files,
    }
    (HERE / "scenarios.json").write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
