"""What the capture benchmarks share: the table, the workloads, and running a drain
with its own peak RSS (through ``peak_rss.py``)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

TABLE = """
CREATE TABLE bench (id int PRIMARY KEY, name text NOT NULL, amount numeric(12,2),
                    at timestamptz, flag boolean, note varchar(40));
CREATE PUBLICATION bench_pub FOR ALL TABLES;
"""
LAUNCHER = Path(__file__).resolve().parent / "peak_rss.py"


def workload(conn: psycopg.Connection[object], args: argparse.Namespace, kind: str) -> int:
    """Run one workload (``insert``, ``update``, ``delete`` or ``small``) sized by
    ``args``; the number of rows it changed."""
    if kind == "insert":
        conn.execute(
            "INSERT INTO bench SELECT g, 'name ' || g, g * 1.25, now(), g %% 2 = 0, "
            "md5(g::text) FROM generate_series(1, %s) g",
            (args.inserts,),
        )
        return int(args.inserts)
    if kind == "update":
        conn.execute("UPDATE bench SET amount = amount + 1 WHERE id <= %s", (args.updates,))
        return int(args.updates)
    if kind == "delete":
        conn.execute("DELETE FROM bench WHERE id > %s", (args.inserts - args.deletes,))
        return int(args.deletes)
    for i in range(args.small):
        conn.execute(
            "INSERT INTO bench VALUES (%s, 'small', 1, now(), true, 'x')", (10_000_000 + i,)
        )
    return int(args.small)


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    stdout: bytes


def build() -> str:
    """How the duality that ``python -m duality`` runs was built: the capture path
    compiled (a non-editable ``pip install .``) or pure Python (``pip install -e .``)."""
    probe = "import duality.sources.postgres.pgoutput as m; print(m.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    if out.endswith(".py"):
        return "pure Python (an editable install; `pip install .` compiles the capture path)"
    return "capture path compiled with mypyc"


def capture_command(source_url: str, prefix: str, log_url: str, slot: str) -> list[str]:
    """``duality capture`` of the benchmark publication (made by the benchmark, not
    by duality), without arguments that say when to stop."""
    return [
        sys.executable, "-m", "duality", "capture", "--source", source_url,
        "--prefix", prefix, "--log", log_url, "--slot", slot,
        "--publication", "bench_pub", "-p", "publication.autocreate.mode=disabled",
    ]


def run_measured(cmd: list[str]) -> Measured:
    """Run ``cmd`` to completion (exit on failure, with its stderr): its wall time and
    its own peak RSS, both taken by the launcher, and its standard output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        status = subprocess.run(
            [sys.executable, str(LAUNCHER), *cmd], stdout=out, stderr=err, check=False
        ).returncode
        err.seek(0)
        errors = err.read().decode(errors="replace")
        if status != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} … failed:\n{errors}")
        out.seek(0)
        fields = errors.split()  # its last line: peak-rss-kb N elapsed-s S
        peak_kb, elapsed = fields[-3], fields[-1]
        return Measured(float(elapsed), int(peak_kb) / 1024, out.read())


def server_cpu(datadir: Path) -> float | None:
    """CPU seconds a local PostgreSQL server has used so far: its postmaster, its live
    processes and the ones it has reaped (ended sessions), from Linux's ``/proc``; None
    elsewhere. Read it once the sessions to count have ended and been reaped."""
    try:
        postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
        ticks = _ticks(postmaster, children=True)
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _parent(int(entry.name)) == postmaster:
                ticks += _ticks(int(entry.name), children=False)
    except (OSError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name (field 3 on)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _parent(pid: int) -> int | None:
    try:
        return int(_stat(pid)[1])
    except (OSError, ValueError):
        return None  # gone meanwhile


def _ticks(pid: int, *, children: bool) -> int:
    """utime + stime (fields 14, 15), with cutime + cstime (16, 17) for ``children``."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0  # gone meanwhile: counted in its parent's reaped children
    return sum(int(x) for x in fields[11 : 15 if children else 13])

