"""Tables from the log: change topics folded into typed SQL tables, queried, followed
and aggregated.

The table store is one SQLite file (``sqlite:///path/tables.db``; by default beside the
log, ``log.db`` → ``log.tables.db``). See :mod:`duality.tables.api` for the Python API,
:mod:`duality.tables.fold` for what a change does to a table, and
:mod:`duality.runtime.materialize` for the apply loop.

The names below are imported when first used: ``replicate`` and the log commands use
the package's decoding modules only, and importing the API would bring pydantic along
(80 ms of start-up, measured with ``python -X importtime``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duality.tables.aggregate_spec import AggregateSpec, Measure, parse_spec
    from duality.tables.api import LiveTable, open_table
    from duality.tables.derived import define as define_aggregate
    from duality.tables.derived import drop as drop_aggregate
    from duality.tables.query import Table, TableChange
    from duality.tables.sqlite import TableInfo, TableStore

#: Each public name: the module that defines it, and its name there.
_WHERE = {
    "AggregateSpec": ("aggregate_spec", "AggregateSpec"),
    "Measure": ("aggregate_spec", "Measure"),
    "parse_spec": ("aggregate_spec", "parse_spec"),
    "LiveTable": ("api", "LiveTable"),
    "open_table": ("api", "open_table"),
    "define_aggregate": ("derived", "define"),
    "drop_aggregate": ("derived", "drop"),
    "Table": ("query", "Table"),
    "TableChange": ("query", "TableChange"),
    "TableInfo": ("sqlite", "TableInfo"),
    "TableStore": ("sqlite", "TableStore"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where[0]}"), where[1])
    globals()[name] = value
    return value


__all__ = [
    "AggregateSpec",
    "LiveTable",
    "Measure",
    "Table",
    "TableChange",
    "TableInfo",
    "TableStore",
    "define_aggregate",
    "drop_aggregate",
    "open_table",
    "parse_spec",
]
