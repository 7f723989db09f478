"""Publications and replication slots: inspect, create, drop.

The publication must exist before the slot is created (pgoutput decodes publication
membership as of each change). The slot is only ever created on a first start; a slot
that capture used and that is gone or invalidated is a gap (DESIGN.md rule 5), never
silently replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from duality.errors import ConfigError
from duality.sources.postgres.catalog import TableInfo, quote_ident
from duality.sources.postgres.ownership import Holder
from duality.sources.postgres.pgoutput import parse_lsn


@dataclass(frozen=True, slots=True)
class SlotState:
    name: str
    plugin: str | None
    database: str | None
    active_pid: int | None
    confirmed_flush: int | None
    #: ``reserved``, ``extended``, ``unreserved`` or ``lost`` (invalidated).
    wal_status: str | None

    @property
    def lost(self) -> bool:
        return self.wal_status == "lost"


def slot_state(conn: psycopg.Connection[Any], name: str) -> SlotState | None:
    row = conn.execute(
        "SELECT slot_name, plugin, database, active_pid, confirmed_flush_lsn::text, wal_status "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    flush = parse_lsn(row[4]) if row[4] else None
    return SlotState(row[0], row[1], row[2], row[3], flush, row[5])


def slot_holder(conn: psycopg.Connection[Any], server_pid: int) -> Holder | None:
    """The server process ``server_pid`` (a slot's ``active_pid``) as a :class:`Holder`,
    or None once it has exited. Its ``application_name`` is shown to every role; its
    client address only to roles that may see its statistics."""
    row = conn.execute(
        "SELECT application_name, host(client_addr) FROM pg_stat_activity WHERE pid = %s",
        (server_pid,),
    ).fetchone()
    if row is None:
        return None
    return Holder(server_pid, row[0] or None, row[1])


def drop_slot(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = %s AND NOT active",
        (name,),
    )


def publication_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    return row is not None


def ensure_publication(
    conn: psycopg.Connection[Any], name: str, mode: str, tables: Sequence[TableInfo]
) -> str | None:
    """Create the publication per ``publication.autocreate.mode`` if it is missing;
    in ``filtered`` mode, also bring an existing one's table list up to date.
    Returns what was done, for the user, or None."""
    exists = publication_exists(conn, name)
    quoted = quote_ident(name)
    if mode == "disabled":
        if not exists:
            raise ConfigError(
                f"publication {name!r} does not exist and publication.autocreate.mode=disabled; "
                f"create it (CREATE PUBLICATION {quoted} FOR TABLE ...;) or set "
                f"publication.autocreate.mode=filtered"
            )
        return None
    if mode == "all_tables":
        if exists:
            return None
        conn.execute(f"CREATE PUBLICATION {quoted} FOR ALL TABLES")
        return f"created publication {name!r} FOR ALL TABLES"
    if not tables:
        raise ConfigError(
            "publication.autocreate.mode=filtered, but no table matches the include/exclude "
            "lists: nothing to capture"
        )
    listing = ", ".join(t.quoted for t in tables)
    if exists:
        conn.execute(f"ALTER PUBLICATION {quoted} SET TABLE {listing}")
        return None
    conn.execute(f"CREATE PUBLICATION {quoted} FOR TABLE {listing}")
    return f"created publication {name!r} for {len(tables)} table(s)"
