"""Opening the embedded log's SQLite file: schema, pragmas, format version, errors.

The file layout (format version 2)::

    topics(id, name, partitions, config, created_ms)
    partitions(id, topic_id, partition, next_offset)
    chunks(id, last, count, ts_min, ts_max, size, data)
        -- id = partition id << 40 | first offset; data: records, see sqlite_chunks
    schemas(id, fingerprint, body, created_ms)
    reader_offsets(grp, topic, partition, next_offset, updated_ms)
    source_positions(name, position, updated_ms)

Records are stored in chunks of consecutive offsets (like Kafka's record batches);
a chunk's rowid packs its partition and first offset, so appends go to the end of one
B-tree range per partition and reading a partition from an offset is a range scan.
Each partition can hold 2**40 offsets. (Format 1 stored a row per record; a row costs
SQLite about three times as much to write as a record in a chunk.)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from duality import sqlite_files
from duality.errors import ConfigError, DualityError, LogError, Unavailable
from duality.log.sqlite_chunks import Item, Packed, pack, split

FORMAT_VERSION = 2
#: ``PRAGMA application_id``: marks the file as a duality log ("Dual").
APPLICATION_ID = 0x4475616C
OFFSET_BITS = 40
MAX_OFFSET = (1 << OFFSET_BITS) - 1
BUSY_TIMEOUT_S = 30.0
PAGE_SIZE = 16384
#: How much of the file a reader maps into memory (SQLite caps it at its build's
#: limit, 2 GiB in common builds; the rest is read as before). Nothing of the log
#: shrinks the file (no VACUUM), the case where a mapping would fault. Reading 600k
#: records of 600 bytes: 0.30 s without, 0.21 s with.
READER_MMAP_BYTES = 1 << 40

SCHEMA_SQL = """
CREATE TABLE topics (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    partitions  INTEGER NOT NULL,
    config      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE TABLE partitions (
    id          INTEGER PRIMARY KEY,
    topic_id    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    UNIQUE (topic_id, partition)
);
CREATE TABLE chunks (
    id          INTEGER PRIMARY KEY,
    last        INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    ts_min      INTEGER NOT NULL,
    ts_max      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    data        BLOB NOT NULL
);
CREATE TABLE schemas (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE TABLE reader_offsets (
    grp         TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE source_positions (
    name        TEXT PRIMARY KEY,
    position    TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
"""


def parse_sqlite_url(url: str) -> Path:
    """``sqlite:///abs/log.db``, ``sqlite://rel/log.db`` or a bare path → a Path."""
    return sqlite_files.url_path(url, "log", "sqlite:///path/to/log.db")


def connect(
    path: Path, *, create: bool, busy_timeout: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """Open (and if asked, create) the log file, checking it really is a duality log."""
    if not path.exists():
        if not create:
            raise ConfigError(
                f"log file {path} does not exist; check --log, or create it with "
                f"`duality topics --create NAME --log {path}`, `duality produce` or "
                f"`duality capture`"
            )
        if not path.parent.is_dir():
            raise ConfigError(
                f"cannot create log file {path}: directory {path.parent} does not exist"
            )
    with errors(path, "opening the log", busy_timeout):
        try:
            conn = _open(path, busy_timeout, immutable=False)
        except sqlite3.OperationalError:
            if create or not path.exists():
                raise
            # A log on a read-only filesystem can still be read, as an immutable file.
            conn = _open(path, busy_timeout, immutable=True)
        try:
            _prepare(conn, path, create=create)
        except BaseException:
            conn.close()
            raise
    return conn


def _open(path: Path, busy_timeout: float, *, immutable: bool) -> sqlite3.Connection:
    target = f"file:{path}?immutable=1" if immutable else str(path)
    conn = sqlite3.connect(
        target,
        isolation_level=None,
        timeout=busy_timeout,
        check_same_thread=False,
        uri=immutable,
    )
    if not immutable:
        conn.execute("PRAGMA application_id").fetchone()  # fails here when unreadable
    return conn


def _prepare(conn: sqlite3.Connection, path: Path, *, create: bool) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == 0 and version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if tables:
            raise ConfigError(
                f"{path} is an SQLite database but not a duality log; point --log at a "
                f"new file or an existing duality log"
            )
        if not create:
            raise ConfigError(f"log file {path} is empty; nothing has been written to it yet")
        _initialise(conn)
    elif app_id != APPLICATION_ID:
        raise ConfigError(
            f"{path} is an SQLite database of another application (a table store or a "
            f"replica?), not a log; check --log"
        )
    elif version < FORMAT_VERSION:
        raise LogError(
            f"log file {path} has format version {version}, written by an earlier duality "
            f"(before record chunks); it was not modified. Capture into a new log file, or "
            f"read this one with the duality version that wrote it."
        )
    elif version > FORMAT_VERSION:
        raise LogError(
            f"log file {path} has format version {version}, newer than this duality "
            f"understands ({FORMAT_VERSION}); upgrade duality (pip install -U duality). "
            f"The file was not modified."
        )
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA journal_size_limit=67108864")
    conn.execute("PRAGMA cache_size=-65536")
    if not create:  # a reader (replicate, tables): pages mapped, not copied by a syscall each
        conn.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}").fetchall()


def _initialise(conn: sqlite3.Connection) -> None:
    # Larger pages suit ~400-byte records: measured 15-20% faster appends than 4 KiB.
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    sqlite_files.initialise(conn, APPLICATION_ID, FORMAT_VERSION, SCHEMA_SQL.split(";"))


def errors(
    path: Path, action: str, busy_timeout: float = BUSY_TIMEOUT_S
) -> contextlib.AbstractContextManager[None]:
    """Map SQLite's exceptions to duality's, naming the file and what to do."""
    return sqlite_files.mapped(lambda exc: map_error(exc, path, action, busy_timeout))


def map_error(
    exc: sqlite3.Error, path: Path, action: str, busy_timeout: float = BUSY_TIMEOUT_S
) -> DualityError:
    kind = sqlite_files.failure(exc)
    if kind == "locked":
        return Unavailable(
            f"log file {path} stayed locked by another process for {busy_timeout:g}s "
            f"while {action}; another writer holds it. Stop the other writer or try again."
        )
    if kind == "full":
        return Unavailable(
            f"the disk holding log file {path} is full while {action}; nothing durable was "
            f"lost and the batch was not written. Free space and run again."
        )
    if kind == "read-only":
        return ConfigError(
            f"log file {path} is read-only for this user while {action}; give write "
            f"permission on the file and its directory (SQLite writes {path.name}-wal "
            f"and {path.name}-shm beside it)"
        )
    if kind == "cannot-open":
        return ConfigError(
            f"cannot open log file {path} while {action}: check the path and that the "
            f"file and its directory are readable and writable"
        )
    if kind in ("damaged", "too-big"):
        # (A record too large to write is refused by insert_chunks: a value over SQLite's
        # limit met anywhere else was read from the file.)
        return LogError(
            f"log file {path} is not a readable duality log or is damaged ({exc}) while "
            f"{action}. It was not modified; check --log, restore it from a copy, or check "
            f"it with `sqlite3 {path} 'PRAGMA integrity_check'`."
        )
    return LogError(
        f"log file {path}: SQLite error while {action}: {exc} ({sqlite_files.error_name(exc)})"
    )


def write_chunks(conn: sqlite3.Connection, pid: int, items: Sequence[Item]) -> None:
    """Store records (in offset order) of partition ``pid`` as chunks."""
    insert_chunks(conn, pid, [pack(run) for run in split(items)])


#: Chunks per ``INSERT`` statement: 7 parameters each, within SQLite's oldest limit of
#: 999 parameters per statement.
_CHUNKS_PER_INSERT = 128


def insert_chunks(conn: sqlite3.Connection, pid: int, chunks: Sequence[Packed]) -> None:
    """Store packed chunks of partition ``pid``, many rows per statement. Each statement
    releases the GIL while SQLite runs it and must win it back afterwards, from a
    capture thread that holds it most of the time; one statement per chunk made the
    log writer the bottleneck of a large transaction (measured: 200k deletes drained in
    1.25 s with a statement per chunk, 1.15 s with one per flush)."""
    lo = pid << OFFSET_BITS
    for start in range(0, len(chunks), _CHUNKS_PER_INSERT):
        part = chunks[start : start + _CHUNKS_PER_INSERT]
        params: list[int | bytes] = []
        for c in part:
            params += (lo + c.first, lo + c.last, c.records, c.ts_min, c.ts_max, c.size, c.data)
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(part))
        try:
            conn.execute(
                f"INSERT INTO chunks (id, last, count, ts_min, ts_max, size, data) VALUES {rows}",
                params,
            )
        except sqlite3.DataError as exc:
            if sqlite_files.failure(exc) == "too-big":
                raise record_too_large(conn, part) from exc
            raise


def record_too_large(conn: sqlite3.Connection, chunks: Sequence[Packed]) -> ConfigError:
    """The error for chunks one of which SQLite refused as too big: a chunk closes at
    1 MiB, so it is one record over SQLite's limit on the length of a value."""
    size = max(len(c.data) for c in chunks)
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    return ConfigError(
        f"record too large for the log: it takes {size} bytes (key, value and headers), "
        f"and SQLite keeps at most {limit} bytes in one value (SQLITE_LIMIT_LENGTH). "
        f"Nothing of its batch was written. Split it into smaller records, or keep the "
        f"payload outside the log (a file, object storage) and write a reference to it."
    )
