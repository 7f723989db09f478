"""``duality capture``: a database's changes into the log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from duality.cli.common import CONTEXT_SETTINGS, log_option, say, stderr, warn
from duality.cli.log_options import kafka_section, open_cli_log, split_log_properties
from duality.errors import ConfigError
from duality.log.config import parse_assignments
from duality.runtime.capture import Capture
from duality.sources.postgres.config import SNAPSHOT_MODES, load_config_file, parse_config

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--source",
    "source_dsn",
    metavar="DSN",
    help="PostgreSQL to capture: a libpq URI (postgresql://user:pw@host:5432/db) "
    "or key=value DSN; TLS options (sslmode, sslrootcert, ...) pass through.",
)
@click.option("--prefix", metavar="NAME", help="topic.prefix: topics are NAME.<schema>.<table>.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A Debezium PostgreSQL connector config (flat, or Kafka Connect's "
    '{"name", "config"}); flags given beside it override it.',
)
@log_option()
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="SCHEMA.TABLE",
    help="Capture only these tables, named exactly (the schema is what comes before the first "
    "dot; becomes a table.include.list entry); repeatable.",
)
@click.option(
    "--slot",
    metavar="NAME",
    help="slot.name (default: debezium). One slot per capture: a capture into another log, "
    "or with another prefix, needs a slot of its own.",
)
@click.option("--publication", metavar="NAME", help="publication.name (default: dbz_publication).")
@click.option(
    "--snapshot",
    "snapshot_mode",
    type=click.Choice(SNAPSHOT_MODES),
    help="snapshot.mode (default: initial).",
)
@click.option(
    "--property",
    "-p",
    "properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any connector property, e.g. -p decimal.handling.mode=string, or a Kafka log "
    "setting, e.g. -p kafka.security.protocol=SASL_SSL; repeatable.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Catch up to the WAL position read at start, make it durable, acknowledge, exit 0.",
)
def capture(
    source_dsn: str | None,
    prefix: str | None,
    config_file: Path | None,
    log_url: str,
    tables: tuple[str, ...],
    slot: str | None,
    publication: str | None,
    snapshot_mode: str | None,
    properties: tuple[str, ...],
    once: bool,
) -> None:
    """Capture a PostgreSQL database into the log as Debezium change events.

    Takes a consistent snapshot of the existing rows (op "r") through a new logical
    replication slot, then streams every committed change (pgoutput). Each table's
    events go to the topic <prefix>.<schema>.<table>; the position is stored in the
    log with the events, so after a crash nothing is lost or duplicated. Without
    --once, runs until SIGINT or SIGTERM and then stops cleanly.

    Exit codes: 2 configuration (wrong password, wal_level, privileges, a table name
    typo, a slot that streams to another capture), 3 database or log unavailable (or the
    slot still held by another process after slot.max.retries), 4 changes were lost (the
    slot was dropped, invalidated or consumed by another capture): re-run with
    --snapshot when_needed.
    """
    props = load_config_file(config_file) if config_file else {}
    props.update(parse_assignments(properties, "--property"))
    log_settings = kafka_section(config_file) if config_file else {}
    props.pop("kafka", None)
    flat, props = split_log_properties(props)
    log_settings.update(flat)
    overrides = {
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": publication,
        "snapshot.mode": snapshot_mode,
    }
    props.update({k: v for k, v in overrides.items() if v})
    if tables:
        props["table.include.list"] = ",".join(_exact(t) for t in tables)
    if not source_dsn and not any(k.startswith("database.") for k in props):
        raise ConfigError("give the database to capture: --source DSN, or --config FILE")
    config = parse_config(props, source=source_dsn, warn=warn)
    with open_cli_log(log_url, settings=log_settings) as log, _progress() as progress:
        runner = Capture(config, log, once=once, say=say, warn=warn, progress=progress)
        stats = runner.run_with_retries()
    say(
        f"captured {stats.snapshot_rows} snapshot row(s) and {stats.events} change(s) "
        f"in {stats.transactions} transaction(s)"
    )


def _exact(table: str) -> str:
    """``--table schema.table`` as a ``table.include.list`` entry matching that table
    alone: the list is regular expressions separated by commas, so every character that
    is not a letter, digit or ``_`` is written as its code (a comma or ``+`` in a name)."""
    if "." not in table:
        raise ConfigError(f"--table {table!r}: give schema.table, for example public.{table}")
    schema, name = table.split(".", 1)
    return f"{_literal(schema)}\\.{_literal(name)}"


def _literal(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else _code(ord(c)) for c in text)


def _code(point: int) -> str:
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


class _progress:
    """A progress bar per snapshot table on a terminal; nothing otherwise."""

    def __enter__(self) -> _progress:
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        if sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn

            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,} rows"),
                console=stderr(),
                transient=False,
            )
            self._bars.start()
        return self

    def __call__(self, table: str, done: int, total: int) -> None:
        if self._bars is None:
            return
        if table not in self._tasks:
            self._tasks[table] = self._bars.add_task(f"snapshot {table}", total=max(total, 1))
        self._bars.update(self._tasks[table], completed=done, total=max(total, done, 1))

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()


COMMANDS = (capture,)
