"""Sinks: change topics applied to target databases (``duality replicate``).

:func:`open_sink` picks the implementation by the target's URL: PostgreSQL
(``postgresql://…``, ``postgres://…`` or a libpq ``key=value`` DSN) or SQLite
(``sqlite:///path/replica.db``). See :mod:`duality.sinks.base` for the seam and
:mod:`duality.runtime.replicate` for the apply loop.
"""

from __future__ import annotations

from duality.errors import ConfigError
from duality.sinks.base import Batch, Sink, TableState, TargetName
from duality.sinks.naming import Naming

__all__ = ["Batch", "Naming", "Sink", "TableState", "TargetName", "open_sink", "with_schemas"]

_POSTGRES = ("postgresql://", "postgres://")


def open_sink(url: str, sessions: int = 1) -> Sink:
    """Connect to the target at ``url`` (see the module docstring). ``sessions``: how
    many sessions a PostgreSQL target applies a batch's streamed changes over."""
    if url.startswith(_POSTGRES) or ("=" in url and "://" not in url):
        from duality.sinks.postgres import PostgresSink

        return PostgresSink(url, sessions)
    if url.startswith(("sqlite:", "file:")):
        from duality.sinks.sqlite import SqliteSink

        return SqliteSink(url)
    raise ConfigError(
        f"--target {url!r} is not a target this version can write: give "
        f"postgresql://user:password@host:5432/dbname (or a key=value DSN) or "
        f"sqlite:///path/to/replica.db"
    )


def with_schemas(url: str) -> bool:
    """Whether the target at ``url`` has schemas (table names are schema-qualified)."""
    return not url.startswith(("sqlite:", "file:"))
