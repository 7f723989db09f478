"""``capture --table schema.table``: the table.include.list entry it becomes matches that
table's name and no other, whatever characters the name holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from duality.cli.capture_commands import _exact
from duality.sources.postgres.columns import compile_patterns

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@given(names.filter(lambda s: "." not in s), names, names.filter(lambda s: "." not in s),
       names)
def test_a_table_option_matches_its_table_alone(
    schema: str, table: str, other_schema: str, other_table: str
) -> None:
    (pattern,) = compile_patterns(_exact(f"{schema}.{table}"), "table.include.list")
    assert pattern.fullmatch(f"{schema}.{table}")
    if (other_schema, other_table) != (schema, table):
        assert not pattern.fullmatch(f"{other_schema}.{other_table}")


def test_names_with_pattern_characters() -> None:
    (pattern,) = compile_patterns(_exact("public.a.b"), "table.include.list")
    assert pattern.fullmatch("public.a.b") and not pattern.fullmatch("public.axb")
    assert len(compile_patterns(_exact("public.x,y"), "table.include.list")) == 1
