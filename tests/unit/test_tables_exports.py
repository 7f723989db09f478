"""The public API of ``duality.tables`` is what ``__all__`` says, and all of it imports."""

from __future__ import annotations

import types

from duality import tables


def test_all_is_complete_and_importable() -> None:
    public = {
        name for name, value in vars(tables).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert set(tables.__all__) == public
    for name in tables.__all__:
        assert getattr(tables, name) is not None
