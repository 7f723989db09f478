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

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from duality.errors import SourceError
from duality.events.model import NewRecord
from duality.events.positions import PgPosition
from duality.sources.postgres import pgoutput as pg
from duality.sources.postgres.events import MESSAGE_COLLECTION, Block, EventBuilder, TxContext
from duality.sources.postgres.tables import TableCodec

CodecFactory = Callable[[pg.Relation], TableCodec | None]
_OPS: dict[type, str] = {pg.Insert: "c", pg.Update: "u", pg.Delete: "d"}


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


class ChangeStream:
    """The protocol-1 stream state machine (see the module docstring)."""

    def __init__(
        self,
        builder: EventBuilder,
        codec_for_relation: CodecFactory,
        position: PgPosition,
        options: StreamOptions | None = None,
    ) -> None:
        self.builder = builder
        self.codec_for_relation = codec_for_relation
        self.position = position
        self.options = options or StreamOptions()
        self.pending: list[NewRecord] = []
        self.codecs: dict[int, TableCodec | None] = {}
        self._tx: _Tx | None = None
        self._last_commit_us = position.ts_usec or 0
        self.events = 0
        self.transactions = 0

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    def take(self) -> list[NewRecord]:
        records, self.pending = self.pending, []
        return records

    def feed(self, data_start: int, payload: bytes) -> None:
        message = pg.decode(payload)
        if isinstance(message, pg.Insert | pg.Update | pg.Delete):
            self._change(message, data_start)
        elif isinstance(message, pg.Begin):
            self._begin(message, data_start)
        elif isinstance(message, pg.Commit):
            self._commit(message)
        elif isinstance(message, pg.Relation):
            self.codecs[message.relation_id] = self.codec_for_relation(message)
        elif isinstance(message, pg.Truncate):
            self._truncate(message, data_start)
        elif isinstance(message, pg.LogicalMessage):
            self._message(message, data_start)
        # Type and Origin messages need nothing here.

    # -- transactions -----------------------------------------------------------------

    def _begin(self, message: pg.Begin, data_start: int) -> None:
        context = TxContext(message.xid, message.commit_time, data_start or None)
        self._tx = _Tx(context, message.final_lsn, data_start)
        if self.options.transaction_metadata and not self._covered(-1):
            self.pending.append(
                self.builder.transaction(
                    "BEGIN", message.xid, data_start or message.final_lsn, message.commit_time
                )
            )

    def _commit(self, message: pg.Commit) -> None:
        tx = self._require_tx("Commit")
        end_index = tx.index + 1
        if self.options.transaction_metadata and not self._covered(end_index):
            self.pending.append(
                self.builder.transaction(
                    "END", tx.context.xid, message.commit_lsn, tx.context.commit_us, tx.counts
                )
            )
        if not self.position.covers(message.commit_lsn, end_index):
            self.position = PgPosition(
                lsn=message.end_lsn,
                commit_lsn=message.commit_lsn,
                index=end_index,
                complete=True,
                txid=tx.context.xid,
                ts_usec=tx.context.commit_us,
            )
        self._last_commit_us = tx.context.commit_us
        self._tx = None
        self.transactions += 1

    def _require_tx(self, what: str) -> _Tx:
        if self._tx is None:
            raise SourceError(f"pgoutput sent a {what} outside a transaction")
        return self._tx

    def _covered(self, index: int) -> bool:
        tx = self._tx
        return tx is not None and self.position.covers(tx.commit_lsn, index)

    def _advance(self) -> None:
        """Number the next change of the transaction. Every change gets a number, also
        one of a table not captured or an operation skipped, so the numbering does not
        depend on the configuration."""
        self._require_tx("change").index += 1

    def _next(self, collection: str, lsn: int) -> tuple[bool, Block]:
        """For the change just numbered: whether it is new (not yet in the log), and its
        ``transaction`` block."""
        tx = self._require_tx("change")
        tx.total += 1
        tx.counts[collection] = tx.counts.get(collection, 0) + 1
        if tx.context.first_lsn is None:
            tx.context = TxContext(tx.context.xid, tx.context.commit_us, lsn)
        fresh = not self.position.covers(tx.commit_lsn, tx.index)
        if fresh:
            self.position = PgPosition(
                lsn=self.position.lsn,
                commit_lsn=tx.commit_lsn,
                index=tx.index,
                complete=False,
                txid=tx.context.xid,
                ts_usec=tx.context.commit_us,
            )
            self.events += 1
        block = None
        if self.options.transaction_metadata:
            block = {
                "id": f"{tx.context.xid}:{lsn}",
                "total_order": tx.total,
                "data_collection_order": tx.counts[collection],
            }
        return fresh, block

    # -- changes ------------------------------------------------------------------------

    def _codec(self, relation_id: int) -> TableCodec | None:
        if relation_id not in self.codecs:
            raise SourceError(
                f"pgoutput sent a change for relation {relation_id} before its Relation message"
            )
        return self.codecs[relation_id]

    def _change(self, message: pg.Insert | pg.Update | pg.Delete, lsn: int) -> None:
        codec = self._codec(message.relation_id)
        self._advance()
        if codec is None or _OPS[type(message)] in self.options.skipped:
            return
        fresh, block = self._next(f"{codec.schema}.{codec.table}", lsn)
        if fresh:
            tx = self._require_tx("change").context
            self.pending.extend(self._records(codec, message, tx, lsn, block))

    def _records(
        self,
        codec: TableCodec,
        message: pg.Insert | pg.Update | pg.Delete,
        tx: TxContext,
        lsn: int,
        block: Block,
    ) -> list[NewRecord]:
        build = self.builder
        if isinstance(message, pg.Insert):
            return build.insert(codec, codec.image(message.new), tx, lsn, block)
        if isinstance(message, pg.Update):
            before, after = self._update_images(codec, message)
            return build.update(codec, before, after, tx, lsn, block)
        before = _old_image(codec, message.old, message.old_kind)
        return build.delete(codec, before, tx, lsn, block)

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
            self._advance()
            if codec is None or "t" in self.options.skipped:
                continue
            fresh, block = self._next(f"{codec.schema}.{codec.table}", lsn)
            if fresh:
                tx = self._require_tx("truncate").context
                self.pending.extend(self.builder.truncate(codec, tx, lsn, block))

    def _message(self, message: pg.LogicalMessage, lsn: int) -> None:
        in_tx = message.transactional and self._tx is not None
        if in_tx:
            self._advance()
        if not self.options.wants_message(message.prefix):
            return
        if in_tx and self._tx is not None:
            fresh, block = self._next(MESSAGE_COLLECTION, lsn)
            if fresh:
                tx = self._tx.context
                self.pending.append(
                    self.builder.message(
                        message.prefix, message.content, tx, lsn, tx.commit_us, block
                    )
                )
            return
        # Non-transactional: its own unit at its LSN, outside any transaction.
        if self.position.covers(lsn, 0):
            return
        self.pending.append(
            self.builder.message(
                message.prefix, message.content, None, lsn, self._last_commit_us, None
            )
        )
        self.events += 1
        if self._tx is None:
            self.position = PgPosition(
                lsn=lsn, commit_lsn=lsn, index=0, complete=True, ts_usec=self._last_commit_us
            )

    def keepalive(self, wal_end: int) -> bool:
        """Advance the position to ``wal_end`` when idle between transactions (every
        transaction committed before it has been received). True if it moved."""
        if self._tx is not None or wal_end <= self.position.lsn:
            return False
        self.position = PgPosition(
            lsn=wal_end,
            commit_lsn=self.position.commit_lsn,
            index=self.position.index,
            complete=self.position.complete,
            txid=self.position.txid,
            ts_usec=self.position.ts_usec,
        )
        return True


def _old_image(codec: TableCodec, old: Any, kind: str | None) -> dict[str, Any]:
    return codec.image(old) if kind == "O" else codec.key_only_image(old)
