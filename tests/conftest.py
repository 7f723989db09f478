"""Shared fixtures: hypothesis profiles, a throwaway PostgreSQL, temporary logs.

Profiles: ``quick`` (the default, for development) and ``ci`` (thorough; the test
command selects it with HYPOTHESIS_PROFILE=ci).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from duality.log.sqlite import SqliteLog
from duality.sources.postgres.throwaway import ThrowawayPostgres
from tests.helpers import Database, fresh_database

settings.register_profile(
    "quick", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


#: A role that must give its password (every other role is trusted).
PASSWORD_ROLE = "secured"
PASSWORD = "s3cret-pw"


@pytest.fixture(scope="session")
def pg() -> Iterator[ThrowawayPostgres]:
    """One throwaway cluster per test process (wal_level=logical, unusual time zone)."""
    hba = [f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256"]
    with ThrowawayPostgres(hba=hba) as server:
        server.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        yield server


@pytest.fixture
def db(pg: ThrowawayPostgres) -> Iterator[Database]:
    """A fresh database in the session's cluster, dropped (with its slots) afterwards."""
    with fresh_database(pg) as database:
        yield database


@pytest.fixture(scope="module")
def small_memory() -> Iterator[ThrowawayPostgres]:
    """A cluster whose logical decoding spills, and streams in-progress transactions
    (protocol 2), after 64 kB (``logical_decoding_work_mem``)."""
    with ThrowawayPostgres(settings={"logical_decoding_work_mem": "64kB"}) as server:
        yield server


@pytest.fixture
def sdb(small_memory: ThrowawayPostgres) -> Iterator[Database]:
    """A fresh database in ``small_memory``."""
    with fresh_database(small_memory, "s") as database:
        yield database


@pytest.fixture
def target(db: Database) -> Iterator[Database]:
    """A second fresh database of the same cluster: where replicate writes."""
    database = Database(db.server, f"{db.name}_target")
    db.server.execute(f'CREATE DATABASE "{database.name}"')
    yield database
    database.cleanup()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
def log(log_path: Path) -> Iterator[SqliteLog]:
    with SqliteLog(f"sqlite://{log_path}") as opened:
        yield opened
