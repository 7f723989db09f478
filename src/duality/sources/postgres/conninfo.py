"""Connection parameters, whichever driver connects: the pinned settings, a description
for messages, and what a failed connection means to the user.

Both drivers parse a connection string (``key=value`` or a ``postgresql://`` URI) with
libpq's own parser into the same dict, and the functions here work on that dict. Capture
parses with psycopg2 (:func:`parse`, :func:`compose`), which it loads for the
replication connection anyway, so that it can send ``START_REPLICATION`` before it
imports psycopg 3 (``Capture._start_early``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from duality.errors import ConfigError, DualityError, Unavailable
from duality.sources.postgres.types_model import pinned_options

APPLICATION_NAME = "duality"

#: Where the connection settings come from, for capture's messages.
SOURCE_SETTINGS = "--source, or database.user / database.password / database.dbname"

_CONFIG_SQLSTATES = {
    "28P01": "the password was rejected",
    "28000": "the role may not log in (check the user name and pg_hba.conf)",
    "3D000": "the database does not exist",
    "42501": "permission denied",
}
_CONFIG_MARKERS = (
    "password authentication failed",
    "no password supplied",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "authentication failed",
)
#: libpq refusing a connection setting itself (a port that is no number, an unknown
#: sslmode or option): retrying cannot help.
_SETTING_MARKERS = (
    "invalid connection option",
    "for connection option",
    "invalid port number",
    "invalid sslmode value",
    "invalid integer value",
    "invalid value for parameter",
    'missing "=" after',
    "invalid uri",
    "invalid percent-encoded",
)


def parse(conninfo: str) -> dict[str, str]:
    """A ``key=value`` string or URI → its parameters (libpq's parser; raises
    ``psycopg2.ProgrammingError`` when it is not valid)."""
    import psycopg2.extensions  # here: the sinks use this module without psycopg2

    return dict(psycopg2.extensions.parse_dsn(conninfo))


def compose(params: Mapping[str, Any]) -> str:
    """Parameters → a ``key=value`` string, values quoted as libpq reads them."""
    import psycopg2.extensions

    return str(psycopg2.extensions.make_dsn(**params))


def pinned(params: Mapping[str, Any], *, timeout_s: int, **extra: Any) -> dict[str, Any]:
    """Parsed connection parameters plus the pinned settings, our application name and
    a timeout."""
    out = dict(params)
    out.update(options=f"{params.get('options') or ''} {pinned_options()}".strip(),
               connect_timeout=str(timeout_s))
    out.setdefault("application_name", APPLICATION_NAME)
    out.update(extra)
    return out


def described(params: Mapping[str, Any]) -> str:
    """``user@host:port/dbname`` for messages (never the password)."""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return (
        f"{params.get('user') or '(default user)'}@{host}:{params.get('port') or 5432}/"
        f"{params.get('dbname') or '(default database)'}"
    )


def connect_error(exc: Exception, where: str, settings: str = SOURCE_SETTINGS) -> DualityError:
    """A driver's error from connecting to ``where`` → a message that says what to fix
    (``settings`` names where the user, password and database are given)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    lowered = str(exc).lower()
    if any(marker in lowered for marker in _SETTING_MARKERS):
        return ConfigError(f"cannot connect to {where}: {text}. Fix that setting ({settings}).")
    if sqlstate in _CONFIG_SQLSTATES or any(marker in lowered for marker in _CONFIG_MARKERS):
        return ConfigError(
            f"cannot connect to {where}: {text}. Check the user, password and database "
            f"({settings})."
        )
    return Unavailable(
        f"cannot connect to {where}: {text}. Check that PostgreSQL is running and "
        f"reachable at that host and port."
    )
