"""``duality table`` and ``duality aggregate``: tables folded from the log."""

from __future__ import annotations

import signal
import sqlite3
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click
import orjson

from duality.cli.common import CONTEXT_SETTINGS, log_option, out, say
from duality.cli.log_options import log_properties_option, open_cli_log
from duality.cli.table_output import change_json, change_text, json_line, print_rows
from duality.cli.timetravel_commands import print_as_of
from duality.errors import ConfigError
from duality.runtime.materialize import BATCH_RECORDS, Materializer
from duality.tables import derived
from duality.tables.aggregate_spec import AggregateSpec, parse_spec
from duality.tables.api import LiveTable, open_table, store_url_for
from duality.tables.journal import Entry
from duality.tables.predicate import Probe
from duality.tables.query import Table
from duality.tables.sqlite import TableStore

STORE_HELP = (
    "The table store: sqlite:///path/to/tables.db. Default: beside the log, its name "
    "ending in .tables.db instead of .db (log.db → log.tables.db)."
)


def store_option() -> Callable[[Any], Any]:
    return click.option("--store", "store_url", metavar="URL", envvar="DUALITY_STORE",
                        help=STORE_HELP + " (env: DUALITY_STORE)")


def batch_option() -> Callable[[Any], Any]:
    return click.option("--batch-size", type=click.IntRange(1), default=BATCH_RECORDS,
                        hidden=True, help="Records applied per store transaction.")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name", metavar="TOPIC")
@log_option()
@store_option()
@click.option("--where", metavar="SQL",
              help="Only rows for which this SQL predicate over the columns holds, e.g. "
                   "\"balance > 100 AND owner LIKE 'A%'\". One read-only predicate: writes, "
                   "several statements and other tables are refused.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per row: integers and floats as numbers, decimals as "
                   "strings, times as ISO-8601 strings, bytes as base64.")
@click.option("--follow", "-f", is_flag=True,
              help="After printing the table, keep applying and print each change as it is "
                   "applied: op, key and the changed columns (a push query).")
@click.option("--as-of", "as_of", metavar="OFFSET|ISO-TIME|LSN",
              help="Print the table as it was at this point instead: an offset (N; P:N for each "
                   "partition, e.g. 0:41,1:17), a source commit time (2024-05-01T12:00:00, "
                   "UTC unless a zone is given) or a PostgreSQL LSN (0/16B3748). Exit code 4 "
                   "when the history it needs is not in the log (see `duality history`).")
@log_properties_option()
@batch_option()
def table(
    name: str, log_url: str, store_url: str | None, where: str | None, as_json: bool,
    follow: bool, as_of: str | None, log_properties: tuple[str, ...], batch_size: int,
) -> None:
    """Fold TOPIC into a typed table and print it.

    Applies every record of TOPIC that the table store has not applied yet (Debezium
    change events, flattened rows or plain key/value records), then prints the rows
    in key order. TOPIC may also name an aggregate (see `duality aggregate`).

    The table keeps the latest row per key: creates, snapshot reads and updates
    upsert, deletes and tombstones delete, truncates empty it; columns and types come
    from the log's schemas. Rows and the applied offsets are committed together, so
    running again only applies what is new. Exit code 5: a record cannot be applied
    (the message names topic, partition, offset and key).

    With --as-of, the table as it was at an earlier point: folded from the start of
    the topic, or walked back from the current table through the before-images of
    later changes, whichever reads fewer records.
    """
    if as_of is not None:
        if follow:
            raise ConfigError("--as-of prints the table at one point; it cannot --follow")
        with open_cli_log(log_url, log_properties, create=False) as log:
            print_as_of(name, as_of, log, store_url, batch_size,
                        lambda table: _print_table(table, where, as_json))
        return
    with open_cli_log(log_url, log_properties, create=False) as log, \
            open_table(name, log=log, store=store_url, batch_records=batch_size) as live:
        _print_table(live, where, as_json)
        if follow:
            _follow(live, where, as_json)


def _print_table(live: Table, where: str | None, as_json: bool) -> None:
    if as_json:
        for row in live.json_rows(where):
            out(json_line(row))
        sys.stdout.flush()
        return
    count = print_rows(live.columns, live.json_rows(where))
    info = live.info
    notes = f"({count} row{'s' if count != 1 else ''})"
    if info.null_keys:
        notes += f"; {info.null_keys} record(s) with a null key were skipped"
    sys.stdout.flush()
    say(notes)


def _follow(live: LiveTable, where: str | None, as_json: bool) -> None:
    probes: dict[Any, Probe] = {}
    with _stop_on_signals() as stopped:
        for entry in live.entries(follow=True, stop=stopped):
            if where and entry.op != "t" and not _matches(live, probes, where, entry):
                continue
            line = change_json(live.name, entry.op, live.render(entry.key),
                               live.render(entry.before), live.render(entry.after))
            out(json_line(line) if as_json else change_text(line))
            sys.stdout.flush()


def _matches(live: LiveTable, probes: dict[Any, Probe], where: str, entry: Entry) -> bool:
    """Whether the row matched ``where`` before or after the change (a probe table of
    the table's current shape answers)."""
    if live.shape not in probes:
        probes.clear()
        probes[live.shape] = Probe(sqlite3.connect(":memory:"), "follow", live.shape.columns)
    rows = [live.full_row(entry, image) for image in (entry.before, entry.after) if image]
    return bool(probes[live.shape].matching(where, rows))


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM end ``--follow`` after the batch being applied commits."""
    flag = {"stop": False}

    def handler(_signum: int, _frame: FrameType | None) -> None:
        flag["stop"] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: flag["stop"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name", required=False)
@log_option()
@store_option()
@click.option("--from", "source", metavar="TOPIC", help="The table to aggregate.")
@click.option("--group-by", "group_by", multiple=True, metavar="COLUMN",
              help="Group rows by this column; repeatable.")
@click.option("--select", "select", multiple=True, metavar="FUNCTION(COLUMN) [as NAME]",
              help="count(*), count(col), sum(col), avg(col), min(col) or max(col), "
                   "optionally 'as NAME'; repeatable.")
@click.option("--where", metavar="SQL",
              help="Aggregate only rows for which this predicate over one row holds.")
@click.option("--spec", "spec_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Define the aggregates of a TOML or JSON file (see the README).")
@click.option("--drop", is_flag=True, help="Remove the aggregate NAME from the store.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON objects.")
@log_properties_option()
@batch_option()
def aggregate(
    name: str | None, log_url: str, store_url: str | None, source: str | None,
    group_by: tuple[str, ...], select: tuple[str, ...], where: str | None,
    spec_file: Path | None, drop: bool, as_json: bool, log_properties: tuple[str, ...],
    batch_size: int,
) -> None:
    """Define an aggregate over a table, kept current as the table changes, and print it.

    For example, `duality aggregate balances --from shop.public.accounts --group-by owner
    --select 'count(*) as accounts' --select 'sum(balance) as total'`. Each row's before
    and after images move it between groups, so updates and deletes are subtracted
    exactly; min/max are read again only for the groups that need it. The aggregate is
    a table of its own, read with `duality table NAME` like any other (--follow too).
    """
    specs = _specs(name, source, group_by, select, where, spec_file, drop)
    for spec in specs:  # before applying anything, or defining the others
        derived.check_name(spec.name)
    with open_cli_log(log_url, log_properties, create=False) as log:
        with TableStore(store_url_for(log, store_url)) as store:
            if drop:
                assert name is not None
                with store.writing(f"dropping aggregate {name!r}"):
                    derived.drop(store, name)
                say(f"aggregate {name!r} dropped")
                return
            topics = sorted({s.source for s in specs})
            Materializer(log, store, topics, batch_records=batch_size).catch_up()
            for spec in specs:
                with store.writing(f"defining aggregate {spec.name!r}"):
                    derived.define(store, spec)
        for spec in specs:
            with open_table(spec.name, log=log, store=store_url) as live:
                if len(specs) > 1 and not as_json:
                    say(f"{spec.name}:")
                _print_table(live, None, as_json)


def _specs(
    name: str | None, source: str | None, group_by: tuple[str, ...], select: tuple[str, ...],
    where: str | None, spec_file: Path | None, drop: bool,
) -> list[AggregateSpec]:
    inline = bool(source or group_by or select or where)
    if drop:
        if not name or inline or spec_file:
            raise ConfigError("--drop takes the aggregate's NAME and nothing else")
        return []
    if spec_file is not None:
        if inline or name:
            raise ConfigError("give either --spec FILE or NAME --from TOPIC --select …, not both")
        return load_specs(spec_file)
    if not name or not source or not select:
        raise ConfigError("define an aggregate with NAME --from TOPIC --select "
                          "'FUNCTION(COLUMN)' (or --spec FILE); see --help")
    return [parse_spec({"name": name, "from": source, "group_by": list(group_by),
                        "select": list(select), "where": where})]


def load_specs(path: Path) -> list[AggregateSpec]:
    """Aggregates of a spec file: TOML tables ``[aggregates.NAME]`` (or the same as JSON,
    ``{"aggregates": {"NAME": {...}}}``) with ``from``, ``group_by``, ``select``, ``where``."""
    try:
        raw = path.read_bytes()
        data = orjson.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except OSError as exc:
        raise ConfigError(f"cannot read aggregate spec {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"aggregate spec {path} is not valid: {exc}") from None
    entries = data.get("aggregates") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"aggregate spec {path} defines nothing; write tables "
                          f"[aggregates.NAME] with from, group_by, select and where")
    specs = []
    for key, value in entries.items():
        try:
            fields = value if isinstance(value, dict) else {}
            if fields.get("name", key) != key:
                raise ConfigError(f"its name is the table's key {key!r}: leave out name = "
                                  f"{fields['name']!r}, or rename the table")
            specs.append(parse_spec({**fields, "name": key}))
        except ConfigError as exc:
            raise ConfigError(f"aggregate spec {path}, [aggregates.{key}]: {exc.message}") from None
    return specs


COMMANDS = (table, aggregate)
