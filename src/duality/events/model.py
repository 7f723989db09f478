"""The event model: change events, log records and the blocks they are made of.

A :class:`ChangeEvent` is one row change in Debezium's vocabulary; a :class:`Record`
is what the log stores (bytes plus where it is). :mod:`duality.events.envelope`
converts between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple

#: Row images and keys map column names to JSON-ready values.
Row = Mapping[str, Any]
#: Record headers, in order, as Kafka keeps them: name and value bytes (or None).
Headers = tuple[tuple[str, bytes | None], ...]


class Op(StrEnum):
    """The ``op`` field of a Debezium change event."""

    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"  # a snapshot row
    TRUNCATE = "t"
    MESSAGE = "m"  # a logical decoding message


class SnapshotMarker(StrEnum):
    """``source.snapshot``: where a record is in a snapshot (Debezium writes strings)."""

    FIRST = "first"
    FIRST_IN_DATA_COLLECTION = "first_in_data_collection"
    TRUE = "true"
    LAST_IN_DATA_COLLECTION = "last_in_data_collection"
    LAST = "last"
    INCREMENTAL = "incremental"
    FALSE = "false"


# Fields every Debezium connector writes into ``source``, in Debezium's order.
_COMMON_SOURCE_FIELDS: Final = (
    "version", "connector", "name", "ts_ms", "snapshot", "db", "sequence"
)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """The ``source`` block: where and when the change happened.

    The fields every Debezium connector shares are attributes; connector-specific
    ones (PostgreSQL's ``schema``, ``table``, ``txId``, ``lsn``, ``xmin``; MySQL's
    ``file``, ``pos``, ``gtid`` ...) live in ``extra`` in the order they are written.
    """

    connector: str
    name: str
    ts_ms: int
    db: str
    version: str = ""
    snapshot: str = SnapshotMarker.FALSE.value
    sequence: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """A field by its Debezium name, common or connector-specific."""
        if name in _COMMON_SOURCE_FIELDS:
            return getattr(self, name)
        return self.extra.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "connector": self.connector,
            "name": self.name,
            "ts_ms": self.ts_ms,
            "snapshot": self.snapshot,
            "db": self.db,
            "sequence": self.sequence,
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceInfo:
        extra = {k: v for k, v in data.items() if k not in _COMMON_SOURCE_FIELDS}
        return cls(
            version=str(data.get("version", "")),
            connector=str(data.get("connector", "")),
            name=str(data.get("name", "")),
            ts_ms=int(data.get("ts_ms") or 0),
            snapshot=_snapshot_text(data.get("snapshot")),
            db=str(data.get("db", "")),
            sequence=data.get("sequence"),
            extra=extra,
        )


def _snapshot_text(value: Any) -> str:
    # Debezium 1.x wrote booleans; since 2.0 it writes strings. Accept both.
    if value is None or value is False:
        return SnapshotMarker.FALSE.value
    if value is True:
        return SnapshotMarker.TRUE.value
    return str(value)


@dataclass(frozen=True, slots=True)
class TransactionBlock:
    """The ``transaction`` block of an event (``provide.transaction.metadata``)."""

    id: str
    total_order: int
    data_collection_order: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "total_order": self.total_order,
            "data_collection_order": self.data_collection_order,
        }


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change: the key, both row images, where it came from and what happened.

    ``before`` is None for creates and snapshot reads (and for updates when the
    source does not log old values); ``after`` is None for deletes. Truncates and
    messages have neither. ``ts_us``/``ts_ns`` are when duality processed the event.
    """

    op: Op
    source: SourceInfo
    key: Row | None
    before: Row | None
    after: Row | None
    ts_ms: int
    ts_us: int | None = None
    ts_ns: int | None = None
    transaction: TransactionBlock | None = None
    #: Logical decoding message (``op == "m"``): prefix and content (bytes).
    message: Mapping[str, Any] | None = None


class NewRecord(NamedTuple):
    """A record to append: the log assigns its partition (unless given) and offset.

    ``timestamp`` is milliseconds since the Unix epoch; None means now.
    ``value=None`` is a tombstone.

    Records are immutable like the dataclasses here, but named tuples: one is made per
    change event, and building a frozen dataclass costs three times as much
    (measured 0.82 µs against 0.27 µs).
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    schema_id: int | None = None
    timestamp: int | None = None
    partition: int | None = None


class Record(NamedTuple):
    """A record as stored in the log, at ``offset`` of ``topic``/``partition``
    (a named tuple for the same reason as :class:`NewRecord`: one per record read)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    schema_id: int | None = None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None


#: Named tuples made from all their fields by ``tuple.__new__``, skipping the Python
#: ``__new__`` that ``NamedTuple`` generates: compiled callers then run no Python frame
#: (0.20 -> 0.10 µs a record; capture and the log's reader make one per event).
_tuple_new: Final = tuple.__new__


def new_record(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers = (),
    schema_id: int | None = None,
) -> NewRecord:
    """``NewRecord(topic, key, value, headers, schema_id)``, made faster."""
    return _tuple_new(NewRecord, (topic, key, value, headers, schema_id, None, None))


def stored_record(
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    schema_id: int | None,
) -> Record:
    """``Record(...)`` of every field, made faster."""
    return _tuple_new(Record, (topic, partition, offset, timestamp, key, value, headers, schema_id))
