"""Aggregates kept current incrementally inside the table store.

An aggregate (``count``, ``sum``, ``avg``, ``min``, ``max`` grouped by columns,
optionally filtered; see :mod:`.aggregate_spec`) is a table of its own, written in the
same transaction as the rows it summarises. For every row a batch changed, the row's
image before the batch leaves its group and the image after it joins its group (each
only if it matches the filter), so a row moving between groups or deleted is subtracted
exactly. When a removed value may have been a group's min or max, only that group's
min/max is read again from the table. A truncate or a change of the table's shape
recomputes the aggregate from the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import orjson

from duality.errors import ConfigError
from duality.tables import ddl
from duality.tables import values as v
from duality.tables.aggregate_spec import (
    AVERAGE,
    EXACT,
    GroupState,
    Measure,
    fold_value,
    number,
    parse_spec,
)
from duality.tables.batch import RowChange
from duality.tables.fold import Key, Values
from duality.tables.predicate import Probe, guarded, wrap
from duality.tables.shape import Column
from duality.tables.sqlite import TableInfo, TableStore
from duality.tables.types import Kind

FILTER = "the aggregate filter"
GROUP = '"duality:group"'
STATE = '"duality:state"'
Outputs = tuple[Any, ...]


class Aggregate:
    """One aggregate over ``source`` (its metadata ``info``, its spec ``spec``)."""

    def __init__(self, store: TableStore, info: TableInfo, source: TableInfo) -> None:
        self.store, self.info, self.source = store, info, source
        self.spec = parse_spec(orjson.loads(info.spec or "{}"))
        shape = source.shape
        self.columns = [*shape.key_columns, *shape.value_columns]
        index = {c.field: i for i, c in enumerate(self.columns)}
        missing = [f for f in self._fields() if f not in index]
        if missing:
            raise ConfigError(f"aggregate {self.spec.name!r}: table {source.name!r} has no "
                              f"column(s) {missing}; its columns are {sorted(index)}")
        if self.spec.where is not None:
            check_filter(store, source, self.spec.where)
        self.group_at = [index[f] for f in self.spec.group_by]
        self.measure_at = [None if m.field is None else index[m.field] for m in self.spec.measures]
        self.kinds = [self.columns[i].kind if i is not None else Kind("int")
                      for i in self.measure_at]
        self.changes: list[RowChange] = []
        self._last_states: dict[tuple[Any, ...], GroupState] = {}

    def _fields(self) -> list[str]:
        return [*self.spec.group_by, *(m.field for m in self.spec.measures if m.field)]

    # -- incremental ------------------------------------------------------------------

    def update(self, net: Sequence[tuple[Key, Values | None, Values | None]]) -> None:
        """Move every changed row out of its old group and into its new one."""
        images = [(sign, key + values) for key, before, after in net
                  for sign, values in ((-1, before), (1, after)) if values is not None]
        passing = self._matching([row for _, row in images])
        moves = [(sign, row) for i, (sign, row) in enumerate(images) if i in passing]
        if not moves:
            return
        groups = {self._group(row) for _, row in moves}
        states = self._load(groups)
        dirty: set[tuple[Any, ...]] = set()
        for sign, row in moves:
            group = self._group(row)
            state = states.setdefault(group, GroupState.empty(self.spec.measures))
            state.rows += sign
            for i, measure in enumerate(self.spec.measures):
                value = self._value(row, i)
                if fold_value(state, i, measure, value, sign):
                    dirty.add(group)
        for group in dirty:
            self._reread_extremes(group, states[group])
        self._write(states)

    def _value(self, row: Sequence[Any], i: int) -> Any:
        at = self.measure_at[i]
        if at is None:
            return 1
        value = _norm(self.kinds[i], row[at])
        if self.kinds[i].base == "decimal":
            exact = number(value, decimal=True)
            return value if exact is None else exact
        return value

    def _group(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(_norm(self.columns[i].kind, row[i]) for i in self.group_at)

    def _matching(self, rows: Sequence[Sequence[Any]]) -> set[int]:
        if self.spec.where is None:
            return set(range(len(rows)))
        probe = Probe(self.store.conn, str(self.info.id), self.columns)
        try:
            return probe.matching(self.spec.where, rows)
        finally:
            probe.close()

    def _reread_extremes(self, group: tuple[Any, ...], state: GroupState) -> None:
        fresh = GroupState.empty(self.spec.measures)
        for row in self._source_rows(group):
            for i, measure in enumerate(self.spec.measures):
                if measure.function in ("min", "max"):
                    fold_value(fresh, i, measure, self._value(row, i), 1)
        state.extremes = [fresh.extremes[i] if m.function in ("min", "max") else x
                          for i, (m, x) in enumerate(zip(self.spec.measures, state.extremes,
                                                         strict=True))]

    def _source_rows(self, group: tuple[Any, ...] | None) -> Iterator[tuple[Any, ...]]:
        names = ", ".join(ddl.quote(c.sql) for c in self.columns)
        match = ""
        params: list[Any] = []
        if group is not None:
            match = "".join(f" AND {ddl.quote(self.columns[i].sql)} IS ?" for i in self.group_at)
            params = list(group)
        live = f"SELECT {names} FROM {ddl.quote(self.source.rows)} WHERE NOT {ddl.DEAD}{match}"
        # the filter sees the live rows from outside: no text of it can reach the others
        sql = f"SELECT {names} FROM ({live}) WHERE {wrap(self.spec.where, FILTER)}"
        conn = self.store.conn
        with guarded(conn, [self.source.rows], self.spec.where, subqueries=False,
                     label=FILTER, selects=2):
            rows = conn.execute(sql, params).fetchall()
        yield from rows

    # -- stored state -----------------------------------------------------------------

    def _load(self, groups: Iterable[tuple[Any, ...]]) -> dict[tuple[Any, ...], GroupState]:
        out = {}
        table = ddl.quote(self.info.rows)
        names = ", ".join(ddl.quote(c.sql) for c in self._measure_columns())
        for group in groups:
            row = self.store.conn.execute(
                f"SELECT {STATE}, {names} FROM {table} WHERE {GROUP} = ?", (_group_key(group),)
            ).fetchone()
            if row is not None:
                out[group] = self._state(row[0], row[1:])
        return out

    def _state(self, text: str, outputs: Sequence[Any]) -> GroupState:
        data = orjson.loads(text)
        sums: list[Decimal | int] = [int(s) if type(s) is int else Decimal(s) for s in data["sums"]]
        extremes = [self._extreme(i, x) for i, x in enumerate(outputs)]
        return GroupState(data["rows"], data["counts"], sums, extremes)

    def _extreme(self, i: int, stored: Any) -> Any:
        if self.spec.measures[i].function not in ("min", "max"):
            return None
        value = _norm(self.kinds[i], stored)
        if self.kinds[i].base == "decimal" and value is not None:
            exact = number(value, decimal=True)
            return value if exact is None else exact
        return value

    def _measure_columns(self) -> list[Column]:
        return list(self.info.shape.value_columns)

    def _write(self, states: dict[tuple[Any, ...], GroupState], *, record: bool = True) -> None:
        old = {g: self._stored_outputs(g) for g in states} if record else {}
        table = ddl.quote(self.info.rows)
        cols = [*self.info.shape.key_columns, *self._measure_columns()]
        names = ", ".join([GROUP, STATE] + [ddl.quote(c.sql) for c in cols])
        marks = ", ".join("?" * (len(cols) + 2))
        for group, state in states.items():
            key = _group_key(group)
            if state.rows <= 0:
                self.store.conn.execute(f"DELETE FROM {table} WHERE {GROUP} = ?", (key,))
                new = None
            else:
                new = self.outputs(state)
                self.store.conn.execute(
                    f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})",
                    (key, _state_text(state), *group, *new),
                )
            if record and old[group] != new:
                self.changes.append(_change(group, old[group], new))

    def _stored_outputs(self, group: tuple[Any, ...]) -> Outputs | None:
        names = ", ".join(ddl.quote(c.sql) for c in self._measure_columns())
        row = self.store.conn.execute(
            f"SELECT {names} FROM {ddl.quote(self.info.rows)} WHERE {GROUP} = ?",
            (_group_key(group),),
        ).fetchone()
        return None if row is None else tuple(row)

    def outputs(self, state: GroupState) -> Outputs:
        return tuple(_output(m, k, state, i) for i, (m, k) in
                     enumerate(zip(self.spec.measures, self.kinds, strict=True)))

    # -- from scratch -----------------------------------------------------------------

    def recompute(self) -> dict[tuple[Any, ...], Outputs]:
        """Every group's outputs computed from the table's rows (what ``update`` keeps)."""
        states: dict[tuple[Any, ...], GroupState] = {}
        for row in self._source_rows(None):
            state = states.setdefault(self._group(row), GroupState.empty(self.spec.measures))
            state.rows += 1
            for i, measure in enumerate(self.spec.measures):
                fold_value(state, i, measure, self._value(row, i), 1)
        self._last_states = states
        return {g: self.outputs(s) for g, s in states.items()}

    def stored(self) -> dict[tuple[Any, ...], Outputs]:
        names = ", ".join(ddl.quote(c.sql) for c in self.info.shape.columns)
        width = len(self.spec.group_by)
        rows = self.store.conn.execute(f"SELECT {names} FROM {ddl.quote(self.info.rows)}")
        return {tuple(r[:width]): tuple(r[width:]) for r in rows}

    def rebuild(self) -> None:
        """Recompute every group from the table (after a truncate or a shape change)."""
        before = self.stored()
        after = self.recompute()
        self.store.conn.execute(f"DELETE FROM {ddl.quote(self.info.rows)}")
        self._write(self._last_states, record=False)
        for group in {**before, **after}:
            if before.get(group) != after.get(group):
                self.changes.append(_change(group, before.get(group), after.get(group)))


def check_filter(store: TableStore, source: TableInfo, where: str) -> None:
    """Refuse a filter that is not a read-only predicate over ``source``'s columns."""
    with guarded(store.conn, [source.rows], where, subqueries=False, label=FILTER):
        store.conn.execute(f"SELECT 1 FROM {ddl.quote(source.rows)} "
                           f"WHERE {wrap(where, FILTER)} LIMIT 0").fetchall()


def _norm(kind: Kind, value: Any) -> Any:
    """Stored values compare equal whether decoded or read back from SQLite."""
    if type(value) is bool:
        return int(value)
    if kind.base == "float" and type(value) is int:
        return float(value)
    return value


def _group_key(group: tuple[Any, ...]) -> bytes:
    return repr(group).encode()


def _state_text(state: GroupState) -> str:
    sums = [s if type(s) is int else str(s) for s in state.sums]
    return orjson.dumps({"rows": state.rows, "counts": state.counts, "sums": sums}).decode()


def _output(measure: Measure, kind: Kind, state: GroupState, i: int) -> Any:
    function = measure.function
    if function == "count":
        return state.rows if measure.field is None else state.counts[i]
    if function in ("min", "max"):
        value = state.extremes[i]
        return _decimal(value) if isinstance(value, Decimal) else value
    if not state.counts[i]:
        return None
    total = state.sums[i]
    if function == "avg":
        mean = AVERAGE.divide(Decimal(total), Decimal(state.counts[i]))
        return _decimal(mean) if kind.base == "decimal" else float(mean)
    if kind.base == "decimal":
        return _decimal(Decimal(total))
    if kind.base == "float" or type(total) is not int:
        return float(total)
    return v.store_int(total)


def _decimal(value: Decimal) -> Any:
    """An exact decimal as a decimal column stores it (trailing zeros do not count)."""
    return v.decimal_text(str(value.normalize(EXACT)))


def _change(group: tuple[Any, ...], before: Outputs | None, after: Outputs | None) -> RowChange:
    op = "c" if before is None else "d" if after is None else "u"
    return RowChange(op, group, before, after)
