"""Stopping a long-running loop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM call ``stop`` (the loop then finishes its step and stops cleanly).
    Outside the main thread, signals cannot be caught: the caller stops the loop."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
