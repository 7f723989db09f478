"""A missing, corrupt, locked, read-only or full log, or one of a newer format: each
gets a clear message naming the file and what to do, and loses nothing durable."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from duality.errors import ConfigError, LogError, Unavailable
from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _filled(path: Path, records: int = 10) -> None:
    with SqliteLog(f"sqlite://{path}") as log:
        log.create_topic("t")
        log.append(NewRecord("t", b'{"k":%d}' % i, b"{}") for i in range(records))
        log.flush()


def test_missing_file_is_a_config_error_for_readers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SqliteLog(f"sqlite://{tmp_path / 'nope.db'}", create=False)
    with pytest.raises(ConfigError, match=r"directory .* does not exist"):
        SqliteLog(f"sqlite://{tmp_path / 'no' / 'dir.db'}")


def test_corrupt_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    path.write_bytes(os.urandom(8192))
    before = _digest(path)
    with pytest.raises(LogError, match=r"damaged|not a readable"):
        SqliteLog(f"sqlite://{path}")
    assert _digest(path) == before


def test_damaged_pages_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _filled(path, 2000)
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 6] = os.urandom(4096 * 3)
    path.write_bytes(bytes(data))
    with pytest.raises(LogError, match="damaged"):
        log = SqliteLog(f"sqlite://{path}")
        log.read("t", 0, 0, 100_000)


def test_text_that_is_not_utf8_is_reported_as_damage(tmp_path: Path) -> None:
    """Random damage can leave text columns (or SQLite's own error message) with bytes
    that are not UTF-8; that is damage too, not an unexplained failure."""
    path = tmp_path / "log.db"
    _filled(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE topics SET name = CAST(x'ce41' AS TEXT)")
        conn.commit()
    with pytest.raises(LogError, match="damaged"):
        SqliteLog(f"sqlite://{path}").list_topics()


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE x (a)")
    with pytest.raises(ConfigError, match="not a duality log"):
        SqliteLog(f"sqlite://{path}")


def test_newer_format_version_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _filled(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version=99")
    before = _digest(path)
    with pytest.raises(LogError, match="format version 99, newer"):
        SqliteLog(f"sqlite://{path}")
    assert _digest(path) == before


def test_locked_log_is_unavailable_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _filled(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with SqliteLog(f"sqlite://{path}", busy_timeout=0.2) as log:
            log.append([NewRecord("t", b"{}", b"{}")])
            with pytest.raises(Unavailable, match=r"locked by another process for 0\.2s"):
                log.flush()
            assert log.pending == 1  # nothing lost: the batch can be flushed later
            holder.execute("ROLLBACK")
            log.flush()
            assert log.end_offsets("t") == {0: 11}
    finally:
        holder.close()


@contextlib.contextmanager
def _tiny_filesystem(tmp_path: Path, size: str = "1m") -> Iterator[Path]:
    mount = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(
            "needs to mount a small tmpfs (root, in a machine that allows mounts); "
            "runs in CI, which runs as root"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_loses_nothing_durable(tmp_path: Path) -> None:
    with _tiny_filesystem(tmp_path) as mount:
        url = f"sqlite://{mount / 'log.db'}"
        with SqliteLog(url) as log:
            log.create_topic("t")
            log.append([NewRecord("t", b'{"k":0}', b"{}")])
            log.flush()
            log.append(NewRecord("t", b'{"k":1}', os.urandom(4096)) for _ in range(1000))
            with pytest.raises(Unavailable, match="full"):
                log.flush()
        with SqliteLog(url, create=False) as log:
            assert [r.key for r in log.read("t", 0, 0, 10)] == [b'{"k":0}']


def test_read_only_log_is_a_config_error_and_readable(tmp_path: Path) -> None:
    with _tiny_filesystem(tmp_path, "16m") as mount:
        path = mount / "log.db"
        _filled(path)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with SqliteLog(f"sqlite://{path}", create=False) as log:
            log.append([NewRecord("t", b"{}", b"{}")])
            with pytest.raises(ConfigError, match="read-only"):
                log.flush()


def test_a_record_too_large_is_refused_not_reported_as_damage(tmp_path: Path) -> None:
    """SQLite's limit on a value's length (1 GB; lowered here to keep the test small) is
    the record's fault, not the file's: exit 2, naming the limit, and the log goes on."""
    with SqliteLog(f"sqlite://{tmp_path / 'log.db'}") as log:
        log.create_topic("t")
        log._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100_000)
        log.append([NewRecord("t", b"1", b"x" * 200_000)])
        with pytest.raises(ConfigError) as info:
            log.flush()
        assert info.value.exit_code == 2
        assert "record too large" in str(info.value)
        assert "at most 100000 bytes" in str(info.value)
        assert "damaged" not in str(info.value)
        log.discard()
        log.append([NewRecord("t", b"2", b"y" * 1000)])
        log.flush()
        assert [r.key for r in log.read("t", 0, 0, 10)] == [b"2"]
