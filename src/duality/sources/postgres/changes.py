"""From pgoutput messages to records and positions (protocol 1), without I/O.

:class:`ChangeStream` is fed the messages of the replication stream in order. It
tracks Relation messages (asking ``codec_for_relation`` to build a
:class:`~duality.sources.postgres.tables.TableCodec`, or None for a table not
captured), numbers each transaction's events, skips events the log already holds
(``PgPosition.covers``) and accumulates the records to append in :attr:`pending`,
together with the :attr:`position` that describes them.

Events are appended as they arrive, also in the middle of a transaction: the Begin
message carries the commit LSN, so each event's position is known before the commit.
Only whole transactions move the acknowledgeable LSN (:attr:`PgPosition.lsn`).

Within a transaction, a transaction BEGIN record has index -1 and the END record the
index after the last event, so a redelivered transaction emits each exactly once too. A
non-transactional logical message is its own unit at its LSN.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from duality.errors import SourceError
from duality.events.model import NewRecord, new_record
from duality.events.positions import PgPosition
from duality.sources.postgres import pgoutput as pg
from duality.sources.postgres.events import (
    MESSAGE_COLLECTION,
    PENDING_US,
    Block,
    EventBuilder,
    TxContext,
)
from duality.sources.postgres.spool import Spool
from duality.sources.postgres.tables import TableCodec

CodecFactory = Callable[[pg.Relation], TableCodec | None]
#: Told of each codec that becomes a table's current one (relation id, codec).
Adopted = Callable[[int, TableCodec | None], None]
_XID: Final = struct.Struct(">I")
_OPS: Final[dict[type, str]] = {pg.Insert: "c", pg.Update: "u", pg.Delete: "d"}
#: Kinds of staged entries of a streamed transaction: (kind, WAL position, *data). They
#: are flat tuples: pickling and unpickling an entry cost 0.94 µs nested five deep, 0.56
#: flat (the 1M-row insert stages a million of them).
_RAW: Final = 0  # data: a message payload, decoded at commit
_BUILT: Final = 1  # data: its codec's key in _Streamed.codecs, then per record built on arrival
#           its topic, key, value (to complete), headers and schema id
_RELATION: Final = 2  # data: relation id, its new codec's key in _Streamed.codecs


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """What the stream emits: ``skipped`` operations (``skipped.operations``: ``c``,
    ``u``, ``d``, ``t``), transaction BEGIN/END records and blocks
    (``provide.transaction.metadata``), and which logical message prefixes
    (``message.prefix.include.list`` / ``exclude.list``)."""

    skipped: frozenset[str] = frozenset({"t"})
    transaction_metadata: bool = False
    message_include: tuple[re.Pattern[str], ...] = ()
    message_exclude: tuple[re.Pattern[str], ...] = ()

    def wants_message(self, prefix: str) -> bool:
        if self.message_include:
            return any(p.fullmatch(prefix) for p in self.message_include)
        return not any(p.fullmatch(prefix) for p in self.message_exclude)


@dataclass(slots=True)
class _Tx:
    context: TxContext
    commit_lsn: int
    begin_lsn: int
    index: int = -1
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Streamed:
    """A transaction being streamed: the context its changes are built with, the codecs
    of the Relation messages sent within it (which apply from its commit on), and every
    codec its staged entries name, by ``id()`` (kept alive until its commit)."""

    context: TxContext
    relations: dict[int, TableCodec | None] = field(default_factory=dict)
    codecs: dict[int, TableCodec | None] = field(default_factory=dict)


class ChangeStream:
    """The protocol-1 stream state machine (see the module docstring).

    Only events at or before the position stored when the stream started can be
    redelivered, so that position (``resume``) is the only one checked for duplicates,
    and not at all once the stream has passed it. The current position is kept in plain
    fields and built into a :class:`PgPosition` when asked for.
    """

    def __init__(
        self,
        builder: EventBuilder,
        codec_for_relation: CodecFactory,
        position: PgPosition,
        options: StreamOptions | None = None,
        adopted: Adopted | None = None,
    ) -> None:
        self.builder = builder
        self.codec_for_relation = codec_for_relation
        #: A Relation message inside a stream builds a codec for its transaction only;
        #: it becomes the table's at the commit (and never, if it is rolled back).
        self.adopted = adopted
        self.options = options or StreamOptions()
        self.pending: list[NewRecord] = []
        self.codecs: dict[int, TableCodec | None] = {}
        self._resume: PgPosition | None = position
        self._lsn = position.lsn
        self._commit_lsn = position.commit_lsn
        self._index = position.index
        self._complete = position.complete
        self._txid = position.txid
        self._ts = position.ts_usec
        self._last_commit = position.last_commit
        self._tx: _Tx | None = None
        self._last_commit_us = position.ts_usec or 0
        self._skipped = self.options.skipped
        self._metadata = self.options.transaction_metadata
        self.events = 0
        self.transactions = 0
        self._handlers: dict[type, Callable[[Any, int], None]] = {
            pg.Insert: self._change,
            pg.Update: self._change,
            pg.Delete: self._change,
            pg.Begin: self._begin,
            pg.Commit: self._commit,
            pg.Relation: self._relation,
            pg.Truncate: self._truncate,
            pg.LogicalMessage: self._message,
            pg.StreamStart: self._stream_start,
            pg.StreamCommit: self._stream_commit,
            pg.StreamAbort: self._stream_abort,
        }
        #: Protocol 2: the transaction whose stream block is open, and the staging.
        #: Inserts, updates and deletes are built as they arrive, so decoding overlaps
        #: the server's sending; with transaction metadata (whose blocks count the
        #: committed changes) or flattening, messages are decoded at commit instead.
        self._stream_xid: int | None = None
        self._streamed: dict[int, _Streamed] = {}
        self._build_early = not self._metadata and builder.flatten is None
        self.spool = Spool()
        #: Called when :attr:`pending` reaches ``full_at`` while a committed streamed
        #: transaction is read back, so its records are flushed in parts.
        self.on_full: Callable[[], None] | None = None
        self.full_at = 20_000

    @property
    def position(self) -> PgPosition:
        """The position of the last event handed out (in :attr:`pending` or taken)."""
        return PgPosition(
            lsn=self._lsn,
            commit_lsn=self._commit_lsn,
            index=self._index,
            complete=self._complete,
            txid=self._txid,
            ts_usec=self._ts,
            last_commit=self._last_commit,
        )

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    def take(self) -> list[NewRecord]:
        records, self.pending = self.pending, []
        return records

    def feed(self, data_start: int, payload: bytes) -> None:
        if self._stream_xid is not None:
            self._in_stream(data_start, payload)
            return
        message = pg.decode(payload)
        handler = self._handlers.get(type(message))
        if handler is not None:  # Type and Origin messages need nothing here
            handler(message, data_start)

    def close(self) -> None:
        """Remove the staged streamed transactions (the server sends them again)."""
        self.spool.close()
        self._streamed.clear()

    # -- protocol 2: streamed transactions ------------------------------------------------

    def _stream_start(self, message: pg.StreamStart, _data_start: int) -> None:
        self._stream_xid = message.xid

    def _in_stream(self, data_start: int, payload: bytes) -> None:
        """A message inside a stream block: staged for its transaction, except the block's
        end and non-transactional logical messages (emitted at once, as always)."""
        kind = payload[:1]
        if kind == b"E":
            self._stream_xid = None
            return
        if kind == b"M":
            message = pg.decode(payload, in_stream=True)
            if isinstance(message, pg.LogicalMessage) and not message.transactional:
                self._message(message, data_start)
                return
        xid = self._stream_xid
        assert xid is not None
        (subxid,) = _XID.unpack_from(payload, 1)
        if not self._build_early:
            self.spool.add(xid, subxid, (_RAW, data_start, payload))
        elif kind in (b"I", b"U", b"D"):
            self.spool.add(xid, subxid, self._build(xid, data_start, payload))
        elif kind == b"R":
            relation = pg.decode(payload, in_stream=True)
            assert isinstance(relation, pg.Relation)
            streamed = self._streaming(xid)
            codec = streamed.relations[relation.relation_id] = self.codec_for_relation(relation)
            streamed.codecs[id(codec)] = codec
            self.spool.add(xid, subxid, (_RELATION, data_start, relation.relation_id, id(codec)))
        else:
            self.spool.add(xid, subxid, (_RAW, data_start, payload))

    def _streaming(self, xid: int) -> _Streamed:
        streamed = self._streamed.get(xid)
        if streamed is None:
            streamed = self._streamed[xid] = _Streamed(TxContext(xid, PENDING_US, None))
        return streamed

    def _build(self, xid: int, lsn: int, payload: bytes) -> tuple[Any, ...]:
        """The staged entry of a change of a transaction still streaming: the key of the
        codec that built its records, and the records' fields (see :data:`_BUILT`); its
        number and whether the log already holds it are decided at commit."""
        message = pg.decode(payload, in_stream=True)
        assert isinstance(message, (pg.Insert, pg.Update, pg.Delete))
        streamed = self._streaming(xid)
        rid = message.relation_id
        codec = streamed.relations[rid] if rid in streamed.relations else self._codec(rid)
        if codec is None or _OPS[type(message)] in self._skipped:
            return _BUILT, lsn, 0
        streamed.codecs[id(codec)] = codec
        entry: list[Any] = [_BUILT, lsn, id(codec)]
        for r in self._records(codec, message, streamed.context, lsn, None):
            entry += (r.topic, r.key, r.value, r.headers, r.schema_id)
        return tuple(entry)

    def _stream_abort(self, message: pg.StreamAbort, _data_start: int) -> None:
        self.spool.abort(message.xid, message.subxid)
        if message.xid == message.subxid:
            self._streamed.pop(message.xid, None)

    def _stream_commit(self, message: pg.StreamCommit, _data_start: int) -> None:
        """Read the committed transaction back as a transaction of protocol 1: Begin,
        its staged entries in order, Commit; in parts if it is large. Protocol 1's Begin
        is at the first change that was not rolled back; in a stream, Relation messages
        come without a WAL position (0), so the first entry that has one gives it."""
        streamed = self._streamed.pop(message.xid, None)
        staged = self.spool.replay(message.xid)
        head = []
        for entry in staged:
            head.append(entry)
            if entry[1]:
                break
        begin = pg.Begin(message.commit_lsn, message.commit_time, message.xid)
        self._begin(begin, head[-1][1] if head else message.commit_lsn)
        if head:
            for entry in itertools.chain(head, staged):
                kind, lsn = entry[0], entry[1]
                if kind == _BUILT:
                    assert streamed is not None
                    self._built(streamed, entry)
                elif kind == _RELATION:
                    assert streamed is not None
                    self._adopt(entry[2], streamed.codecs[entry[3]])
                else:
                    decoded = pg.decode(entry[2], in_stream=True)
                    handler = self._handlers.get(type(decoded))
                    if handler is not None:
                        handler(decoded, lsn)
                if self.on_full is not None and len(self.pending) >= self.full_at:
                    self.on_full()
        self._commit(
            pg.Commit(message.flags, message.commit_lsn, message.end_lsn, message.commit_time), 0
        )
        self.spool.drop(message.xid)

    def _built(self, streamed: _Streamed, entry: tuple[Any, ...]) -> None:
        """A change built while streaming (its staged ``entry``), now committed: numbered
        like any other, and its values completed with the commit's source block unless
        the log already holds it."""
        tx = self._require_tx("change")
        tx.index += 1
        if len(entry) == 3:  # nothing to emit
            return
        lsn = entry[1]
        fresh, _ = self._next(tx, "", lsn)
        if fresh:
            codec, context = streamed.codecs[entry[2]], tx.context
            assert codec is not None
            complete = self.builder.complete
            pending = self.pending
            for i in range(3, len(entry), 5):
                value = entry[i + 2]
                done = None if value is None else complete(value, codec, context, lsn)
                pending.append(new_record(entry[i], entry[i + 1], done, entry[i + 3], entry[i + 4]))

    def _relation(self, message: pg.Relation, _data_start: int) -> None:
        self._adopt(message.relation_id, self.codec_for_relation(message))

    def _adopt(self, relation_id: int, codec: TableCodec | None) -> None:
        self.codecs[relation_id] = codec
        if self.adopted is not None:
            self.adopted(relation_id, codec)

    def _redelivered(self, commit_lsn: int, index: int) -> bool:
        resume = self._resume
        return resume is not None and resume.covers(commit_lsn, index)

    # -- transactions -----------------------------------------------------------------

    def _begin(self, message: pg.Begin, data_start: int) -> None:
        resume = self._resume
        if resume is not None and message.final_lsn > max(resume.commit_lsn, resume.lsn):
            self._resume = None  # past everything that can be a redelivery
        # ``sequence`` starts with the end of the transaction before (Debezium's
        # lastCommitLsn); the first one after a snapshot or a new slot, with its own start.
        first = self._last_commit if self._last_commit is not None else data_start
        context = TxContext(message.xid, message.commit_time, first or None)
        self._tx = _Tx(context, message.final_lsn, data_start)
        if self._metadata and not self._redelivered(message.final_lsn, -1):
            self.pending.append(
                self.builder.transaction(
                    "BEGIN", message.xid, data_start or message.final_lsn, message.commit_time
                )
            )

    def _commit(self, message: pg.Commit, _data_start: int) -> None:
        tx = self._require_tx("Commit")
        end_index = tx.index + 1
        redelivered = self._redelivered(message.commit_lsn, end_index)
        if self._metadata and not redelivered:
            self.pending.append(
                self.builder.transaction(
                    "END", tx.context.xid, message.commit_lsn, tx.context.commit_us, tx.counts
                )
            )
        if not redelivered:
            self._lsn, self._commit_lsn, self._index = (
                message.end_lsn,
                message.commit_lsn,
                end_index,
            )
            self._complete, self._txid, self._ts = True, tx.context.xid, tx.context.commit_us
        self._last_commit_us = tx.context.commit_us
        self._last_commit = message.end_lsn
        self._tx = None
        self.transactions += 1

    def _require_tx(self, what: str) -> _Tx:
        if self._tx is None:
            raise SourceError(f"pgoutput sent a {what} outside a transaction")
        return self._tx

    def _next(self, tx: _Tx, collection: str, lsn: int) -> tuple[bool, Block]:
        """For the change just numbered (``tx.index``): whether it is new (not yet in the
        log), and its ``transaction`` block."""
        if tx.context.last_commit_lsn is None:
            tx.context = TxContext(tx.context.xid, tx.context.commit_us, lsn)
        if self._resume is not None and self._resume.covers(tx.commit_lsn, tx.index):
            fresh = False
        else:
            fresh = True
            self._commit_lsn, self._index, self._complete = tx.commit_lsn, tx.index, False
            self._txid, self._ts = tx.context.xid, tx.context.commit_us
            self.events += 1
        if not self._metadata:
            return fresh, None
        tx.total += 1
        tx.counts[collection] = tx.counts.get(collection, 0) + 1
        block = {
            "id": f"{tx.context.xid}:{lsn}",
            "total_order": tx.total,
            "data_collection_order": tx.counts[collection],
        }
        return fresh, block

    # -- changes ------------------------------------------------------------------------

    def _codec(self, relation_id: int) -> TableCodec | None:
        try:
            return self.codecs[relation_id]
        except KeyError:
            raise SourceError(
                f"pgoutput sent a change for relation {relation_id} before its Relation message"
            ) from None

    def _change(self, message: pg.Insert | pg.Update | pg.Delete, lsn: int) -> None:
        codec = self._codec(message.relation_id)
        tx = self._tx
        if tx is None:
            raise SourceError("pgoutput sent a change outside a transaction")
        tx.index += 1  # every change is numbered, captured or not (see _advance)
        if codec is None or _OPS[type(message)] in self._skipped:
            return
        fresh, block = self._next(tx, codec.collection, lsn)
        if fresh:
            self.pending.extend(self._records(codec, message, tx.context, lsn, block))

    def _advance(self) -> _Tx:
        """Number the next change of the transaction. Every change gets a number, also
        one of a table not captured or an operation skipped, so the numbering does not
        depend on the configuration."""
        tx = self._require_tx("change")
        tx.index += 1
        return tx

    def _records(
        self,
        codec: TableCodec,
        message: pg.Insert | pg.Update | pg.Delete,
        tx: TxContext,
        lsn: int,
        block: Block,
    ) -> list[NewRecord]:
        build = self.builder
        if type(message) is pg.Insert:
            new = message.new
            return build.insert(codec, codec.image(new), tx, lsn, block, codec.key_json(new))
        if type(message) is pg.Update:
            before, after = self._update_images(codec, message)
            key = codec.key_json(message.new) if before is None else None  # else unused
            return build.update(codec, before, after, tx, lsn, block, key)
        assert isinstance(message, pg.Delete)
        if message.old_kind == "O":
            return build.delete(codec, codec.image(message.old), tx, lsn, block)
        return build.delete_key_only(codec, message.old, tx, lsn, block)

    @staticmethod
    def _update_images(
        codec: TableCodec, message: pg.Update
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        if message.old is None:
            return None, codec.image(message.new)
        before = _old_image(codec, message.old, message.old_kind)
        if message.old_kind == "O":
            return before, codec.merged_image(message.new, message.old)
        return before, codec.image(message.new)

    def _truncate(self, message: pg.Truncate, lsn: int) -> None:
        for relation_id in message.relation_ids:
            codec = self._codec(relation_id)
            tx = self._advance()
            if codec is None or "t" in self._skipped:
                continue
            fresh, block = self._next(tx, codec.collection, lsn)
            if fresh:
                self.pending.extend(self.builder.truncate(codec, tx.context, lsn, block))

    def _message(self, message: pg.LogicalMessage, lsn: int) -> None:
        tx = self._advance() if message.transactional and self._tx is not None else None
        if not self.options.wants_message(message.prefix):
            return
        if tx is not None:
            fresh, block = self._next(tx, MESSAGE_COLLECTION, lsn)
            if fresh:
                context = tx.context
                self.pending.append(
                    self.builder.message(
                        message.prefix, message.content, context, lsn, context.commit_us, block
                    )
                )
            return
        # Non-transactional: its own unit at its LSN, outside any transaction.
        if self._redelivered(lsn, 0):
            return
        alone = TxContext(None, self._last_commit_us, self._last_commit)
        self.pending.append(
            self.builder.message(message.prefix, message.content, alone, lsn, alone.commit_us, None)
        )
        self.events += 1
        if self._tx is None:
            self._lsn, self._commit_lsn, self._index, self._complete = lsn, lsn, 0, True
            self._txid, self._ts = None, self._last_commit_us

    def keepalive(self, wal_end: int) -> bool:
        """Advance the position to ``wal_end`` when idle between transactions (every
        transaction committed before it has been received). True if it moved."""
        if self._tx is not None or wal_end <= self._lsn:
            return False
        self._lsn = wal_end
        return True


def _old_image(codec: TableCodec, old: Any, kind: str | None) -> dict[str, Any]:
    return codec.image(old) if kind == "O" else codec.key_only_image(old)
