"""``replicate --transactions``: each source transaction applied whole, whatever the
batch size, and ``--once`` while capture keeps writing applies what the transaction
metadata described when it started, with no false consistency error."""

from __future__ import annotations

from pathlib import Path

import pytest

from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Applier, Replicator
from tests.helpers import Database
from tests.replicate_support import capture_once, captured_log, replicate_once

pytestmark = pytest.mark.postgres

SOURCE = "CREATE TABLE items (id int PRIMARY KEY, note text);\nINSERT INTO items VALUES (0, 'seed')"
METADATA = {"provide.transaction.metadata": "true"}


@pytest.fixture
def log_url(db: Database, tmp_path: Path) -> str:
    """A log of the source's ``items`` table, snapshot taken, transaction metadata on."""
    return captured_log(db, tmp_path, SOURCE, **METADATA)


def _capture(db: Database, log_url: str) -> None:
    capture_once(db, log_url, **METADATA)


def _ids(target: Database) -> list[int]:
    return [row[0] for row in target.query("SELECT id FROM items ORDER BY id")]


def test_a_transaction_larger_than_a_batch_is_applied_whole(
    db: Database, target: Database, log_url: str
) -> None:
    db.execute("INSERT INTO items SELECT g, 'bulk' FROM generate_series(1, 60) g")
    db.execute("INSERT INTO items VALUES (100, 'after')")
    _capture(db, log_url)
    replicate_once(log_url, target.url, transactions=True, batch_records=20)
    assert _ids(target) == [0, *range(1, 61), 100]


class _CaptureBetween(SqliteLog):
    """A log that captures one more source transaction right after replicate first
    reads the end of the change topic: capture writing while ``--once`` starts."""

    def __init__(self, url: str, db: Database) -> None:
        super().__init__(url, create=False)
        self.db, self.armed = db, True

    def end_offsets(self, topic: str) -> dict[int, int]:
        ends = super().end_offsets(topic)
        if self.armed and topic == "t.public.items":
            self.armed = False
            self.db.execute("INSERT INTO items VALUES (7, 'late')")
            _capture(self.db, self.url)
        return ends


def test_once_while_capture_writes_applies_what_the_metadata_described(
    db: Database, target: Database, log_url: str
) -> None:
    db.execute("INSERT INTO items VALUES (1, 'one')")
    _capture(db, log_url)
    with _CaptureBetween(log_url, db) as log:
        Replicator(log, target.url, once=True, transactions=True).run()
    assert _ids(target) == [0, 1]
    replicate_once(log_url, target.url, transactions=True)
    assert _ids(target) == [0, 1, 7]


def test_a_primary_key_change_counts_as_one_change_of_its_transaction(
    db: Database, target: Database, log_url: str
) -> None:
    """The delete and the create of a key change carry one order in their transaction
    (the END record counts one change): no false consistency error."""
    db.execute("BEGIN;\nUPDATE items SET id = 2 WHERE id = 0;\n"
               "INSERT INTO items VALUES (3, 'three');\nCOMMIT")
    _capture(db, log_url)
    replicate_once(log_url, target.url, transactions=True)
    assert _ids(target) == [2, 3]


def test_a_table_created_while_replicate_follows_joins_its_transactions(
    db: Database, target: Database, log_url: str
) -> None:
    """A transaction that names a table no topic known to replicate holds makes it look
    for the table's new topic, and applies the transaction whole with it. Replicate's
    follow loop, one round at a time, after it started before the table existed."""
    with SqliteLog(log_url, create=False) as log:
        replicator = Replicator(log, target.url, transactions=True)
        sink = replicator.connect(target.url)
        try:
            replicator._start(sink)
            db.execute("CREATE TABLE later (id int PRIMARY KEY);\nBEGIN;\n"
                       "INSERT INTO items VALUES (1, 'one');\nINSERT INTO later VALUES (1);\n"
                       "COMMIT")
            _capture(db, log_url)
            with Applier(sink) as applier:
                while replicator._round(applier, None):
                    pass
        finally:
            sink.close()
    assert _ids(target) == [0, 1]
    assert target.query("SELECT id FROM later") == [(1,)]
