"""Capture's deferred garbage collection still frees garbage cycles, and leaves the
collector as it found it."""

from __future__ import annotations

import gc
import weakref

from duality.runtime.collector import Deferred


class _Node:
    def __init__(self) -> None:
        self.me = self


def _cycle() -> weakref.ReferenceType[_Node]:
    return weakref.ref(_Node())


def test_cycles_wait_for_a_due_tick() -> None:
    assert gc.isenabled()
    with Deferred(young_s=3600, full_s=3600) as collection:
        assert not gc.isenabled()
        waiting = _cycle()
        collection.tick()
        assert waiting() is not None
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_due_tick_frees_young_cycles() -> None:
    with Deferred(young_s=0, full_s=3600) as collection:
        young = _cycle()
        collection.tick()
        assert young() is None


def test_a_due_full_tick_frees_old_cycles() -> None:
    with Deferred(young_s=3600, full_s=0) as collection:
        node = _Node()
        old = weakref.ref(node)
        gc.collect(1)  # survives into the oldest generation
        del node
        collection.tick()
        assert old() is None


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with Deferred():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
