"""The tables part of ``duality demo``: fold the captured topics into tables, query one,
keep an aggregate over another, and watch the aggregate follow a new change."""

from __future__ import annotations

from collections.abc import Callable

from duality.cli.common import say
from duality.cli.table_output import print_rows
from duality.log.base import Log
from duality.runtime.materialize import Materializer
from duality.tables.aggregate_spec import parse_spec
from duality.tables.derived import define
from duality.tables.query import Table, open_connection
from duality.tables.sqlite import TableStore


def aggregate_name(prefix: str) -> str:
    """``open_tasks_by_account``, with the run's own suffix when the topics have one (a
    store kept from an earlier run holds that run's aggregate)."""
    suffix = prefix.removeprefix("demo")
    return f"open_tasks_by_account{suffix}"


def tour(log: Log, prefix: str, store_url: str, change: Callable[[], None], first: int) -> None:
    """Steps ``first`` … ``first + 3`` of the demo; ``change`` makes one more source change
    and captures it."""
    accounts, tasks = f"{prefix}.public.accounts", f"{prefix}.public.tasks"
    aggregate = aggregate_name(prefix)
    with TableStore(store_url) as store:
        applier = Materializer(log, store, [accounts, tasks])
        say(f"{first}. Tables: each topic folds into a typed table (latest row per key; "
            f"decimals, dates and timestamps decoded) in {store_url}:")
        applier.catch_up()
        _show(store, accounts)
        say(f'{first + 1}. A query over the table: --where "balance > 100":')
        _show(store, accounts, "balance > 100")
        say(f"{first + 2}. An aggregate, kept current as the table changes: open tasks "
            f"per account, with the next due date:")
        with store.writing():
            define(store, parse_spec({
                "name": aggregate, "from": tasks, "group_by": ["account_id"],
                "select": ["count(*) as open_tasks", "min(due) as next_due"],
                "where": "NOT done",
            }))
        _show(store, aggregate)
        say(f"{first + 3}. One more change (Grace finishes her review); captured and "
            f"applied, the aggregate follows:")
        change()
        applier.catch_up()
        _show(store, aggregate)


def _show(store: TableStore, name: str, where: str | None = None) -> None:
    info = store.info(name)
    assert info is not None
    conn = open_connection(store.url)
    try:
        table = Table(conn, info)
        print_rows(table.columns, table.json_rows(where), indent="   ")
    finally:
        conn.close()
