"""The public API of ``duality.tables`` is what ``__all__`` says, and all of it imports
(on first use: the package imports its modules lazily)."""

from __future__ import annotations

import types

import pytest

from duality import tables

#: Names the package module itself imports.
OWN_IMPORTS = {"annotations", "Any", "TYPE_CHECKING"}


def test_all_is_complete_and_importable() -> None:
    for name in tables.__all__:
        assert getattr(tables, name) is not None
    public = {
        name for name, value in vars(tables).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name not in OWN_IMPORTS
    }
    assert set(tables.__all__) == public


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'open_tables'"):
        _ = tables.open_tables
