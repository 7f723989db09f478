"""``duality replicate`` tried as a new user would, into a database they already run:
every mistake is exit code 2 with a message that says what to fix, and no traceback.

A wrong password; a read-only role (on a fresh target, and on one another role set
up); a target table that already exists with other columns; ``--transactions`` over a
log captured without ``provide.transaction.metadata``. After each, the fix the message
names is applied and the same command succeeds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, PASSWORD_ROLE
from tests.helpers import Database, duality
from tests.replicate_support import capture_once, captured_log, run_replicate

pytestmark = pytest.mark.postgres

SOURCE = """
CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12,2));
INSERT INTO accounts VALUES (1, 'ada', 10.50), (2, 'bob', -3.00)
"""


@pytest.fixture
def log_url(db: Database, tmp_path: Path) -> str:
    return captured_log(db, tmp_path, SOURCE)


@pytest.fixture
def role(target: Database) -> Iterator[str]:
    """A login role that may connect to the target and read it, nothing more."""
    name = f"{target.name}_reader"
    target.execute(f'CREATE ROLE "{name}" LOGIN;\n'
                   f'GRANT pg_read_all_data TO "{name}"')
    yield name
    target.execute(f'DROP OWNED BY "{name}";\nDROP ROLE "{name}"')


def _user_error(stderr: str) -> None:
    assert "Traceback" not in stderr and stderr.startswith("error: "), stderr
    assert len(stderr.strip().splitlines()) <= 3, stderr


def _accounts(target: Database) -> list[tuple[object, ...]]:
    return target.query("SELECT id, name, balance::text FROM public.accounts ORDER BY id")


def test_a_wrong_password_exits_2_naming_the_setting(
    db: Database, target: Database, log_url: str
) -> None:
    server = db.server
    url = f"postgresql://{PASSWORD_ROLE}:not-the-password@{server.host}:{server.port}/{target.name}"
    result = run_replicate(log_url, url, "--once")
    assert result.returncode == 2, result.stderr
    _user_error(result.stderr)
    assert "password authentication failed" in result.stderr
    assert "--target" in result.stderr and "not-the-password" not in result.stderr
    target.execute(f'GRANT CREATE ON DATABASE "{target.name}" TO {PASSWORD_ROLE};\n'
                   f"GRANT CREATE ON SCHEMA public TO {PASSWORD_ROLE}")
    right = url.replace("not-the-password", PASSWORD)
    fixed = run_replicate(log_url, right, "--once")
    assert fixed.returncode == 0, fixed.stderr
    assert _accounts(target) == [(1, "ada", "10.50"), (2, "bob", "-3.00")]
    target.execute(f"DROP OWNED BY {PASSWORD_ROLE}")


def test_a_read_only_role_exits_2_naming_the_privilege_and_the_fix(
    target: Database, log_url: str, role: str
) -> None:
    url = target.server.url(target.name, user=role)
    fresh = run_replicate(log_url, url, "--once")
    assert fresh.returncode == 2, fresh.stderr
    _user_error(fresh.stderr)
    assert f"role {role!r}" in fresh.stderr and "permission denied" in fresh.stderr
    fix = f'GRANT CREATE ON DATABASE "{target.name}" TO "{role}"'
    assert fix in fresh.stderr
    target.execute(fix)
    # The role may now keep duality's tables, but not create the table in public.
    refused = run_replicate(log_url, url, "--once")
    assert refused.returncode == 5, refused.stderr
    _user_error(refused.stderr)
    assert "permission denied for schema public" in refused.stderr
    assert "'t.public.accounts' partition 0 offset 0 key {\"id\":1}" in refused.stderr
    target.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
    fixed = run_replicate(log_url, url, "--once")
    assert fixed.returncode == 0, fixed.stderr
    assert _accounts(target) == [(1, "ada", "10.50"), (2, "bob", "-3.00")]


def test_a_role_that_may_not_write_a_set_up_target_exits_2_naming_the_grants(
    target: Database, log_url: str, role: str
) -> None:
    assert run_replicate(log_url, target.url, "--once").returncode == 0  # set up by another
    url = target.server.url(target.name, user=role)
    set_up = run_replicate(log_url, url, "--once")
    assert set_up.returncode == 2, set_up.stderr
    _user_error(set_up.stderr)
    assert "missing INSERT on duality.tables" in set_up.stderr, set_up.stderr
    fix = (f'GRANT USAGE, CREATE ON SCHEMA duality TO "{role}"; GRANT SELECT, INSERT, UPDATE, '
           f'DELETE ON ALL TABLES IN SCHEMA duality TO "{role}"')
    assert fix in set_up.stderr
    target.execute(fix.replace("; ", ";\n"))
    fixed = run_replicate(log_url, url, "--once")
    assert fixed.returncode == 0, fixed.stderr


def test_a_target_table_with_other_columns_exits_2_naming_them_and_map(
    target: Database, log_url: str
) -> None:
    target.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, label text, "
                   "opened date NOT NULL)")
    result = run_replicate(log_url, target.url, "--once")
    assert result.returncode == 2, result.stderr
    _user_error(result.stderr)
    message = result.stderr
    assert "already exists with other columns" in message and "--map" in message, message
    assert "name" in message and "balance" in message and "opened" in message, message
    assert target.query("SELECT count(*) FROM public.accounts") == [(0,)]
    moved = run_replicate(log_url, target.url, "--once", "--map", "public.accounts=crm.accounts")
    assert moved.returncode == 0, moved.stderr
    assert target.query("SELECT id, name FROM crm.accounts ORDER BY id") == [(1, "ada"),
                                                                           (2, "bob")]


def test_a_map_that_cannot_apply_is_warned_about(target: Database, log_url: str) -> None:
    """A ``--map`` that names no source table of the log, and one that would move a topic
    the target already holds (which stays where it is), are each warned about."""
    typo = run_replicate(log_url, target.url, "--once", "--map", "public.acounts=crm.acounts",
                         "--map", "pubic=replica")
    assert typo.returncode == 0, typo.stderr
    assert "no change topic in the log has the source table public.acounts" in typo.stderr
    assert "source table in the schema 'pubic'" in typo.stderr
    moved = run_replicate(log_url, target.url, "--once", "--map", "public.accounts=crm.accounts")
    assert moved.returncode == 0, moved.stderr
    assert ("topic 't.public.accounts' stays in public.accounts, the table it was first "
            "replicated into") in moved.stderr, moved.stderr
    assert "name crm.accounts" in moved.stderr and "no change topic" not in moved.stderr
    assert target.query("SELECT to_regclass('crm.accounts') IS NULL") == [(True,)]
    again = run_replicate(log_url, target.url, "--once")
    assert "warning" not in again.stderr, again.stderr


def test_transactions_without_transaction_metadata_say_how_to_capture(
    db: Database, target: Database, log_url: str, tmp_path: Path
) -> None:
    result = run_replicate(log_url, target.url, "--once", "--transactions")
    assert result.returncode == 2, result.stderr
    _user_error(result.stderr)
    assert "provide.transaction.metadata=true" in result.stderr
    assert "'t.transaction'" in result.stderr and "without --transactions" in result.stderr
    assert target.query("SELECT to_regclass('public.accounts')") == [(None,)]
    with_metadata = f"sqlite://{tmp_path / 'log2.db'}"
    settings = {"slot.name": "second", "provide.transaction.metadata": "true"}
    capture_once(db, with_metadata, prefix="u", **settings)  # a snapshot: no transaction yet
    snapshot = run_replicate(with_metadata, target.url, "--once", "--transactions")
    assert snapshot.returncode == 0, snapshot.stderr
    assert _accounts(target) == [(1, "ada", "10.50"), (2, "bob", "-3.00")]
    db.execute("INSERT INTO accounts VALUES (3, 'cy', 0)")
    capture_once(db, with_metadata, prefix="u", **settings)
    fixed = run_replicate(with_metadata, target.url, "--once", "--transactions")
    assert fixed.returncode == 0, fixed.stderr
    assert _accounts(target) == [(1, "ada", "10.50"), (2, "bob", "-3.00"), (3, "cy", "0.00")]



def test_the_log_or_a_table_store_as_target_exits_2(log_url: str, tmp_path: Path) -> None:
    """A mistyped --target naming the log (or the table store beside it) must not get
    replica tables mixed into it."""
    duality("table", "t.public.accounts", "--log", log_url)  # makes log.tables.db
    for name in ("log.db", "log.tables.db"):
        path = tmp_path / name
        before = sqlite3.connect(path).execute(
            "SELECT name FROM sqlite_master ORDER BY name").fetchall()
        refused = run_replicate(log_url, f"sqlite://{path}", "--once")
        assert refused.returncode == 2, refused.stderr
        _user_error(refused.stderr)
        assert "of duality, not a replica; check --target" in refused.stderr
        after = sqlite3.connect(path).execute(
            "SELECT name FROM sqlite_master ORDER BY name").fetchall()
        assert after == before


def test_a_target_made_before_origins_gets_the_table(
    db: Database, target: Database, log_url: str
) -> None:
    capture_once(db, log_url)
    assert run_replicate(log_url, target.url, "--once").returncode == 0
    [(origin,)] = target.query("SELECT origin FROM duality.origins")
    target.execute("DROP TABLE duality.origins")  # as an older duality made the target
    db.execute("INSERT INTO accounts VALUES (7, 'gi', 7)")
    capture_once(db, log_url)
    assert run_replicate(log_url, target.url, "--once").returncode == 0
    assert target.query("SELECT origin FROM duality.origins") == [(origin,)]
    assert (7, "gi", "7.00") in _accounts(target)


@pytest.mark.parametrize("more", [0, 20])
def test_a_log_made_again_under_the_target_is_a_gap(
    db: Database, target: Database, log_url: str, tmp_path: Path, more: int
) -> None:
    """The target applied another log's topic, whether the new log's topic ends before
    the target's offsets or (with ``more`` rows) past them: exit 4 saying to replicate
    into a new target, rather than skip the new log's first records."""
    db.execute("INSERT INTO accounts VALUES (3, 'cy', 1);\nDELETE FROM accounts WHERE id = 3")
    capture_once(db, log_url)
    assert run_replicate(log_url, target.url, "--once").returncode == 0
    path = tmp_path / "log.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if more:
        db.execute(f"INSERT INTO accounts SELECT g, 'n' || g, g FROM generate_series(10, "
                   f"{9 + more}) g")
    capture_once(db, log_url, **{"slot.name": "again"})
    stale = run_replicate(log_url, target.url, "--once")
    assert stale.returncode == 4, stale.stderr
    assert "the log or the topic was made again" in stale.stderr
    assert "new target" in stale.stderr and "Traceback" not in stale.stderr
