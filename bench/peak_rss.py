"""Run a command and print its own peak RSS and its wall time (last line of stderr:
``peak-rss-kb N elapsed-s S``).

A child's ``ru_maxrss`` starts at its parent's peak at the moment of the fork (Linux
keeps the larger of the two across exec), so a command started straight from a large
process reports that process's memory. Started from this small one, it reports its own.
The time is taken here too, from the command's start to its end: it holds no start of
this launcher's own interpreter.

    python bench/peak_rss.py COMMAND [ARG ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def main() -> int:
    start = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:])
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    print(f"peak-rss-kb {usage.ru_maxrss} elapsed-s {elapsed:.6f}", file=sys.stderr)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
