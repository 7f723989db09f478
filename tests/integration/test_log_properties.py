"""Property: any sequence of appends and compactions, folded per key, equals the fold
of the same appends without compaction; offsets never repeat or change."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog

T0 = 1_700_000_000_000

appends = st.lists(
    st.tuples(st.integers(0, 6), st.one_of(st.none(), st.integers(0, 99)), st.integers(0, 50)),
    min_size=1,
    max_size=12,
).map(lambda items: ("append", items))
compactions = st.integers(0, 200).map(lambda advance: ("compact", advance))
programs = st.lists(st.one_of(appends, compactions), max_size=14)


def fold(pairs: list[tuple[bytes | None, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in pairs:
        assert key is not None
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


@given(
    program=programs,
    partitions=st.integers(1, 3),
    lag=st.sampled_from([0, 20, 100]),
    retention=st.sampled_from([0, 30, 10_000]),
)
def test_compaction_never_changes_the_fold(
    program: list[tuple[str, Any]], partitions: int, lag: int, retention: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp, SqliteLog(f"sqlite://{Path(tmp) / 'l.db'}") as log:
        log.create_topic(
            "t",
            partitions,
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": str(lag),
                "delete.retention.ms": str(retention),
            },
        )
        clock = T0
        written: list[tuple[bytes | None, bytes | None]] = []
        seen_offsets: dict[tuple[int, int], bytes | None] = {}
        for kind, arg in program:
            if kind == "append":
                batch = []
                for key, value, step in arg:
                    clock += step
                    k = b'{"k":%d}' % key
                    v = None if value is None else b'{"v":%d}' % value
                    batch.append(NewRecord("t", k, v, timestamp=clock))
                    written.append((k, v))
                log.append(batch)
                log.flush()
            else:
                clock += arg
                log.compact("t", now=clock)
            stored = [r for p in range(partitions) for r in log.read("t", p, 0, 10_000)]
            for r in stored:  # a surviving record never moves or changes
                assert seen_offsets.setdefault((r.partition, r.offset), r.value) == r.value
            stored.sort(key=lambda r: (r.partition, r.offset))
            assert fold([(r.key, r.value) for r in stored]) == fold(written)
        assert sum(log.end_offsets("t").values()) == len(written)
