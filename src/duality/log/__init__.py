"""The log: where change events live between capture and apply.

:func:`open_log` picks the implementation by URL scheme: ``sqlite:///path/log.db`` (or a
bare path) for the embedded log, ``kafka://host:9092,…`` for Apache Kafka.
"""

from __future__ import annotations

from duality.errors import ConfigError
from duality.log.base import Log
from duality.log.sqlite import SqliteLog


def open_log(url: str, *, create: bool = True) -> SqliteLog:
    """Open the log at ``url``. ``create=False`` refuses to create a missing file
    (for commands that only read)."""
    if not url:
        raise ConfigError("no log given; pass --log sqlite:///path/to/log.db (or set DUALITY_LOG)")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("", "sqlite", "file") or url.startswith("sqlite:"):
        return SqliteLog(url.removeprefix("file://"), create=create)
    if scheme == "kafka":
        raise ConfigError(
            f"log URL {url!r}: the Kafka log is not available in this version of duality; "
            f"use the embedded log (sqlite:///path/to/log.db)"
        )
    raise ConfigError(
        f"log URL {url!r} has an unknown scheme {scheme!r}; use sqlite:///path/to/log.db "
        f"or kafka://host:9092"
    )


__all__ = ["Log", "SqliteLog", "open_log"]
