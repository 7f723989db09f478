"""Connections to the source database, with pinned session settings and errors mapped.

Every connection duality opens pins the settings that fix the text form of values
(:data:`~duality.sources.postgres.types_model.SESSION_SETTINGS`: TimeZone UTC, DateStyle
ISO, …), through the libpq ``options`` startup parameter, so values never depend on
server, database or role defaults — also in the replication connection, whose output
functions produce pgoutput's text tuples.

The parameters are handled driver-free in :mod:`~duality.sources.postgres.conninfo`
(the replication connection uses psycopg2). Driver exceptions are mapped once: a wrong
password, a missing role or database is a :class:`~duality.errors.ConfigError` (exit
2); a refused or timed-out connection is :class:`~duality.errors.Unavailable` (exit 3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from duality.errors import ConfigError, DualityError, SourceError, Unavailable
from duality.sources.postgres.conninfo import (
    SOURCE_SETTINGS,
    connect_error,
    described,
    pinned,
)


def with_pins(conninfo: str, *, timeout_s: int = 30, **extra: Any) -> str:
    """``conninfo`` plus the pinned settings, our application name and a timeout."""
    return make_conninfo("", **pinned(conninfo_to_dict(conninfo), timeout_s=timeout_s, **extra))


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages (never the password)."""
    return described(conninfo_to_dict(conninfo))


def map_connect_error(
    exc: Exception, conninfo: str, settings: str = SOURCE_SETTINGS
) -> DualityError:
    """A driver error from connecting → a message that says what to fix (see
    :func:`~duality.sources.postgres.conninfo.connect_error`)."""
    return connect_error(exc, describe(conninfo), settings)


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
    except psycopg.errors.QueryCanceled as exc:
        raise ConfigError(
            f"{describe(conninfo)} cancelled a statement while {action} ({exc}): a "
            f"statement_timeout (in the DSN's options, or set for the role or database) "
            f"too short for capture, or a cancel by hand; raise or unset the timeout for "
            f"the capture role"
        ) from exc
    except psycopg.OperationalError as exc:
        raise Unavailable(
            f"lost the connection to {describe(conninfo)} while {action}: {exc}"
        ) from exc
    except psycopg.Error as exc:
        raise SourceError(
            f"PostgreSQL at {describe(conninfo)} refused {action}: {exc}".strip()
        ) from exc
