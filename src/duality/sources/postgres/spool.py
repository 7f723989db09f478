"""Staging streamed transactions until they commit (protocol 2).

With ``streaming=on`` the server sends a large transaction in blocks while it is still
running; it may yet abort, wholly or a subtransaction at a time (ROLLBACK TO
SAVEPOINT). Each block's entries (what :class:`~duality.sources.postgres.changes.
ChangeStream` makes of its messages: built records, or a message to decode later) are
kept per top-level transaction with the subtransaction that made them, in memory up to
``chunk`` entries and then appended to one file per transaction as a pickled chunk.
Nothing is emitted until Stream Commit, when the entries are read back in order,
skipping those of aborted subtransactions. Memory stays flat whatever the transaction's
size. After a reconnect the server sends in-progress transactions again from their
start, so a new :class:`Spool` starts empty.

File frame: chunk length (u32), a pickled list of ``(subtransaction id, entry)``. The
files are this process's own scratch space, read back only by it.
"""

from __future__ import annotations

import pickle
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

_LENGTH: Final = struct.Struct("<I")
#: Entries kept in memory per transaction before a chunk is written (a few MB).
CHUNK: Final = 4096


class Spool:
    """Staging of the transactions being streamed (see the module docstring)."""

    def __init__(self, directory: Path | None = None, chunk: int = CHUNK) -> None:
        self._parent = directory
        self._chunk = chunk
        self._root: Path | None = None
        self._files: dict[int, BinaryIO] = {}
        self._buffers: dict[int, list[tuple[int, Any]]] = {}
        self._aborted: dict[int, set[int]] = {}

    def _file(self, xid: int) -> BinaryIO:
        handle = self._files.get(xid)
        if handle is None:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="duality-spool-", dir=self._parent))
            handle = self._files[xid] = (self._root / f"{xid}.spool").open("w+b")
        return handle

    def add(self, xid: int, subxid: int, entry: Any) -> None:
        """Stage an entry of top-level transaction ``xid`` made by ``subxid``."""
        buffer = self._buffers.get(xid)
        if buffer is None:
            buffer = self._buffers[xid] = []
        buffer.append((subxid, entry))
        if len(buffer) >= self._chunk:
            self._spill(xid, buffer)

    def _spill(self, xid: int, buffer: list[tuple[int, Any]]) -> None:
        data = pickle.dumps(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        handle = self._file(xid)
        handle.write(_LENGTH.pack(len(data)))
        handle.write(data)
        buffer.clear()

    def abort(self, xid: int, subxid: int) -> None:
        """Stream Abort: the whole transaction (``subxid == xid``) or one subtransaction."""
        if subxid == xid:
            self.drop(xid)
        else:
            self._aborted.setdefault(xid, set()).add(subxid)

    def replay(self, xid: int) -> Iterator[Any]:
        """The committed transaction's entries in order, without those of aborted
        subtransactions."""
        aborted = self._aborted.get(xid, set())
        handle = self._files.get(xid)
        if handle is not None:
            handle.flush()
            handle.seek(0)
            while header := handle.read(_LENGTH.size):
                (length,) = _LENGTH.unpack(header)
                for subxid, entry in pickle.loads(handle.read(length)):
                    if subxid not in aborted:
                        yield entry
        for subxid, entry in self._buffers.get(xid, ()):
            if subxid not in aborted:
                yield entry

    def drop(self, xid: int) -> None:
        handle = self._files.pop(xid, None)
        self._buffers.pop(xid, None)
        self._aborted.pop(xid, None)
        if handle is not None:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)

    def close(self) -> None:
        for xid in list(self._files.keys() | self._buffers.keys()):
            self.drop(xid)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
