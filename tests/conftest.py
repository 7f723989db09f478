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

settings.register_profile(
    "quick", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(scope="session")
def pg() -> Iterator[ThrowawayPostgres]:
    """One throwaway cluster per test process (wal_level=logical, unusual time zone)."""
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
def log(log_path: Path) -> Iterator[SqliteLog]:
    with SqliteLog(f"sqlite://{log_path}") as opened:
        yield opened
