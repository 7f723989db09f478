"""The replicate loop: change topics of the log → a target database. The only place that
orders the target's commits.

Every batch goes, in this order:

1. read records from the offsets the target holds — by default a batch of one topic;
   with ``transactions``, whole source transactions across topics
   (:mod:`duality.runtime.transactions`);
2. decode them (:class:`~duality.tables.decode.TopicDecoder`) into steps: schema changes,
   truncates, and rows collapsed per key (Debezium's reduction buffer);
3. the sink writes the steps, the tables' metadata and the new offsets, and commits
   (:meth:`duality.sinks.base.Sink.apply`).

While the sink applies one batch in a worker thread (waiting on the target most of the
time), the next one is read and decoded here. A crash at any point leaves the target as
of its last commit, and the next run continues from the offsets it holds; a record whose
position is not newer than its row's is skipped, so nothing is applied twice and no row
moves backwards.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from duality.errors import ApplyError, ConfigError, Unavailable, retrying
from duality.events.model import Record
from duality.events.schema import RecordSchema
from duality.log.base import Log
from duality.log.reading import check_not_ahead, check_origin
from duality.runtime import collector
from duality.runtime import topics as kinds
from duality.runtime.replicate_group import GroupMember, check_group_options, shared_sink
from duality.runtime.signals import stop_on_signals
from duality.runtime.transactions import TransactionReader
from duality.sinks import open_sink, with_schemas
from duality.sinks.base import (
    Batch,
    EncodedRows,
    Load,
    Offsets,
    Rows,
    SchemaChange,
    Sink,
    Step,
    TableState,
    TruncateRows,
)
from duality.sinks.base import TargetName as Name
from duality.sinks.dialects import postgres_binary
from duality.sinks.naming import Naming, written
from duality.sinks.sql import where_text
from duality.tables.batch import Pending
from duality.tables.decode import OLD_KEY, Barrier, FieldCodecs, Reshape, TableView, TopicDecoder
from duality.tables.fold import truncated
from duality.tables.records import parse_value

#: The environment variable that turns the C encoder of snapshot reads off ("0").
BINARY_COPY = "DUALITY_BINARY_COPY"
#: Records per batch (one target transaction). Streaming into PostgreSQL over two
#: sessions (``bench/replicate.py``, 500k changes): 20k 3.63-3.71 s, 50k 3.41-3.49 s,
#: 100k 3.57-3.90 s, 200k 3.69-3.89 s.
BATCH_RECORDS = 50_000
#: The first batch of a run holds this part of the batch size, each next one twice as
#: many up to it: the target starts on a small batch while the replicator reads and
#: encodes the next, instead of waiting, idle, for a whole one (50k records: 75 ms of a
#: snapshot's, 100 ms of streamed changes').
FIRST_BATCH_PART = 8
#: Sessions a PostgreSQL target applies a batch's streamed changes over (``--sessions``;
#: see :meth:`duality.sinks.postgres.PostgresSink._write_encoded`). Two: on two cores,
#: three were no faster (``bench/replicate.py``).
SESSIONS = 2
#: Records the compiled decoder takes per call. Compiled code never hands the GIL over
#: by itself, so the applier thread, ready to send the target its next statement, waited
#: for a whole batch's decoding (about 70 ms) each time it had waited on the target.
FEED_SLICE = 1_000
POLL_INTERVAL_S = 0.05
RESCAN_S = 5.0
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
#: With ``once``, how long an unavailable target or log is retried before giving up.
GIVE_UP_S = 30.0
#: What to do when the target's offsets belong to a log or topic made again since.
NEW_TARGET = "Replicate this log into a new target database or file."

Say = Callable[[str], None]


@dataclass(slots=True)
class ReplicateStats:
    records: int = 0
    batches: int = 0
    null_keys: int = 0
    skipped: int = 0
    #: Snapshot reads encoded in C as binary COPY rows (see :class:`Load`; a sink that
    #: cannot load them as they are decodes them again).
    encoded: int = 0
    #: Streamed changes encoded in C as binary COPY rows of a stage (and the tombstones
    #: taken with them; see :class:`EncodedRows`).
    changes_encoded: int = 0
    topics: set[str] = field(default_factory=set)


@dataclass(slots=True)
class TopicState:
    """A topic being replicated: its decoder and what the decoder knows of its table."""

    name: str
    kind: kinds.TopicKind
    decoder: TopicDecoder
    view: TableView
    target: Name | None = None
    #: The binary COPY plan of ``planned``, the view it was made for (see _plan).
    planned: TableView | None = None
    plan: postgres_binary.Plan | None = None


class Replicator:
    """Applies change topics of ``log`` to the target at ``target_url`` (see the module
    docstring). ``topics`` empty: every change topic of the log."""

    def __init__(
        self,
        log: Log,
        target_url: str,
        *,
        topics: Sequence[str] = (),
        once: bool = False,
        naming: Naming | None = None,
        transactions: bool = False,
        from_beginning: bool = False,
        group: str | None = None,
        batch_records: int = BATCH_RECORDS,
        say: Say = lambda _m: None,
        warn: Say = lambda _m: None,
        connect: Callable[[str], Sink] = open_sink,
        encode: bool | None = None,
        sessions: int = SESSIONS,
    ) -> None:
        self.log = log
        self.target_url = target_url
        self.requested = list(topics)
        self.once = once
        self.naming = naming or Naming()
        self.transactions = transactions
        self.from_beginning = from_beginning
        self.group = group
        if group is not None:  # the members share the target (runtime/replicate_group.py)
            check_group_options(target_url, once=once, transactions=transactions)
            if connect is open_sink:
                connect = shared_sink
        elif connect is open_sink and sessions > 1 and not transactions:
            connect = functools.partial(open_sink, sessions=sessions)
        self.batch_records = batch_records
        #: Records the next batch may hold (see :data:`FIRST_BATCH_PART`).
        self._budget = max(1, batch_records // FIRST_BATCH_PART)
        self.say = say
        self.warn = warn
        self.connect = connect
        #: Whether snapshot reads may go as rows encoded in C (default: unless the
        #: environment sets DUALITY_BINARY_COPY=0).
        self.encode = encode if encode is not None else os.environ.get(BINARY_COPY) != "0"
        self._encode = False
        self.stats = ReplicateStats()
        self._stop = False
        self._topics: dict[str, TopicState] = {}
        #: Topics read to their end since the last batch (handed to the next one).
        self._settled: set[str] = set()
        self._offsets: Offsets = {}
        self._origins: dict[str, str] = {}
        self._tables: Mapping[str, TableState] = {}
        self._fields: FieldCodecs | None = None
        self._reader: TransactionReader | None = None
        self._collection = collector.Deferred()
        self._schemas = with_schemas(target_url)

    def stop(self) -> None:
        """Stop after the batch in flight is committed (signal-safe)."""
        self._stop = True

    def run_with_retries(self) -> ReplicateStats:
        """Run until stopped (or, with ``once``, caught up), retrying an unavailable
        target or log with backoff: forever, or with ``once`` for :data:`GIVE_UP_S`.
        SIGINT and SIGTERM stop cleanly after the batch in flight."""
        started, delay = time.monotonic(), RETRY_FIRST_S
        with stop_on_signals(self.stop):
            while True:
                try:
                    return self.run()
                except Unavailable as exc:
                    if self._stop or (self.once and time.monotonic() - started > GIVE_UP_S):
                        raise
                    self.warn(retrying(exc, delay))
                    if self._sleep(delay):
                        return self.stats
                    delay = min(delay * 2, RETRY_MAX_S)

    def run(self) -> ReplicateStats:
        """One attempt: connect, then apply until caught up (``once``) or stopped."""
        sink = self.connect(self.target_url)
        try:
            self._start(sink)
            with self._collection, Applier(sink) as applier:
                if self.group is not None:
                    GroupMember(self, sink, applier).run(self.group)
                elif self.once:
                    self._catch_up(applier)
                else:
                    self._follow(applier)
        finally:
            sink.close()
        return self.stats

    # -- start-up -------------------------------------------------------------------

    def _start(self, sink: Sink) -> None:
        found = kinds.select(self.log, self.requested)
        if self.from_beginning:
            sink.reset_offsets(sorted(found))
            self.from_beginning = False  # a retry continues from what was applied since
        self._offsets = sink.applied_offsets()
        self._origins = dict(sink.origins())
        for name in found:
            check_origin(self.log, name, self._origins.get(name), "the target", NEW_TARGET)
        self._topics = {}
        self._tables = sink.tables()
        self._fields = sink.fields
        self._encode = self.encode and sink.binary_loads
        for name, kind in found.items():
            self._add(name, kind)
        self._check_naming(found)
        if self.transactions:
            self._reader = TransactionReader(self.log, self._topics, self.warn,
                                             every_topic=not self.requested)

    def _add(self, name: str, kind: kinds.TopicKind) -> None:
        table = self._tables.get(name)
        view = TableView()
        if table is not None:
            view = TableView(table.shape, table.schema_id, table.schema_position,
                             table.watermark)
        assert self._fields is not None
        decoder = TopicDecoder(name, view, self.log.schema, self._fields)
        self._topics[name] = TopicState(name, kind, decoder, view,
                                        table.name if table is not None else None)

    def _check_naming(self, found: Mapping[str, kinds.TopicKind]) -> None:
        """Warn where ``--map`` or ``--table-prefix`` cannot do what they say: a topic
        the target already holds stays in its table, and a ``--map`` source that is no
        topic's source table (or schema) in the log now names nothing."""
        naming = self.naming
        if naming == Naming():
            return
        sources = {kind.source for kind in found.values() if kind.source is not None}
        for name, kind in found.items():
            state = self._topics[name]
            if state.target is None or kind.source is None:
                continue
            try:
                named = naming.target(*kind.source, with_schemas=self._schemas)
            except ConfigError:
                continue
            if named != state.target:
                self.warn(
                    f"topic {name!r} stays in {written(state.target)}, the table it was "
                    f"first replicated into in this target; --map and --table-prefix would "
                    f"name {written(named)}, but they name the tables of topics new to the "
                    f"target only. To move it, replicate the topic into another target."
                )
        for schema, table in naming.tables:
            if (schema, table) not in sources:
                self.warn(f"--map: no change topic in the log has the source table "
                          f"{written(Name(schema, table))}; the mapping is not used")
        for schema in naming.schemas:
            if all(source[0] != schema for source in sources):
                self.warn(f"--map: no change topic in the log has a source table in the "
                          f"schema {schema!r}; the mapping is not used")

    # -- loops ----------------------------------------------------------------------

    def _catch_up(self, applier: Applier) -> None:
        if self._reader is not None:
            self._reader.stop_at_end()
        ends = {name: self.log.end_offsets(name) for name in self._topics}
        while not self._stop and self._round(applier, ends):
            pass
        applier.settle()

    def _follow(self, applier: Applier) -> None:
        scanned = time.monotonic()
        while not self._stop:
            version = self.log.data_version()
            if self._round(applier, None):
                continue
            applier.settle()
            if not self.requested and time.monotonic() - scanned > RESCAN_S:
                self._rescan()
                scanned = time.monotonic()
            while not self._stop and self.log.data_version() == version:
                time.sleep(POLL_INTERVAL_S)
                if not self.requested and time.monotonic() - scanned > RESCAN_S:
                    break
        applier.drain()

    def _rescan(self) -> None:
        for name, kind in kinds.select(self.log, []).items():
            if name not in self._topics:
                self._add(name, kind)
                if self._reader is not None:
                    self._reader.topics_changed()

    def _round(self, applier: Applier, ends: dict[str, dict[int, int]] | None) -> bool:
        """One batch of every topic that has records to apply; whether there was any.
        The garbage collector runs between rounds, at most once a second (see
        :mod:`duality.runtime.collector`)."""
        progressed = self._batches(applier, ends)
        self._collection.tick()
        return progressed

    def _batches(self, applier: Applier, ends: dict[str, dict[int, int]] | None) -> bool:
        if self._reader is not None:
            reader = self._reader
            batch = reader.batch(self._offsets, ends, self._budget, self._decode)
            if batch is None and reader.missing:  # a table created since the topics were read
                self._rescan()
                reader.looked_for_missing()
                return True
            if batch is None:
                return False
            self._submit(applier, batch)
            return True
        progressed = False
        for name in list(self._topics):
            if self._stop:
                break
            topic_ends = ends[name] if ends is not None else self.log.end_offsets(name)
            batch = self._topic_batch(self._topics[name], topic_ends)
            if batch is None:
                self._settled.add(name)
            else:
                batch.settled, self._settled = self._settled, set()
                self._submit(applier, batch)
                progressed = True
        return progressed

    def _submit(self, applier: Applier, batch: Batch) -> None:
        for topic in {topic for topic, _ in batch.offsets}:
            stored = self._origins.get(topic)
            origin = check_origin(self.log, topic, stored, "the target", NEW_TARGET)
            if origin is not None and origin != stored:
                batch.origins[topic] = self._origins[topic] = origin
        applier.submit(batch)
        self._budget = min(self._budget * 2, self.batch_records)
        self._offsets.update(batch.offsets)
        self.stats.records += batch.records
        self.stats.batches += 1

    # -- one topic's batch ----------------------------------------------------------

    def _topic_batch(self, state: TopicState, ends: dict[int, int]) -> Batch | None:
        name = state.name
        starts = {p: self._offsets.get((name, p), (0, None)) for p in ends}
        records, nexts = read_partitions(self.log, name, {p: o for p, (o, _) in starts.items()},
                                         ends, self._budget)
        if not records and all(nexts[p] == o for p, (o, _) in starts.items()):
            return None
        carry: dict[int, bytes | None] = {p: c for p, (_, c) in starts.items() if c}
        steps, carried = self._decode(state, records, carry)
        offsets = {(name, p): (n, carried.get(p)) for p, n in nexts.items()}
        return Batch(steps, offsets, len(records))

    def _decode(
        self, state: TopicState, records: list[Record], carry: dict[int, bytes | None]
    ) -> tuple[list[Step], dict[int, bytes | None]]:
        """Steps for ``records`` of one topic, and the delete keys carried past them."""
        decoder = state.decoder
        decoder.counts.null_keys = decoder.counts.skipped = 0
        decoder.counts.carry = dict(carry)
        steps: list[Step] = []
        pending, index = Pending(), 0
        while True:
            taken = self._take_encoded(state, records, index, steps, pending)
            if taken > index:  # pending, if it held anything, is a step now
                index, pending = taken, Pending() if len(pending) else pending
                continue
            index, barrier = decoder.feed(records, index, pending, index + FEED_SLICE)
            if barrier is None:
                if index >= len(records):
                    break
                continue
            if len(pending):
                steps.append(Rows(state.name, pending))
                pending = Pending()
            step = self._barrier(state, barrier, records[index])
            if step is not None:
                steps.append(step)
            decoder.reset(state.view)
            if not barrier.refeed:
                index += 1
        if len(pending):
            steps.append(Rows(state.name, pending))
        for step in steps:
            if isinstance(step, EncodedRows):
                step.tuples()  # made here, while the applier thread waits for the target
        self.stats.null_keys += decoder.counts.null_keys
        self.stats.skipped += decoder.counts.skipped
        if steps:
            self.stats.topics.add(state.name)
        return steps, dict(decoder.counts.carry)

    def _take_encoded(self, state: TopicState, records: list[Record], index: int,
                      steps: list[Step], pending: Pending) -> int:
        """Records from ``records[index]`` on encoded in C, where the sink takes them so
        and the records allow: a run of snapshot reads, or streamed changes. Appends
        their step to ``steps`` (after ``pending``, if it holds anything) and returns
        the index of the first record not taken (``index``: none)."""
        if not self._encode:
            return index
        load = self._encoded(state, records, index)
        if load is None:
            return self._changes(state, records, index, steps, pending)
        if len(pending):
            steps.append(Rows(state.name, pending))
        steps.append(load)
        return index + load.count

    def _encoded(self, state: TopicState, records: list[Record], index: int) -> Load | None:
        """The run of snapshot reads from ``records[index]`` on as binary COPY rows
        encoded in C (:mod:`duality.sinks.dialects.postgres_binary`), or None where
        there is none: the decoder takes the records as usual."""
        view, decoder = state.view, state.decoder
        if index >= len(records) or decoder.counts.carry or self._plan(state) is None:
            return None
        assert state.plan is not None and view.schema_id is not None
        run = postgres_binary.encode_run(records, index, view.schema_id, state.plan,
                                         view.watermark)
        if run is None:
            return None
        first = records[index]
        self.stats.encoded += run.stop - run.start
        return Load(state.name, run.data, state.plan.kinds, run.position,
                    run.stop - run.start, (first.partition, first.offset, first.key),
                    self._decoding(state, records[run.start : run.stop]))

    def _changes(self, state: TopicState, records: list[Record], index: int,
                 steps: list[Step], pending: Pending) -> int:
        """Streamed changes from ``records[index]`` on (at most :data:`FEED_SLICE`)
        encoded in C as stage rows (:func:`postgres_binary.encode_changes`), folded into
        the batch's last step where that is such a step of this topic and nothing was
        decoded since, else into a new one appended to ``steps``. Returns the index of
        the first record not taken (``index``: none, the decoder takes them as usual)."""
        view, decoder = state.view, state.decoder
        table_plan = self._plan(state) if index < len(records) else None
        quick = decoder.fast_placeholders() if table_plan is not None else None
        marks = postgres_binary.placeholder_marks(quick) if quick is not None else None
        if table_plan is None or marks is None:
            return index
        assert view.schema_id is not None
        last = steps[-1] if steps and not len(pending) else None
        if not (isinstance(last, EncodedRows) and last.topic == state.name):
            last = None
        winners: dict[bytes, tuple[int, bytes]] = last.winners if last else {}
        partition = records[index].partition
        carry = decoder.counts.carry
        taken, after = postgres_binary.encode_changes(
            records, index, index + FEED_SLICE, view.schema_id, table_plan, view.watermark,
            marks, carry.get(partition), winners)
        if taken == index:
            return index
        if len(pending):
            steps.append(Rows(state.name, pending))
        if last is None:
            before = dict(carry)
            steps.append(EncodedRows(state.name, winners, table_plan.kinds,
                                     self._decoding(state, records[index:taken], before)))
        else:  # the same step: its records go on to these
            steps[-1] = EncodedRows(state.name, winners, last.kinds,
                                    _joined(last.decode, self._decoding(
                                        state, records[index:taken], dict(carry))))
        if after is None:
            carry.pop(partition, None)
        else:
            carry[partition] = after
        self.stats.changes_encoded += taken - index
        return taken

    def _plan(self, state: TopicState) -> postgres_binary.Plan | None:
        """The binary COPY plan of the topic's current view (made once per view)."""
        view = state.view
        if state.planned is not view:
            schema_id = view.schema_id
            schema = (state.decoder.schema_of(schema_id)
                      if schema_id is not None and schema_id >= 0 else None)
            assert self._fields is not None
            state.plan = (postgres_binary.plan(view.shape, schema, self._fields(schema))
                          if schema is not None else None)
            state.planned = view
        return state.plan

    def _decoding(self, state: TopicState, records: list[Record],
                  carry: dict[int, bytes | None] | None = None) -> Callable[[], Pending]:
        """``records`` (taken as a :class:`Load` or :class:`EncodedRows` step) decoded
        as usual, for a sink that cannot take them encoded; run by the applier thread,
        so with a decoder of its own, which starts from ``carry`` (the deletes whose
        tombstones may follow)."""
        view, fields = state.view, self._fields
        assert view.schema_id is not None and fields is not None
        schema = state.decoder.schema_of(view.schema_id)
        table = TableView(view.shape, view.schema_id, view.schema_position, view.watermark)

        def decode() -> Pending:
            decoder = TopicDecoder(state.name, table, lambda _id: schema, fields)
            decoder.counts.carry = dict(carry or {})
            pending = Pending()
            index, barrier = decoder.feed(records, 0, pending)
            if barrier is not None or index != len(records):
                record = records[min(index, len(records) - 1)]
                where = (record.partition, record.offset, record.key)
                raise ApplyError(
                    f"cannot apply {where_text(state.name, where)}: a snapshot read "
                    f"encoded for binary COPY did not decode as one (a bug in duality); "
                    f"run replicate again with DUALITY_BINARY_COPY=0 and report it"
                )
            return pending

        return decode

    def _barrier(self, state: TopicState, barrier: Barrier, record: Record) -> Step | None:
        where = (record.partition, record.offset, record.key)
        view = state.view
        if not isinstance(barrier, Reshape):
            position = barrier.op.position
            if truncated(position, view.watermark):
                return None
            if position is not None:
                view.watermark = position
            return TruncateRows(state.name, position, where)
        if not barrier.shape.typed or barrier.schema_id is None:
            raise ApplyError(
                f"cannot apply topic {state.name!r} partition {record.partition} offset "
                f"{record.offset}: its records carry no schema (registered, or a "
                f"{{\"schema\", \"payload\"}} value), so the target table's types are "
                f"unknown; replicate applies change topics written by capture or Debezium. "
                f"Leave the topic out with --topic."
            )
        schema = state.decoder.schema_of(barrier.schema_id)
        if state.target is None:
            state.target = self._name(state, record, schema)
        state.view = TableView(barrier.shape, barrier.schema_id, barrier.position,
                               view.watermark)
        return SchemaChange(state.name, barrier.schema_id, schema, barrier.shape,
                            barrier.position, state.target, where)

    def _name(self, state: TopicState, record: Record, schema: RecordSchema) -> Name:
        """Target table of a topic: from ``source.schema``/``source.table`` of its events
        (topic names lose characters), else the schema's table, else the topic name."""
        source = state.kind.source or _source_of(record)
        if source is None and schema.meta.table:
            source = schema.meta.source_table() or ("public", schema.meta.table)
        if source is None:
            parts = state.name.rsplit(".", 2)
            source = (parts[-2], parts[-1]) if len(parts) >= 2 else ("public", parts[-1])
        return self.naming.target(*source, with_schemas=self._schemas)

    def _sleep(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self._stop and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._stop


def read_partitions(
    log: Log, topic: str, starts: dict[int, int], ends: dict[int, int], budget: int
) -> tuple[list[Record], dict[int, int]]:
    """Records of ``topic`` from ``starts`` up to ``ends`` (at most ``budget``), and the
    next offset of every partition after them (its end where all were compacted away)."""
    records: list[Record] = []
    nexts = dict(starts)
    for partition, end in sorted(ends.items()):
        start = starts.get(partition, 0)
        nexts[partition] = start
        if start > end:
            check_not_ahead(log, topic, partition, start, "the target", NEW_TARGET)
        if start >= end or budget <= 0:
            continue
        got = log.read(topic, partition, start, min(budget, end - start))
        if got and got[-1].offset >= end:  # past compacted gaps, the read went beyond end
            got = [r for r in got if r.offset < end]
        if got and got[-1].offset + 1 < end:
            got += _moved_rest(log, topic, partition, got[-1], end)
        nexts[partition] = got[-1].offset + 1 if got else end
        records += got
        budget -= len(got)
    return records, nexts


def _moved_rest(log: Log, topic: str, partition: int, last: Record, end: int) -> list[Record]:
    """The records that finish a primary-key change whose delete ends a batch: its
    tombstone and the create under the new key (Debezium's ``__debezium.oldkey``
    header), or none. The create takes unchanged-TOAST values from the row under the
    old key, which the target no longer holds once the delete is committed."""
    ahead = [r for r in log.read(topic, partition, last.offset + 1, 2) if r.offset < end]
    for index, record in enumerate(ahead):
        if any(name == OLD_KEY for name, _ in record.headers):
            return ahead[: index + 1]
    return []


def _joined(first: Callable[[], Pending], then: Callable[[], Pending]) -> Callable[[], Pending]:
    """Two decodings of consecutive records as one: ``then``'s operations folded onto
    ``first``'s, as one decoder taking all of them would."""

    def decode() -> Pending:
        pending = first()
        for key, (params, position, where) in then().winners.items():
            if params is None:
                pending.delete(key, position, where)
            else:
                pending.upsert(key, params[len(key) : -1], position, frozenset(), where)
        return pending

    return decode


def _source_of(record: Record) -> tuple[str, str] | None:
    if record.value is None:
        return None
    payload = parse_value(record.value)[0]
    source = payload.get("source") if type(payload) is dict else None
    if type(source) is dict and source.get("table") and source.get("schema") is not None:
        return str(source["schema"]), str(source["table"])
    return None


class Applier:
    """Applies batches in a worker thread, one at a time, in order: :meth:`submit` waits
    for the previous batch (re-raising its error) and returns while the new one is
    applied."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="duality-apply")
        self._running: Future[None] | None = None
        #: The batch being applied, and the one before it: kept so that this thread,
        #: not the worker, frees them (a batch of 50k records takes ~6 ms, which the
        #: worker would spend between two batches, the target idle).
        self._applying: Batch | None = None
        self._applied: Batch | None = None

    def submit(self, batch: Batch) -> None:
        self.drain()
        self._running = self._pool.submit(self.sink.apply, batch)
        self._applied, self._applying = self._applying, batch

    def drain(self) -> None:
        self._applied = None  # while the worker applies the next one
        running, self._running = self._running, None
        if running is not None:
            running.result()

    def settle(self) -> None:
        """Wait for the batch being applied, then let the sink finish what it put off
        (:meth:`~duality.sinks.base.Sink.settle`)."""
        self.drain()
        self.sink.settle()

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            self._pool.shutdown(wait=True)


__all__ = ["ReplicateStats", "Replicator", "read_partitions"]
