"""Pausing Python's cyclic garbage collector while a batch is decoded and applied."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """A batch allocates millions of short-lived, acyclic objects (records, parsed JSON,
    rows); the cyclic garbage collector would scan the batch's live objects hundreds of
    times for nothing (measured: a fifth of the time). Reference counting frees them
    all the same; the collector runs again after the batch. Nested or concurrent pauses
    are harmless: only the pause that found the collector enabled enables it again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
