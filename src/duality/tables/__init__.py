"""Tables from the log: change topics folded into typed SQL tables, queried, followed
and aggregated.

The table store is one SQLite file (``sqlite:///path/tables.db``; by default beside the
log, ``log.db`` → ``log.tables.db``). See :mod:`duality.tables.api` for the Python API,
:mod:`duality.tables.fold` for what a change does to a table, and
:mod:`duality.runtime.materialize` for the apply loop.
"""

from __future__ import annotations

from duality.tables.aggregate_spec import AggregateSpec, Measure, parse_spec
from duality.tables.api import LiveTable, open_table
from duality.tables.derived import define as define_aggregate
from duality.tables.derived import drop as drop_aggregate
from duality.tables.query import Table, TableChange
from duality.tables.sqlite import TableInfo, TableStore

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
