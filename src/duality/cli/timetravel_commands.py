"""Time travel on the command line: ``duality history``, ``duality undo``, and the
printing behind ``duality table --as-of``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from duality.cli.common import CONTEXT_SETTINGS, log_option, out, say, warn
from duality.cli.log_options import log_properties_option, open_cli_log
from duality.cli.table_output import json_line, text
from duality.errors import ConfigError
from duality.log.base import Log
from duality.tables.asof import as_of
from duality.tables.history import Entry, entry_json, key_history
from duality.tables.points import show_offset, show_when
from duality.tables.query import Table
from duality.tables.undo import plan_undo

POINT = "OFFSET|ISO-TIME|LSN"
_OPS = {"c": "insert", "u": "update", "d": "delete", "r": "snapshot read", "t": "truncate",
        "": "record"}


def print_as_of(
    name: str, point: str, log: Log, store: str | None, batch_records: int,
    printer: Callable[[Table], None],
) -> None:
    """Compute the table ``name`` at ``point`` and hand it to ``printer``."""
    with as_of(name, point, log=log, store=store, batch_records=batch_records) as result:
        how = ("folded from the start of the topic" if result.method == "forward" else
               "walked back from the current table through later before-images")
        say(f"as of {point}: {result.cut.shown()}; {how} ({result.read} records read)")
        printer(result.table)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topic")
@log_option()
@click.option("--key", "key_text", required=True, metavar="JSON",
              help='The row\'s key as JSON, e.g. --key \'{"id": 1}\' (for a single-column '
                   "key, its value alone works too: --key 1).")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per change: {"partition", "offset", "op", "time", "lsn", '
                   '"txId", "key", "changed": {FIELD: {"old", "new"}}}; "unknown" lists '
                   'fields whose old value (for an insert: value) is not in the log.')
@log_properties_option()
def history(topic: str, log_url: str, key_text: str, as_json: bool,
            log_properties: tuple[str, ...]) -> None:
    """Print every change of one row of TOPIC, oldest first.

    Each change shows when it was committed (source time in UTC, LSN, txId), its op,
    and each field that changed as old → new, with values as `duality table --json`
    prints them; a primary-key change says where the row moved. Old values come from
    the row as its history built it, else from a whole before-image (REPLICA IDENTITY
    FULL); where neither is in the log (history compacted away), they are shown as ?.
    """
    key = _parse_key(key_text)
    with open_cli_log(log_url, log_properties, create=False) as log:
        found = key_history(topic, key, log=log)
        partitions = len(log.end_offsets(topic))
    for entry in found.entries:
        if as_json:
            out(json_line(entry_json(entry)))
        else:
            for line in entry_lines(entry, partitions):
                out(line)
    sys.stdout.flush()
    for note in dict.fromkeys(found.notes):
        warn(note)
    if not found.entries:
        removed = "" if found.removed is None else \
            f"; {found.removed}, and changes of the key may have been among them"
        sample = "" if found.sample_key is None else \
            f"; its keys look like {orjson.dumps(found.sample_key).decode()}"
        say(f"no change of topic {topic!r} has the key {key_text}{removed}{sample}")
    else:
        say(f"({len(found.entries)} change(s))")


def _parse_key(key_text: str) -> Any:
    try:
        return orjson.loads(key_text)
    except orjson.JSONDecodeError:
        raise ConfigError(
            f"--key {key_text!r} is not JSON; give the key as JSON, e.g. --key '{{\"id\": 1}}' "
            f"(a text key in quotes: --key '\"abc\"')"
        ) from None


def entry_lines(entry: Entry, partitions: int) -> list[str]:
    """A history entry for people: where and when, the op, each field old → new."""
    head = [show_offset(entry.partition, entry.offset, partitions),
            *show_when(entry.ts_us, entry.lsn, None if entry.tx is None else text(entry.tx))]
    head.append(_OPS.get(entry.op, entry.op))
    lines = ["  ".join(head)]
    for name, (old, new) in entry.changed.items():
        field = text(name)
        shown = "?" if name in entry.unknown else text(old)
        if entry.op in ("c", "r"):
            lines.append(f"    {field} = {text(new)}")
        elif entry.op in ("d", "t"):
            lines.append(f"    {field}: {shown} → (gone)")
        else:
            lines.append(f"    {field}: {shown} → {text(new)}")
    if entry.op in ("c", "r"):
        lines.extend(f"    {text(name)} = ?" for name in entry.unknown)
    if entry.moved_to is not None:
        lines.append(f"    moved to key {text(entry.moved_to)}")
    if entry.moved_from is not None:
        lines.append(f"    moved from key {text(entry.moved_from)}")
    if entry.note:
        lines.append(f"    ({entry.note})")
    return lines


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("topic")
@log_option()
@click.option("--since", required=True, metavar=POINT,
              help="Undo the changes after this point (the rows go back to how they were "
                   "then): an offset (N; P:N for each partition), a source commit time "
                   "(2024-05-01T12:00:00, UTC unless a zone is given) or an LSN (0/16B3748).")
@click.option("--until", metavar=POINT,
              help="Undo only the changes up to and including this point (default: up to "
                   "the end of the log).")
@click.option("--force", is_flag=True,
              help="Print the SQL even when rows of the window changed again after it "
                   "(running it overwrites those later changes).")
@log_properties_option()
def undo(topic: str, log_url: str, since: str, until: str | None, force: bool,
         log_properties: tuple[str, ...]) -> None:
    """Print the PostgreSQL SQL that reverts every change of TOPIC in a window.

    One statement per change, newest first, in one transaction: an insert is deleted,
    an update set back to its before-image, a delete inserted again, a primary-key
    change moved back. Identifiers are quoted and values are typed literals, whatever
    they hold. Nothing is run: review the SQL, then run it in the source, e.g.
    `psql SOURCE -v ON_ERROR_STOP=1 -f undo.sql`.

    Exit code 4, printing nothing, when the window cannot be undone exactly: an update
    or delete without a whole before-image (the source table's replica identity is not
    FULL: ALTER TABLE … REPLICA IDENTITY FULL), a truncate, snapshot reads, changes
    compacted away (min.compaction.lag.ms) or values the events do not hold exactly;
    and, unless --force, when a row of the window changed again after it.
    """
    with open_cli_log(log_url, log_properties, create=False) as log:
        plan = plan_undo(topic, since, log=log, until=until, force=force)
    for line in plan.sql():
        out(line)
    sys.stdout.flush()
    for note in sorted(plan.notes):
        warn(note)
    for later in plan.later:
        warn(f"--force: reverting overwrites a later change: {later}")
    say(f"({len(plan.statements)} statement(s) revert {plan.changes} change(s); review them, "
        f"then run them in the source, e.g. psql SOURCE -v ON_ERROR_STOP=1 -f undo.sql)")


COMMANDS = (history, undo)
