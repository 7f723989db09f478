"""A batch's streamed changes applied over several target sessions (``--sessions``,
:meth:`duality.sinks.postgres.PostgresSink._write_encoded`): each session commits its
share of the rows, the offsets commit last.

- The sessions really share the work, and the target equals the source.
- A share another session cannot apply (a row the target's own unique index refuses,
  found by either session, or a lock the other session waits for until its timeout)
  makes the batch apply again in one session, which names the record and stops; nothing
  hangs, and the offsets are not advanced.

Kill -9 between another session's commit and the offsets': below, and at random points
in ``test_replicate_crash.py`` (the crash point ``replicate.lane-committed``).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from duality.errors import ApplyError
from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sinks import postgres
from duality.sinks.base import StageTuples
from duality.sinks.dialects import postgres_binary
from duality.sinks.postgres import PostgresSink
from tests.helpers import Database
from tests.integration.test_replicate_binary import other_target
from tests.replicate_support import capture_once, run_replicate

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(postgres_binary.native is None,
                       reason="the C extension duality._binarycopy is not built (an editable "
                       "install); ./scripts/test installs the package with it"),
]


class Counting(PostgresSink):
    """The PostgreSQL sink, remembering how many other sessions it used."""

    used = 0

    def _write_shares(self, sql: postgres.TableSql, lanes: list[postgres._Lane],
                      rows: StageTuples) -> None:
        Counting.used = max(Counting.used, len(lanes))
        super()._write_shares(sql, lanes, rows)


def replicate(log_url: str, target: Database, sessions: int = 2) -> Replicator:
    with SqliteLog(log_url, create=False) as log:
        replicator = Replicator(log, target.url, once=True, batch_records=500,
                                connect=lambda url: Counting(url, sessions))
        replicator.run()
        return replicator


def test_sessions_share_a_batch_and_the_target_equals_the_source(
    db: Database, target: Database, tmp_path: Path
) -> None:
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text, n bigint);"
               "INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 300) g")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    replicate(log_url, target, sessions=3)
    db.execute("UPDATE t SET n = n + 1 WHERE id % 2 = 0; DELETE FROM t WHERE id % 5 = 0;"
               "INSERT INTO t SELECT g, 'new', g FROM generate_series(301, 900) g")
    capture_once(db, log_url)
    Counting.used = 0
    replicate(log_url, target, sessions=3)
    assert Counting.used == 2
    query = "SELECT id, v, n FROM t ORDER BY id"
    assert target.query(query) == db.query(query)


def test_a_share_the_target_refuses_is_named_after_the_batch_runs_alone(
    db: Database, target: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two new rows in different sessions' shares take the same value of a unique index
    the target has and the source has not: whichever session comes second waits for the
    other's lock (until the lock timeout: the other commits only after it) or finds the
    other's row committed. Applied again in one session, the batch names the record and
    the offsets stay."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text, n bigint);"
               "INSERT INTO t VALUES (1000, 'x', 0)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    replicate(log_url, target)
    target.execute("CREATE UNIQUE INDEX t_v ON t (v)")
    monkeypatch.setattr(postgres, "LANE_LOCK_TIMEOUT", "SET lock_timeout = '1s'")
    # the batch's first and last rows: the first and the second session's shares
    db.execute("INSERT INTO t VALUES (1, 'same', 1);"
               "INSERT INTO t SELECT g, 'f' || g, g FROM generate_series(2000, 2010) g;"
               "INSERT INTO t VALUES (2, 'same', 2)")
    capture_once(db, log_url)
    Counting.used = 0
    offsets = target.query("SELECT next_offset FROM duality.offsets")
    with pytest.raises(ApplyError, match=r"offset \d+ key \{\"id\":\d+\}.*duplicate key"):
        replicate(log_url, target)
    assert Counting.used == 1
    assert target.query("SELECT next_offset FROM duality.offsets") == offsets
    assert target.query("SELECT count(*) FROM t WHERE v = 'same'") in ([(0,)], [(1,)])


def test_a_role_allowed_one_connection_applies_in_one_session(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """The other sessions cannot connect (the role's connection limit): the batch goes
    through the one session replicate has."""
    role = f"{target.name}_one"
    db.server.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1;'
                      f'ALTER DATABASE "{target.name}" OWNER TO "{role}"')
    try:
        db.execute("CREATE TABLE t (id int PRIMARY KEY, v text);"
                   "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g")
        log_url = f"sqlite://{tmp_path / 'log.db'}"
        url = db.server.url(target.name, user=role)
        sink: list[PostgresSink] = []

        def connect(url: str) -> PostgresSink:
            sink.append(PostgresSink(url, 2))
            return sink[-1]

        for changes in ("", "INSERT INTO t SELECT g, 'w' || g FROM generate_series(11, 400) g;"
                            "UPDATE t SET v = v || '!' WHERE id % 3 = 0"):
            if changes:
                db.execute(changes)
            capture_once(db, log_url)
            with SqliteLog(log_url, create=False) as log:
                Replicator(log, url, once=True, connect=connect).run()
        assert sink[-1].sessions == 1  # it tried a second one, and went on without
        query = "SELECT id, v FROM t ORDER BY id"
        assert target.query(query) == db.query(query)
    finally:
        target.cleanup()
        db.server.execute(f'DROP ROLE "{role}"')


def test_killed_after_another_session_committed_its_share(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """kill -9 right after the second session's commit: its rows are in, the offsets are
    not; run again, the batch applies again (the committed rows skipped by their
    positions) and the target equals the source."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text);"
               "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    alone = other_target(db, "alone")  # --sessions 1: no other session to crash in
    try:
        for each in (target, alone):
            assert run_replicate(log_url, each.url, "--once").returncode == 0
        offsets = target.query("SELECT next_offset FROM duality.offsets")
        db.execute("UPDATE t SET v = v || '!';"
                   "INSERT INTO t SELECT g, 'w' || g FROM generate_series(11, 200) g")
        capture_once(db, log_url)
        assert run_replicate(log_url, alone.url, "--once", "--sessions", "1", env={
            "DUALITY_CRASH_AT": "replicate.lane-committed:1"}).returncode == 0
        assert alone.query("SELECT count(*) FROM t") == [(200,)]
    finally:
        alone.cleanup()
    killed = run_replicate(log_url, target.url, "--once",
                           env={"DUALITY_CRASH_AT": "replicate.lane-committed:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert target.query("SELECT next_offset FROM duality.offsets") == offsets
    half = target.query("SELECT count(*) FROM t")[0][0]
    assert 10 < half < 200  # the second session's run of the batch, not the first's
    again = run_replicate(log_url, target.url, "--once")
    assert again.returncode == 0, again.stderr
    query = "SELECT id, v FROM t ORDER BY id"
    assert target.query(query) == db.query(query)
