"""Checks before capture creates anything, each failure with the SQL or setting that
fixes it. All failures are reported together, so one run shows everything to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from duality.errors import ConfigError
from duality.log.config import check_topic_name
from duality.sources.postgres.catalog import (
    TableInfo,
    load_tables,
    publication_tables,
    quote_ident,
    via_root,
)
from duality.sources.postgres.config import CaptureConfig
from duality.sources.postgres.replication import STREAMING_VERSION
from duality.sources.postgres.tables import topic_name

MIN_VERSION = 100000


@dataclass(slots=True)
class Preflight:
    """What preflight learned: the server version and the tables to capture."""

    version: int
    user: str
    tables: list[TableInfo]
    every_table: list[str]
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    #: The publication sends partitions' changes as their root's: the roots are captured.
    via_root: bool = False


def run_preflight(
    conn: psycopg.Connection[Any],
    config: CaptureConfig,
    *,
    creating_slot: bool,
    creating_publication: bool,
    warn: Callable[[str], None],
) -> Preflight:
    """Check the server and the captured tables; raise one ConfigError listing every
    problem, each with its fix."""
    version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    user, superuser, replication = conn.execute(
        "SELECT current_user, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    ).fetchone()  # type: ignore[misc]
    roots = via_root(conn, config.publication_name)
    every = load_tables(conn, roots=roots)
    tables = [t for t in every if config.captures(t.schema, t.name)]
    check = Preflight(version, user, tables, [t.qualified for t in every], via_root=roots)
    _version(check)
    _wal_level(conn, check)
    if not (superuser or replication):
        check.problems.append(
            f"role {user!r} lacks the REPLICATION privilege; as a superuser run: "
            f"ALTER ROLE {quote_ident(user)} WITH REPLICATION;"
        )
    _capacity(conn, check, creating_slot)
    _tables(check, config, all_tables=_all(config), creating_publication=creating_publication)
    _topics(check, config.topic_prefix)
    if not creating_publication:
        _existing_publication(conn, check, config.publication_name)
    if creating_publication and _all(config) and not superuser:
        check.problems.append(
            f"creating a FOR ALL TABLES publication needs a superuser and {user!r} is not "
            f"one; create it as a superuser (CREATE PUBLICATION "
            f"{quote_ident(config.publication_name)} FOR ALL TABLES;) or set "
            f"publication.autocreate.mode=filtered"
        )
    for notice in check.notices:
        warn(notice)
    if check.problems:
        raise ConfigError(
            "PostgreSQL is not ready for capture:\n" + "\n".join(f"  - {p}" for p in check.problems)
        )
    return check


def _all(config: CaptureConfig) -> bool:
    return config.publication_autocreate_mode == "all_tables"


def _version(check: Preflight) -> None:
    if check.version < MIN_VERSION:
        check.problems.append(
            f"PostgreSQL {check.version // 10000} is too old: logical replication with "
            f"pgoutput needs 10 or newer (duality is tested on 15)"
        )
    elif check.version < STREAMING_VERSION:
        check.notices.append(
            f"PostgreSQL {check.version // 10000}: logical decoding messages and streaming of "
            f"large transactions need 14 or newer; capture works without them"
        )


def _wal_level(conn: psycopg.Connection[Any], check: Preflight) -> None:
    level = conn.execute("SHOW wal_level").fetchone()[0]  # type: ignore[index]
    if level != "logical":
        check.problems.append(
            f"wal_level is {level!r}; logical replication needs 'logical'. Run "
            f"ALTER SYSTEM SET wal_level = logical; (or set it in postgresql.conf) and "
            f"restart PostgreSQL"
        )


def _capacity(conn: psycopg.Connection[Any], check: Preflight, creating_slot: bool) -> None:
    slots_max, slots_used, senders_max, senders_used = conn.execute(
        "SELECT current_setting('max_replication_slots')::int, "
        "(SELECT count(*) FROM pg_replication_slots), "
        "current_setting('max_wal_senders')::int, "
        "(SELECT count(*) FROM pg_stat_replication)"
    ).fetchone()  # type: ignore[misc]
    if creating_slot and slots_used >= slots_max:
        check.problems.append(
            f"all {slots_max} replication slots are in use; drop an unused one "
            f"(SELECT pg_drop_replication_slot('name');) or raise max_replication_slots "
            f"(ALTER SYSTEM SET max_replication_slots = {slots_max + 4}; then restart)"
        )
    if senders_used >= senders_max:
        check.problems.append(
            f"all {senders_max} WAL senders are busy; raise max_wal_senders (ALTER SYSTEM "
            f"SET max_wal_senders = {senders_max + 4}; then restart)"
        )


def _tables(
    check: Preflight, config: CaptureConfig, *, all_tables: bool, creating_publication: bool
) -> None:
    _include_list_typos(check, config)
    for table in check.tables:
        if not table.selectable:
            check.problems.append(
                f"role {check.user!r} cannot read {table.qualified}; run: GRANT SELECT ON "
                f"{table.quoted} TO {quote_ident(check.user)};"
            )
    missing = [t for t in check.tables if not t.has_identity]
    if not missing or not creating_publication:
        return
    names = ", ".join(t.qualified for t in missing)
    fixes = " ".join(f"ALTER TABLE {t.quoted} REPLICA IDENTITY FULL;" for t in missing[:3])
    kind = "A FOR ALL TABLES publication" if all_tables else "A publication listing them"
    check.problems.append(
        f"table(s) without a primary key or replica identity: {names}. {kind} would make "
        f"UPDATE and DELETE on them fail in your database, so duality will not create it. "
        f"Either give them an identity ({fixes}), or set publication.autocreate.mode=filtered "
        f"with a table.include.list (or table.exclude.list) that leaves them out, or create "
        f"the publication yourself (publication.autocreate.mode=disabled)"
    )


def _topics(check: Preflight, prefix: str) -> None:
    """Every captured table gets a topic of its own, with a name Kafka allows."""
    owners: dict[str, TableInfo] = {}
    for table in check.tables:
        topic = topic_name(prefix, table.schema, table.name)
        try:
            check_topic_name(topic)
        except ConfigError as exc:
            check.problems.append(
                f"table {table.quoted}: {exc}; choose a shorter topic.prefix, or leave the "
                f"table out (table.exclude.list)"
            )
            continue
        first = owners.setdefault(topic, table)
        if first is not table:
            check.problems.append(topic_clash(topic, first.quoted, table.quoted))


def topic_clash(topic: str, first: str, second: str) -> str:
    """The message for two tables whose topic names are the same: characters Kafka does
    not allow in topic names become ``_`` (as in Debezium), so ``"a b"`` meets ``a_b``."""
    return (
        f"tables {first} and {second} would both be written to topic {topic!r} (characters "
        f"that topic names cannot hold become '_'), which would mix their rows; leave one "
        f"out (table.exclude.list), or rename one"
    )


def _existing_publication(conn: psycopg.Connection[Any], check: Preflight, name: str) -> None:
    """A publication that publishes UPDATE or DELETE for a table without a replica
    identity makes those statements fail in the user's database (REPLICA IDENTITY
    NOTHING is only workable with ``publish = 'insert'``)."""
    row = conn.execute(
        "SELECT pubupdate OR pubdelete FROM pg_publication WHERE pubname = %s", (name,)
    ).fetchone()
    if row is None or not row[0]:
        return
    published = publication_tables(conn, name)
    broken = [t for t in check.tables if not t.has_identity and (t.schema, t.name) in published]
    if broken:
        names = ", ".join(t.qualified for t in broken)
        check.problems.append(
            f"publication {name!r} publishes UPDATE and DELETE for table(s) without a replica "
            f"identity ({names}): those statements fail in your database. Give them one "
            f"(ALTER TABLE {broken[0].quoted} REPLICA IDENTITY FULL;), or publish inserts "
            f"only (ALTER PUBLICATION {quote_ident(name)} SET (publish = 'insert');)"
        )


def _include_list_typos(check: Preflight, config: CaptureConfig) -> None:
    if not config.table_include:
        return
    names = check.every_table
    everything = names or ["(no tables)"]
    for pattern in config.table_include:
        if not any(pattern.fullmatch(name) for name in names):
            close = difflib.get_close_matches(pattern.pattern, everything, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            check.problems.append(
                f"table.include.list entry {pattern.pattern!r} matches no table{hint} "
                f"(names are schema.table)"
            )
