"""A batch of row operations on one table, folded in memory before it is written.

Two modes, with the same result (the property tests hold them to :class:`TableFold`):

- **collapsed** (the fast path): per key only the winning operation is kept, the one
  :func:`~duality.tables.fold.newer` lets replace all others; the store then writes it
  under the same rule against the stored row's position, in SQL. This is exact as long
  as every operation replaces the whole row.
- **ordered**: operations are kept in order, the stored rows of their keys are read,
  and the operations are folded onto them one by one. Needed when an operation keeps
  stored values (an unchanged-TOAST placeholder), and when the caller wants each change
  (``--follow``, aggregates). A collapsed batch switches to ordered on the first
  placeholder; its winners so far are exactly what an ordered fold of their keys gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from duality.tables.fold import Delete, Key, RowOp, RowState, Upsert, Values, Where, fold_row

#: A collapsed winner: the upsert's parameters (key values, column values, position;
#: None for a delete), the position, and where it came from.
Winner = tuple[tuple[Any, ...] | None, int | None, Where]


@dataclass(frozen=True, slots=True)
class RowChange:
    """One applied change of a table row: ``op`` is ``c``, ``u``, ``d`` or ``t``
    (a truncate, without key or rows)."""

    op: str
    key: Key | None
    before: Values | None
    after: Values | None
    where: Where | None = None


@dataclass(slots=True)
class Pending:
    """The operations of a batch on one table (see the module docstring)."""

    ordered: bool = False
    winners: dict[Key, Winner] = field(default_factory=dict)
    #: the upsert a winning delete replaced: a deleted row keeps its last values
    kept: dict[Key, Winner] = field(default_factory=dict)
    ops: list[tuple[RowOp, Where]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops) if self.ordered else len(self.winners)

    def upsert(
        self, key: Key, values: Values, position: int | None, unavailable: frozenset[int],
        where: Where, origin: Key | None = None,
    ) -> None:
        if unavailable and not self.ordered:
            self._to_ordered()
        if self.ordered:
            op = Upsert(key, values, position, unavailable, origin if unavailable else None)
            self.ops.append((op, where))
            return
        current = self.winners.get(key)
        if current is None or position is None or current[1] is None or position > current[1]:
            self.winners[key] = ((*key, *values, position), position, where)

    def delete(self, key: Key, position: int | None, where: Where) -> None:
        if self.ordered:
            self.ops.append((Delete(key, position), where))
            return
        current = self.winners.get(key)
        if current is None or position is None or current[1] is None or position > current[1]:
            if current is not None and current[0] is not None:
                self.kept[key] = current
            self.winners[key] = (None, position, where)

    def _to_ordered(self) -> None:
        for key, (params, position, where) in self.winners.items():
            if params is None and key in self.kept:
                kept, kept_position, kept_where = self.kept[key]
                assert kept is not None
                self.ops.append((Upsert(key, kept[len(key) : -1], kept_position), kept_where))
            op: RowOp = (Delete(key, position) if params is None
                         else Upsert(key, params[len(key) : -1], position))
            self.ops.append((op, where))
        self.winners.clear()
        self.kept.clear()
        self.ordered = True

    def keys(self) -> list[Key]:
        """Every key the batch touches or takes values from."""
        if not self.ordered:
            return list(self.winners)
        keys = dict.fromkeys(op.key for op, _ in self.ops)
        keys.update(dict.fromkeys(op.origin for op, _ in self.ops
                                  if isinstance(op, Upsert) and op.origin is not None))
        return list(keys)


@dataclass(frozen=True, slots=True)
class Folded:
    """An ordered batch folded onto the stored rows: the rows to write (``finals``), every
    change in order, and per changed key its row before and after the batch."""

    finals: dict[Key, tuple[RowState, Where]]
    changes: list[RowChange]
    net: list[tuple[Key, Values | None, Values | None]]


def fold_ordered(
    ops: Iterable[tuple[RowOp, Where]], stored: Mapping[Key, RowState]
) -> Folded:
    """Fold ``ops`` in order onto ``stored`` (the rows of their keys, where present)."""
    states: dict[Key, RowState | None] = {}
    finals: dict[Key, tuple[RowState, Where]] = {}
    changes: list[RowChange] = []
    for op, where in ops:
        key = op.key
        state = states[key] if key in states else stored.get(key)
        origin = None
        if isinstance(op, Upsert) and op.origin is not None:
            origin = states[op.origin] if op.origin in states else stored.get(op.origin)
        after = fold_row(state, op, origin)
        if after is None:
            continue
        states[key] = after
        finals[key] = (after, where)
        change = _change(key, state, after, where)
        if change is not None:
            changes.append(change)
    net = []
    for key in finals:
        base = stored.get(key)
        old = base.values if base is not None else None
        new = finals[key][0].values
        if old != new:
            net.append((key, old, new))
    return Folded(finals, changes, net)


def _change(key: Key, state: RowState | None, after: RowState, where: Where) -> RowChange | None:
    before = state.values if state is not None else None
    if before is None and after.values is None:
        return None
    if before is None:
        return RowChange("c", key, None, after.values, where)
    if after.values is None:
        return RowChange("d", key, before, None, where)
    if before == after.values:
        return None
    return RowChange("u", key, before, after.values, where)
