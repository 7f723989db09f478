"""Run a command and report its own peak RSS.

A child's ``ru_maxrss`` starts at its parent's peak at the moment of the fork (Linux
keeps the larger of the two across exec), so a command started straight from a large
process reports that process's memory. Started from this small one, it reports its own.

    python bench/peak_rss.py COMMAND [ARG ...]   # last line of stderr: peak-rss-kb N

Benchmarks use :func:`run_measured`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    stdout: bytes


def run_measured(cmd: list[str]) -> Measured:
    """Run ``cmd`` to completion (exit on failure, with its stderr): wall time, its own
    peak RSS and its standard output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        status = subprocess.run(
            [sys.executable, __file__, *cmd], stdout=out, stderr=err, check=False
        ).returncode
        elapsed = time.perf_counter() - start
        err.seek(0)
        errors = err.read().decode(errors="replace")
        if status != 0:
            raise SystemExit(f"{' '.join(cmd[:4])} … failed:\n{errors}")
        out.seek(0)
        peak_kb = int(errors.split()[-1])
        return Measured(elapsed, peak_kb / 1024, out.read())


def main() -> int:
    proc = subprocess.Popen(sys.argv[1:])
    _, status, usage = os.wait4(proc.pid, 0)
    print(f"peak-rss-kb {usage.ru_maxrss}", file=sys.stderr)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
