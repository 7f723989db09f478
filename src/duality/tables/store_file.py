"""Opening the table store's SQLite file: URL, pragmas, format marker, metadata tables,
and SQLite errors mapped to duality's.

The file (format version 1) holds, besides the tables themselves::

    "duality:tables"(id, name, source, shape, schema_id, schema_position, watermark,
                     null_keys, skipped, view, spec, origin)
    "duality:offsets"(topic, partition, next_offset, carry)
    "duality:journal"(seq, tbl, op, key, before, after)      -- see duality.tables.journal
    "duality:followers"(id, tbl, seq, seen_ms)

``origin`` is the log's :meth:`~duality.log.base.LogReader.topic_origin` of the topic
the table was applied from (added to older files when they are opened for writing).
``duality:offsets`` is the next log offset to apply per topic partition, written in the
same transaction as the rows it describes; ``carry`` is the key of the last record of
the partition when that record was a delete (so the tombstone after it is recognised
as its repetition). The file is in WAL mode with ``synchronous=NORMAL``: a commit
survives kill -9; power loss may lose the last commits, rows and offsets together, and
they are applied again from the log.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from duality import sqlite_files
from duality.errors import ConfigError, DualityError, LogError, Unavailable

FORMAT_VERSION = 1
#: ``PRAGMA application_id`` of a table store ("DuTb").
APPLICATION_ID = 0x44755462
BUSY_TIMEOUT_S = 30.0

SCHEMA_SQL = (
    """CREATE TABLE "duality:tables" (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        source          TEXT NOT NULL,
        shape           TEXT NOT NULL,
        schema_id       INTEGER,
        schema_position INTEGER,
        watermark       INTEGER,
        null_keys       INTEGER NOT NULL DEFAULT 0,
        skipped         INTEGER NOT NULL DEFAULT 0,
        view            TEXT,
        spec            TEXT,
        origin          TEXT
    )""",
    """CREATE TABLE "duality:offsets" (
        topic       TEXT NOT NULL,
        partition   INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        carry       BLOB,
        PRIMARY KEY (topic, partition)
    ) WITHOUT ROWID""",
    """CREATE TABLE "duality:journal" (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        tbl         TEXT NOT NULL,
        op          TEXT NOT NULL,
        key         BLOB,
        before      BLOB,
        after       BLOB
    )""",
    """CREATE TABLE "duality:followers" (
        id          INTEGER PRIMARY KEY,
        tbl         TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        seen_ms     INTEGER NOT NULL
    )""",
)


def store_path(url: str) -> Path:
    """``sqlite:///abs/tables.db``, ``sqlite://rel/tables.db`` or a bare path → a Path."""
    return sqlite_files.url_path(url, "table store", "sqlite:///path/to/tables.db")


def default_store_url(log_path: Path) -> str:
    """The store beside the log: ``log.db`` → ``log.tables.db`` in the same directory."""
    stem = log_path.name.removesuffix(".db")
    return f"sqlite://{log_path.with_name(stem + '.tables.db')}"


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open the store (creating it unless ``read_only``), checking what the file is."""
    if read_only and not path.exists():
        raise ConfigError(f"table store {path} does not exist yet; nothing has been applied")
    if not read_only and not path.parent.is_dir():
        raise ConfigError(f"cannot create table store {path}: directory {path.parent} is missing")
    with errors(path, "opening the table store"):
        if read_only:
            conn = sqlite3.connect(
                sqlite_files.read_only_uri(path), uri=True, isolation_level=None,
                timeout=BUSY_TIMEOUT_S, check_same_thread=False,
            )
        else:
            conn = sqlite3.connect(
                path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
            )
        try:
            _prepare(conn, path, read_only=read_only)
        except BaseException:
            conn.close()
            raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path, *, read_only: bool) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == 0 and version == 0 and not read_only:
        if conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
            raise ConfigError(
                f"{path} is an SQLite database but not a duality table store; give --store "
                f"a new file or an existing table store"
            )
        _initialise(conn)
    elif app_id != APPLICATION_ID:
        raise ConfigError(f"{path} is not a duality table store (it may be a log: check --store)")
    elif version > FORMAT_VERSION:
        raise LogError(
            f"table store {path} has format version {version}, newer than this duality "
            f"understands ({FORMAT_VERSION}); upgrade duality. The file was not modified."
        )
    if read_only:
        conn.execute("PRAGMA query_only=1")
    else:
        conn.execute("PRAGMA synchronous=NORMAL")
        _add_origin(conn)
    conn.execute("PRAGMA cache_size=-65536")


def _add_origin(conn: sqlite3.Connection) -> None:
    """Add ``origin`` to a store made before it existed (under the write lock, so two
    processes opening the file at once add it once)."""
    def missing() -> bool:
        columns = conn.execute('PRAGMA table_info("duality:tables")').fetchall()
        return "origin" not in {row[1] for row in columns}

    if missing():
        conn.execute("BEGIN IMMEDIATE")
        try:
            if missing():
                conn.execute('ALTER TABLE "duality:tables" ADD COLUMN origin TEXT')
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _initialise(conn: sqlite3.Connection) -> None:
    sqlite_files.initialise(conn, APPLICATION_ID, FORMAT_VERSION, SCHEMA_SQL)


def errors(path: Path, action: str) -> contextlib.AbstractContextManager[None]:
    """Map SQLite's exceptions to duality's, naming the file and what to do."""
    return sqlite_files.mapped(lambda exc: map_error(exc, path, action))


def map_error(exc: sqlite3.Error, path: Path, action: str) -> DualityError:
    kind = sqlite_files.failure(exc)
    if kind == "locked":
        return Unavailable(
            f"table store {path} stayed locked by another process for {BUSY_TIMEOUT_S:g}s "
            f"while {action}; wait for the other writer or try again."
        )
    if kind == "full":
        return Unavailable(
            f"the disk holding table store {path} is full while {action}; nothing was "
            f"applied. Free space and run again."
        )
    if kind == "read-only":
        return ConfigError(
            f"table store {path} is read-only for this user while {action}; give write "
            f"permission on the file and its directory, or choose another --store"
        )
    if kind == "cannot-open":
        return ConfigError(f"cannot open table store {path} while {action}: check the path")
    if kind in ("damaged", "too-big"):
        return LogError(
            f"table store {path} is not a readable table store or is damaged ({exc}) while "
            f"{action}. Check --store; if it is the table store, its tables are rebuilt "
            f"from the log: move the file away and run again."
        )
    return LogError(
        f"table store {path}: SQLite error while {action}: {exc} "
        f"({sqlite_files.error_name(exc)})"
    )
