"""The decoder's fast path folds a batch exactly as the general path does: random runs of
creates, updates, deletes and tombstones (the one after each delete, and lone ones),
split into batches at random points with the delete carried across, give the same
collapsed rows, kept rows, carried keys and counts either way; and fed in slices (as
replicate feeds a batch, to let its applier thread run) as in one call."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from duality.events.model import Record
from duality.events.schema import RecordSchema, TableMeta
from duality.sources.postgres.record_schema import table_record_schema
from duality.tables.batch import Pending
from duality.tables.decode import TableView, TopicDecoder
from duality.tables.shape import EMPTY, shape_from_schema

TOPIC = "t.public.items"
SCHEMA_ID = 7
COLUMNS = [
    ("id", {"type": "int32", "optional": False}),
    ("name", {"type": "string", "optional": True}),
    ("qty", {"type": "int64", "optional": True}),
]
SCHEMA = table_record_schema(
    TOPIC, COLUMNS, ["id"],
    TableMeta(table="public.items", source_types={}, primary_key=("id",), key_columns=("id",),
              replica_identity="default"),
)


def _schemas(schema_id: int) -> RecordSchema:
    assert schema_id == SCHEMA_ID
    return SCHEMA


def _records(steps: list[tuple[str, int]]) -> list[Record]:
    out: list[Record] = []
    lsn = 1000
    for op, key in steps:
        lsn += 8
        key_bytes = orjson.dumps({"id": key})
        if op == "tombstone":
            out.append(Record(TOPIC, 0, len(out), 0, key_bytes, None, (), None))
            continue
        row = {"id": key, "name": f"n{lsn}", "qty": lsn}
        value: dict[str, Any] = {
            "before": row if op == "d" else None, "after": None if op == "d" else row,
            "source": {"lsn": lsn, "schema": "public", "table": "items"}, "op": op,
        }
        out.append(Record(TOPIC, 0, len(out), 0, key_bytes, orjson.dumps(value), (), SCHEMA_ID))
        if op == "d":
            out.append(Record(TOPIC, 0, len(out), 0, key_bytes, None, (), None))
    return out


def _fold(decoder: TopicDecoder, batches: list[list[Record]], size: int = 0) -> list[Any]:
    """Each batch fed in one call, or with ``size`` in slices of that many records."""
    seen: list[Any] = []
    carry: dict[int, bytes | None] = {}
    for batch in batches:
        decoder.counts.carry = dict(carry)
        pending, index = Pending(), 0
        while index < len(batch):
            stop = index + size if size else -1
            start = index
            index, barrier = decoder.feed(batch, index, pending, stop)
            assert barrier is None
            assert index == (min(stop, len(batch)) if size else len(batch)) and index > start
        carry = dict(decoder.counts.carry)
        seen.append((pending.ordered, pending.winners, pending.kept, carry,
                     decoder.counts.null_keys))
    return seen


steps = st.lists(st.tuples(st.sampled_from(["c", "u", "d", "r", "tombstone"]),
                           st.integers(1, 4)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(steps, st.lists(st.integers(0, 40), max_size=4))
def test_fast_path_folds_as_the_general_path(run: list[tuple[str, int]], cuts: list[int]) -> None:
    records = _records(run)
    points = sorted({min(c, len(records)) for c in cuts})
    batches = [records[a:b] for a, b in zip([0, *points], [*points, len(records)], strict=True)]
    shape = shape_from_schema(SCHEMA, EMPTY)

    def decoder(fast: bool) -> TopicDecoder:
        return TopicDecoder(TOPIC, TableView(shape, SCHEMA_ID, None, None), _schemas, fast=fast)

    assert _fold(decoder(True), batches) == _fold(decoder(False), batches)


@settings(max_examples=200, deadline=None)
@given(steps, st.lists(st.integers(0, 40), max_size=3), st.integers(1, 5), st.booleans())
def test_feeding_in_slices_folds_as_one_call(
    run: list[tuple[str, int]], cuts: list[int], size: int, fast: bool
) -> None:
    records = _records(run)
    points = sorted({min(c, len(records)) for c in cuts})
    batches = [records[a:b] for a, b in zip([0, *points], [*points, len(records)], strict=True)]
    shape = shape_from_schema(SCHEMA, EMPTY)

    def decoder() -> TopicDecoder:
        return TopicDecoder(TOPIC, TableView(shape, SCHEMA_ID, None, None), _schemas, fast=fast)

    assert _fold(decoder(), batches, size) == _fold(decoder(), batches)
