"""Two captures on one replication slot. A slot serves one capture: each capture
acknowledges what its own log holds and the slot then forgets it, so a second capture
on the slot takes changes away from the first one's log. A capture that finds its slot
streaming to another capture (another log or topic prefix) is refused at once (exit 2),
before it writes anything; a second copy of the same capture waits like a restart
whose old process is still letting go, then gives up (exit 3); a capture whose slot
another capture consumed while it was stopped says so (exit 4)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from duality.log.sqlite import SqliteLog
from tests.helpers import Database, capture, capture_command, fold, records, stderr_line

pytestmark = pytest.mark.postgres

TABLES = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 3) i
"""
#: Wait for a held slot briefly, so that a capture that waits gives up quickly.
BRIEF = ("-p", "slot.max.retries=2", "-p", "slot.retry.delay.ms=200",
         "-p", "retriable.restart.connector.wait.ms=200")


def log(tmp_path: Path, name: str) -> str:
    return f"sqlite://{tmp_path / f'{name}.db'}"


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return log(tmp_path, "log")


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def assert_refused(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, result.stderr
    for part in parts:
        assert part in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def ops(log_url: str, topic: str) -> list[tuple[str, int]]:
    return [(v["op"], k["id"]) for k, v, _ in records(log_url, topic) if v is not None]


def topics(log_url: str) -> list[str]:
    with SqliteLog(log_url) as opened:
        return [t.name for t in opened.list_topics()]


@contextlib.contextmanager
def streaming(db: Database, log_url: str, prefix: str) -> Iterator[subprocess.Popen[str]]:
    """``capture`` without ``--once``, once it streams; stopped cleanly afterwards."""
    runner = subprocess.Popen(capture_command(db, log_url, prefix=prefix, once=False),
                              stderr=subprocess.PIPE, text=True)
    try:
        assert stderr_line(runner, "streaming from"), "capture did not start streaming"
        yield runner
    finally:
        runner.terminate()
        assert runner.wait(timeout=30) == 0


@contextlib.contextmanager
def busy(db: Database) -> Iterator[list[int]]:
    """Inserts one row after another meanwhile; yields the ids inserted."""
    done = threading.Event()
    ids: list[int] = []

    def insert() -> None:
        with db.connect() as conn:
            while not done.is_set():
                conn.execute("INSERT INTO customers VALUES (%s, 'busy')", (1000 + len(ids),))
                ids.append(1000 + len(ids))
                time.sleep(0.005)

    worker = threading.Thread(target=insert)
    worker.start()
    try:
        yield ids
    finally:
        done.set()
        worker.join()


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_capture_is_refused_a_slot_that_streams_to_another_capture(
    db: Database, tmp_path: Path
) -> None:
    """(a) Capture A streams into one log; B, with the default slot name, into another
    log: refused at once, with or without --once, before it writes anything (it no
    longer snapshots, waits, and takes the slot over once A stops)."""
    db.execute(TABLES)
    first, second = log(tmp_path, "first"), log(tmp_path, "second")
    with streaming(db, first, "a") as a:
        for prefix, whose in (("b", "with topic prefix 'a'"),
                              ("a", "the same topic prefix 'a' into another log")):
            for once in (True, False):
                started = time.monotonic()
                result = run(capture_command(db, second, *BRIEF, prefix=prefix, once=once))
                assert_refused(result, 2, "replication slot 'debezium'",
                               "streams to another capture", f"process {a.pid}", whose,
                               "--slot NAME", "stop the other capture")
                assert time.monotonic() - started < 20
        assert topics(second) == []
        db.execute("INSERT INTO customers VALUES (10, 'ten')")
        wait_for(lambda: ("c", 10) in ops(first, "a.public.customers"))
    assert ops(first, "a.public.customers") == [("r", 1), ("r", 2), ("r", 3), ("c", 10)]


def test_a_second_copy_of_the_same_capture_waits_and_gives_up_without_writing(
    db: Database, log_url: str
) -> None:
    """(b) A second copy of the same capture (same log and prefix) waits for the slot
    like a restart does, then gives up (exit 3). Meanwhile the running copy keeps storing
    and acknowledging: the second copy never takes that for lost changes (it used to say
    exit 4, "consumed elsewhere"), nor writes a snapshot it cannot follow."""
    db.execute(TABLES)
    topic = "a.public.customers"
    with streaming(db, log_url, "a") as a, busy(db) as inserted:
        for mode in ("initial", "always", "when_needed"):
            result = run(capture_command(db, log_url, *BRIEF, "--snapshot", mode, prefix="a"))
            assert_refused(result, 3, "in use by another process", f"process {a.pid}",
                           "a copy of this capture", "only one capture")
    capture(db, log_url, prefix="a")  # what the first copy had no time to receive
    assert [i for op, i in ops(log_url, topic) if op == "r"] == [1, 2, 3]
    assert [i for op, i in ops(log_url, topic) if op == "c"] == inserted


def test_a_restart_waits_for_the_old_process_of_the_same_capture(
    db: Database, log_url: str
) -> None:
    """The legitimate case: the same capture started again while its old process still
    holds the slot (stopped here, so its server process goes on streaming to it, as when
    a crash is not noticed yet) waits for the slot, then resumes where the log says."""
    db.execute(TABLES)
    old = subprocess.Popen(capture_command(db, log_url, prefix="a", once=False),
                           stderr=subprocess.PIPE, text=True)
    try:
        assert stderr_line(old, "streaming from")
        time.sleep(0.5)
        os.kill(old.pid, signal.SIGSTOP)
        db.execute("INSERT INTO customers VALUES (20, 'while the old one hangs')")
        new = subprocess.Popen(
            capture_command(db, log_url, "-p", "slot.max.retries=100",
                            "-p", "slot.retry.delay.ms=200", prefix="a"),
            stderr=subprocess.PIPE, text=True,
        )
        assert "still in use" in stderr_line(new, "still in use")
        os.kill(old.pid, signal.SIGKILL)
        _, err = new.communicate(timeout=60)
        assert new.returncode == 0, err
    finally:
        old.kill()
        old.wait(timeout=30)
    assert ops(log_url, "a.public.customers") == [("r", 1), ("r", 2), ("r", 3), ("c", 20)]


def test_a_capture_whose_stopped_slot_another_capture_consumed_stops_and_says_why(
    db: Database, tmp_path: Path
) -> None:
    """(c) While A is stopped, B starts into another log on A's slot: nothing tells it
    the slot is A's, so it adopts it as Debezium does, and warns what that risks. A,
    started again, finds the slot acknowledged past its position: it loses nothing
    silently, stops (exit 4) and says why and what to do."""
    db.execute(TABLES)
    first, second, third = (log(tmp_path, n) for n in ("first", "second", "third"))
    capture(db, first, prefix="a")
    db.execute("INSERT INTO customers VALUES (30, 'taken by b')")
    adopted = capture(db, second, prefix="b")
    assert "already exists and was not created by this capture" in adopted.stderr
    assert "--slot NAME" in adopted.stderr
    db.execute("INSERT INTO customers VALUES (31, 'after b')")
    result = capture(db, first, prefix="a", check=False)
    assert_refused(result, 4, "acknowledged up to", "consumed elsewhere and are lost",
                   "Another capture", "--slot NAME", "--snapshot when_needed")
    assert ops(first, "a.public.customers") == [("r", 1), ("r", 2), ("r", 3)]
    capture(db, third, "--slot", "b_own", prefix="b")  # the way out: B gets its own slot
    capture(db, first, "--snapshot", "when_needed", prefix="a")
    rows = fold(first, "a.public.customers")
    assert sorted(json.loads(key)["id"] for key in rows) == [1, 2, 3, 30, 31]


def test_a_capture_restarted_while_another_streams_from_its_slot_is_refused(
    db: Database, tmp_path: Path
) -> None:
    """(c) with B still streaming when A starts again: A is refused naming B (before,
    it waited and then either found its changes gone or took the slot back)."""
    db.execute(TABLES)
    first, second = log(tmp_path, "first"), log(tmp_path, "second")
    capture(db, first, prefix="a")
    with streaming(db, second, "b") as b:
        result = run(capture_command(db, first, *BRIEF, prefix="a"))
        assert_refused(result, 2, "streams to another capture", f"process {b.pid}",
                       "with topic prefix 'b'", "--slot NAME")


def test_a_capture_names_itself_by_its_log_and_position_name() -> None:
    from duality.sources.postgres.ownership import CaptureIdentity

    name = '["a",{"server":"a"}]'
    one = CaptureIdentity.of("/logs/one.db", name, "a")
    assert CaptureIdentity.parse(one.application_name) == one
    assert CaptureIdentity.of("/logs/one.db", name, "a").digest == one.digest
    assert CaptureIdentity.of("/logs/two.db", name, "a").digest != one.digest
    assert CaptureIdentity.of("/logs/one.db", '["b",{"server":"b"}]', "b").digest != one.digest
    long = CaptureIdentity.of("/logs/one.db", name, "p" * 200)
    assert len(long.application_name) == 63
    parsed = CaptureIdentity.parse(long.application_name)
    assert parsed is not None and parsed.digest == long.digest
    for other in ("duality", "pg_recvlogical", "", None):
        assert CaptureIdentity.parse(other) is None
