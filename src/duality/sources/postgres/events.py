"""Debezium change events for PostgreSQL, built straight into record bytes.

The envelope is Debezium's (``before``, ``after``, ``source``, ``transaction``, ``op``,
``ts_ms``, ``ts_us``, ``ts_ns``); ``source`` carries Debezium's PostgreSQL fields:
``ts_ms``/``ts_us``/``ts_ns`` are the commit time (the snapshot's start time for
snapshot rows), ``lsn`` the change's WAL position, ``txId`` the transaction id (a
snapshot's: its own transaction's), ``sequence`` the pair ``[<lastCommitLsn>, <lsn>]``
as strings. ``lastCommitLsn`` is, as in Debezium, the end of the transaction streamed
before (kept in the stored position across restarts), so ``sequence`` grows with commit
order also when transactions interleave in the WAL; the first transaction after a
snapshot or a new slot has its own first LSN there (Debezium's is the WAL position when
it started, which no two runs share).

A delete is followed by a tombstone (``tombstones.on.delete``). An update that changes
the record key becomes a delete of the old key with its tombstone and a create of the
new one, with ``__debezium.newkey`` / ``__debezium.oldkey`` headers, as Debezium does.

Besides table topics: logical decoding messages go to ``<prefix>.message``, transaction
BEGIN/END records to ``<prefix>.transaction`` (``provide.transaction.metadata``),
heartbeats to ``__debezium-heartbeat.<prefix>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final

import orjson

from duality.events.jsonbytes import dumps
from duality.events.model import NewRecord, new_record
from duality.events.schema import ConnectSchema, RecordSchema
from duality.sources.postgres.flatten import Flatten
from duality.sources.postgres.record_schema import (
    heartbeat_schema,
    message_schema,
    transaction_schema,
)
from duality.sources.postgres.tables import TableCodec


def _json(image: Block) -> bytes:
    return b"null" if image is None else orjson.dumps(image)


def _version() -> str:
    try:
        return f"duality-{metadata.version('duality')}"
    except metadata.PackageNotFoundError:
        return "duality"


VERSION = _version()

#: What an END record's ``data_collections`` names a logical message by. Debezium writes
#: this class name followed by ``@<identity hash>``, which changes with every run; duality
#: writes the class name alone, so consumers matching Debezium's prefix still match.
MESSAGE_COLLECTION = (
    "io.debezium.connector.postgresql.LogicalDecodingMessageMonitor$LogicalDecodingMessageId"
)

Block = dict[str, Any] | None
Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class TxContext:
    """What every event of one transaction shares. ``commit_us`` is :data:`PENDING_US`
    while a streamed transaction is still in progress (see :data:`PENDING`)."""

    xid: int | None
    commit_us: int
    #: The first element of ``source.sequence`` (see the module docstring).
    last_commit_lsn: int | None


#: A streamed transaction's changes are built as they arrive (protocol 2), before its
#: commit time and first change are known, which the ``source`` block holds. Their
#: values hold this byte where the block goes, and nothing of the processing time (the
#: envelope's last fields); :meth:`EventBuilder.complete` adds both at commit. orjson
#: escapes control characters, so a NUL byte appears in its output nowhere else.
PENDING: Final = b"\x00"
PENDING_US: Final = -1


#: Creates an auxiliary topic (name, schema, topic config) and returns its schema id.
RegisterAux = Callable[[str, RecordSchema, dict[str, str]], int]

#: Messages and transaction records are events, not state: they are kept by time.
_EVENTS_TOPIC = {"cleanup.policy": "delete"}
_HEARTBEAT_TOPIC = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


@dataclass(slots=True)
class AuxTopics:
    """The topics besides table topics; each is created, and its schema registered, the
    first time a record goes to it."""

    message: str
    transaction: str
    heartbeat: str
    content_schema: ConnectSchema
    register: RegisterAux | None = None
    ids: dict[str, int] = field(default_factory=dict)

    def schema_id(self, topic: str) -> int | None:
        known = self.ids.get(topic)
        if known is not None or self.register is None:
            return known
        if topic == self.message:
            made = self.register(topic, message_schema(self.content_schema), _EVENTS_TOPIC)
        elif topic == self.transaction:
            made = self.register(topic, transaction_schema(), _EVENTS_TOPIC)
        else:
            made = self.register(topic, heartbeat_schema(), _HEARTBEAT_TOPIC)
        self.ids[topic] = made
        return made


class EventBuilder:
    """Builds the records of one connector (``topic.prefix``) on one database."""

    def __init__(
        self,
        prefix: str,
        db: str,
        *,
        tombstones: bool = True,
        heartbeat_prefix: str = "__debezium-heartbeat",
        encode_bytes: Callable[[bytes], Any] | None = None,
        content_schema: Mapping[str, Any] | None = None,
        flatten: Flatten | None = None,
    ) -> None:
        self.flatten = flatten
        self.prefix = prefix
        self.db = db
        self.tombstones = tombstones
        self.aux = AuxTopics(
            f"{prefix}.message",
            f"{prefix}.transaction",
            f"{heartbeat_prefix}.{prefix}",
            ConnectSchema.from_json(content_schema or {"type": "bytes", "optional": True}),
        )
        self.encode_bytes = encode_bytes or (lambda data: data.hex())
        self._sources: dict[int, tuple[TxContext, bytes, bytes, bytes]] = {}
        #: Snapshot source blocks: fixed for one snapshot per table and marker.
        self._snapshot_sources: dict[tuple[int, str, int, int], bytes] = {}
        self._stamp = b""
        self.tick()

    def tick(self) -> None:
        """Take the processing time (the envelope's ``ts_ms``/``ts_us``/``ts_ns``) now;
        called once per read burst or snapshot batch rather than per event."""
        now_ns = time.time_ns()
        self._stamp = b',"ts_ms":%d,"ts_us":%d,"ts_ns":%d}' % (
            now_ns // 1_000_000,
            now_ns // 1000,
            now_ns,
        )

    # -- pieces ----------------------------------------------------------------------

    def _source(
        self,
        schema: str,
        table: str,
        snapshot: str,
        ts_us: int,
        sequence: str,
        txid: int | None,
        lsn: int | None,
    ) -> dict[str, Any]:
        return {
            "version": VERSION,
            "connector": "postgresql",
            "name": self.prefix,
            "ts_ms": ts_us // 1000,
            "snapshot": snapshot,
            "db": self.db,
            "sequence": sequence,
            "ts_us": ts_us,
            "ts_ns": ts_us * 1000,
            "schema": schema,
            "table": table,
            "txId": txid,
            "lsn": lsn,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }

    def _source_json(self, codec: TableCodec, tx: TxContext, lsn: int) -> bytes:
        """The streaming ``source`` block as JSON bytes. Everything but the LSN is fixed
        for a table within a transaction, so the bytes around it are built once."""
        cached = self._sources.get(id(codec))
        if cached is None or cached[0] is not tx:
            cached = (tx, *self._source_parts(codec, tx))
            self._sources[id(codec)] = cached
        lsn_text = b"%d" % lsn
        return b"".join((cached[1], lsn_text, cached[2], lsn_text, cached[3]))

    def _source_parts(self, codec: TableCodec, tx: TxContext) -> tuple[bytes, bytes, bytes]:
        marker = "\x00LSN\x00"
        whole = orjson.dumps(
            self._stream_source(codec, tx, 0)
            | {"lsn": marker}
            | {"sequence": f'["{tx.last_commit_lsn or marker}","{marker}"]'}
        )
        head, middle, tail = whole.split(b"\\u0000LSN\\u0000", 2)
        # "lsn" is a number: drop the quotes that surrounded the marker there.
        return head, middle[:-1], tail[1:]

    def _value_json(
        self, op: bytes, before: bytes, after: bytes, source: bytes, block: Block, stamp: bytes
    ) -> bytes:
        """The envelope as JSON bytes, joined from its parts (no envelope dict); the
        images come as JSON."""
        return b"".join(
            (
                b'{"before":',
                before,
                b',"after":',
                after,
                b',"source":',
                source,
                b',"transaction":',
                b"null" if block is None else orjson.dumps(block),
                b',"op":"',
                op,
                b'"',
                stamp,
            )
        )

    def complete(self, value: bytes, codec: TableCodec, tx: TxContext, lsn: int) -> bytes:
        """A value of ``codec``'s table built while its transaction was streaming, with
        the ``source`` block of the committed transaction ``tx`` at ``lsn`` and the
        processing time added (see :data:`PENDING`)."""
        head, _, tail = value.partition(PENDING)
        return b"".join((head, self._source_json(codec, tx, lsn), tail, self._stamp))

    @staticmethod
    def _envelope(
        op: str, before: Block, after: Block, source: dict[str, Any], block: Block
    ) -> dict[str, Any]:
        now_ns = time.time_ns()
        return {
            "before": before,
            "after": after,
            "source": source,
            "transaction": block,
            "op": op,
            "ts_ms": now_ns // 1_000_000,
            "ts_us": now_ns // 1000,
            "ts_ns": now_ns,
        }

    @staticmethod
    def _record(
        codec: TableCodec, key: Block, value: bytes | None, headers: Headers = ()
    ) -> NewRecord:
        encoded = None if key is None else dumps(key)
        return new_record(codec.topic, encoded, value, headers, codec.schema_id)

    def _emit(
        self, codec: TableCodec, key: Block, envelope: dict[str, Any], headers: Headers = ()
    ) -> list[NewRecord]:
        """The record(s) of one change: the envelope, or its flattened form."""
        flat = self.flatten
        if flat is None:
            return [self._record(codec, key, dumps(envelope), headers)]
        headers += tuple((n, dumps(v)) for n, v in flat.header_values(envelope))
        op = envelope["op"]
        if op == "t":  # ExtractNewRecordState keeps truncates only with tombstones
            kept = flat.keeps_tombstones
            return [self._record(codec, key, dumps(envelope), headers)] if kept else []
        if op != "d":
            row = flat.row(envelope, envelope["after"], deleted=False)
            return [self._record(codec, key, dumps(row), headers)]
        if flat.delete_mode == "drop":
            return []
        if not flat.rewrites:
            return [self._record(codec, key, None, headers)]
        row = flat.row(envelope, envelope["before"], deleted=True)
        return [self._record(codec, key, dumps(row), headers)]

    def _tombstone(self, codec: TableCodec, key: Block, headers: Headers = ()) -> list[NewRecord]:
        """The tombstone after a delete (``tombstones.on.delete``; flattened output keeps
        it only with ``rewrite-with-tombstone``)."""
        if not self.tombstones or (self.flatten and not self.flatten.keeps_tombstones):
            return []
        return [self._record(codec, key, None, headers)]

    def _stream_source(self, codec: TableCodec, tx: TxContext, lsn: int) -> dict[str, Any]:
        sequence = f'["{tx.last_commit_lsn or lsn}","{lsn}"]'
        return self._source(codec.schema, codec.table, "false", tx.commit_us, sequence, tx.xid, lsn)

    # -- table events ----------------------------------------------------------------

    def snapshot_records(
        self,
        codec: TableCodec,
        row: dict[str, Any],
        marker: str,
        ts_us: int,
        lsn: int,
        txid: int | None,
    ) -> list[NewRecord]:
        if self.flatten is None:  # hot path: one source block per table and marker
            key = (id(codec), marker, ts_us, lsn)
            source_json = self._snapshot_sources.get(key)
            if source_json is None:
                source_json = self._snapshot_sources[key] = orjson.dumps(
                    self._source(
                        codec.schema, codec.table, marker, ts_us, f'[null,"{lsn}"]', txid, lsn
                    )
                )
            after = orjson.dumps(row)
            value = self._value_json(b"r", b"null", after, source_json, None, self._stamp)
            return [self._record(codec, codec.key(row), value)]
        source = self._source(
            codec.schema, codec.table, marker, ts_us, f'[null,"{lsn}"]', txid, lsn
        )
        return self._emit(codec, codec.key(row), self._envelope("r", None, row, source, None))

    def _change(
        self,
        codec: TableCodec,
        op: str,
        key: Block,
        before: Block,
        after: Block,
        tx: TxContext,
        lsn: int,
        block: Block,
        headers: Headers = (),
    ) -> list[NewRecord]:
        """One streamed change: the envelope joined from bytes (the hot path), or its
        flattened form."""
        if self.flatten is None:
            before_json, after_json = _json(before), _json(after)
            value = self._change_json(codec, op.encode(), before_json, after_json, tx, lsn, block)
            return [self._record(codec, key, value, headers)]
        envelope = self._envelope(op, before, after, self._stream_source(codec, tx, lsn), block)
        return self._emit(codec, key, envelope, headers)

    def _change_json(
        self,
        codec: TableCodec,
        op: bytes,
        before: bytes,
        after: bytes,
        tx: TxContext,
        lsn: int,
        block: Block,
    ) -> bytes:
        """A streamed change's value, its images given as JSON."""
        if tx.commit_us == PENDING_US:  # the source block and the time come at commit
            return self._value_json(op, before, after, PENDING, block, b"")
        source = self._source_json(codec, tx, lsn)
        return self._value_json(op, before, after, source, block, self._stamp)

    def _keyed(
        self,
        codec: TableCodec,
        op: bytes,
        key: bytes,
        before: bytes,
        after: bytes,
        tx: TxContext,
        lsn: int,
        block: Block,
    ) -> NewRecord:
        """The hot path's record of a change whose key and images come as JSON."""
        value = self._change_json(codec, op, before, after, tx, lsn, block)
        return new_record(codec.topic, key, value, (), codec.schema_id)

    def insert(
        self,
        codec: TableCodec,
        after: dict[str, Any],
        tx: TxContext,
        lsn: int,
        block: Block,
        key: bytes | None = None,
    ) -> list[NewRecord]:
        """``key``: the key's JSON when the caller has it (``TableCodec.key_json``)."""
        if key is not None and self.flatten is None:
            return [self._keyed(codec, b"c", key, b"null", orjson.dumps(after), tx, lsn, block)]
        return self._change(codec, "c", codec.key(after), None, after, tx, lsn, block)

    def update(
        self,
        codec: TableCodec,
        before: Block,
        after: dict[str, Any],
        tx: TxContext,
        lsn: int,
        block: Block,
        key: bytes | None = None,
    ) -> list[NewRecord]:
        """``key``: the new key's JSON when the caller has it (``TableCodec.key_json``);
        without a before image the key is unchanged."""
        if before is None and key is not None and self.flatten is None:
            return [self._keyed(codec, b"u", key, b"null", orjson.dumps(after), tx, lsn, block)]
        new_key = codec.key(after)
        old_key = codec.key(before) if before is not None else new_key
        if old_key == new_key:
            return self._change(codec, "u", new_key, before, after, tx, lsn, block)
        old_bytes = None if old_key is None else dumps(old_key)
        new_bytes = None if new_key is None else dumps(new_key)
        newkey: Headers = (("__debezium.newkey", new_bytes),)
        return [
            *self._change(codec, "d", old_key, before, None, tx, lsn, block, newkey),
            *self._tombstone(codec, old_key, newkey),  # Debezium puts the new key on it too
            *self._change(
                codec,
                "c",
                new_key,
                None,
                after,
                tx,
                lsn,
                block,
                (("__debezium.oldkey", old_bytes),),
            ),
        ]

    def delete(
        self, codec: TableCodec, before: dict[str, Any], tx: TxContext, lsn: int, block: Block
    ) -> list[NewRecord]:
        key = codec.key(before)
        records = self._change(codec, "d", key, before, None, tx, lsn, block)
        if self.flatten is None and self.tombstones:  # hot path: the key encoded once
            records.append(new_record(codec.topic, records[0].key, None, (), codec.schema_id))
            return records
        return [*records, *self._tombstone(codec, key)]

    def delete_key_only(
        self, codec: TableCodec, old: Sequence[Any], tx: TxContext, lsn: int, block: Block
    ) -> list[NewRecord]:
        """A delete whose old tuple holds the key only (replica identity DEFAULT). The
        hot path: the before image's JSON is the key's JSON with the relation's filler
        JSON joined on (see ``TableCodec.key_only_json``), not a dict encoded per event
        (measured 0.4 us less per delete, 0.9 with an integer key); else :meth:`delete`
        of the key-only image."""
        key_json = None if self.flatten is not None else codec.key_only_json(old)
        if key_json is None:
            return self.delete(codec, codec.key_only_image(old), tx, lsn, block)
        before = b"".join((key_json[:-1], codec.fillers_json))
        records = [self._keyed(codec, b"d", key_json, before, b"null", tx, lsn, block)]
        if self.tombstones:
            records.append(new_record(codec.topic, key_json, None, (), codec.schema_id))
        return records

    def truncate(self, codec: TableCodec, tx: TxContext, lsn: int, block: Block) -> list[NewRecord]:
        """op ``t``: no key (the topic must accept null keys), no row images."""
        source = self._stream_source(codec, tx, lsn)
        return self._emit(codec, None, self._envelope("t", None, None, source, block))

    # -- messages, transactions, heartbeats ---------------------------------------------

    def message(
        self,
        prefix: str,
        content: bytes,
        tx: TxContext,
        lsn: int,
        ts_us: int,
        block: Block,
    ) -> NewRecord:
        """A logical decoding message (op ``m``); ``tx`` without ``xid`` for a
        non-transactional one, whose ``source.ts_ms`` is the last commit seen, as Debezium
        writes it."""
        first = tx.last_commit_lsn or lsn
        source = self._source("", "", "false", ts_us, f'["{first}","{lsn}"]', tx.xid, lsn)
        value = dumps(
            {
                "op": "m",
                "ts_ms": time.time_ns() // 1_000_000,
                "source": source,
                "transaction": block,
                "message": {"prefix": prefix, "content": self.encode_bytes(content)},
            }
        )
        key = dumps({"prefix": prefix})
        return NewRecord(self.aux.message, key, value, (), self.aux.schema_id(self.aux.message))

    def transaction(
        self,
        status: str,
        xid: int | None,
        lsn: int,
        ts_us: int,
        counts: Mapping[str, int] | None = None,
    ) -> NewRecord:
        """A BEGIN or END record (``provide.transaction.metadata``); ``counts`` per data
        collection for END."""
        ident = f"{xid}:{lsn}"
        value = {
            "status": status,
            "id": ident,
            "event_count": None if counts is None else sum(counts.values()),
            "data_collections": None
            if counts is None
            else [{"data_collection": name, "event_count": n} for name, n in counts.items()],
            "ts_ms": ts_us // 1000,
        }
        topic = self.aux.transaction
        return NewRecord(topic, dumps({"id": ident}), dumps(value), (), self.aux.schema_id(topic))

    def heartbeat(self) -> NewRecord:
        value = dumps({"ts_ms": time.time_ns() // 1_000_000})
        key = dumps({"serverName": self.prefix})
        return NewRecord(self.aux.heartbeat, key, value, (), self.aux.schema_id(self.aux.heartbeat))
