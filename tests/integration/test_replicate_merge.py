"""Streamed changes applied into PostgreSQL 15 and later by one ``MERGE`` per batch
(:meth:`duality.sinks.statements.TableSql.merge_with_positions`), and by ``INSERT …
ON CONFLICT`` where a key that another session inserts while the batch is applied makes
``MERGE`` (which found no row) fail on the key's index: the batch's statement runs again
as an upsert, which updates that row, as replicate did before ``MERGE`` (no refused
record, exit 0).

The rest of the replicate tests go through ``MERGE`` on this machine's PostgreSQL.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from duality.sinks.postgres import MERGE_VERSION
from tests.helpers import Database
from tests.replicate_support import capture_once, replicate_command, run_replicate

pytestmark = pytest.mark.postgres


def _server_has_merge(db: Database) -> bool:
    return int(db.query("SHOW server_version_num")[0][0]) >= MERGE_VERSION


def _waiting_for_a_lock(target: Database, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND wait_event_type = 'Lock'", (target.name,))[0][0]:
            return
        time.sleep(0.02)
    raise AssertionError("replicate never waited for the uncommitted row")


def test_a_key_inserted_meanwhile_is_updated_not_refused(
    db: Database, target: Database, tmp_path: Path
) -> None:
    if not _server_has_merge(db):
        pytest.skip("the server has no MERGE (PostgreSQL 14 or older): nothing to fall back from")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    db.execute("CREATE TABLE m (id int PRIMARY KEY, v text);\n"
               "INSERT INTO m SELECT g, 'snapshot' FROM generate_series(1, 50) g")
    capture_once(db, log_url)
    assert run_replicate(log_url, target.url, "--once").returncode == 0
    db.execute("INSERT INTO m VALUES (51, 'source');\nUPDATE m SET v = 'changed' WHERE id = 1")
    capture_once(db, log_url)

    with target.connect() as other:
        other.execute("BEGIN")
        other.execute("INSERT INTO public.m VALUES (51, 'another session')")
        runner = subprocess.Popen(replicate_command(log_url, target.url, "--once"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _waiting_for_a_lock(target)  # MERGE saw no row 51 and waits on its index
            other.execute("COMMIT")
            _, stderr = runner.communicate(timeout=60)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    assert runner.returncode == 0, stderr
    assert dict(target.query("SELECT id, v FROM public.m WHERE id IN (1, 51)")) == {
        1: "changed", 51: "source"}



def test_a_table_of_key_columns_only(db: Database, target: Database, tmp_path: Path) -> None:
    """Nothing to update where a key is there already (``WHEN MATCHED THEN DO
    NOTHING``): creates, deletes and a key deleted then created again."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    db.execute("CREATE TABLE k (a int, b text, PRIMARY KEY (a, b));\n"
               "INSERT INTO k SELECT g, 'x' FROM generate_series(1, 10) g")
    capture_once(db, log_url)
    assert run_replicate(log_url, target.url, "--once").returncode == 0
    db.execute("INSERT INTO k VALUES (11, 'x'), (12, 'y');\nDELETE FROM k WHERE a IN (3, 4);\n"
               "INSERT INTO k VALUES (3, 'x')")
    capture_once(db, log_url)
    applied = run_replicate(log_url, target.url, "--once")
    assert applied.returncode == 0, applied.stderr
    query = "SELECT a, b FROM {} ORDER BY a, b"
    assert target.query(query.format("public.k")) == db.query(query.format("k"))


def test_a_table_with_rules_is_refused_before_anything_is_written(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """PostgreSQL applies none of the statements of streamed changes to a table with
    rules (``MERGE`` at all, ``ON CONFLICT`` with insert or update rules, a ``DELETE``
    in ``WITH`` with delete rules), while ``COPY`` ignores rules: replicate says so
    before loading the snapshot, and stores no offsets."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    target.execute("CREATE TABLE public.r (id int PRIMARY KEY, v text);\n"
                   "CREATE TABLE public.deleted_ids (id int);\n"
                   "CREATE RULE keep AS ON DELETE TO public.r "
                   "DO ALSO INSERT INTO public.deleted_ids VALUES (old.id)")
    db.execute("CREATE TABLE r (id int PRIMARY KEY, v text);\n"
               "INSERT INTO r SELECT g, 'snapshot' FROM generate_series(1, 20) g")
    capture_once(db, log_url)
    refused = run_replicate(log_url, target.url, "--once")
    assert refused.returncode == 2, refused.stderr
    assert '"public"."r"' in refused.stderr and 'has rules ("keep"):' in refused.stderr
    assert "DROP RULE" in refused.stderr and "Traceback" not in refused.stderr
    assert target.query("SELECT count(*) FROM public.r") == [(0,)]
    assert target.query("SELECT count(*) FROM duality.offsets") == [(0,)]

    target.execute("DROP RULE keep ON public.r")
    applied = run_replicate(log_url, target.url, "--once")
    assert applied.returncode == 0, applied.stderr
    assert target.query("SELECT count(*) FROM public.r") == [(20,)]
