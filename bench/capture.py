"""Capture throughput: duality against pg_recvlogical draining the same backlog.

    python bench/capture.py [--inserts 300000] [--updates 100000] [--deletes 100000]
                            [--small 50000]

A throwaway PostgreSQL gets two pgoutput slots created at the same LSN, then a backlog:
one transaction inserting ``--inserts`` rows, one updating ``--updates`` rows, one
deleting ``--deletes`` rows, and ``--small`` one-row insert transactions. Then, one
after the other, each slot is drained to the WAL end:

* baseline: ``pg_recvlogical`` (protocol 1, output to a file);
* duality: ``duality capture --once`` into a fresh embedded log (durable, with
  positions), as its own process.

Prints rows/s of each, the ratio, and peak RSS of each process. Each workload is also
drained separately, so the mix is visible.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from duality.sources.postgres.throwaway import ThrowawayPostgres

TABLE = """
CREATE TABLE bench (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2),
                    at timestamptz, flag boolean, note varchar(40));
CREATE PUBLICATION bench_pub FOR ALL TABLES;
"""


@dataclass
class Result:
    seconds: float
    peak_rss_mb: float


def run_measured(cmd: list[str]) -> Result:
    """Run a command to completion; its wall time and its own peak RSS (wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return Result(elapsed, usage.ru_maxrss / 1024)


def workload(conn: psycopg.Connection[object], args: argparse.Namespace, kind: str) -> int:
    if kind == "insert":
        conn.execute(
            "INSERT INTO bench SELECT g, 'name ' || g, g * 1.25, now(), g %% 2 = 0, md5(g::text) "
            "FROM generate_series(1, %s) g",
            (args.inserts,),
        )
        return int(args.inserts)
    if kind == "update":
        conn.execute("UPDATE bench SET amount = amount + 1 WHERE id <= %s", (args.updates,))
        return int(args.updates)
    if kind == "delete":
        conn.execute("DELETE FROM bench WHERE id > %s", (args.inserts - args.deletes,))
        return int(args.deletes)
    base = 10_000_000
    for i in range(args.small):
        conn.execute("INSERT INTO bench VALUES (%s, 'small', 1, now(), true, 'x')", (base + i,))
    return int(args.small)


def drain(
    pg: ThrowawayPostgres, db: str, tmp: Path, tag: str, end_lsn: str
) -> tuple[Result, Result]:
    recv = shutil.which("pg_recvlogical") or str(pg.bindir / "pg_recvlogical")
    baseline = run_measured(
        [
            recv,
            "-d",
            pg.dsn(db),
            "--slot",
            f"a_{tag}",
            "--start",
            "-o",
            "proto_version=1",
            "-o",
            "publication_names=bench_pub",
            "-f",
            str(tmp / f"recv_{tag}.out"),
            "--endpos",
            end_lsn,
            "--no-loop",
        ]
    )
    ours = run_measured(
        [
            sys.executable,
            "-m",
            "duality",
            "capture",
            "--source",
            pg.url(db),
            "--prefix",
            "bench",
            "--log",
            f"sqlite://{tmp / f'log_{tag}.db'}",
            "--slot",
            f"b_{tag}",
            "--publication",
            "bench_pub",
            "-p",
            "publication.autocreate.mode=disabled",
            "--snapshot",
            "no_data",
            "--once",
        ]
    )
    return baseline, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=300_000)
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--deletes", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=50_000)
    args = parser.parse_args()
    with (
        ThrowawayPostgres(settings={"max_wal_size": "4GB"}) as pg,
        tempfile.TemporaryDirectory() as tmpdir,
    ):
        tmp = Path(tmpdir)
        pg.create_database("bench")
        pg.execute(TABLE, dbname="bench")
        print(
            f"{'workload':<22}{'rows':>9}{'pg_recvlogical':>16}{'duality':>12}{'ratio':>8}"
            f"{'RSS recv':>10}{'RSS duality':>13}"
        )
        total_rows, total_base, total_ours = 0, 0.0, 0.0
        with psycopg.connect(pg.dsn("bench"), autocommit=True) as conn:
            for kind in ("insert", "update", "delete", "small"):
                for name in (f"a_{kind}", f"b_{kind}"):
                    conn.execute(
                        "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,)
                    )
                rows = workload(conn, args, kind)
                end = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
                base, ours = drain(pg, "bench", tmp, kind, end)
                for name in (f"a_{kind}", f"b_{kind}"):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                total_rows += rows
                total_base += base.seconds
                total_ours += ours.seconds
                print(
                    f"{kind:<22}{rows:>9,}{rows / base.seconds:>14,.0f}/s"
                    f"{rows / ours.seconds:>10,.0f}/s{base.seconds / ours.seconds:>8.2f}"
                    f"{base.peak_rss_mb:>8.0f}MB{ours.peak_rss_mb:>11.0f}MB"
                )
        print(
            f"{'all (sum of times)':<22}{total_rows:>9,}{total_rows / total_base:>14,.0f}/s"
            f"{total_rows / total_ours:>10,.0f}/s{total_base / total_ours:>8.2f}"
        )
        print(
            "ratio = duality rows/s ÷ pg_recvlogical rows/s (duality writes a durable log "
            "with positions; pg_recvlogical writes raw pgoutput bytes to a file)"
        )
        print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
