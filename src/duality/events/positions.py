"""Source positions: where capture is in the source's transaction log.

A PostgreSQL position names the last change that is durable in the log: the commit LSN
of its transaction plus its index in that transaction, and ``lsn``, the LSN the source
may be acknowledged up to and streaming restarts from (the end of the last complete
transaction, or of a keepalive). Transactions arrive in commit order, so an event
``(commit_lsn, index)`` at or before the stored position is a duplicate.

Stored as a JSON object with Debezium's PostgreSQL offset keys (``lsn``,
``lsn_commit``, ``lsn_proc``, ``txId``, ``ts_usec``) plus duality's own, so positions can
move between duality and Debezium.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PgPosition:
    """The position of the last durable change (see the module docstring).

    ``complete`` says the whole transaction ``commit_lsn`` is durable; otherwise only its
    events up to ``index``. ``snapshot`` is ``"completed"`` once the initial snapshot is
    durable, ``"running"`` while duality is taking one on a slot it created.
    """

    lsn: int
    commit_lsn: int = 0
    index: int = -1
    complete: bool = True
    txid: int | None = None
    ts_usec: int | None = None
    snapshot: str = "completed"
    slot: str | None = None
    #: The end of the last transaction this capture streamed (Debezium's
    #: ``lastCommitLsn``, the first element of ``source.sequence``); None before the
    #: first one after a snapshot or a new slot.
    last_commit: int | None = None

    def covers(self, commit_lsn: int, index: int) -> bool:
        """Whether event ``index`` of the transaction committed at ``commit_lsn`` is
        already durable, so a redelivery of it must be skipped."""
        if commit_lsn != self.commit_lsn:
            return commit_lsn < self.commit_lsn or commit_lsn < self.lsn
        return self.complete or index <= self.index

    def to_offset(self) -> dict[str, Any]:
        """The stored JSON object (Debezium's offset keys plus duality's)."""
        return {
            "lsn": self.lsn,
            "lsn_commit": self.commit_lsn or None,
            "lsn_proc": self.lsn,
            "txId": self.txid,
            "ts_usec": self.ts_usec,
            "duality.index": self.index,
            "duality.complete": self.complete,
            "duality.snapshot": self.snapshot,
            "duality.slot": self.slot,
            "duality.last_commit": self.last_commit,
        }

    @classmethod
    def from_offset(cls, data: Mapping[str, Any]) -> PgPosition:
        return cls(
            lsn=int(data.get("lsn") or 0),
            commit_lsn=int(data.get("lsn_commit") or 0),
            index=int(data.get("duality.index", -1)),
            complete=bool(data.get("duality.complete", True)),
            txid=data.get("txId"),
            ts_usec=data.get("ts_usec"),
            snapshot=str(data.get("duality.snapshot", "completed")),
            slot=data.get("duality.slot"),
            last_commit=data.get("duality.last_commit"),
        )
