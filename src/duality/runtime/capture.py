"""The capture loop: source → change events → log. The only place that orders commits.

Start-up (:meth:`Capture.run`, :meth:`Capture._start`):

1. read the stored position from the log; where it says where streaming will start,
   send ``START_REPLICATION`` at once, so the server decodes while the rest of start-up
   runs (:meth:`Capture._start_early`);
2. make sure the slot streams to no other process: wait for one of this same capture
   (still stopping, or a second copy), refuse another capture's slot at once; then
   read the stored position again (the last holder may have stored more before it let
   go) and let the source plan the start (preflight; a lost slot is a gap);
3. if a slot is to be created, first store a marker saying so, so that a crash before
   the snapshot completes restarts it cleanly on a fresh slot;
4. take the snapshot, if any, in **one** log transaction together with its position,
   so no half snapshot is ever visible;
5. stream.

Every commit (:meth:`Capture._commit`) is, in this order: append the pending records,
flush the log with the position that describes them (one durable transaction),
acknowledge the source up to the last complete transaction. Transactions that arrive
in one read burst are committed together (group commit).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from duality.errors import ConfigError, DualityError, Unavailable, retrying
from duality.events.positions import PgPosition
from duality.events.schema import RecordSchema
from duality.log.base import Log
from duality.log.config import CHANGE_TOPIC_DEFAULTS, DAY_MS
from duality.log.sqlite import SqliteLog
from duality.runtime import collector
from duality.runtime.signals import stop_on_signals
from duality.runtime.writer import BackgroundFlusher, write_transaction
from duality.sources.postgres.config import CaptureConfig
from duality.sources.postgres.ownership import CaptureIdentity
from duality.sources.postgres.pgoutput import format_lsn
from duality.sources.postgres.replication import ReplicationStream, stream_options
from duality.testing import crash_point

if TYPE_CHECKING:  # imported by run(), after the early start (they import psycopg 3)
    from duality.sources.postgres.source import PostgresSource, StartPlan
    from duality.sources.postgres.tables import TableCodec

Say = Callable[[str], None]
Progress = Callable[[str, int, int], None]

#: Commit at this many pending records. Values are held as orjson bytes, which keep a
#: ~4 KiB buffer each until written, so this also bounds memory (~20 MB).
FLUSH_RECORDS = 20_000
BURST_PAUSE_S = 0.002
#: The longest a received change waits for its durable commit while data keeps coming.
MAX_DELAY_S = 0.02
IDLE_WAIT_S = 0.25
KEEPALIVE_STORE_S = 1.0
#: The connect timeout of the early replication connection; the normal start, which
#: reports any failure, waits for the configured one.
EARLY_CONNECT_S = 2


#: Records read back from a topic's end to find the schema it was last written with.
_LOGGED_KEY_LOOKBACK = 100


@dataclass(slots=True)
class CaptureStats:
    snapshot_rows: int = 0
    events: int = 0
    transactions: int = 0
    records: int = 0
    final_lsn: int = 0
    #: Whether streaming used the connection started before the preflight.
    started_early: bool = False


class Capture:
    """Runs one connector into one log (see the module docstring)."""

    def __init__(
        self,
        config: CaptureConfig,
        log: Log,
        *,
        once: bool = False,
        say: Say = lambda _m: None,
        warn: Say = lambda _m: None,
        progress: Progress = lambda _t, _n, _total: None,
    ) -> None:
        self.config = config
        self.log = log
        self.once = once
        self.say = say
        self.warn = warn
        self.progress = progress
        self.stats = CaptureStats()
        self._stop = False
        self._known_topics: set[str] = set()
        #: Named in the replication connections, so that another start can tell this
        #: capture's processes from another capture's.
        self.identity = CaptureIdentity.of(
            _log_locator(log), config.position_name, config.topic_prefix
        )

    def stop(self) -> None:
        """Ask the loop to stop after its current burst (signal-safe)."""
        self._stop = True

    def run(self) -> CaptureStats:
        """One attempt: start, snapshot if planned, stream until stopped (or, with
        ``once``, caught up). Transient failures raise :class:`Unavailable`."""
        stored = self._stored()
        early = self._start_early(stored)
        from duality.sources.postgres.source import PostgresSource

        try:
            source = PostgresSource(
                self.config, say=self.say, warn=self.warn, early=early, identity=self.identity
            )
        except BaseException:
            if early is not None:
                early.close()
            raise
        try:
            source.set_register(self._register, self._register_aux, self._logged_key)
            target = source.current_wal_lsn() if self.once else None
            position = self._start(source, stored)
            if position is not None and not self._stop:
                self._stream(source, position, target)
        finally:
            source.close()
        return self.stats

    def run_with_retries(self) -> CaptureStats:
        """Run until stopped, retrying transient failures with backoff (starting at
        ``retriable.restart.connector.wait.ms``, doubling to 30 s): forever, or, with
        ``once``, until three times that first wait has passed since the outage began,
        then re-raise. An attempt that captured something ends the outage: the next
        failure starts again from the first wait. SIGINT and SIGTERM stop cleanly:
        flush, store the position, acknowledge."""
        first = self.config.retry_wait_s
        give_up_after_s = 3 * first if self.once else None
        began: float | None = None
        delay = first
        with stop_on_signals(self.stop):
            while True:
                progress = (self.stats.snapshot_rows, self.stats.events)
                try:
                    return self.run()
                except Unavailable as exc:
                    now = time.monotonic()
                    if began is None or (self.stats.snapshot_rows, self.stats.events) != progress:
                        began, delay = now, first
                    if self._stop or (give_up_after_s is not None
                                      and now - began > give_up_after_s):
                        raise
                    self.warn(retrying(exc, delay))
                    if self._sleep(delay):
                        return self.stats
                    delay = min(delay * 2, 30.0)

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early when asked to stop; True if asked to stop."""
        deadline = time.monotonic() + seconds
        while not self._stop and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._stop

    # -- start-up -------------------------------------------------------------------

    def _stored(self) -> PgPosition | None:
        stored = self.log.source_position(self.config.position_name)
        return PgPosition.from_offset(stored) if stored else None

    def _start_early(self, stored: PgPosition | None) -> ReplicationStream | None:
        """``START_REPLICATION`` before psycopg 3 is imported and the preflight runs,
        where ``stored`` and the snapshot mode tell where streaming will start: a stored
        position to resume from, or none and ``no_data`` (then the slot's confirmed
        position, LSN 0). The server decodes the WAL meanwhile instead of after, which
        for a large transaction is about 0.1 s (``bench/capture.py``). Nothing is read
        from it until the source's plan agrees; :meth:`PostgresSource.plan` closes it
        otherwise. Any failure here is left to the normal start to report."""
        config = self.config
        if stored is None:
            if config.snapshot_mode not in ("no_data", "never"):
                return None
            lsn = 0
        elif stored.snapshot == "running" or config.snapshot_mode in ("always", "initial_only"):
            return None
        else:
            lsn = stored.lsn
        try:
            stream = ReplicationStream(
                config.conninfo,
                timeout_s=EARLY_CONNECT_S,
                application_name=self.identity.application_name,
            )
        except DualityError:
            return None
        try:
            options = stream_options(
                config.protocol, stream.server_version, config.publication_name
            )
            stream.start(config.slot_name, lsn, options, retries=0)
        except DualityError:
            stream.close()
            return None
        return stream

    def _start(self, source: PostgresSource, stored: PgPosition | None) -> PgPosition | None:
        name = self.config.position_name
        if not source.await_slot(self._sleep):
            return None
        stored = self._stored()  # what the slot's last holder stored before letting go
        plan = source.plan(stored)
        self._check_topics(source)
        if plan.drop_slot:
            source.drop_slot(plan.drop_slot)
        position = plan.position
        snapshot_name = None
        if plan.create_slot:
            marker = PgPosition(lsn=0, snapshot="running", slot=self.config.slot_name)
            self.log.flush(positions={name: marker.to_offset()})
            crash_point("capture.marker-stored")
            created = source.create_slot(
                export_snapshot=plan.snapshot == "exported", temporary=plan.temporary_slot
            )
            snapshot_name = created.snapshot_name
            position = PgPosition(lsn=created.consistent_point, slot=self.config.slot_name)
        assert position is not None
        if plan.snapshot:
            position = self._snapshot(source, plan, snapshot_name, position)
        elif plan.create_slot:
            self.log.flush(positions={name: position.to_offset()})
        return position if plan.stream else None

    def _snapshot(
        self,
        source: PostgresSource,
        plan: StartPlan,
        snapshot_name: str | None,
        position: PgPosition,
    ) -> PgPosition:
        if plan.snapshot == "unaligned":
            self.warn("snapshot.mode: reading a snapshot that is not aligned with the slot")
        name = self.config.position_name
        codecs = source.snapshot_codecs()
        batches = source.snapshot_records(
            codecs,
            snapshot_name if plan.snapshot == "exported" else None,
            position.lsn,
            self.progress,
        )
        write_transaction(
            self.log, batches, {name: position.to_offset()}, self._snapshot_batch_written
        )
        self.say(f"snapshot: {self.stats.snapshot_rows} row(s) at {format_lsn(position.lsn)}")
        return position

    def _snapshot_batch_written(self, count: int) -> None:
        self.stats.snapshot_rows += count
        crash_point("capture.snapshot-batch")

    def _register(self, codec: TableCodec) -> int:
        """Create the table's topic (once) and register its schema. A table whose events
        can have null keys (no key columns, or captured truncates) cannot use a
        compacted topic, as in Kafka."""
        topic = codec.topic
        if topic not in self._known_topics:
            truncates = "t" not in self.config.skipped_operations
            info = self.log.describe(topic)
            if info is None:
                self.log.create_topic(topic, 1, self._topic_config(codec, truncates))
            elif not info.config.compacted and codec.key_names and not truncates:
                # (captured truncates need a topic that is not compacted: capture made it so)
                self.warn(f"topic {topic!r} exists and is not compacted; using it as it is")
            self._known_topics.add(topic)
        return self.log.register_schema(codec.record_schema)

    def _logged_key(self, topic: str) -> tuple[str, ...]:
        """The primary key of the last schema the log holds for ``topic``: for changes
        of a table dropped before this process started, whose Relation message names
        no primary key (any identity but DEFAULT)."""
        if self.log.describe(topic) is None:
            return ()
        for partition, end in self.log.end_offsets(topic).items():
            start = max(end - _LOGGED_KEY_LOOKBACK, 0)
            for record in reversed(self.log.read(topic, partition, start, end - start)):
                if record.schema_id is not None:
                    return self.log.schema(record.schema_id).meta.primary_key
        return ()

    def _check_topics(self, source: PostgresSource) -> None:
        """Before anything is written: captured truncates need topics that accept null
        keys, so an existing compacted topic of a captured table is a configuration
        error (it would refuse them mid-stream)."""
        if "t" in self.config.skipped_operations:
            return
        from duality.sources.postgres.tables import topic_name

        for table in source.tables:
            topic = topic_name(self.config.topic_prefix, table.schema, table.name)
            info = self.log.describe(topic)
            if info is not None and info.config.compacted:
                raise ConfigError(
                    f"truncates are captured (skipped.operations does not list t) and their "
                    f"events have null keys, but topic {topic!r} is compacted and refuses "
                    f"them; skip truncates (skipped.operations=t) or use a topic with "
                    f"cleanup.policy=delete"
                )

    def _topic_config(self, codec: TableCodec, truncates: bool) -> dict[str, str]:
        if codec.key_names and not truncates:
            return dict(CHANGE_TOPIC_DEFAULTS)
        why = "has no primary key" if not codec.key_names else "may be truncated"
        self.warn(
            f"{codec.schema}.{codec.table} {why}: its events can have null keys, so topic "
            f"{codec.topic!r} uses cleanup.policy=delete"
        )
        return {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}

    def _register_aux(self, topic: str, schema: RecordSchema, config: dict[str, str]) -> int:
        """Create a message, transaction or heartbeat topic and register its schema."""
        if self.log.describe(topic) is None:
            self.log.create_topic(topic, 1, config)
        return self.log.register_schema(schema)

    # -- streaming --------------------------------------------------------------------

    def _stream(self, source: PostgresSource, position: PgPosition, target: int | None) -> None:
        self.stats.started_early = source.start_streaming(position)
        stream = source.replication
        changes = source.changes
        assert stream is not None and changes is not None
        self.say(
            f"streaming from {format_lsn(position.lsn)}"
            + (f" until {format_lsn(target)}" if target is not None else "")
        )
        if isinstance(self.log, SqliteLog) and not self.once:
            self.log.checkpoint_in_background()
        writer = BackgroundFlusher(self.log, self.config.position_name)
        changes.on_full = lambda: self._commit(source, writer)
        changes.full_at = FLUSH_RECORDS
        try:
            with collector.Deferred() as collection:
                self._loop(source, writer, collection, target)
            self._commit(source, writer)
            self._acknowledge(stream, writer.wait())
        finally:
            writer.close()
            changes.close()
        self.stats.final_lsn = stream.acked

    def _loop(
        self,
        source: PostgresSource,
        writer: BackgroundFlusher,
        collection: collector.Deferred,
        target: int | None,
    ) -> None:
        """Read bursts, hand batches to the writer, acknowledge what is durable, until
        stopped (or, with ``once``, until the target is durable and acknowledged)."""
        stream, changes = source.replication, source.changes
        assert stream is not None and changes is not None
        last_commit = last_heartbeat = time.monotonic()
        interval = self.config.heartbeat_interval_s
        busy = False
        while not self._stop:
            burst = stream.read_burst(0 if busy else IDLE_WAIT_S, max_messages=FLUSH_RECORDS)
            source.builder.tick()
            for data_start, payload in burst:
                changes.feed(data_start, payload)
            collection.tick()
            busy = bool(burst)
            self._acknowledge(stream, writer.durable)
            now = time.monotonic()
            if busy and len(changes.pending) < FLUSH_RECORDS and now - last_commit < MAX_DELAY_S:
                time.sleep(BURST_PAUSE_S)  # read in bursts: let the server fill the socket
                continue
            if not busy:
                changes.keepalive(stream.wal_end)
            if interval and now - last_heartbeat >= interval:
                self._heartbeat(source)
                last_heartbeat = now
            reached = self._reached(changes.position, target)
            store_keepalive = now - last_commit >= KEEPALIVE_STORE_S or reached
            if changes.pending or (changes.position.lsn > stream.acked and store_keepalive):
                self._commit(source, writer)
                last_commit = now
            if reached:
                self._acknowledge(stream, writer.wait())
                if stream.acked >= changes.position.lsn:
                    return

    @staticmethod
    def _heartbeat(source: PostgresSource) -> None:
        """``heartbeat.interval.ms``: run ``heartbeat.action.query`` and write a heartbeat
        record, committed with the current position (so an idle database's slot moves)."""
        assert source.changes is not None
        source.heartbeat_action()
        source.changes.pending.append(source.builder.heartbeat())

    @staticmethod
    def _reached(position: PgPosition, target: int | None) -> bool:
        return target is not None and position.lsn >= target and position.complete

    def _commit(self, source: PostgresSource, writer: BackgroundFlusher) -> None:
        """1. take the pending records and the position that describes them; 2. hand
        both to the writer, which appends and flushes them in one durable transaction;
        3. (in :meth:`_acknowledge`) acknowledge the source only up to the last durable
        position's LSN (the end of its last complete transaction)."""
        changes = source.changes
        assert changes is not None
        records = changes.take()  # 1
        writer.submit(records, changes.position)  # 2
        self.stats.records += len(records)
        self.stats.events = changes.events
        self.stats.transactions = changes.transactions

    @staticmethod
    def _acknowledge(stream: ReplicationStream, durable: PgPosition | None) -> None:
        """3. acknowledge what the writer has made durable (and nothing beyond)."""
        if durable is not None:
            stream.ack(durable.lsn)


def _log_locator(log: Log) -> str:
    """What names the log across runs: the embedded log's file, or the log's URL."""
    if isinstance(log, SqliteLog):
        return str(log.path.resolve())
    return log.url


__all__ = ["Capture", "CaptureStats"]
