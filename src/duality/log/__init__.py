"""The log: where change events live between capture and apply.

:func:`open_log` picks the implementation by URL scheme: ``sqlite:///path/log.db`` (or a
bare path) for the embedded log, ``kafka://host:9092,…`` for Apache Kafka (the extra
``duality[kafka]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from duality.errors import ConfigError
from duality.log.base import Log
from duality.log.sqlite import SqliteLog

#: The URL schemes of each implementation (for messages and ``--help``).
SCHEMES = {"sqlite": "sqlite:///path/to/log.db", "kafka": "kafka://host:9092[,host:9092…]"}


def open_log(
    url: str,
    *,
    create: bool = True,
    settings: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Log:
    """Open the log at ``url``. ``create=False`` refuses to create a missing file
    (for commands that only read). ``settings`` are the log's client settings without
    their ``kafka.`` prefix (see :mod:`duality.log.kafka_settings`); ``warn`` receives
    what could not be done or checked (default: stderr)."""
    if not url:
        raise ConfigError("no log given; pass --log sqlite:///path/to/log.db (or set DUALITY_LOG)")
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "kafka":
        return _kafka(url, settings, warn)
    if settings:
        raise ConfigError(
            f"kafka.* settings ({', '.join(sorted(settings))}) apply to a Kafka log only; "
            f"the log {url!r} is the embedded log"
        )
    if scheme in ("", "sqlite", "file") or url.startswith("sqlite:"):
        return SqliteLog(url.removeprefix("file://"), create=create)
    raise ConfigError(
        f"log URL {url!r} has an unknown scheme {scheme!r}; use {SCHEMES['sqlite']} "
        f"or {SCHEMES['kafka']}"
    )


def _kafka(
    url: str, settings: Mapping[str, str] | None, warn: Callable[[str], None] | None
) -> Log:
    try:
        from duality.log.kafka import KafkaLog
    except ImportError as exc:
        raise ConfigError(
            f"log URL {url!r} needs the Kafka client: pip install 'duality[kafka]' "
            f"({exc.msg})"
        ) from None
    return KafkaLog(url, settings, warn=warn)


__all__ = ["SCHEMES", "Log", "SqliteLog", "open_log"]
