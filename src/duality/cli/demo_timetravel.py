"""The time-travel part of ``duality demo``: a table as of an earlier point of the demo,
one row's history, and undoing a mistaken ``UPDATE`` without a ``WHERE`` in the
throwaway database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from duality.cli.common import out, say
from duality.cli.table_output import print_rows
from duality.cli.timetravel_commands import entry_lines
from duality.log.base import Log
from duality.tables.asof import as_of
from duality.tables.history import key_history
from duality.tables.undo import plan_undo

MISTAKE = "UPDATE tasks SET due = current_date"  # meant: ... WHERE title = 'Quarterly report'
TASKS_SQL = "SELECT id, title, due, done FROM tasks ORDER BY id"


def tour(
    log: Log, prefix: str, store_url: str, earlier: str, now: Callable[[], str],
    change: Callable[[str], None], query: Callable[[str], list[tuple[Any, ...]]], first: int,
) -> None:
    """Steps ``first`` … ``first + 2``. ``earlier`` is an ISO time before the workload;
    ``now()`` gives the current time, ``change(sql)`` runs SQL in the source and captures
    it, ``query(sql)`` reads the source."""
    accounts, tasks = f"{prefix}.public.accounts", f"{prefix}.public.tasks"
    say(f"{first}. Time travel: the accounts table as of {earlier}, before the workload "
        f"(duality table --as-of):")
    with as_of(accounts, earlier, log=log, store=store_url) as result:
        print_rows(result.table.columns, result.table.json_rows(), indent="   ")
    say(f"{first + 1}. One row's history, field by field (duality history --key "
        f"'{{\"id\": 1}}'):")
    for entry in key_history(accounts, {"id": 1}, log=log).entries:
        for line in entry_lines(entry, 1):
            out("   " + line)
    say(f"{first + 2}. A mistake: {MISTAKE!r} — the WHERE was forgotten, every task's due "
        f"date is overwritten. The undo SQL since just before it (duality undo --since), "
        f"applied in the source (tasks has REPLICA IDENTITY FULL, so every before-image is "
        f"whole):")
    mark = now()
    change(MISTAKE)
    _print_source(query, "after the mistake")
    script = "\n".join(plan_undo(tasks, mark, log=log).sql())
    for line in script.splitlines():
        out("   " + line)
    change(script)
    _print_source(query, "after running the undo SQL: as it was before")


def _print_source(query: Callable[[str], list[tuple[Any, ...]]], when: str) -> None:
    say(f"   tasks in the source, {when}:")
    rows = [dict(zip(("id", "title", "due", "done"), row, strict=True)) for row in query(TASKS_SQL)]
    shown = [orjson.loads(orjson.dumps(row, default=str)) for row in rows]
    print_rows(["id", "title", "due", "done"], shown, indent="   ")
