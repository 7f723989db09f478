"""The PostgreSQL source: preflight, publication and slot, snapshot, streaming.

It decides *what* to do on start (:meth:`PostgresSource.plan`) and does the I/O with the
database; :mod:`duality.runtime.capture` decides the order in which things become
durable and are acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from duality.errors import ConfigError, GapError
from duality.events.model import NewRecord
from duality.events.positions import PgPosition
from duality.sources.postgres import catalog, ownership, slots, snapshot
from duality.sources.postgres.changes import ChangeStream, StreamOptions
from duality.sources.postgres.config import CaptureConfig
from duality.sources.postgres.connection import connect, describe, source_errors
from duality.sources.postgres.events import EventBuilder, RegisterAux
from duality.sources.postgres.pgoutput import Relation, format_lsn
from duality.sources.postgres.preflight import Preflight, run_preflight, topic_clash
from duality.sources.postgres.record_schema import flattened_schema
from duality.sources.postgres.relations import GONE, describe_change, relation_spec, relation_types
from duality.sources.postgres.replication import (
    CreatedSlot,
    ReplicationStream,
    SlotInUse,
    stream_options,
)
from duality.sources.postgres.tables import TableCodec, build_codec, topic_name
from duality.sources.postgres.typeinfo import load_types
from duality.sources.postgres.types_text import binary_schema, encode_binary

#: Registers a codec's topic and schema in the log; returns the schema id.
Register = Callable[[TableCodec], int]
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StartPlan:
    """What capture does on this start.

    ``create_slot``: create the slot (after storing a marker that says so);
    ``drop_slot``: first drop this slot, which duality created for a snapshot that never
    completed; ``snapshot``: ``"exported"`` (aligned with the new slot), ``"unaligned"``
    (read now, while streaming resumes from ``position``), or None; ``stream``: whether
    to stream afterwards.
    """

    position: PgPosition | None
    create_slot: bool = False
    drop_slot: str | None = None
    snapshot: str | None = None
    stream: bool = True
    temporary_slot: bool = False


class PostgresSource:
    """``early``: a replication stream already started where the stored position said
    streaming would start (see ``Capture.run``); adopted by :meth:`start_streaming` if
    :meth:`plan` agrees, otherwise closed by :meth:`plan` before any slot is touched.
    ``identity``: the capture this source runs for, named in its replication
    connections (see :mod:`~duality.sources.postgres.ownership`)."""

    def __init__(
        self,
        config: CaptureConfig,
        *,
        say: Say,
        warn: Say,
        early: ReplicationStream | None = None,
        identity: ownership.CaptureIdentity | None = None,
    ) -> None:
        self.config = config
        self.say = say
        self.warn = warn
        self.early = early
        self.identity = identity or ownership.CaptureIdentity.of(
            "", config.position_name, config.topic_prefix
        )
        self.conn = connect(config.conninfo, timeout_s=config.connect_timeout_s)
        with source_errors(config.conninfo, "reading the server state"):
            self.db = str(self.conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        values = config.values
        self.builder = EventBuilder(
            config.topic_prefix,
            self.db,
            tombstones=config.tombstones_on_delete,
            heartbeat_prefix=config.heartbeat_prefix,
            encode_bytes=encode_binary(values.binary_handling_mode),
            content_schema=binary_schema(values.binary_handling_mode, True),
            flatten=config.flatten,
        )
        with source_errors(config.conninfo, "reading the server version"):
            self.version = int(self.conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        self.replication: ReplicationStream | None = None
        self.tables: list[catalog.TableInfo] = []
        self.changes: ChangeStream | None = None
        self._codecs: dict[int, TableCodec] = {}
        #: Which table (schema, name) each topic is written for: one per topic.
        self._topics: dict[str, tuple[str, str]] = {}
        self._register: Register = lambda _codec: 0
        #: The publication sends partitions' changes as their root's.
        self._via_root = False
        self._logged_key: Callable[[str], tuple[str, ...]] = lambda _topic: ()

    def close(self) -> None:
        self._drop_early()
        if self.replication is not None:
            self.replication.close()
        self.conn.close()

    def _drop_early(self) -> None:
        if self.early is not None:
            self.early.close()
            self.early = None

    # -- start-up -----------------------------------------------------------------

    def current_wal_lsn(self) -> int:
        from duality.sources.postgres.pgoutput import parse_lsn

        row = self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        return parse_lsn(row[0])  # type: ignore[index]

    def plan(self, stored: PgPosition | None) -> StartPlan:
        """Preflight, then decide how to start from the stored position (see
        :class:`StartPlan`). A slot that capture used and that is gone, invalidated or
        ahead of the stored position is a gap: :class:`GapError`, unless
        ``snapshot.mode=when_needed`` (then a new snapshot is taken). A slot that another
        process took since :meth:`await_slot` is :class:`SlotInUse` (:class:`ConfigError`
        if another capture took it): its position may still move.

        The early stream, if any, is kept only when the plan streams straight away from
        where it started; else it is closed here, before the slot is dropped, created or
        read from again."""
        with source_errors(self.config.conninfo, "checking the replication slot"):
            slot = slots.slot_state(self.conn, self.config.slot_name)
        holder = self._holder(slot)
        if holder is not None:  # taken since await_slot: the slot's position may move
            raise SlotInUse(self._in_use(holder))
        plan = self._plan(stored, slot)
        if not self._keeps_early(plan, slot):
            self._drop_early()
        return plan

    def _keeps_early(self, plan: StartPlan, slot: slots.SlotState | None) -> bool:
        """Whether the early stream is the one ``plan`` starts: streaming straight away
        (no slot to create or drop, no snapshot first) from the LSN it asked for, or,
        asked from the slot's confirmed position (LSN 0), from that position."""
        early, position = self.early, plan.position
        if early is None or position is None or not plan.stream:
            return False
        if plan.create_slot or plan.drop_slot or plan.snapshot:
            return False
        if early.start_lsn == 0:
            return slot is not None and slot.confirmed_flush == position.lsn
        return early.start_lsn == position.lsn

    def _plan(self, stored: PgPosition | None, slot: slots.SlotState | None) -> StartPlan:
        config = self.config
        mode = config.snapshot_mode
        resuming = stored is not None and stored.snapshot != "running"
        check = self._preflight(creating_slot=slot is None)
        self.tables = check.tables
        self._via_root = check.via_root
        for table in check.tables:  # the preflight refused two tables on one topic
            self._topics[topic_name(config.topic_prefix, table.schema, table.name)] = (
                table.schema, table.name)
        self._check_types()
        if stored is not None and stored.snapshot == "running":
            self.warn("the last snapshot did not complete; starting it again on a new slot")
            return StartPlan(None, create_slot=True, drop_slot=stored.slot, snapshot="exported")
        if resuming:
            assert stored is not None
            self._follow_filters()
            gap = self._gap(stored, slot)
            if gap is None:
                snap = "unaligned" if mode == "always" else None
                return StartPlan(stored, snapshot=snap, stream=mode != "initial_only")
            if mode != "when_needed":
                raise GapError(gap + " Re-run with --snapshot when_needed to take a new snapshot.")
            self.warn(gap + " snapshot.mode=when_needed: taking a new snapshot.")
            if slot is not None and not slot.lost:  # acknowledged past the stored position
                position = PgPosition(lsn=slot.confirmed_flush or 0, slot=slot.name)
                return StartPlan(position, snapshot="unaligned")
            drop = config.slot_name if slot is not None and slot.lost else None
            return StartPlan(
                None, create_slot=slot is None or slot.lost, drop_slot=drop, snapshot="exported"
            )
        return self._first_start(slot)

    def _first_start(self, slot: slots.SlotState | None) -> StartPlan:
        mode = self.config.snapshot_mode
        if mode == "never":
            self.warn("snapshot.mode=never is Debezium's old name for no_data")
            mode = "no_data"
        if slot is None:
            if mode == "no_data":
                return StartPlan(None, create_slot=True)
            return StartPlan(
                None,
                create_slot=True,
                snapshot="exported",
                stream=mode != "initial_only",
                temporary_slot=mode == "initial_only",
            )
        if slot.lost:
            raise GapError(
                f"replication slot {slot.name!r} exists but was invalidated (its WAL was "
                f"removed); drop it (SELECT pg_drop_replication_slot('{slot.name}');) and "
                f"start again"
            )
        position = PgPosition(lsn=slot.confirmed_flush or 0, snapshot="completed", slot=slot.name)
        lsn = format_lsn(slot.confirmed_flush or 0)
        if mode == "no_data":
            self.warn(ownership.adopted(slot.name, f"streaming from its position {lsn}"))
            return StartPlan(position)
        self.warn(ownership.adopted(
            slot.name,
            f"the snapshot is read now, after the slot's position {lsn}, so changes "
            f"committed in between appear both as snapshot rows and as change events (a "
            f"table built from the topic is still right)",
        ))
        return StartPlan(position, snapshot="unaligned", stream=mode != "initial_only")

    def _follow_filters(self) -> None:
        """``publication.autocreate.mode=filtered``: at every start the publication's
        tables become those the include and exclude lists name now, as Debezium does.
        A table added is captured from now on: its changes made before, and its rows, are
        not in the log (pgoutput reads the publication as it was at each change)."""
        config = self.config
        name = config.publication_name
        if config.publication_autocreate_mode != "filtered" or not self.tables:
            return
        with source_errors(config.conninfo, "updating the publication"):
            if not slots.publication_exists(self.conn, name):
                return
            listed = catalog.publication_tables(self.conn, name)
            wanted = {(t.schema, t.name) for t in self.tables}
            if listed == wanted:
                return
            slots.ensure_publication(self.conn, name, "filtered", self.tables)
        added = ", ".join(f"{s}.{t}" for s, t in sorted(wanted - listed))
        dropped = ", ".join(f"{s}.{t}" for s, t in sorted(listed - wanted))
        if dropped:
            self.say(f"publication {name!r}: no longer publishes {dropped}")
        if added:
            self.warn(
                f"publication {name!r} now also publishes {added} (publication.autocreate."
                f"mode=filtered follows the include and exclude lists): captured from now on; "
                f"rows already there and changes made before are not in the log (take a new "
                f"snapshot into a new log, or with a new slot, to have them)"
            )

    def _preflight(self, *, creating_slot: bool) -> Preflight:
        config = self.config
        creating_publication = (
            config.publication_autocreate_mode != "disabled"
            and not slots.publication_exists(self.conn, config.publication_name)
        )
        with source_errors(config.conninfo, "checking the server"):
            return run_preflight(
                self.conn,
                config,
                creating_slot=creating_slot,
                creating_publication=creating_publication,
                warn=self.warn,
            )

    def _gap(self, stored: PgPosition, slot: slots.SlotState | None) -> str | None:
        where = describe(self.config.conninfo)
        name = self.config.slot_name
        since = format_lsn(stored.lsn)
        if slot is None:
            return (
                f"replication slot {name!r} does not exist on {where}; it was dropped, so "
                f"changes since LSN {since} are gone."
            )
        if slot.lost:
            return (
                f"replication slot {name!r} on {where} was invalidated (its WAL was removed), "
                f"so changes since LSN {since} are gone."
            )
        if slot.confirmed_flush is not None and slot.confirmed_flush > stored.lsn:
            return (
                f"replication slot {name!r} on {where} was acknowledged up to "
                f"{format_lsn(slot.confirmed_flush)}, past the position stored in the log "
                f"({since}): the changes in between were consumed elsewhere and are lost. "
                f"Another capture (into another log, or with another topic prefix), or "
                f"another tool, read from this slot or advanced it: give each capture a slot "
                f"of its own (--slot NAME), or they keep taking changes from each other's log."
            )
        return None

    # -- slot, publication, snapshot ------------------------------------------------

    @property
    def streaming(self) -> bool:
        """Whether large transactions are streamed while in progress (protocol 2)."""
        return self._options().get("streaming") == "on"

    def _options(self) -> dict[str, str]:
        config = self.config
        return stream_options(config.protocol, self.version, config.publication_name)

    def heartbeat_action(self) -> None:
        """Run ``heartbeat.action.query`` (e.g. an UPDATE of a heartbeat table, so an
        otherwise idle database writes WAL that moves the slot)."""
        query = self.config.heartbeat_action_query
        if query:
            with source_errors(self.config.conninfo, "running heartbeat.action.query"):
                self.conn.execute(query.encode())

    def set_register(
        self, register: Register, register_aux: RegisterAux,
        logged_key: Callable[[str], tuple[str, ...]] = lambda _topic: (),
    ) -> None:
        """How codecs get their topic and schema id, and auxiliary topics theirs;
        ``logged_key``: the primary key of the last schema the log holds for a topic."""
        self._register = register
        self._logged_key = logged_key
        self.builder.aux.register = register_aux
        if self.config.transaction_metadata:
            # The transaction topic exists from the start, so a reader of a log that holds
            # only a snapshot so far can tell that transaction metadata is on.
            self.builder.aux.schema_id(self.builder.aux.transaction)

    def await_slot(self, pause: Callable[[float], bool]) -> bool:
        """Before the plan, and before the stored position is read for it: wait while
        the slot streams to a process that may be this capture's (one still stopping,
        or a second copy), ``slot.max.retries`` times ``slot.retry.delay.ms``, then
        raise :class:`SlotInUse`; refuse at once (:class:`ConfigError`) a slot that
        streams to another capture. Once the slot is free, its last holder has stored
        everything it acknowledged. ``pause(seconds)`` waits and says whether capture
        was asked to stop (then this returns False)."""
        config = self.config
        retries = config.slot_max_retries
        while True:
            with source_errors(config.conninfo, "checking the replication slot"):
                holder = self._holder(slots.slot_state(self.conn, config.slot_name))
            if holder is None:
                return True
            if retries == 0:
                raise SlotInUse(self._in_use(holder))
            retries -= 1
            delay = config.slot_retry_delay_s
            self.warn(ownership.still_in_use(config.slot_name, holder, delay))
            if pause(delay):
                return False

    def _holder(self, slot: slots.SlotState | None) -> ownership.Holder | None:
        """The process that streams from ``slot``, unless none or this source's own;
        :class:`ConfigError` if it is another capture."""
        config = self.config
        if slot is None or slot.active_pid is None:
            return None
        ours = {s.backend_pid for s in (self.early, self.replication) if s is not None}
        if slot.active_pid in ours:
            return None
        with source_errors(config.conninfo, "checking the replication slot"):
            holder = slots.slot_holder(self.conn, slot.active_pid)
        if holder is not None and holder.other_capture(self.identity):
            where = describe(config.conninfo)
            raise ConfigError(
                ownership.another_capture(config.slot_name, where, holder, self.identity)
            )
        return holder

    def _in_use(self, holder: ownership.Holder) -> str:
        where = describe(self.config.conninfo)
        return ownership.in_use(self.config.slot_name, where, holder, self.identity)

    def drop_slot(self, name: str, wait_s: float = 30.0) -> None:
        """Drop a slot duality created, waiting for a dying process to let go of it."""
        deadline = time.monotonic() + wait_s
        with source_errors(self.config.conninfo, f"dropping slot {name!r}"):
            while True:
                state = slots.slot_state(self.conn, name)
                if state is None:
                    return
                if state.active_pid is None:
                    slots.drop_slot(self.conn, name)
                    continue
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"replication slot {name!r} is still in use by process "
                        f"{state.active_pid}; stop it and start again"
                    )
                time.sleep(0.5)

    def create_slot(self, *, export_snapshot: bool, temporary: bool = False) -> CreatedSlot:
        config = self.config
        with source_errors(config.conninfo, "creating the publication"):
            done = slots.ensure_publication(
                self.conn,
                config.publication_name,
                config.publication_autocreate_mode,
                self.tables,
            )
        if done:
            self.say(done)
        self.replication = self._replication_stream()
        created = self.replication.create_slot(
            config.slot_name, export_snapshot=export_snapshot, temporary=temporary
        )
        self.say(
            f"created replication slot {config.slot_name!r} at "
            f"{format_lsn(created.consistent_point)}"
        )
        return created

    def _replication_stream(self) -> ReplicationStream:
        return ReplicationStream(
            self.config.conninfo,
            timeout_s=self.config.connect_timeout_s,
            application_name=self.identity.application_name,
        )

    def snapshot_codecs(self) -> list[tuple[catalog.TableInfo, TableCodec]]:
        """Codecs for every captured table, registered, in snapshot order."""
        types = load_types(self.conn, {c.type_oid for t in self.tables for c in t.columns})
        out = []
        for table in self.tables:
            codec = self._table_codec(table, list(table.columns), types, snapshot=True)
            out.append((table, codec))
        return out

    def snapshot_records(
        self,
        codecs: list[tuple[catalog.TableInfo, TableCodec]],
        snapshot_name: str | None,
        lsn: int,
        progress: Callable[[str, int, int], None],
    ) -> Iterator[list[NewRecord]]:
        """The snapshot of the tables of ``codecs`` (from :meth:`snapshot_codecs`), as
        batches of records with Debezium's snapshot markers."""
        started_us = time.time_ns() // 1000
        with source_errors(self.config.conninfo, "reading the snapshot"):
            txid = snapshot.begin_snapshot(self.conn, snapshot_name)
            try:
                yield from snapshot.marked_batches(self.conn, self.builder, codecs, started_us,
                                                  lsn, txid, progress)
            finally:
                self.conn.execute("ROLLBACK")

    # -- streaming ------------------------------------------------------------------

    def start_streaming(self, position: PgPosition) -> bool:
        """Stream from ``position``; whether on the early stream (started there)."""
        config = self.config
        options = self._options()
        early = self.early
        on_early = early is not None and early.options == options
        if on_early:
            self.early, self.replication = None, early
        else:
            self._drop_early()
            if self.replication is None:
                self.replication = self._replication_stream()
            self.replication.start(
                config.slot_name,
                position.lsn,
                options,
                retries=config.slot_max_retries,
                retry_delay_s=config.slot_retry_delay_s,
                on_retry=self.warn,
            )
        self.changes = ChangeStream(
            self.builder,
            self._relation_codec,
            position,
            StreamOptions(
                skipped=config.skipped_operations,
                transaction_metadata=config.transaction_metadata,
                message_include=config.message_include,
                message_exclude=config.message_exclude,
            ),
            adopted=self._adopted,
        )
        return on_early

    def _check_types(self) -> None:
        """``unknown.datatypes.handling=fail``: refuse, before anything is created, to
        capture a column whose type has no Debezium mapping (by default such a column is
        captured in its text form, with a warning)."""
        if self.config.unknown_types != "fail":
            return
        types = load_types(self.conn, {c.type_oid for t in self.tables for c in t.columns})
        unmapped = []
        for table in self.tables:
            codec = build_codec(
                prefix=self.config.topic_prefix,
                schema=table.schema,
                table=table.name,
                columns=table.columns,
                key_names=table.primary_key,
                replica_identity=table.replica_identity,
                types=types,
                settings=self.config.values,
                placeholder="",
                rules=self.config.columns,
            )
            unmapped += [f"{table.qualified}.{c}" for c in codec.unknown]
        if unmapped:
            raise ConfigError(
                f"column(s) of types Debezium has no mapping for: {', '.join(unmapped)}; "
                f"leave them out (column.exclude.list) or accept their text form "
                f"(unknown.datatypes.handling=warn)"
            )

    def _relation_codec(self, relation: Relation) -> TableCodec | None:
        """The codec for the changes that follow ``relation``, built from the table as
        the message describes it (its schema, name, columns, replica identity and key
        flags): the catalog is read as it is now, so it only adds what still agrees
        with the message (see :func:`catalog.as_described`). Called once per Relation
        message, never per change."""
        if not self.config.captures(relation.namespace, relation.name):
            return None
        with source_errors(self.config.conninfo, f"reading the catalog of {relation.name}"):
            found = catalog.load_tables(self.conn, [relation.relation_id])
            if found and found[0].partition and self._via_root:
                return None  # its changes come as its root's; no topic of its own
            previous = self._codecs.get(relation.relation_id)
            known = previous.record_schema.meta.primary_key if previous else ()
            if not found and not previous:  # gone from the catalog before this process
                known = self._logged_key(
                    topic_name(self.config.topic_prefix, relation.namespace, relation.name))
            table = catalog.as_described(relation, found[0] if found else None, known)
            types = relation_types(self.conn, {c.type_oid for c in relation.columns})
            specs = [relation_spec(self.conn, c, table, types) for c in relation.columns]
            for column in relation.columns:
                if types[column.type_oid].typtype == GONE:
                    self.warn(
                        f"{table.qualified}.{column.name}: its type (OID {column.type_oid}) "
                        f"is not in the catalog (dropped since, or created by a transaction "
                        f"still in progress); captured in its text form"
                    )
            return self._table_codec(table, specs, types)

    def _adopted(self, relation_id: int, codec: TableCodec | None) -> None:
        """A table's codec is now ``codec`` (at a Relation message, or at the commit of
        the streamed transaction that sent one): report how its shape changed."""
        if codec is None:
            return
        previous = self._codecs.get(relation_id)
        if previous is not None:
            self._report_change(previous, codec)
        self._codecs[relation_id] = codec

    def _report_change(self, old: TableCodec, new: TableCodec) -> None:
        """Say how a table's shape changed mid-stream; a retyped column or other key
        columns are incompatible for readers that keep the old schema, so they are
        warnings."""
        notes = describe_change(old, new)
        if not notes:
            return
        where = f"{old.schema}.{old.table}"
        message = f"schema of {where} changed: {'; '.join(notes)} (new schema id {new.schema_id})"
        incompatible = any(n.startswith(("retyped", "key")) for n in notes)
        (self.warn if incompatible else self.say)(message)

    def _table_codec(
        self,
        table: catalog.TableInfo,
        specs: list[catalog.ColumnInfo],
        types: dict[int, Any],
        *,
        snapshot: bool = False,
    ) -> TableCodec:
        names = {s.name for s in specs}
        key = tuple(k for k in table.primary_key if k in names)
        codec = build_codec(
            prefix=self.config.topic_prefix,
            schema=table.schema,
            table=table.name,
            columns=specs,
            key_names=key,
            replica_identity=table.replica_identity,
            types=types,
            settings=self.config.values,
            placeholder=self.config.unavailable_value_placeholder,
            rules=self.config.columns,
            identity_columns=table.identity_columns,
            snapshot=snapshot,
        )
        owner = self._topics.setdefault(codec.topic, (table.schema, table.name))
        if owner != (table.schema, table.name):  # a table created or renamed since
            first = ".".join(catalog.quote_ident(name) for name in owner)
            raise ConfigError(topic_clash(codec.topic, first, table.quoted))
        if self.config.flatten is not None:
            codec.record_schema = flattened_schema(codec.record_schema, self.config.flatten)
        for column in codec.unknown:
            self.warn(
                f"{table.qualified}.{column}: type not mapped by Debezium; emitted in its text form"
            )
        codec.schema_id = self._register(codec)
        return codec
