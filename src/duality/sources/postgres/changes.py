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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from duality.errors import SourceError
from duality.events.model import NewRecord
from duality.events.positions import PgPosition
from duality.sources.postgres import pgoutput as pg
from duality.sources.postgres.events import EventBuilder, TxContext
from duality.sources.postgres.tables import TableCodec

CodecFactory = Callable[[pg.Relation], TableCodec | None]


class ChangeStream:
    """The protocol-1 stream state machine (see the module docstring)."""

    def __init__(
        self, builder: EventBuilder, codec_for_relation: CodecFactory, position: PgPosition
    ) -> None:
        self.builder = builder
        self.codec_for_relation = codec_for_relation
        self.position = position
        self.pending: list[NewRecord] = []
        self.codecs: dict[int, TableCodec | None] = {}
        self.relations: dict[int, pg.Relation] = {}
        self._tx: TxContext | None = None
        self._commit_lsn = 0
        self._index = -1
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
        if isinstance(message, pg.Begin):
            self._begin(message, data_start)
        elif isinstance(message, pg.Commit):
            self._commit(message)
        elif isinstance(message, pg.Relation):
            self.relations[message.relation_id] = message
            self.codecs[message.relation_id] = self.codec_for_relation(message)
        elif isinstance(message, pg.Insert | pg.Update | pg.Delete):
            self._change(message, data_start)
        # Type, Origin, Truncate and Message need nothing here (skipped.operations=t).

    def _begin(self, message: pg.Begin, data_start: int) -> None:
        self._tx = TxContext(message.xid, message.commit_time, data_start or None)
        self._commit_lsn = message.final_lsn
        self._index = -1

    def _commit(self, message: pg.Commit) -> None:
        if self._tx is None:
            raise SourceError("pgoutput sent a Commit without a Begin")
        if not self.position.covers(message.commit_lsn, self._index + 1):
            self.position = PgPosition(
                lsn=message.end_lsn, commit_lsn=message.commit_lsn, index=self._index,
                complete=True, txid=self._tx.xid, ts_usec=self._tx.commit_us,
            )
        self._tx = None
        self.transactions += 1

    def _change(self, message: pg.Insert | pg.Update | pg.Delete, data_start: int) -> None:
        tx = self._tx
        if tx is None:
            raise SourceError("pgoutput sent a change outside a transaction")
        codec = self._codec(message.relation_id)
        self._index += 1
        if codec is None or self.position.covers(self._commit_lsn, self._index):
            return
        if tx.first_lsn is None:
            tx = self._tx = TxContext(tx.xid, tx.commit_us, data_start)
        self.pending.extend(self._records(codec, message, tx, data_start))
        self.events += 1
        self.position = PgPosition(
            lsn=self.position.lsn, commit_lsn=self._commit_lsn, index=self._index,
            complete=False, txid=tx.xid, ts_usec=tx.commit_us,
        )

    def _codec(self, relation_id: int) -> TableCodec | None:
        if relation_id not in self.codecs:
            raise SourceError(
                f"pgoutput sent a change for relation {relation_id} before its Relation message"
            )
        return self.codecs[relation_id]

    def _records(
        self, codec: TableCodec, message: pg.Insert | pg.Update | pg.Delete, tx: TxContext,
        lsn: int,
    ) -> list[NewRecord]:
        build = self.builder
        if isinstance(message, pg.Insert):
            return build.insert(codec, codec.image(message.new), tx, lsn)
        if isinstance(message, pg.Update):
            before, after = self._update_images(codec, message)
            return build.update(codec, before, after, tx, lsn)
        return build.delete(codec, self._old_image(codec, message.old, message.old_kind), tx, lsn)

    def _update_images(
        self, codec: TableCodec, message: pg.Update
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        if message.old is None:
            return None, codec.image(message.new)
        before = self._old_image(codec, message.old, message.old_kind)
        if message.old_kind == "O":
            return before, codec.merged_image(message.new, message.old)
        return before, codec.image(message.new)

    @staticmethod
    def _old_image(codec: TableCodec, old: Any, kind: str | None) -> dict[str, Any]:
        return codec.image(old) if kind == "O" else codec.key_only_image(old)

    def keepalive(self, wal_end: int) -> bool:
        """Advance the position to ``wal_end`` when idle between transactions (every
        transaction committed before it has been received). True if it moved."""
        if self._tx is not None or wal_end <= self.position.lsn:
            return False
        self.position = PgPosition(
            lsn=wal_end, commit_lsn=self.position.commit_lsn, index=self.position.index,
            complete=self.position.complete, txid=self.position.txid,
            ts_usec=self.position.ts_usec,
        )
        return True
