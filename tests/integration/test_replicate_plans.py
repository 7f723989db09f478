"""How the PostgreSQL target plans the statement that applies a batch.

The statement joins the batch's keys to the table's positions (and to the table, for
deletes). Through the key's index, that costs a lookup per key of the batch; with a hash
join it costs a scan of the whole positions table, which the planner prefers once a batch
is a sizeable part of it. Replicate's session turns hash and merge joins off; this test
reads the plan the server used (``auto_explain`` in the target database) for a batch that
changes every key of a small table a second time, where the planner would otherwise
hash the positions table. It also turns JIT compilation off, which costs a statement
more than it saves (the second test).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import Database
from tests.replicate_support import capture_once, run_replicate

pytestmark = pytest.mark.postgres

TABLE = "planned"


def _replicate(db: Database, target: Database, log_url: str, sql: str) -> None:
    db.execute(sql)
    capture_once(db, log_url)
    applied = run_replicate(log_url, target.url, "--once")
    assert applied.returncode == 0, applied.stderr


def _plans(log: str) -> list[str]:
    """The plans ``auto_explain`` logged for statements that update a positions table."""
    blocks = re.split(r"\n(?=\S)", log)
    return [block for block in blocks if "plan:" in block and "Query Text: WITH fresh" in block
            and f'"{TABLE}"' in block]


def test_a_batch_is_joined_key_by_key_through_the_indexes(
    db: Database, target: Database, tmp_path: Path
) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    _replicate(db, target, log_url,
               f"CREATE TABLE {TABLE} (id int PRIMARY KEY, n int);\n"
               f"INSERT INTO {TABLE} SELECT g, g FROM generate_series(1, 3000) g")
    _replicate(db, target, log_url, f"UPDATE {TABLE} SET n = n + 1")  # positions for all
    for setting in ("session_preload_libraries = 'auto_explain'",
                    "auto_explain.log_min_duration = 0"):
        db.server.execute(f'ALTER DATABASE "{target.name}" SET {setting}')
    before = len(db.server.server_log())
    _replicate(db, target, log_url,
               f"UPDATE {TABLE} SET n = n + 1 WHERE id > 100;\n"
               f"DELETE FROM {TABLE} WHERE id <= 100")
    plans = _plans(db.server.server_log()[before:])
    assert plans, "auto_explain logged no plan of the applying statement"
    for plan in plans:
        assert "Hash Join" not in plan and "Merge Join" not in plan, plan
        assert "Nested Loop" in plan, plan
    query = f"SELECT id, n FROM {TABLE} ORDER BY id"
    assert target.query(query) == db.query(query)


def test_a_batch_is_not_compiled_just_in_time(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """Replicate's sessions turn JIT compilation off: with ``jit_above_cost`` at 0 (the
    server would compile every statement), the applying statement's plan has no JIT."""
    if not target.query("SELECT pg_jit_available()")[0][0]:
        pytest.skip("this PostgreSQL has no JIT provider (llvmjit) installed")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    _replicate(db, target, log_url,
               f"CREATE TABLE {TABLE} (id int PRIMARY KEY, n int);\n"
               f"INSERT INTO {TABLE} SELECT g, g FROM generate_series(1, 300) g")
    for setting in ("session_preload_libraries = 'auto_explain'",
                    "auto_explain.log_min_duration = 0", "jit_above_cost = 0"):
        db.server.execute(f'ALTER DATABASE "{target.name}" SET {setting}')
    before = len(db.server.server_log())
    _replicate(db, target, log_url, f"UPDATE {TABLE} SET n = n + 1 WHERE id > 100")
    plans = _plans(db.server.server_log()[before:])
    assert plans, "auto_explain logged no plan of the applying statement"
    for plan in plans:
        assert "JIT:" not in plan, plan
