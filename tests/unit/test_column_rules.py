"""Masks and truncation that match the same column (README, "differs on purpose")."""

from __future__ import annotations

import pytest

from duality.sources.postgres.columns import ColumnRules

MASK = "column.mask.with.5.chars"
CUT = "column.truncate.to.3.chars"


@pytest.mark.parametrize(("order", "written"), [((CUT, MASK), "*****"), ((MASK, CUT), "***")])
def test_a_mask_and_a_truncation_both_apply_in_the_order_given(
    order: tuple[str, str], written: str
) -> None:
    """Debezium applies only the first matching rule, a truncation, and so writes the
    value unmasked; duality applies both, so the value is masked either way."""
    rules = ColumnRules.from_properties(dict.fromkeys(order, r"public\.t\.secret"))
    transform = rules.transform("public", "t", "secret", "string")
    assert transform is not None
    assert transform("hunter2-secret") == written
    assert rules.marks("public", "t", "secret") == {"masked": "true", "truncateLength": "3"}
