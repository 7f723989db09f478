"""Debezium change events for PostgreSQL, built straight into record bytes.

The envelope is Debezium's (``before``, ``after``, ``source``, ``transaction``, ``op``,
``ts_ms``, ``ts_us``, ``ts_ns``); ``source`` carries Debezium's PostgreSQL fields:
``ts_ms``/``ts_us``/``ts_ns`` are the commit time (the snapshot's start time for
snapshot rows), ``lsn`` the change's WAL position, ``sequence`` the pair
``[<transaction's first LSN>, <lsn>]`` as strings, ``txId`` the transaction id.

A delete is followed by a tombstone (``tombstones.on.delete``). An update that changes
the record key becomes a delete of the old key with its tombstone and a create of the
new one, with ``__debezium.newkey`` / ``__debezium.oldkey`` headers, as Debezium does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import orjson

from duality.events.model import NewRecord
from duality.sources.postgres.tables import TableCodec


def _version() -> str:
    try:
        return f"duality-{metadata.version('duality')}"
    except metadata.PackageNotFoundError:
        return "duality"


VERSION = _version()


@dataclass(frozen=True, slots=True)
class TxContext:
    """What every event of one transaction shares."""

    xid: int | None
    commit_us: int
    first_lsn: int | None


class EventBuilder:
    """Builds the records of one connector (``topic.prefix``) on one database."""

    def __init__(self, prefix: str, db: str, *, tombstones: bool = True) -> None:
        self.prefix = prefix
        self.db = db
        self.tombstones = tombstones

    def _source(
        self,
        codec: TableCodec,
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
            "schema": codec.schema,
            "table": codec.table,
            "txId": txid,
            "lsn": lsn,
            "xmin": None,
            "origin": None,
            "origin_lsn": None,
        }

    def _value(
        self,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        source: dict[str, Any],
    ) -> bytes:
        now_ns = time.time_ns()
        return orjson.dumps(
            {
                "before": before,
                "after": after,
                "source": source,
                "transaction": None,
                "op": op,
                "ts_ms": now_ns // 1_000_000,
                "ts_us": now_ns // 1000,
                "ts_ns": now_ns,
            }
        )

    def snapshot_record(
        self,
        codec: TableCodec,
        row: dict[str, Any],
        marker: str,
        ts_us: int,
        lsn: int,
        txid: int | None,
    ) -> NewRecord:
        source = self._source(
            codec, marker, ts_us, orjson.dumps([None, str(lsn)]).decode(), txid, lsn
        )
        return self._record(codec, codec.key(row), self._value("r", None, row, source))

    def _record(
        self,
        codec: TableCodec,
        key: dict[str, Any] | None,
        value: bytes | None,
        headers: tuple[tuple[str, bytes | None], ...] = (),
    ) -> NewRecord:
        return NewRecord(
            codec.topic,
            None if key is None else orjson.dumps(key),
            value,
            headers,
            codec.schema_id,
        )

    def _stream_source(self, codec: TableCodec, tx: TxContext, lsn: int) -> dict[str, Any]:
        first = tx.first_lsn or lsn
        sequence = orjson.dumps([str(first), str(lsn)]).decode()
        return self._source(codec, "false", tx.commit_us, sequence, tx.xid, lsn)

    def insert(
        self, codec: TableCodec, after: dict[str, Any], tx: TxContext, lsn: int
    ) -> list[NewRecord]:
        value = self._value("c", None, after, self._stream_source(codec, tx, lsn))
        return [self._record(codec, codec.key(after), value)]

    def update(
        self,
        codec: TableCodec,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        tx: TxContext,
        lsn: int,
    ) -> list[NewRecord]:
        source = self._stream_source(codec, tx, lsn)
        new_key = codec.key(after)
        old_key = codec.key(before) if before is not None else new_key
        if old_key == new_key:
            return [self._record(codec, new_key, self._value("u", before, after, source))]
        return self._key_change(codec, before, after, old_key, new_key, source)

    def _key_change(
        self,
        codec: TableCodec,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        old_key: dict[str, Any] | None,
        new_key: dict[str, Any] | None,
        source: dict[str, Any],
    ) -> list[NewRecord]:
        old_bytes = None if old_key is None else orjson.dumps(old_key)
        new_bytes = None if new_key is None else orjson.dumps(new_key)
        records = [
            self._record(
                codec,
                old_key,
                self._value("d", before, None, source),
                (("__debezium.newkey", new_bytes),),
            ),
        ]
        if self.tombstones:  # Debezium puts the new key on the tombstone too
            records.append(self._record(codec, old_key, None, (("__debezium.newkey", new_bytes),)))
        records.append(
            self._record(
                codec,
                new_key,
                self._value("c", None, after, source),
                (("__debezium.oldkey", old_bytes),),
            )
        )
        return records

    def delete(
        self, codec: TableCodec, before: dict[str, Any], tx: TxContext, lsn: int
    ) -> list[NewRecord]:
        key = codec.key(before)
        records = [
            self._record(
                codec, key, self._value("d", before, None, self._stream_source(codec, tx, lsn))
            )
        ]
        if self.tombstones:
            records.append(self._record(codec, key, None))
        return records
