"""What duality's own SQLite files (the embedded log, the table store) share: their URLs,
creating a file's metadata once, under a lock, and telling SQLite's failures apart so
each file can say in its own words what went wrong and what to do.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from duality.errors import ConfigError, DualityError

Failure = Literal["locked", "full", "read-only", "cannot-open", "too-big", "damaged", "other"]

_BY_NAME: tuple[tuple[tuple[str, ...], str, Failure], ...] = (
    (("SQLITE_BUSY", "SQLITE_LOCKED"), "locked", "locked"),
    (("SQLITE_FULL",), "full", "full"),
    (("SQLITE_READONLY",), "readonly", "read-only"),
    (("SQLITE_CANTOPEN",), "unable to open", "cannot-open"),
    # A string or blob over SQLite's length limit: one being written is too large (the
    # caller says what to do); one read from a file duality wrote means damage.
    (("SQLITE_TOOBIG",), "string or blob too big", "too-big"),
    # Text that is not UTF-8 in a file duality wrote: damage.
    (("SQLITE_NOTADB", "SQLITE_CORRUPT"), "not a database", "damaged"),
    ((), "Could not decode to UTF-8", "damaged"),
)


def url_path(url: str, what: str, example: str) -> Path:
    """``sqlite:///abs/file.db`` (or ``sqlite:////abs/file.db``, SQLAlchemy's way),
    ``sqlite://rel/file.db``, ``file://`` or a bare path → the file's Path; ``what``
    names the file in messages (``log``, ``table store``), ``example`` is a good URL."""
    rest = url
    for prefix in ("sqlite://", "sqlite:", "file://"):
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            break
    else:
        if "://" in url:
            raise ConfigError(f"{what} URL {url!r} has an unknown scheme; use {example}")
    path = rest.split("?", 1)[0]
    if not path:
        raise ConfigError(f"{what} URL {url!r} names no file; use {example}")
    if path.startswith("//"):  # one absolute path, however many slashes
        path = "/" + path.lstrip("/")
    return Path(path).expanduser()


def read_only_uri(path: Path) -> str:
    """The URI that opens ``path`` read-only, whatever characters it holds."""
    return f"file:{quote(str(path))}?mode=ro"


def failure(exc: sqlite3.Error) -> Failure:
    """What kind of failure ``exc`` is, by SQLite's error name (or, where the driver
    gives none, its message)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    for prefixes, words, kind in _BY_NAME:
        if name.startswith(prefixes) or words in text:
            return kind
    return "other"


@contextlib.contextmanager
def mapped(to_error: Callable[[sqlite3.Error], DualityError]) -> Iterator[None]:
    """SQLite's exceptions raised as ``to_error`` makes them (duality's own pass)."""
    try:
        yield
    except DualityError:
        raise
    except sqlite3.Error as exc:
        raise to_error(exc) from exc
    except UnicodeDecodeError as exc:
        damaged = sqlite3.DatabaseError(f"a text column holds bytes that are not UTF-8: {exc}")
        damaged.sqlite_errorname = "SQLITE_CORRUPT"
        raise to_error(damaged) from exc


def error_name(exc: sqlite3.Error) -> str:
    return getattr(exc, "sqlite_errorname", "") or "unnamed"


def initialise(
    conn: sqlite3.Connection, application_id: int, version: int, statements: Iterable[str]
) -> None:
    """Create a new file's tables and mark it with ``application_id`` and ``version``,
    unless another process did so while this one waited for the write lock."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != application_id:
            for statement in statements:
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id={application_id}")
            conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
