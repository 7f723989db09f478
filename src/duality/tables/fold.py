"""The fold: what a change does to a table, as pure functions over row states.

A table is the fold of its topic: per key, the latest row. Row operations are decoded
from records by :mod:`duality.tables.decode`; here they meet the rows:

- :class:`Upsert` (ops ``c``, ``r``, ``u``, a flattened row) replaces the row; columns
  listed in ``unavailable`` held the unchanged-TOAST placeholder and keep the value the
  row had (None when there was no row: the value is not known, and a placeholder is
  never written as data). When the row moved from another key (``origin``: the create
  Debezium writes after a primary-key change), the value is the one the row had under
  that key, even though that row has been deleted by then;
- :class:`Delete` (op ``d``, a tombstone) removes it;
- :class:`Truncate` (op ``t``) removes every row written before it.

Positions make applying idempotent under redelivery: an operation whose source position
is not newer than the row's is stale (or a duplicate) and ignored. So that a stale
create cannot bring a deleted row back, a delete leaves a *dead row* holding its
position (never shown), and a truncate leaves a watermark: operations at or before it
are ignored. Operations without a position (topics that are not Debezium envelopes)
always apply, in log order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Hashable, ...]
Values = tuple[Any, ...]
#: (partition, offset, record key bytes): where an operation came from.
Where = tuple[int, int, bytes | None]


@dataclass(frozen=True, slots=True)
class Upsert:
    key: Key
    values: Values
    position: int | None = None
    unavailable: frozenset[int] = frozenset()
    origin: Key | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: Key
    position: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    position: int | None = None


RowOp = Upsert | Delete


@dataclass(frozen=True, slots=True)
class RowState:
    """A stored row: ``values`` (the non-key columns) or None for a dead row, which
    keeps the values it had when it was deleted in ``kept`` (never shown)."""

    values: Values | None
    position: int | None = None
    kept: Values | None = None

    @property
    def last(self) -> Values | None:
        """The row's values, or the values it had before it was deleted."""
        return self.values if self.values is not None else self.kept

    @property
    def live(self) -> bool:
        return self.values is not None


def newer(position: int | None, current: int | None) -> bool:
    """Whether an operation at ``position`` applies over a row at ``current``. A tie is
    a redelivered duplicate (one key never has two changes at one position) and is
    ignored: applying it again could take placeholder values from a row that has moved
    on since."""
    return position is None or current is None or position > current


def fold_row(
    state: RowState | None, op: RowOp, origin: RowState | None = None
) -> RowState | None:
    """The row after ``op``, or None when ``op`` is stale (the row stays as it was).
    ``origin`` is the row under ``op.origin``, where the row moved from."""
    if state is not None and not newer(op.position, state.position):
        return None
    if isinstance(op, Delete):
        return RowState(None, op.position, state.last if state is not None else None)
    values = op.values
    if op.unavailable:
        if op.origin is not None:
            previous = origin.last if origin is not None else None
        else:
            previous = state.values if state is not None else None
        values = tuple(
            (previous[i] if previous is not None else None) if i in op.unavailable else x
            for i, x in enumerate(values)
        )
    return RowState(values, op.position)


def truncated(position: int | None, watermark: int | None) -> bool:
    """Whether an operation at ``position`` is older than a truncate at ``watermark``."""
    return position is not None and watermark is not None and position <= watermark


def survives(state: RowState, truncate_at: int | None) -> bool:
    """Whether a row outlives a truncate at ``truncate_at`` (it was written after it)."""
    return truncate_at is not None and state.position is not None and state.position > truncate_at


@dataclass(slots=True)
class TableFold:
    """A whole table folded in memory: the reference the table store must equal."""

    rows: dict[Key, RowState] = field(default_factory=dict)
    watermark: int | None = None

    def apply(self, op: RowOp | Truncate) -> bool:
        """Apply one operation; False when it was stale."""
        if truncated(op.position, self.watermark):
            return False
        if isinstance(op, Truncate):
            self.rows = {k: s for k, s in self.rows.items() if survives(s, op.position)}
            if op.position is not None:
                self.watermark = op.position
            return True
        origin = self.rows.get(op.origin) if isinstance(op, Upsert) and op.origin else None
        state = fold_row(self.rows.get(op.key), op, origin)
        if state is None:
            return False
        self.rows[op.key] = state
        return True

    def apply_all(self, ops: Iterable[RowOp | Truncate]) -> TableFold:
        for op in ops:
            self.apply(op)
        return self

    def live(self) -> dict[Key, Values]:
        """Key → values of every live row."""
        return {k: s.values for k, s in self.rows.items() if s.values is not None}
