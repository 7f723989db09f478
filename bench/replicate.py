"""Replicating captured changes into PostgreSQL against ``COPY`` of the same final rows,
in the same run.

    python bench/replicate.py [--rows 500000] [--changes 500000] [--txn 1000]
                              [--batch 50000] [--repeat 3]

A throwaway PostgreSQL gets a ``bench`` table (id int4 key, text, numeric(12,2),
timestamptz, boolean, varchar) of ``--rows`` rows; ``duality capture --once`` snapshots
it (op ``r``) into a fresh embedded log. Then a streaming workload of ``--changes``
changes in transactions of ``--txn``: 40% inserts of new keys, 40% updates of existing
keys (each key at most once), 20% deletes; ``capture --once`` again. The log is built
once; only ``replicate`` is timed, each phase by its own process into a second database
of the same server:

* snapshot phase: ``duality replicate --once`` of the snapshot alone into an empty
  database (the sink loads op ``r`` rows into the empty table, its primary key set aside
  until the end, with binary ``COPY``, the rows encoded in C:
  ``duality.sinks.dialects.postgres_binary``);
* streaming phase: ``duality replicate --once`` again, applying the streamed changes on
  top (upserts and deletes, with per-row positions and offsets);
* baseline: ``COPY … FROM STDIN`` of the source's final rows (read beforehand into
  memory, text format) into an empty table with the same primary key, in the same
  target database; for scale, the same in binary format, which costs the server less;
* for scale, replicate's fixed cost: ``replicate --once`` again with nothing left to
  apply (starting Python, importing, connecting, reading the target's state); and the
  streaming phase's rate without it, as a replicate that runs on (not ``--once``)
  applies changes once started (the ratio the target is held to counts the start);
* for scale, the target's own share of the streaming phase: the batches the sink staged,
  applied again into a copy of the target as it was before the phase, with no client
  work, over one session and over two (each batch split in two runs, as ``replicate
  --sessions 2`` does: ``target_floor.py``): what the phase would take with a client
  that cost nothing;
* for scale, the floor under replicate's way of decoding: reading every record of the
  log and parsing its key and value as replicate does (orjson, with a snapshot's
  repeated envelope tails parsed once: ``duality.tables.parsing``), nothing else (in
  this process).

Each timed phase runs ``--repeat`` times, each run into a fresh database (a new empty one
for the snapshot phase, a copy of the target as it was before the streaming phase for
that one), and so does each ``COPY`` baseline: the ratios are taken on the fastest run of
each (as ``timeit`` does), and also shown on the medians. The machine's speed moves
under a benchmark: on the 2-core VM here a fixed C loop takes 0.22 to 0.31 s from one
second to the next, which a single run of each side cannot tell from the code's own
cost.

Before each timed phase the server settles: ``VACUUM (ANALYZE)`` of the tables the last
step wrote and a checkpoint, so that autovacuum catching up on an earlier step (500k
rows just loaded into the target's table, 500k changes to the source's) does not run
during a phase.

Checks that the target equals the source (row count and an md5 over the ordered rows),
then prints rows/s of each and the two ratios against ``COPY`` (targets: streaming
>= 0.3, snapshot >= 0.8) with the seconds each target allows, and for scale what a
client that costs nothing would reach loading the snapshot into the keyed table: the
fixed cost plus a ``COPY`` (text, or binary) of its rows (replicate loads the table
without its key, built at the end, so it can pass that). Each phase also shows the CPU
seconds of the client (the replicate process, or this one for ``COPY``) and of the
whole server (on Linux), which say which side a phase waits for.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import psycopg

from common import TABLE, build, run_measured, server_cpu
from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import BATCH_RECORDS
from duality.sources.postgres.throwaway import ThrowawayPostgres
from duality.tables.parsing import ValueParser
from target_floor import record, replay

#: A row for every id of a generate_series ``g``.
ROW = "g, 'name ' || g, g * 1.25, now(), g %% 2 = 0, md5(g::text)"
COPY_TABLE = """
CREATE TABLE copied (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2),
                     at timestamptz, flag boolean, note varchar(40))
"""
#: Seconds for the server to reap a finished replicate's session, so that its CPU is
#: counted (in the postmaster's reaped children).
REAPED_S = 0.5
CHECKSUM = "SELECT count(*), md5(string_agg(b::text, '|' ORDER BY id)) FROM {} AS b"


@dataclass(frozen=True)
class Phase:
    """A timed phase: wall seconds, the client's CPU seconds, the server's (None where
    it cannot be read)."""

    seconds: float
    cpu: float
    server_cpu: float | None

    def describe(self) -> str:
        server = "" if self.server_cpu is None else f", server {self.server_cpu:.2f} s"
        return f"{self.seconds:.2f} s; CPU: client {self.cpu:.2f} s{server}"


@dataclass(frozen=True)
class Runs:
    """The runs of one phase, repeated: the fastest is what the ratios are taken on (as
    ``timeit`` does: the machine's other work only ever adds time), the median shown
    beside it."""

    runs: list[Phase]

    @property
    def best(self) -> Phase:
        return min(self.runs, key=lambda run: run.seconds)

    @property
    def seconds(self) -> float:
        return self.best.seconds

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    def describe(self) -> str:
        if len(self.runs) == 1:
            return self.best.describe()
        return (f"{self.best.describe()}; best of {len(self.runs)}, median "
                f"{self.median:.2f} s")


def stream(conn: psycopg.Connection[object], rows: int, changes: int, txn: int) -> int:
    """The streaming workload (see the module docstring); the rows it changed. Updates
    walk the snapshot's ids upwards, deletes walk them downwards."""
    done = inserted = updated = deleted = 0
    while done < changes:
        size = min(txn, changes - done)
        ins, upd = size * 2 // 5, size * 2 // 5
        dels = size - ins - upd
        with conn.transaction():
            first = rows + inserted + 1
            done += conn.execute(
                f"INSERT INTO bench SELECT {ROW} FROM generate_series(%s::int, %s::int) g",
                (first, first + ins - 1),
            ).rowcount
            done += conn.execute(
                "UPDATE bench SET amount = amount + 1, at = now(), flag = NOT flag, "
                "note = 'updated' WHERE id BETWEEN %s AND %s",
                (updated + 1, updated + upd),
            ).rowcount
            done += conn.execute(
                "DELETE FROM bench WHERE id BETWEEN %s AND %s",
                (rows - deleted - dels + 1, rows - deleted),
            ).rowcount
        inserted, updated, deleted = inserted + ins, updated + upd, deleted + dels
        if updated + deleted >= rows:
            raise SystemExit("--changes is too large for --rows: each key changes once")
    return done


def capture(pg: ThrowawayPostgres, log_url: str) -> None:
    run_measured([
        sys.executable, "-m", "duality", "capture", "--source", pg.url("bench"),
        "--prefix", "bench", "--log", log_url, "--publication", "bench_pub",
        "-p", "publication.autocreate.mode=disabled", "--once",
    ])


def replicate(pg: ThrowawayPostgres, log_url: str, batch: int, dbname: str = "target") -> Phase:
    """``duality replicate --once`` into ``dbname``, with the CPU it and the server
    used."""
    cmd = [sys.executable, "-m", "duality", "replicate", "--log", log_url,
           "--target", pg.url(dbname), "--once", "--batch-size", str(batch)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server_cpu(pg.datadir)
    seconds = run_measured(cmd).seconds
    time.sleep(REAPED_S)
    server_after = server_cpu(pg.datadir)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Phase(seconds, cpu, _spent(server_before, server_after))


def settle(pg: ThrowawayPostgres, *databases: str) -> None:
    """What autovacuum would soon do to the tables the last steps wrote (VACUUM and
    ANALYZE each of ``databases``), then a checkpoint: so that the next timed phase
    pays for its own work only, not for the server catching up on an earlier one's."""
    for database in databases:
        pg.execute("VACUUM (ANALYZE)", dbname=database)
    pg.execute("CHECKPOINT")


def repeated(
    pg: ThrowawayPostgres, log_url: str, batch: int, repeat: int, template: str | None
) -> Runs:
    """A replicate phase ``repeat`` times, each into a database of its own, settled
    first and dropped after: a copy of ``template``, or a new empty one. The last run is
    into ``target``, which the next steps go on from: made here when there is no
    template, else already equal to it."""
    runs = []
    for run in range(repeat):
        last = run == repeat - 1
        dbname = "target" if last else f"scratch_{run}"
        if template is None:
            pg.create_database(dbname)
        elif not last:
            pg.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{template}"')
        settle(pg, dbname)
        runs.append(replicate(pg, log_url, batch, dbname))
        if dbname != "target":
            pg.execute(f'DROP DATABASE "{dbname}"')
    return Runs(runs)


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def copy_baseline(pg: ThrowawayPostgres, repeat: int, binary: bool = False) -> tuple[int, Runs]:
    """The source's final rows COPYed into an empty table of the target, ``repeat``
    times (each after a checkpoint, as a replicate phase is): rows, and the time and
    server CPU each took (the rows are read into memory beforehand)."""
    options = " (FORMAT binary)" if binary else ""
    with psycopg.connect(pg.dsn("bench")) as source:
        with source.cursor().copy(
            f"COPY (SELECT * FROM bench ORDER BY id) TO STDOUT{options}".encode()
        ) as out:
            data = [bytes(chunk) for chunk in out]
        count = source.execute("SELECT count(*) FROM bench").fetchone()[0]  # type: ignore[index]
    runs = []
    with psycopg.connect(pg.dsn("target")) as target:
        for _ in range(repeat):
            target.execute("DROP TABLE IF EXISTS copied")
            target.execute(COPY_TABLE)
            target.commit()
            pg.execute("CHECKPOINT")
            server_before = server_cpu(pg.datadir)
            start, cpu = time.perf_counter(), time.process_time()
            with target.cursor().copy(f"COPY copied FROM STDIN{options}".encode()) as into:
                for chunk in data:
                    into.write(chunk)
            target.commit()
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            runs.append(Phase(seconds, cpu, _spent(server_before, server_cpu(pg.datadir))))
    return int(count), Runs(runs)


def parse_floor(log_url: str, batch: int) -> tuple[int, float]:
    """Read every record of the table's topic and parse its key and value: records,
    seconds."""
    parse, parse_value, count = orjson.loads, ValueParser().parse, 0
    with SqliteLog(log_url, create=False) as log:
        start = time.perf_counter()
        offset = 0
        while records := log.read("bench.public.bench", 0, offset, batch):
            for record in records:
                parse(record.key or b"null")
                parse_value(record.value or b"null")
            count += len(records)
            offset = records[-1].offset + 1
        return count, time.perf_counter() - start


def replay_floor(
    pg: ThrowawayPostgres, log_url: str, batch: int, source: tuple[int, str]
) -> dict[int, float]:
    """The streaming phase's staged batches (recorded by replicating into a copy of the
    target before the phase) applied again over 1 and 2 sessions: seconds by sessions.
    Each replay must leave its copy equal to the source."""
    pg.execute('CREATE DATABASE "recorded" TEMPLATE "before_stream"')
    batches = record(log_url, pg.url("recorded"), batch)
    seconds = {}
    for lanes in (1, 2):
        name = f"replayed_{lanes}"
        pg.execute(f'CREATE DATABASE "{name}" TEMPLATE "before_stream"')
        seconds[lanes] = replay(pg.dsn(name), batches, lanes)
        if checksum(pg, name, "public.bench") != source:
            raise SystemExit(f"the replay over {lanes} session(s) did not reach the source")
    return seconds


def checksum(pg: ThrowawayPostgres, dbname: str, table: str) -> tuple[int, str]:
    with psycopg.connect(pg.dsn(dbname)) as conn:
        count, digest = conn.execute(CHECKSUM.format(table).encode()).fetchone()  # type: ignore[misc]
        return int(count), str(digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="snapshot rows")
    parser.add_argument("--changes", type=int, default=500_000, help="streamed changes")
    parser.add_argument("--txn", type=int, default=1_000, help="changes per source transaction")
    parser.add_argument("--batch", type=int, default=BATCH_RECORDS,
                        help="replicate --batch-size (default: replicate's)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each timed phase and of COPY; the fastest counts")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give 1 or more runs of each phase")
    with (
        ThrowawayPostgres(settings={"max_wal_size": "8GB"}) as pg,
        tempfile.TemporaryDirectory() as tmp,
    ):
        log_url = f"sqlite://{Path(tmp) / 'log.db'}"
        pg.create_database("bench")
        pg.execute(TABLE, dbname="bench")
        with psycopg.connect(pg.dsn("bench"), autocommit=True) as conn:
            conn.execute(f"INSERT INTO bench SELECT {ROW} FROM generate_series(1, %s::int) g",
                         (args.rows,))
        capture(pg, log_url)
        settle(pg, "bench")
        snapshot = repeated(pg, log_url, args.batch, args.repeat, None)
        settle(pg, "target")
        pg.execute('CREATE DATABASE "before_stream" TEMPLATE "target"')
        with psycopg.connect(pg.dsn("bench"), autocommit=True) as conn:
            changes = stream(conn, args.rows, args.changes, args.txn)
        capture(pg, log_url)
        settle(pg, "bench")
        streaming = repeated(pg, log_url, args.batch, args.repeat, "before_stream")
        settle(pg, "target")
        fixed = Runs([replicate(pg, log_url, args.batch) for _ in range(args.repeat)])
        copied, copy = copy_baseline(pg, args.repeat)
        _, binary = copy_baseline(pg, args.repeat, binary=True)
        records, floor_s = parse_floor(log_url, args.batch)
        source, target = checksum(pg, "bench", "bench"), checksum(pg, "target", "public.bench")
        target_floor = replay_floor(pg, log_url, args.batch, source)
    copy_rate = copied / copy.seconds
    snapshot_rate, streaming_rate = args.rows / snapshot.seconds, changes / streaming.seconds
    print(f"duality: {build()}")
    print(f"{args.rows:,} snapshot rows, then {changes:,} streamed changes (40% inserts, 40% "
          f"updates, 20% deletes) in transactions of {args.txn:,}; replicate batches of "
          f"{args.batch:,} records")
    print(f"COPY of the {copied:,} final rows   : {copy_rate:>10,.0f} rows/s  "
          f"({copy.describe()})")
    print(f"COPY, binary format, for scale   : {copied / binary.seconds:>10,.0f} rows/s  "
          f"({binary.describe()})")
    print(f"replicate, snapshot phase (op r) : {snapshot_rate:>10,.0f} rows/s  "
          f"({snapshot.describe()})")
    print(f"replicate, streaming changes     : {streaming_rate:>10,.0f} rows/s  "
          f"({streaming.describe()})")
    print(f"replicate with nothing to apply (its fixed cost): {fixed.describe()}")
    print(f"floor: read + parse {records:,} records: {records / floor_s:>10,.0f} records/s  "
          f"({floor_s:.2f} s; {records / floor_s / copy_rate:.2f}x COPY)")
    print(f"target equals source: {source == target} ({target[0]:,} rows)")
    for lanes, seconds in target_floor.items():
        how = "1 session" if lanes == 1 else f"{lanes} sessions, as --sessions {lanes}"
        print(f"target's own work of the streaming phase, no client ({how}): "
              f"{changes / seconds:>10,.0f} rows/s  ({seconds:.2f} s; "
              f"{changes / seconds / copy_rate:.2f}x COPY)")
    for name, rate in (("text", copy_rate), ("binary", copied / binary.seconds)):
        keyed = args.rows / (fixed.seconds + args.rows / rate)
        print(f"snapshot by a client that costs nothing, into the keyed table (fixed cost + "
              f"{name} COPY of its rows): {keyed / copy_rate:.2f}x COPY")
    for name, runs, rows, goal in (("snapshot", snapshot, args.rows, 0.8),
                                   ("streaming", streaming, changes, 0.3)):
        medians = rows / runs.median / (copied / copy.median)
        of_medians = f"; of the medians {medians:.2f}" if args.repeat > 1 else ""
        print(f"ratio {name}/COPY: {rows / runs.seconds / copy_rate:.2f}{of_medians}  "
              f"(target >= {goal:.2f}: {rows / (goal * copy_rate):.2f} s)")
    running = streaming.seconds - fixed.seconds
    print(f"for scale, streaming once started (the phase less replicate's fixed cost; the "
          f"COPY baseline's time holds no start either): {changes / running:,.0f} rows/s, "
          f"{changes / running / copy_rate:.2f}x COPY")
    print(f"cores: {os.cpu_count()}; load average before the end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("CPU: server is every process of the throwaway server during the phase "
          "(its sessions, checkpointer, WAL writer, autovacuum)")


if __name__ == "__main__":
    main()
