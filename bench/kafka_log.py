"""Capture into Kafka against capture into the embedded log, in the same run.

    python bench/kafka_log.py [--inserts 80000] [--updates 80000] [--small 20000]
                              [--kafka HOST:9092] [--exactly-once]

A throwaway PostgreSQL gets, per workload, two pgoutput slots created at the same LSN,
then the workload: one transaction inserting ``--inserts`` rows, one updating
``--updates`` rows, ``--small`` one-row insert transactions. Each slot is drained to
the WAL end by ``duality capture --once`` as its own process:

* baseline: into a fresh embedded log (``sqlite://``, fsync'd, with positions);
* Kafka: into ``kafka://`` — librdkafka's mock cluster, hosted by a helper process
  (3 brokers, the real protocol over loopback, ``acks=all``, idempotent producer,
  positions in ``connect-offsets``), or the broker ``--kafka`` names.

On the mock the defaults stay within about 20k records per partition (the mock's
topics have 4 partitions and keep about 5 MiB each). Prints rows/s of each, the ratio
(Kafka ÷ embedded; the target is >= 0.8) and the peak RSS of each capture process.
Each side's fixed cost (process start, connecting, reading the position: a drain of an
empty slot) is measured too, and the rates without it are printed below.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from common import TABLE, Measured, build, capture_command, run_measured, workload
from duality.sources.postgres.throwaway import ThrowawayPostgres

MOCK_HOST = """
import sys
from confluent_kafka import Producer
client = Producer({"test.mock.num.brokers": 3, "log_level": 0})
brokers = client.list_topics(timeout=10).brokers.values()
print(",".join(f"{b.host}:{b.port}" for b in brokers), flush=True)
sys.stdin.read()
"""




def capture(
    pg: ThrowawayPostgres, log_url: str, slot: str, prefix: str, extra: list[str]
) -> Measured:
    return run_measured(
        [*capture_command(pg.url("bench"), prefix, log_url, slot), "--snapshot", "no_data",
         "--once", *extra]
    )


def start_mock() -> tuple[subprocess.Popen[str], str]:
    host = subprocess.Popen(
        [sys.executable, "-c", MOCK_HOST],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert host.stdout is not None
    bootstrap = host.stdout.readline().strip()
    if not bootstrap:
        raise SystemExit("the mock Kafka cluster did not start")
    return host, bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inserts", type=int, default=80_000)
    parser.add_argument("--updates", type=int, default=80_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument(
        "--kafka", metavar="HOST:PORT", help="a real broker (default: librdkafka's mock cluster)"
    )
    parser.add_argument(
        "--exactly-once",
        action="store_true",
        help="capture into Kafka with exactly.once.source.support=enabled",
    )
    args = parser.parse_args()
    host = None
    if args.kafka:
        bootstrap, where = args.kafka, f"Kafka at {args.kafka}"
    else:
        host, bootstrap = start_mock()
        where = "librdkafka mock cluster (3 brokers, separate process)"
    extra = ["-p", "kafka.exactly.once.source.support=enabled"] if args.exactly_once else []
    run = f"r{int(time.time())}"
    try:
        with (
            ThrowawayPostgres(settings={"max_wal_size": "4GB"}) as pg,
            tempfile.TemporaryDirectory() as tmpdir,
        ):
            pg.create_database("bench")
            pg.execute(TABLE, dbname="bench")
            print(f"duality: {build()}")
            print(f"Kafka: {where}{' (exactly-once)' if args.exactly_once else ''}")
            print(
                f"{'workload':<20}{'rows':>8}{'embedded':>13}{'kafka':>12}{'ratio':>8}"
                f"{'RSS emb.':>10}{'RSS kafka':>11}"
            )
            total_rows, total_emb, total_kafka = 0, 0.0, 0.0
            fixed: dict[str, list[float]] = {"emb": [], "kafka": []}
            with psycopg.connect(pg.dsn("bench"), autocommit=True) as conn:
                for kind in ("idle1", "insert", "update", "small", "idle2"):
                    for name in (f"a_{kind}", f"b_{kind}"):
                        conn.execute(
                            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,)
                        )
                    rows = 0 if kind.startswith("idle") else workload(conn, args, kind)
                    prefix = f"bench_{run}_{kind}"
                    emb = capture(
                        pg, f"sqlite://{Path(tmpdir) / f'{kind}.db'}", f"a_{kind}", prefix, []
                    )
                    kafka = capture(pg, f"kafka://{bootstrap}", f"b_{kind}", prefix, extra)
                    for name in (f"a_{kind}", f"b_{kind}"):
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                    if not rows:
                        fixed["emb"].append(emb.seconds)
                        fixed["kafka"].append(kafka.seconds)
                        continue
                    total_rows += rows
                    total_emb += emb.seconds
                    total_kafka += kafka.seconds
                    print(
                        f"{kind:<20}{rows:>8,}{rows / emb.seconds:>11,.0f}/s"
                        f"{rows / kafka.seconds:>10,.0f}/s{emb.seconds / kafka.seconds:>8.2f}"
                        f"{emb.peak_rss_mb:>8.0f}MB{kafka.peak_rss_mb:>9.0f}MB"
                    )
            print(
                f"{'all (sum of times)':<20}{total_rows:>8,}{total_rows / total_emb:>11,.0f}/s"
                f"{total_rows / total_kafka:>10,.0f}/s{total_emb / total_kafka:>8.2f}"
            )
            print(
                "ratio = Kafka rows/s ÷ embedded rows/s (target >= 0.80); each drain is "
                "`duality capture --once` as its own process, start-up included"
            )
            emb_fixed = sum(fixed["emb"]) / len(fixed["emb"])
            kafka_fixed = sum(fixed["kafka"]) / len(fixed["kafka"])
            net_emb = total_emb - 3 * emb_fixed
            net_kafka = total_kafka - 3 * kafka_fixed
            print(
                f"fixed cost per drain (empty slot): embedded {emb_fixed:.2f}s, "
                f"Kafka {kafka_fixed:.2f}s"
            )
            print(
                f"{'all, fixed cost out':<20}{total_rows:>8,}{total_rows / net_emb:>11,.0f}/s"
                f"{total_rows / net_kafka:>10,.0f}/s{net_emb / net_kafka:>8.2f}"
            )
            print(f"cores: {os.cpu_count()}")
    finally:
        if host is not None and host.stdin is not None:
            host.stdin.close()
            host.wait(10)


if __name__ == "__main__":
    main()
