"""Decode PostgreSQL ``pgoutput`` logical replication messages: bytes in, frozen dataclasses out.

Pure: no I/O, no database, no catalog look-ups. One call to :func:`decode` turns the payload
of one XLogData (``w``) message -- what psycopg2 hands out with ``decode=False`` -- into one
message object. It understands everything PostgreSQL 15 sends for ``proto_version`` 1 and 2
(the two-phase messages of protocol 3 are refused).

Contracts the caller relies on:

* **Streaming.** With protocol 2 and ``streaming=on``, the messages between a
  :class:`StreamStart` and its :class:`StreamStop` that describe changes (Relation, Type,
  Insert, Update, Delete, Truncate, LogicalMessage) carry a leading transaction id. The
  caller tracks Stream Start/Stop and passes ``in_stream=True`` for those; the id lands in
  their ``xid`` field (``None`` outside a stream). PostgreSQL puts the id of the
  *sub*-transaction that made the change there, not always the top-level one, which is what
  lets a :class:`StreamAbort` with a ``subxid`` discard exactly that sub-transaction's changes.
* **Tuples** are plain tuples, one item per column of the preceding :class:`Relation`:
  ``bytes`` (the value in PostgreSQL's text output format, undecoded), ``None`` (SQL NULL, or
  a column that is not part of an old *key* tuple), :data:`UNCHANGED_TOAST` (an unchanged
  out-of-line value that PostgreSQL did not send), or :class:`BinaryValue` (only when the
  ``binary`` option was requested: the type's binary send format).
* **Timestamps** (:class:`Begin`, :class:`Commit`, :class:`StreamCommit`) are integer
  microseconds since the Unix epoch (PostgreSQL sends microseconds since 2000-01-01; the
  offset is added here). **LSNs** are ints; :func:`format_lsn` and :func:`parse_lsn` convert.
* **Names** (namespaces, relations, columns, types, origins, message prefixes) are decoded as
  UTF-8: PostgreSQL converts them to the replication connection's ``client_encoding``, so
  that connection must use UTF8. An empty namespace means ``pg_catalog``, as in PostgreSQL.
* **Errors**: an unknown message type, a truncated buffer, trailing bytes or a malformed field
  raise :class:`PgoutputError` (a terminal :class:`~duality.errors.SourceError`).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, TypeAlias

from duality.errors import ConfigError, SourceError

__all__ = [
    "UNCHANGED_TOAST",
    "Begin",
    "BinaryValue",
    "Column",
    "Commit",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "Origin",
    "PgoutputError",
    "Relation",
    "RowTuple",
    "StreamAbort",
    "StreamCommit",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "Type",
    "UnchangedToast",
    "Update",
    "Value",
    "decode",
    "format_lsn",
    "parse_lsn",
]

#: Microseconds from the Unix epoch (1970-01-01) to PostgreSQL's epoch (2000-01-01).
PG_EPOCH_OFFSET_US: Final = 946_684_800_000_000


class PgoutputError(SourceError):
    """A pgoutput message could not be decoded (unknown type, truncated, malformed)."""


class UnchangedToast(enum.Enum):
    """Type of :data:`UNCHANGED_TOAST`; an enum so that ``is`` checks narrow types."""

    UNCHANGED_TOAST = "u"

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


#: A column whose out-of-line (TOASTed) value did not change and was not sent. Never store it
#: as a value: keep the previous value of that column (DESIGN.md, delivery rule 6).
UNCHANGED_TOAST: Final = UnchangedToast.UNCHANGED_TOAST


@dataclass(frozen=True, slots=True)
class BinaryValue:
    """A column value in its type's binary send format (only with the ``binary`` option)."""

    data: bytes


Value: TypeAlias = bytes | Literal[UnchangedToast.UNCHANGED_TOAST] | BinaryValue | None
RowTuple: TypeAlias = tuple[Value, ...]
OldKind: TypeAlias = Literal["K", "O"]


class Begin(NamedTuple):
    """Start of a (non-streamed) transaction; ``final_lsn`` is the LSN of its commit record."""

    final_lsn: int
    commit_time: int
    xid: int


class Commit(NamedTuple):
    """End of a transaction. Acknowledge ``end_lsn`` once its changes are durable."""

    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: int


@dataclass(frozen=True, slots=True)
class Origin:
    """The replication origin the current transaction came from (follows its Begin)."""

    origin_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a :class:`Relation`. ``flags`` bit 1: part of the replica identity."""

    flags: int
    name: str
    type_oid: int
    type_modifier: int

    @property
    def is_key(self) -> bool:
        """True when the column is part of the replica identity (every column under FULL)."""
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class Relation:
    """A table's shape; tuples of later changes to ``relation_id`` follow ``columns``.

    ``replica_identity`` is PostgreSQL's ``relreplident``: ``d`` default (primary key),
    ``n`` nothing, ``f`` full, ``i`` index.
    """

    relation_id: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Type:
    """A non-built-in column type. For a domain, ``type_oid`` is the domain but
    ``namespace``/``name`` are its base type's (that is what PostgreSQL sends)."""

    type_oid: int
    namespace: str
    name: str
    xid: int | None = None


class Insert(NamedTuple):
    """A new row. (Begin, Commit, Insert, Update and Delete are named tuples rather than
    frozen dataclasses: one is made per change, at a third of the cost.)"""

    relation_id: int
    new: RowTuple
    xid: int | None = None


class Update(NamedTuple):
    """A changed row. ``old`` is present only when the replica identity demands it: ``'O'``
    (FULL) holds the whole old row, ``'K'`` (DEFAULT/INDEX, key changed) holds the old key
    columns with ``None`` in every other column."""

    relation_id: int
    new: RowTuple
    old: RowTuple | None = None
    old_kind: OldKind | None = None
    xid: int | None = None


class Delete(NamedTuple):
    """A deleted row; ``old`` as in :class:`Update` (``'K'`` or ``'O'``)."""

    relation_id: int
    old: RowTuple
    old_kind: OldKind
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    """One TRUNCATE statement's published tables and its options."""

    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    """A ``pg_logical_emit_message`` (pgoutput's "Message"; needs ``messages=true``).

    A non-transactional message arrives on its own, outside any Begin/Commit, even when the
    emitting transaction later rolls back.
    """

    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStart:
    """Opens a block of changes of the in-progress transaction ``xid`` (protocol 2)."""

    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    """Closes the block opened by the last :class:`StreamStart`."""


@dataclass(frozen=True, slots=True)
class StreamCommit:
    """The streamed transaction ``xid`` committed; takes the place of its Commit."""

    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    """Discard streamed changes: of the whole transaction when ``subxid == xid``, else of the
    sub-transaction ``subxid`` only (a rolled-back savepoint)."""

    xid: int
    subxid: int


Message: TypeAlias = (
    Begin
    | Commit
    | Origin
    | Relation
    | Type
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

# --- fixed layouts (network byte order) -----------------------------------------------------

#: Messages made per change are named tuples built by ``tuple.__new__`` from all their
#: fields: no Python frame for the generated ``__new__`` (0.20 -> 0.10 µs a message).
_new: Final = tuple.__new__
_LSN_TEXT: Final = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
# Final: compiled, module constants are C globals (or inlined), not a dict lookup each use.
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_BEGIN: Final = struct.Struct(">QqI")  # final lsn, commit time, xid
_COMMIT: Final = struct.Struct(">BQQq")  # flags, commit lsn, end lsn, commit time
_U64: Final = struct.Struct(">Q")
_REL_ACTION: Final = struct.Struct(">IB")  # relation id, tuple kind
_XID_REL_ACTION: Final = struct.Struct(">IIB")
_XID_U32: Final = struct.Struct(">II")
_COL_TYPE: Final = struct.Struct(">Ii")  # type oid, type modifier (signed: -1 means none)
_TRUNCATE: Final = struct.Struct(">IB")  # number of relations, option flags
_MESSAGE: Final = struct.Struct(">BQ")  # flags, lsn
_STREAM_START: Final = struct.Struct(">IB")
_STREAM_COMMIT: Final = struct.Struct(">IBQQq")

# Value and tuple kinds: the bytes b"t", b"n", b"u", b"b", b"N", b"K", b"O".
_TEXT: Final = 0x74
_NULL: Final = 0x6E
_UNCHANGED: Final = 0x75
_BINARY: Final = 0x62
_NEW: Final = 0x4E
_KEY: Final = 0x4B
_OLD: Final = 0x4F
_OLD_KINDS: Final[dict[int, OldKind]] = {_KEY: "K", _OLD: "O"}

_Reader: TypeAlias = Callable[[bytes, bool], tuple[Message, int]]


class _Malformed(Exception):
    """Internal: a field holds a value the format does not allow (turned into PgoutputError)."""


def decode(buf: bytes | bytearray | memoryview, *, in_stream: bool = False) -> Message:
    """Decode one pgoutput message.

    ``in_stream`` must be True exactly for messages between a StreamStart and its StreamStop
    (the caller tracks that); it is ignored for messages that never carry a leading xid.
    Raises :class:`PgoutputError` for an empty, unknown, truncated or over-long message.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    try:
        reader = _READERS[buf[0]]
    except (IndexError, KeyError):
        raise _unknown(buf) from None
    try:
        message, end = reader(buf, in_stream)
    except (struct.error, IndexError, ValueError, _Malformed) as exc:
        raise _broken(buf, in_stream, exc) from exc
    if end != len(buf):
        raise _broken(buf, in_stream, None, end)
    return message


def format_lsn(lsn: int) -> str:
    """``0x16B3748`` → ``'0/16B3748'``: PostgreSQL's spelling, upper-case hex."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """``'0/16B3748'`` → ``0x16B3748``; raises :class:`~duality.errors.ConfigError` if malformed."""
    match = _LSN_TEXT.fullmatch(text.strip())
    if match is None:
        raise ConfigError(
            f"{text!r} is not a PostgreSQL LSN; write it as two hexadecimal numbers of at most "
            f"8 digits separated by a slash, as pg_current_wal_lsn() prints it, e.g. 0/16B3748"
        )
    return (int(match[1], 16) << 32) | int(match[2], 16)


# --- errors --------------------------------------------------------------------------------


def _preview(buf: bytes) -> str:
    head = buf[:48].hex(" ")
    return head + (" ..." if len(buf) > 48 else "")


def _unknown(buf: bytes) -> PgoutputError:
    if not buf:
        return PgoutputError("empty pgoutput message: a replication message had no payload")
    kind = chr(buf[0])
    return PgoutputError(
        f"unknown pgoutput message type {kind!r} (0x{buf[0]:02x}) in {len(buf)} bytes: "
        f"{_preview(buf)}. duality decodes protocol versions 1 and 2; start replication with "
        f"proto_version '1' or '2' and without two_phase."
    )


def _broken(buf: bytes, in_stream: bool, exc: Exception | None, end: int = 0) -> PgoutputError:
    if isinstance(exc, UnicodeDecodeError):
        what = "holds a name that is not UTF-8 (set client_encoding=UTF8 on the connection)"
    elif isinstance(exc, _Malformed):
        what = f"is malformed: {exc}"
    elif exc is not None or end > len(buf):
        what = "is truncated: it ends before its last field"
    else:
        what = f"has {len(buf) - end} unexpected trailing bytes"
    hint = ""
    if buf[0] in _XID_CARRIERS and not isinstance(exc, UnicodeDecodeError):
        hint = (
            f" (decoded with in_stream={in_stream}; inside Stream Start/Stop this message "
            f"carries a leading xid, outside it does not)"
        )
    name = _NAMES.get(buf[0], "?")
    return PgoutputError(
        f"pgoutput {name} message of {len(buf)} bytes {what}{hint}: {_preview(buf)}"
    )


# --- shared field readers -------------------------------------------------------------------


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    """A NUL-terminated string at ``pos``; ValueError (→ truncated) when the NUL is missing."""
    end = buf.index(0, pos)
    return buf[pos:end].decode(), end + 1


def _read_namespace(buf: bytes, pos: int) -> tuple[str, int]:
    name, pos = _read_str(buf, pos)
    return name or "pg_catalog", pos


def _read_tuple(buf: bytes, pos: int) -> tuple[RowTuple, int]:
    """TupleData at ``pos``. Hot path: one loop step per column, no per-byte work but
    the lengths' four bytes, read by indexing (compiled, that is native code; a struct
    call per column cost more than the rest of the step)."""
    (count,) = _U16.unpack_from(buf, pos)
    pos += 2
    values: list[Value] = [None] * count
    unpack_u32 = _U32.unpack_from
    for i in range(count):
        kind = buf[pos]
        if kind == _TEXT:
            length = (
                (buf[pos + 1] << 24) | (buf[pos + 2] << 16) | (buf[pos + 3] << 8) | buf[pos + 4]
            )
            pos += 5
            end = pos + length
            values[i] = buf[pos:end]
            pos = end
        elif kind == _NULL:
            pos += 1
        elif kind == _UNCHANGED:
            values[i] = UNCHANGED_TOAST
            pos += 1
        elif kind == _BINARY:
            (length,) = unpack_u32(buf, pos + 1)
            pos += 5
            values[i] = BinaryValue(buf[pos : pos + length])
            pos += length
        else:
            raise _Malformed(f"column {i + 1} has unknown value kind {chr(kind)!r}")
    if pos > len(buf):
        raise IndexError("tuple runs past the end of the message")
    return tuple(values), pos


def _read_xid_rel_action(buf: bytes, stream: bool) -> tuple[int | None, int, int, int]:
    """The (xid,) relation id and first tuple-kind byte of Insert/Update/Delete."""
    if stream:
        xid, relation_id, action = _XID_REL_ACTION.unpack_from(buf, 1)
        return xid, relation_id, action, 10
    relation_id, action = _REL_ACTION.unpack_from(buf, 1)
    return None, relation_id, action, 6


def _read_xid(buf: bytes, stream: bool) -> tuple[int | None, int]:
    if stream:
        return _U32.unpack_from(buf, 1)[0], 5
    return None, 1


def _expect(action: int, allowed: bytes, message: str) -> None:
    if action not in allowed:
        raise _Malformed(f"{message} expected tuple kind {allowed.decode()!r}, got {chr(action)!r}")


# --- one reader per message type ------------------------------------------------------------


def _begin(buf: bytes, stream: bool) -> tuple[Message, int]:
    final_lsn, commit_time, xid = _BEGIN.unpack_from(buf, 1)
    return _new(Begin, (final_lsn, commit_time + PG_EPOCH_OFFSET_US, xid)), 21


def _commit(buf: bytes, stream: bool) -> tuple[Message, int]:
    flags, commit_lsn, end_lsn, commit_time = _COMMIT.unpack_from(buf, 1)
    return _new(Commit, (flags, commit_lsn, end_lsn, commit_time + PG_EPOCH_OFFSET_US)), 26


def _origin(buf: bytes, stream: bool) -> tuple[Message, int]:
    (origin_lsn,) = _U64.unpack_from(buf, 1)
    name, pos = _read_str(buf, 9)
    return Origin(origin_lsn, name), pos


def _relation(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, pos = _read_xid(buf, stream)
    (relation_id,) = _U32.unpack_from(buf, pos)
    namespace, pos = _read_namespace(buf, pos + 4)
    name, pos = _read_str(buf, pos)
    identity = chr(buf[pos])
    (count,) = _U16.unpack_from(buf, pos + 1)
    pos += 3
    columns = []
    for _ in range(count):
        flags = buf[pos]
        column_name, pos = _read_str(buf, pos + 1)
        type_oid, type_modifier = _COL_TYPE.unpack_from(buf, pos)
        pos += 8
        columns.append(Column(flags, column_name, type_oid, type_modifier))
    return Relation(relation_id, namespace, name, identity, tuple(columns), xid), pos


def _type(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, pos = _read_xid(buf, stream)
    (type_oid,) = _U32.unpack_from(buf, pos)
    namespace, pos = _read_namespace(buf, pos + 4)
    name, pos = _read_str(buf, pos)
    return Type(type_oid, namespace, name, xid), pos


def _insert(buf: bytes, stream: bool) -> tuple[Message, int]:
    # The header is read inline rather than with _read_xid_rel_action: this is the hot path.
    if stream:
        xid, relation_id, action = _XID_REL_ACTION.unpack_from(buf, 1)
        pos = 10
    else:
        xid = None
        relation_id, action = _REL_ACTION.unpack_from(buf, 1)
        pos = 6
    if action != _NEW:
        _expect(action, b"N", "Insert")
    new, pos = _read_tuple(buf, pos)
    return _new(Insert, (relation_id, new, xid)), pos


def _update(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, relation_id, action, pos = _read_xid_rel_action(buf, stream)
    if action == _NEW:
        new, pos = _read_tuple(buf, pos)
        return _new(Update, (relation_id, new, None, None, xid)), pos
    _expect(action, b"KO", "Update")
    old, pos = _read_tuple(buf, pos)
    _expect(buf[pos], b"N", "Update after its old tuple")
    new, pos = _read_tuple(buf, pos + 1)
    return _new(Update, (relation_id, new, old, _OLD_KINDS[action], xid)), pos


def _delete(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, relation_id, action, pos = _read_xid_rel_action(buf, stream)
    _expect(action, b"KO", "Delete")
    old, pos = _read_tuple(buf, pos)
    return _new(Delete, (relation_id, old, _OLD_KINDS[action], xid)), pos


def _truncate(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, pos = _read_xid(buf, stream)
    count, options = _TRUNCATE.unpack_from(buf, pos)
    pos += 5
    if pos + 4 * count > len(buf):
        raise IndexError("relation ids run past the end of the message")
    relation_ids = struct.unpack_from(f">{count}I", buf, pos)
    return Truncate(relation_ids, bool(options & 1), bool(options & 2), xid), pos + 4 * count


def _message(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, pos = _read_xid(buf, stream)
    flags, lsn = _MESSAGE.unpack_from(buf, pos)
    prefix, pos = _read_str(buf, pos + 9)
    (length,) = _U32.unpack_from(buf, pos)
    pos += 4
    end = pos + length
    if end > len(buf):
        raise IndexError("content runs past the end of the message")
    return LogicalMessage(bool(flags & 1), lsn, prefix, buf[pos:end], xid), end


def _stream_start(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, first = _STREAM_START.unpack_from(buf, 1)
    return StreamStart(xid, first == 1), 6


def _stream_stop(buf: bytes, stream: bool) -> tuple[Message, int]:
    return StreamStop(), 1


def _stream_commit(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, flags, commit_lsn, end_lsn, commit_time = _STREAM_COMMIT.unpack_from(buf, 1)
    return StreamCommit(xid, flags, commit_lsn, end_lsn, commit_time + PG_EPOCH_OFFSET_US), 30


def _stream_abort(buf: bytes, stream: bool) -> tuple[Message, int]:
    xid, subxid = _XID_U32.unpack_from(buf, 1)
    return StreamAbort(xid, subxid), 9


_TABLE: Final[dict[bytes, tuple[str, _Reader]]] = {
    b"B": ("Begin", _begin),
    b"C": ("Commit", _commit),
    b"O": ("Origin", _origin),
    b"R": ("Relation", _relation),
    b"Y": ("Type", _type),
    b"I": ("Insert", _insert),
    b"U": ("Update", _update),
    b"D": ("Delete", _delete),
    b"T": ("Truncate", _truncate),
    b"M": ("Message", _message),
    b"S": ("Stream Start", _stream_start),
    b"E": ("Stream Stop", _stream_stop),
    b"c": ("Stream Commit", _stream_commit),
    b"A": ("Stream Abort", _stream_abort),
}
# Keyed by the first byte as an int, which is what indexing bytes yields.
_READERS: Final[dict[int, _Reader]] = {key[0]: reader for key, (_, reader) in _TABLE.items()}
_NAMES: Final[dict[int, str]] = {key[0]: name for key, (name, _) in _TABLE.items()}
_XID_CARRIERS: Final = frozenset(b"RYIUDTM")
