"""Connections to the source database, with pinned session settings and errors mapped.

Every connection duality opens pins the settings that fix the text form of values
(:data:`~duality.sources.postgres.types_model.SESSION_SETTINGS`: TimeZone UTC, DateStyle
ISO, …), through the libpq ``options`` startup parameter, so values never depend on
server, database or role defaults — also in the replication connection, whose output
functions produce pgoutput's text tuples.

Driver exceptions are mapped here, once: a wrong password, a missing role or database
is a :class:`~duality.errors.ConfigError` (exit 2); a refused or timed-out connection is
:class:`~duality.errors.Unavailable` (exit 3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from duality.errors import ConfigError, DualityError, SourceError, Unavailable
from duality.sources.postgres.typeinfo import pinned_options

APPLICATION_NAME = "duality"

_CONFIG_SQLSTATES = {
    "28P01": "the password was rejected",
    "28000": "the role may not log in (check the user name and pg_hba.conf)",
    "3D000": "the database does not exist",
    "42501": "permission denied",
}


def with_pins(conninfo: str, *, timeout_s: int = 30, **extra: Any) -> str:
    """``conninfo`` plus the pinned settings, our application name and a timeout."""
    params = conninfo_to_dict(conninfo)
    options = f"{params.get('options') or ''} {pinned_options()}".strip()
    params.update(options=options, connect_timeout=str(timeout_s))
    params.setdefault("application_name", APPLICATION_NAME)
    params.update(extra)
    return make_conninfo("", **params)


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages (never the password)."""
    params = conninfo_to_dict(conninfo)
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return (
        f"{params.get('user') or '(default user)'}@{host}:{params.get('port') or 5432}/"
        f"{params.get('dbname') or '(default database)'}"
    )


#: Where the connection settings come from, for capture's messages.
SOURCE_SETTINGS = "--source, or database.user / database.password / database.dbname"


def map_connect_error(
    exc: Exception, conninfo: str, settings: str = SOURCE_SETTINGS
) -> DualityError:
    """A driver error from connecting → a message that says what to fix (``settings``
    names where the user, password and database are given)."""
    where = describe(conninfo)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    lowered = str(exc).lower()
    if sqlstate in _CONFIG_SQLSTATES or any(
        marker in lowered
        for marker in (
            "password authentication failed",
            "no password supplied",
            "does not exist",
            "no pg_hba.conf entry",
            "permission denied",
            "authentication failed",
        )
    ):
        return ConfigError(
            f"cannot connect to {where}: {text}. Check the user, password and database "
            f"({settings})."
        )
    return Unavailable(
        f"cannot connect to {where}: {text}. Check that PostgreSQL is running and "
        f"reachable at that host and port."
    )


def connect(
    conninfo: str, *, autocommit: bool = True, timeout_s: int = 30
) -> psycopg.Connection[Any]:
    """A normal (SQL) connection with pinned settings."""
    try:
        return psycopg.connect(with_pins(conninfo, timeout_s=timeout_s), autocommit=autocommit)
    except psycopg.Error as exc:
        raise map_connect_error(exc, conninfo) from exc


@contextlib.contextmanager
def source_errors(conninfo: str, action: str) -> Iterator[None]:
    """Map errors raised while talking to an open source connection."""
    try:
        yield
    except DualityError:
        raise
    except psycopg.OperationalError as exc:
        raise Unavailable(
            f"lost the connection to {describe(conninfo)} while {action}: {exc}"
        ) from exc
    except psycopg.Error as exc:
        raise SourceError(
            f"PostgreSQL at {describe(conninfo)} refused {action}: {exc}".strip()
        ) from exc
