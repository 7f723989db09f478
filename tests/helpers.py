"""Helpers for tests that talk to a real PostgreSQL and run capture."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres


@dataclass
class Database:
    """One database of the throwaway cluster."""

    server: ThrowawayPostgres
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def execute(self, sql: str) -> None:
        """Run SQL in autocommit mode (each statement its own transaction unless the
        text has BEGIN/COMMIT)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for statement in _statements(sql):
                conn.execute(statement.encode())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True)

    def cleanup(self) -> None:
        with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE database = %s AND active_pid IS NOT NULL",
                (self.name,),
            )
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s AND NOT active",
                (self.name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


_databases = itertools.count()


@contextlib.contextmanager
def fresh_database(server: ThrowawayPostgres, prefix: str = "t") -> Iterator[Database]:
    """A new database in ``server``, dropped (with its slots) afterwards."""
    name = f"{prefix}{os.getpid()}_{next(_databases)}"
    server.execute(f'CREATE DATABASE "{name}"')
    database = Database(server, name)
    try:
        yield database
    finally:
        database.cleanup()


def _statements(sql: str) -> list[str]:
    """Split on ';' at line ends, keeping BEGIN … COMMIT blocks as separate statements
    in one session (the session is shared, so the transaction holds)."""
    parts = [p.strip() for p in sql.split(";\n")]
    return [p for p in parts if p]


def capture_command(
    db: Database, log_url: str, *args: str, prefix: str = "t", once: bool = True
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "duality",
        "capture",
        "--source",
        db.url,
        "--prefix",
        prefix,
        "--log",
        log_url,
        *args,
    ]
    return [*command, "--once"] if once else command


def capture(
    db: Database,
    log_url: str,
    *args: str,
    prefix: str = "t",
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``duality capture --once`` as a user would."""
    result = subprocess.run(
        capture_command(db, log_url, *args, prefix=prefix),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"capture failed ({result.returncode}):\n{result.stderr}")
    return result


def duality(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``duality ARGS`` as a user would; text output."""
    result = subprocess.run([sys.executable, "-m", "duality", *args], capture_output=True,
                            text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def records(log_url: str, topic: str) -> list[tuple[Any, Any, dict[str, bytes | None]]]:
    """(key, value, headers) of every record of a topic, parsed."""
    with SqliteLog(log_url, create=False) as log:
        out = []
        for partition in log.end_offsets(topic):
            for r in log.read(topic, partition, 0, 10_000_000):
                key = orjson.loads(r.key) if r.key else None
                value = orjson.loads(r.value) if r.value else None
                out.append((key, value, dict(r.headers)))
        return out


def fold(log_url: str, topic: str) -> dict[str, Any]:
    """The table a topic describes: latest ``after`` per key (JSON text of the key)."""
    state: dict[str, Any] = {}
    for key, value, _ in records(log_url, topic):
        k = orjson.dumps(key).decode()
        if value is None or value.get("op") == "d":
            state.pop(k, None)
        elif value.get("op") in ("c", "u", "r"):
            state[k] = value["after"]
    return state


def stderr_line(runner: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    """The first line ``runner`` writes to stderr that holds ``text`` ("" if none comes
    within ``timeout`` seconds)."""
    assert runner.stderr is not None
    box: list[str] = []

    def read() -> None:
        assert runner.stderr is not None
        for line in runner.stderr:
            if text in line:
                box.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""
