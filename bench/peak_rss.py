"""Run a command and print its own peak RSS (last line of stderr: ``peak-rss-kb N``).

A child's ``ru_maxrss`` starts at its parent's peak at the moment of the fork (Linux
keeps the larger of the two across exec), so a command started straight from a large
process reports that process's memory. Started from this small one, it reports its own.

    python bench/peak_rss.py COMMAND [ARG ...]
"""

from __future__ import annotations

import os
import subprocess
import sys


def main() -> int:
    proc = subprocess.Popen(sys.argv[1:])
    _, status, usage = os.wait4(proc.pid, 0)
    print(f"peak-rss-kb {usage.ru_maxrss}", file=sys.stderr)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
