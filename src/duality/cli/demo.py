"""``duality demo``: a zero-setup tour on a throwaway PostgreSQL.

Starts a private PostgreSQL (the machine's server binaries; as root it runs as an
unprivileged account), creates a small schema — accounts, meeting notes, tasks due this
week, next week and this month — captures it (snapshot), runs a workload, captures
again (streaming), shows the change events, and compacts the log; then the tables, time
travel and replicate tours (``demo_tables``, ``demo_timetravel``, ``demo_replicate``).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from duality.cli import demo_replicate, demo_tables, demo_timetravel
from duality.cli.common import CONTEXT_SETTINGS, out, say
from duality.cli.log_options import log_properties_option, open_cli_log
from duality.log.base import Log, TopicInfo
from duality.log.reading import StartAt, TopicReader
from duality.runtime.capture import Capture
from duality.sources.postgres.config import parse_config
from duality.sources.postgres.throwaway import ThrowawayPostgres
from duality.tables.store_file import default_store_url

SCHEMA = """
CREATE TABLE accounts (
    id serial PRIMARY KEY, owner text NOT NULL, email text NOT NULL,
    balance numeric(12,2) NOT NULL DEFAULT 0, opened_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE meeting_notes (
    id serial PRIMARY KEY, title text NOT NULL, body text, held_at timestamptz NOT NULL,
    attendees text[] NOT NULL DEFAULT '{}');
CREATE TABLE tasks (
    id serial PRIMARY KEY, title text NOT NULL, due date NOT NULL,
    done boolean NOT NULL DEFAULT false, account_id int REFERENCES accounts);
ALTER TABLE tasks REPLICA IDENTITY FULL;
INSERT INTO accounts (owner, email, balance) VALUES
    ('Ada Lovelace', 'ada@example.com', 1200.00),
    ('Grace Hopper', 'grace@example.com', 830.50),
    ('Edsger Dijkstra', 'edsger@example.com', 45.25);
INSERT INTO meeting_notes (title, body, held_at, attendees) VALUES
    ('Kick-off', 'Scope agreed; capture first, tables next.', now() - interval '2 days',
     '{Ada,Grace}'),
    ('Retro', 'Keep the log simple.', now() - interval '1 day', '{Edsger,Ada}');
INSERT INTO tasks (title, due, account_id) VALUES
    ('Send invoice', current_date + 2, 1),
    ('Review capture design', current_date + 9, 2),
    ('Quarterly report',
     date_trunc('month', current_date)::date + interval '1 month' - interval '1 day', 3);
"""

WORKLOAD = [
    # A payment: one transaction, two accounts.
    "BEGIN; UPDATE accounts SET balance = balance - 100 WHERE id = 1; "
    "UPDATE accounts SET balance = balance + 100 WHERE id = 3; COMMIT",
    "UPDATE tasks SET done = true WHERE title = 'Send invoice'",
    "INSERT INTO tasks (title, due, account_id) "
    "VALUES ('Plan next sprint', current_date + 6, 2)",
    "DELETE FROM meeting_notes WHERE title = 'Retro'",
    "INSERT INTO accounts (owner, email, balance) "
    "VALUES ('Barbara Liskov', 'barbara@example.com', 10)",
]
REVIEW_DONE = "UPDATE tasks SET done = true WHERE title = 'Review capture design'"


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Write the demo's log into this directory and keep it (run again into "
                   "the same directory, the demo starts afresh under a prefix of its own).")
@click.option("--log", "log_url", metavar="URL",
              help="Capture into this log instead of a new embedded one, e.g. "
                   "kafka://localhost:9092 (topics get a fresh demo_<id> prefix).")
@log_properties_option()
def demo(keep: Path | None, log_url: str | None, log_properties: tuple[str, ...]) -> None:
    """A zero-setup tour: capture a throwaway PostgreSQL into the log.

    Starts a private PostgreSQL (initdb in a temporary directory, a free loopback
    port), creates accounts, meeting notes and tasks, captures a snapshot, runs a small
    workload, captures the changes, prints the change events and compacts the log; then
    folds the topics into tables, queries one, and keeps an aggregate over another as a
    new change arrives; then shows a table as of before the workload, one row's history,
    and the SQL that undoes a mistaken UPDATE without a WHERE, applied in the database;
    last, replicates the log into a second database and checks that source and target
    agree. The server and its files are removed at the end.
    """
    prefix = "demo"
    directory = None
    if log_url is None:
        directory = keep or Path(tempfile.mkdtemp(prefix="duality-demo-"))
        directory.mkdir(parents=True, exist_ok=True)
        log_url = f"sqlite://{directory / 'demo-log.db'}"
    if directory is None or (directory / "demo-log.db").exists():
        # A shared log, or one an earlier run kept, holds earlier runs' topics and
        # positions (of a server that is gone): start afresh under a prefix of its own.
        prefix = f"demo_{uuid.uuid4().hex[:6]}"
    say("1. Starting a throwaway PostgreSQL (wal_level=logical) ...")
    with ThrowawayPostgres() as pg:
        if pg.notice:
            say(f"   note: {pg.notice}")
        pg.create_database("demo")
        pg.execute(SCHEMA, dbname="demo")
        # Decimals as strings make the events easy to read; Debezium's default is bytes.
        config = parse_config(
            {"topic.prefix": prefix, "decimal.handling.mode": "string"}, source=pg.url("demo")
        )
        say(f"   database {pg.url('demo')}, log {log_url}")
        with open_cli_log(log_url, log_properties) as log:
            say("2. Capture: a consistent snapshot through a new replication slot (op r):")
            _capture(config, log)
            _show(log, prefix, snapshot=True)
            say("3. A workload: a payment between two accounts in one transaction, a task "
                "done, a task added, a note deleted, an account opened.")
            before_workload = _now()
            for statement in WORKLOAD:
                pg.execute(statement, dbname="demo")
            say("4. Capture again: every committed change, per topic in commit order, with "
                "the before image where PostgreSQL logs it (tasks: REPLICA IDENTITY FULL):")
            _capture(config, log)
            _show(log, prefix, snapshot=False)
            say("5. Change topics are compacted to the latest record per key, after keeping "
                "a week of history (min.compaction.lag.ms):")
            for info in _topics(log, prefix):  # (the demo's topics only: a shared log
                log.compact(info.name)  # may hold the user's own)
            for info in _topics(log, prefix):
                out(f"   {info.name}: {info.records} record(s), "
                    f"cleanup.policy={info.config.cleanup_policy}")

            def review_done() -> None:
                pg.execute(REVIEW_DONE, dbname="demo")
                _capture(config, log)

            store_dir = directory or Path(tempfile.mkdtemp(prefix="duality-demo-"))
            store_url = default_store_url(store_dir / "demo-log.db")
            demo_tables.tour(log, prefix, store_url, review_done, 6)

            def change(sql: str) -> None:
                pg.execute(sql, dbname="demo")
                _capture(config, log)

            def query(sql: str) -> list[tuple[Any, ...]]:
                with psycopg.connect(pg.dsn("demo")) as conn:
                    return conn.execute(sql.encode()).fetchall()

            demo_timetravel.tour(log, prefix, store_url, before_workload, _now, change, query,
                                 10)
            pg.create_database("replica")
            demo_replicate.tour(log, prefix, pg.url("demo"), pg.url("replica"), 13)
    _explore(prefix, log_url, store_url, before_workload)
    if keep is None and directory is not None:
        say(f"(the log is in {directory}; remove it when done)")


def _explore(prefix: str, log_url: str, store_url: str, earlier: str) -> None:
    say(f"Explore: duality topics --log {log_url}")
    say(f"         duality tail {prefix}.public.accounts --log {log_url} --from-beginning")
    say(f"         duality table {prefix}.public.accounts --log {log_url} --store {store_url} "
        f"--where 'balance > 100'")
    say(f"         duality table {demo_tables.aggregate_name(prefix)} --log {log_url} "
        f"--store {store_url} --follow")
    say(f"         duality table {prefix}.public.accounts --log {log_url} --store {store_url} "
        f"--as-of '{earlier}'")
    say(f"         duality history {prefix}.public.accounts --log {log_url} --key '{{\"id\": 1}}'")
    say(f"         duality undo {prefix}.public.tasks --log {log_url} --since '{earlier}'")
    say(f"         duality replicate --log {log_url} --target postgresql://USER@HOST/DBNAME "
        f"--once")


def _now() -> str:
    """The current time, ISO 8601 in UTC, a moment after the last change (commit times are
    taken by the server's clock: a few milliseconds keep them apart)."""
    time.sleep(0.01)
    moment = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    time.sleep(0.01)
    return moment


def _capture(config: Any, log: Log) -> None:
    Capture(config, log, once=True, warn=lambda m: say(f"   note: {m}")).run()


def _topics(log: Log, prefix: str) -> list[TopicInfo]:
    return [info for info in log.list_topics() if info.name.startswith(f"{prefix}.")]


def _show(log: Log, prefix: str, *, snapshot: bool) -> None:
    for info in _topics(log, prefix):
        for record in TopicReader(log, info.name, StartAt()).records():
            if record.value is None:
                if not snapshot:
                    out(f"   tombstone  {info.name}  key={_text(record.key)}")
                continue
            event = orjson.loads(record.value)
            if (event["op"] == "r") != snapshot:
                continue
            out(f"   {event['op']}  {info.name}  key={_text(record.key)}  {_change(event)}")


def _text(data: bytes | None) -> str:
    return "null" if data is None else data.decode()


def _change(event: dict[str, Any]) -> str:
    before, after = event.get("before"), event.get("after")
    if before and after:
        changed = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
        return "changed " + orjson.dumps(changed).decode()
    if after:
        return "after " + orjson.dumps(after).decode()
    return "before " + orjson.dumps(before).decode()


