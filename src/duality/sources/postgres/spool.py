"""Staging streamed transactions on local disk until they commit (protocol 2).

With ``streaming=on`` the server sends a large transaction in blocks while it is still
running; it may yet abort, wholly or a subtransaction at a time (ROLLBACK TO
SAVEPOINT). Each block's messages are appended to one file per top-level transaction,
with the subtransaction that made them; nothing is emitted until Stream Commit, when
the file is read back in order, skipping aborted subtransactions. Memory stays flat
whatever the transaction's size. After a reconnect the server sends in-progress
transactions again from their start, so a new :class:`Spool` starts empty.

Frame: subtransaction id (u32), the message's WAL position (u64), payload length
(u32), payload.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_FRAME = struct.Struct("<IQI")


class Spool:
    """On-disk staging of the transactions being streamed (see the module docstring)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._parent = directory
        self._root: Path | None = None
        self._files: dict[int, BinaryIO] = {}
        self._aborted: dict[int, set[int]] = {}

    def _file(self, xid: int) -> BinaryIO:
        handle = self._files.get(xid)
        if handle is None:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="duality-spool-", dir=self._parent))
            handle = self._files[xid] = (self._root / f"{xid}.spool").open("w+b")
        return handle

    def add(self, xid: int, subxid: int, lsn: int, payload: bytes) -> None:
        """Stage a message of top-level transaction ``xid`` made by ``subxid``."""
        handle = self._file(xid)
        handle.write(_FRAME.pack(subxid, lsn, len(payload)))
        handle.write(payload)

    def abort(self, xid: int, subxid: int) -> None:
        """Stream Abort: the whole transaction (``subxid == xid``) or one subtransaction."""
        if subxid == xid:
            self.drop(xid)
        else:
            self._aborted.setdefault(xid, set()).add(subxid)

    def replay(self, xid: int) -> Iterator[tuple[int, bytes]]:
        """The committed transaction's messages in order, without those of aborted
        subtransactions: (WAL position, payload)."""
        handle = self._files.get(xid)
        if handle is None:
            return
        aborted = self._aborted.get(xid, set())
        handle.flush()
        handle.seek(0)
        while header := handle.read(_FRAME.size):
            subxid, lsn, length = _FRAME.unpack(header)
            payload = handle.read(length)
            if subxid not in aborted:
                yield lsn, payload

    def drop(self, xid: int) -> None:
        handle = self._files.pop(xid, None)
        self._aborted.pop(xid, None)
        if handle is not None:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)

    @property
    def open_transactions(self) -> int:
        return len(self._files)

    def close(self) -> None:
        for xid in list(self._files):
            self.drop(xid)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
