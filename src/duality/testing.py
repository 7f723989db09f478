"""Test support shipped with the package: crash injection at named points.

The runtime calls :func:`crash_point` at the moments where a crash is most interesting
(after a marker is stored, after a snapshot batch, between the log flush and the
acknowledgement, ...). Normally it does nothing. A test sets
``DUALITY_CRASH_AT=<point>:<n>`` in a capture process's environment and the process
kills itself with SIGKILL — no cleanup, no flush — the n-th time it reaches that
point, exactly as ``kill -9`` at that moment would.
"""

from __future__ import annotations

import os
import signal

_ENV = "DUALITY_CRASH_AT"
_counts: dict[str, int] = {}
_target: tuple[str, int] | None = None
_loaded = False


def _load() -> tuple[str, int] | None:
    spec = os.environ.get(_ENV, "")
    if not spec:
        return None
    point, _, count = spec.partition(":")
    return point, int(count or "1")


def crash_point(name: str) -> None:
    """SIGKILL this process if ``DUALITY_CRASH_AT`` names this point and count."""
    global _loaded, _target
    if not _loaded:
        _target, _loaded = _load(), True
    if _target is None or _target[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
