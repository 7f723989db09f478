"""``duality replicate``: change topics applied to a target database."""

from __future__ import annotations

import click

from duality.cli.common import CONTEXT_SETTINGS, log_option, say, warn
from duality.cli.log_options import log_properties_option, open_cli_log
from duality.runtime.replicate import BATCH_RECORDS, SESSIONS, Replicator
from duality.sinks.naming import Naming


@click.command(context_settings=CONTEXT_SETTINGS)
@log_option()
@click.option("--target", "target_url", required=True, envvar="DUALITY_TARGET", metavar="DSN",
              help="The target database: postgresql://user:password@host:5432/dbname (or a "
                   "libpq key=value DSN), or sqlite:///path/to/replica.db (env: DUALITY_TARGET).")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC",
              help="Apply this change topic; repeatable. Default: every change topic of the "
                   "log (message, transaction and heartbeat topics are never applied).")
@click.option("--once", is_flag=True,
              help="Apply every record in the log now, then exit 0.")
@click.option("--map", "maps", multiple=True, metavar="SOURCE=TARGET",
              help="Send a source table (schema.table) or a whole source schema elsewhere, "
                   "e.g. --map public.accounts=crm.customers or --map public=replica; "
                   "repeatable. Quote names with dots: '\"my.schema\".t=public.t'.")
@click.option("--table-prefix", default="", metavar="TEXT",
              help="Put TEXT before every target table name, e.g. --table-prefix src_.")
@click.option("--transactions", is_flag=True,
              help="Apply each source transaction atomically, across tables, using the "
                   "<topic.prefix>.transaction topic (capture must run with "
                   "-p provide.transaction.metadata=true).")
@click.option("--from-beginning", is_flag=True,
              help="Apply every record again from the start of each topic (the stored "
                   "offsets are reset); rows whose stored position is newer are left as "
                   "they are, so the target ends where it was.")
@click.option("--group", metavar="NAME",
              help="Run as one member of the replicate group NAME (a Kafka consumer group): "
                   "each member applies a share of the topics' partitions to the same "
                   "PostgreSQL target, and the shares move when a member joins or leaves. "
                   "Offsets are the target's; the group's are a hint. Not with --once or "
                   "--transactions.")
@click.option("--sessions", type=click.IntRange(1, 64), default=SESSIONS, show_default=True,
              help="PostgreSQL target: apply each batch's streamed changes over this many "
                   "sessions at once, each a run of its records (each session commits its "
                   "share; the offsets commit last, so a crash between them only makes the "
                   "batch apply again, every row's position skipping what was done). 1: one "
                   "session, one transaction per batch. --transactions and --group always use one.")
@log_properties_option()
@click.option("--batch-size", type=click.IntRange(1), default=BATCH_RECORDS, hidden=True,
              help="Records applied per target transaction (the first batches of a run: "
                   "an eighth of it, doubling).")
def replicate(
    log_url: str, target_url: str, topics: tuple[str, ...], once: bool, maps: tuple[str, ...],
    table_prefix: str, transactions: bool, from_beginning: bool, group: str | None,
    sessions: int, log_properties: tuple[str, ...], batch_size: int,
) -> None:
    """Apply change topics of the log to a target database (PostgreSQL or SQLite).

    Each topic goes to the table named by its events' source.schema and source.table
    (created from the log's schemas when missing; new source columns are added,
    dropped ones become nullable, widened types are altered). Creates, snapshot reads
    and updates upsert, deletes and tombstones delete, truncates empty the table, a
    primary-key change moves the row, and an unchanged-TOAST placeholder keeps the
    target's value. Rows, each row's source position and the applied offsets are
    committed together, so a crash or a replay never applies a change twice and no
    row moves backwards. Without --once, keeps applying as the log grows until
    SIGINT or SIGTERM.

    Exit codes: 2 configuration (wrong password, a role that may not write, a target
    table that exists with other columns), 3 target or log unavailable after retries
    (--once gives up after 30 s; otherwise retried forever with backoff), 4 the
    transaction metadata does not match the topics (--transactions), 5 a record cannot
    be applied (the message names topic, partition, offset and key; the offset is not
    advanced).
    """
    naming = Naming.parse(maps, table_prefix)
    with open_cli_log(log_url, log_properties, create=False) as log:
        replicator = Replicator(
            log, target_url, topics=topics, once=once, naming=naming,
            transactions=transactions, from_beginning=from_beginning, group=group,
            batch_records=batch_size, say=say, warn=warn, sessions=sessions,
        )
        stats = replicator.run_with_retries()
    notes = ""
    if stats.null_keys:
        notes += f"; {stats.null_keys} record(s) with a null key were skipped"
    say(f"applied {stats.records} record(s) of {len(stats.topics)} topic(s) in "
        f"{stats.batches} batch(es){notes}")


COMMANDS = (replicate,)
