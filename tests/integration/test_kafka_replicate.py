"""Replicate from Kafka end to end: PostgreSQL → capture → Kafka (librdkafka's mock cluster in
a helper process) → ``duality replicate`` → a PostgreSQL target equal to the source; and a
replicate group of two processes, one of which leaves mid-way.

What the mock cannot cover: it auto-creates topics with 4 partitions (capture cannot choose),
has no compaction, and its group coordinator is librdkafka's own; a member that dies
without leaving (kill -9) is only noticed after the session timeout, which these tests keep
short (6 s) but do not exercise.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database, capture
from tests.kafka.support import MockKafka, unique

pytestmark = pytest.mark.postgres

QUICK_GROUP = ("-p", "kafka.session.timeout.ms=6000", "-p", "kafka.heartbeat.interval.ms=500")
ROWS = "SELECT id, name, price::text, seen, tags FROM public.items ORDER BY id"
SCHEMA = ("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), "
          "seen timestamptz, tags text[]);\n"
          "ALTER TABLE items REPLICA IDENTITY FULL;\n"
          "INSERT INTO items SELECT g, 'item ' || g, g * 0.25, "
          "'2024-05-01 12:00:00+00'::timestamptz + g * interval '1 hour', ARRAY['a', 'b'] "
          "FROM generate_series(1, {n}) g")


@pytest.fixture
def mock() -> Iterator[MockKafka]:
    cluster = MockKafka()
    yield cluster
    cluster.stop()


@pytest.fixture
def target(pg: ThrowawayPostgres) -> Iterator[Database]:
    name = unique("target")
    pg.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    yield database
    database.cleanup()


def _same(source: Database, target: Database) -> bool:
    try:
        return source.query(ROWS) == target.query(ROWS)
    except Exception:  # the target table is not there yet
        return False


def wait_for(condition: Any, timeout: float = 90, show: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out{f': {show()}' if show else ''}"
        time.sleep(0.2)


def test_postgres_to_kafka_to_replicate_equals_the_source(
    db: Database, target: Database, mock: MockKafka
) -> None:
    db.execute(SCHEMA.format(n=400))
    prefix = unique("rep")
    capture(db, mock.url, prefix=prefix)
    db.execute("UPDATE items SET price = price * 2, tags = ARRAY['c'] WHERE id % 7 = 0;\n"
               "DELETE FROM items WHERE id > 380;\n"
               "UPDATE items SET id = id + 1000 WHERE id = 5;\n"
               "INSERT INTO items VALUES (2000, 'new', 9.99, now(), '{}')")
    capture(db, mock.url, prefix=prefix)
    result = subprocess.run(
        [sys.executable, "-m", "duality", "replicate", "--log", mock.url, "--target",
         target.url, "--once"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert _same(db, target), result.stderr


class Member:
    """A ``duality replicate --group`` process; its stderr collected by a thread."""

    def __init__(self, log_url: str, target: str, group: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "duality", "replicate", "--log", log_url, "--target", target,
             "--group", group, *QUICK_GROUP], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def holds(self) -> set[str]:
        """The partitions this member holds now, by its assigned/revoked lines."""
        held: set[str] = set()
        for line in list(self.lines):
            kind, _, rest = line.partition(" ")
            names = {n for n in rest.split(", ") if n and n != "no partitions"}
            if kind == "assigned":
                held |= names
            elif kind == "revoked":
                held -= names
        return held

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(60)
        self._reader.join(10)
        return code


def test_a_replicate_group_shares_partitions_and_takes_over_when_one_leaves(
    db: Database, target: Database, mock: MockKafka
) -> None:
    db.execute(SCHEMA.format(n=3000))
    prefix = unique("grp")
    topic = f"{prefix}.public.items"
    capture(db, mock.url, prefix=prefix)
    group = unique("group")
    a = Member(mock.url, target.url, group)
    b = Member(mock.url, target.url, group)
    try:
        # Both members hold a share once the group settles, and the snapshot arrives whole.
        wait_for(lambda: a.holds() and b.holds() and not a.holds() & b.holds()
                 and len(a.holds() | b.holds()) == 4 and _same(db, target),
                 show=lambda: (a.lines, b.lines))
        assert {n.rsplit("[", 1)[0] for n in a.holds() | b.holds()} == {topic}
        db.execute("UPDATE items SET price = price + 1, tags = tags || ARRAY['x'];\n"
                   "DELETE FROM items WHERE id % 5 = 0;\n"
                   "UPDATE items SET id = id + 10000 WHERE id % 11 = 0;\n"
                   "UPDATE items SET name = upper(name) WHERE id % 3 = 0")
        capture(db, mock.url, prefix=prefix)
        # One member leaves while the changes are being applied; the other takes over.
        assert a.stop() == 0, a.lines
        wait_for(lambda: len(b.holds()) == 4, show=lambda: b.lines)
        db.execute("INSERT INTO items SELECT g, 'late ' || g, 1, now(), '{}' "
                   "FROM generate_series(20001, 20300) g;\n"
                   "UPDATE items SET price = 0 WHERE id % 13 = 0")
        capture(db, mock.url, prefix=prefix)
        wait_for(lambda: _same(db, target), show=lambda: b.lines)
        # A member that joins again resumes from what the target holds.
        c = Member(mock.url, target.url, group)
        wait_for(lambda: c.holds() and len(b.holds()) < 4, show=lambda: (b.lines, c.lines))
        db.execute("UPDATE items SET name = 'again' WHERE id % 2 = 0")
        capture(db, mock.url, prefix=prefix)
        wait_for(lambda: _same(db, target), show=lambda: (b.lines, c.lines))
        assert c.stop() == 0, c.lines
    finally:
        for member in (a, b):
            if member.proc.poll() is None:
                member.stop()
    assert not [line for line in a.lines + b.lines if "Traceback" in line]


@pytest.mark.parametrize(("extra", "message"), [
    (("--once",), "--group and --once"),
    (("--transactions",), "--group and --transactions"),
    (("--target", "sqlite:///replica.db"), "needs a PostgreSQL target"),
])
def test_what_a_group_member_refuses(tmp_path: Any, extra: tuple[str, ...], message: str) -> None:
    args = ["--target", "postgresql://127.0.0.1:1/none", "--group", "g", *extra]
    SqliteLog(f"sqlite://{tmp_path}/log.db").close()
    result = subprocess.run(
        [sys.executable, "-m", "duality", "replicate", "--log", f"sqlite://{tmp_path}/log.db",
         *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
