"""``duality demo``: a zero-setup tour.

This version is a tour of the embedded log only (produce, tail, compact); the tour of
PostgreSQL capture replaces it once capture lands.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import orjson

from duality.cli.common import CONTEXT_SETTINGS, out, say
from duality.cli.records import record_to_json
from duality.events.model import NewRecord
from duality.log import open_log
from duality.log.reading import StartAt, TopicReader
from duality.log.sqlite import SqliteLog

_ACCOUNTS = [
    (1, "Ada", 120), (2, "Grace", 80), (3, "Edsger", 45),
    (1, "Ada", 95), (2, "Grace", 110), (3, None, None), (1, "Ada", 70),
]


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Write the demo log into this directory and keep it.")
def demo(keep: Path | None) -> None:
    """A zero-setup tour of the embedded log: produce, tail, compact.

    Writes a few account changes into a compacted topic of a throwaway log, prints
    them, compacts the topic and prints what is left: the latest state of each key.
    """
    directory = keep or Path(tempfile.mkdtemp(prefix="duality-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite://{directory / 'demo-log.db'}"
    with open_log(url) as log:
        say(f"1. A log in one file: {url}")
        if log.describe("demo.accounts") is None:
            log.create_topic(
                "demo.accounts", 1,
                {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
            )
        log.append(_account_records())
        log.flush()
        say("2. Seven changes to three accounts, the last of Edsger's a tombstone:")
        _print_all(log)
        report = log.compact("demo.accounts")[0]
        say(f"3. Compaction removed {report.removed} superseded record(s): the latest record "
            f"per key remains at its original offset. Edsger's tombstone stays for "
            f"delete.retention.ms (1 day) so every reader learns of the delete:")
        _print_all(log)
    say(f"Try: duality tail demo.accounts --log {url} --from-beginning")


def _account_records() -> list[NewRecord]:
    records = []
    for account_id, owner, balance in _ACCOUNTS:
        key = orjson.dumps({"id": account_id})
        value = None if owner is None else orjson.dumps(
            {"id": account_id, "owner": owner, "balance": balance}
        )
        records.append(NewRecord("demo.accounts", key, value))
    return records


def _print_all(log: SqliteLog) -> None:
    for record in TopicReader(log, "demo.accounts", StartAt()).records():
        out(record_to_json(record))
