"""The compiled row-image functions equal the plain loops for any row."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from duality.sources.postgres.catalog import ColumnInfo
from duality.sources.postgres.columns import ColumnRules
from duality.sources.postgres.events import PENDING_US, EventBuilder, TxContext
from duality.sources.postgres.pgoutput import UNCHANGED_TOAST
from duality.sources.postgres.tables import build_codec
from duality.sources.postgres.types import BUILTIN_TYPES
from duality.sources.postgres.types_model import ValueSettings

TEXT = 25
INT4 = 23
COLUMNS = [
    ColumnInfo("id", INT4, -1, True, "integer"),
    ColumnInfo("a'b\"c", TEXT, -1, False, "text"),
    ColumnInfo("secret", TEXT, -1, False, "text"),
    ColumnInfo("n", INT4, -1, False, "integer"),
]
values = st.one_of(
    st.none(), st.just(UNCHANGED_TOAST), st.integers(-99, 99).map(lambda i: b"%d" % i)
)


def _codec(rules: ColumnRules) -> Any:
    return build_codec(
        prefix="p",
        schema="s",
        table="t",
        columns=COLUMNS,
        key_names=("id",),
        replica_identity="default",
        types=BUILTIN_TYPES,
        settings=ValueSettings(),
        placeholder="__unavailable",
        rules=rules,
    )


@given(st.lists(values, min_size=4, max_size=4))
def test_compiled_image_equals_the_loop(row: list[Any]) -> None:
    for rules in (
        ColumnRules(),
        ColumnRules.from_properties(
            {"column.exclude.list": "s.t.secret", "column.mask.with.3.chars": "s.t.a'b\"c"}
        ),
    ):
        codec = _codec(rules)
        assert codec.image(row) == codec.image_slow(row)
        assert codec.key_only_image(row) == codec.key_only_image_slow(row)


WIDE = [
    ColumnInfo("id", INT4, -1, True, "integer"),
    ColumnInfo("k\u00e9y 2", TEXT, -1, True, "text"),
    ColumnInfo("name", TEXT, -1, True, "text", "'dflt'::text"),
    ColumnInfo("note", TEXT, -1, False, "text"),
    ColumnInfo("n", INT4, -1, True, "integer"),
]
#: (key columns, column rules): the joined-JSON path applies to the first three; the
#: others fall back to the image (key not leading, a masked key, a key out of order).
KEY_LAYOUTS = [
    (("id",), ColumnRules()),
    (("id", "k\u00e9y 2"), ColumnRules()),
    (("id",), ColumnRules.from_properties({"column.exclude.list": "s.t.note"})),
    (("n",), ColumnRules()),
    (("id",), ColumnRules.from_properties({"column.mask.with.3.chars": "s.t.name"})),
    (("k\u00e9y 2", "id"), ColumnRules()),
]
old_values = st.one_of(
    st.none(), st.just(UNCHANGED_TOAST), st.integers(-99, 99).map(lambda i: b"%d" % i)
)


def _wide_codec(keys: tuple[str, ...], rules: ColumnRules) -> Any:
    return build_codec(
        prefix="p",
        schema="s",
        table="t",
        columns=WIDE,
        key_names=keys,
        replica_identity="default",
        types=BUILTIN_TYPES,
        settings=ValueSettings(),
        placeholder="__unavailable",
        rules=rules,
    )


@given(st.lists(old_values, min_size=5, max_size=5), st.booleans())
def test_an_insert_or_update_keyed_by_the_sent_text_equals_the_encoded_key(
    new: list[Any], pending: bool
) -> None:
    builder = EventBuilder("p", "db")
    tx = TxContext(7, PENDING_US if pending else 1_700_000_000_000_000, 40)
    for keys, rules in KEY_LAYOUTS:
        codec = _wide_codec(keys, rules)
        after = codec.image(new)
        key = codec.key_json(new)
        assert builder.insert(codec, after, tx, 41, None, key) == builder.insert(
            codec, after, tx, 41, None
        )
        assert builder.update(codec, None, after, tx, 41, None, key) == builder.update(
            codec, None, after, tx, 41, None
        )


@given(st.lists(old_values, min_size=5, max_size=5), st.booleans(), st.booleans())
def test_a_key_only_delete_joined_as_json_equals_the_encoded_image(
    old: list[Any], pending: bool, tombstones: bool
) -> None:
    builder = EventBuilder("p", "db", tombstones=tombstones)
    tx = TxContext(7, PENDING_US if pending else 1_700_000_000_000_000, 40)
    block = {"id": "7:40", "total_order": 2, "data_collection_order": 1}
    for keys, rules in KEY_LAYOUTS:
        codec = _wide_codec(keys, rules)
        # as drawn, and as the replica identity index sends it: nulls but for the key
        key_only = [v if c.name in keys else None for c, v in zip(WIDE, old, strict=True)]
        for row in (old, key_only):
            joined = builder.delete_key_only(codec, row, tx, 41, block)
            encoded = builder.delete(codec, codec.key_only_image_slow(row), tx, 41, block)
            assert joined == encoded
