"""The compiled row-image functions equal the plain loops for any row."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from duality.sources.postgres.catalog import ColumnInfo
from duality.sources.postgres.columns import ColumnRules
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
