"""Derived tables: defining and dropping aggregates, and all aggregates over one table.

An aggregate's table has its group columns, one column per measure, and hidden state
(``duality:group``, the group's identity, and ``duality:state``, its counts and exact
sums). Like a topic's table it gets a view under its own name, and it is read with
``duality table NAME`` or :func:`duality.tables.open_table`. Names starting with
``duality:`` (in any ASCII case) are the store's own and are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import orjson

from duality.errors import ApplyError, ConfigError
from duality.tables import ddl
from duality.tables.aggregate_spec import AggregateSpec, Measure, parse_spec
from duality.tables.aggregates import GROUP, STATE, Aggregate, check_filter
from duality.tables.fold import Key, Values
from duality.tables.shape import EMPTY, RESERVED, Column, Shape, SqlNamer, reserved
from duality.tables.sqlite import TableInfo, TableStore
from duality.tables.types import Kind

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Aggregates:
    """Every aggregate over one table, kept current by the apply loop."""

    store: TableStore
    members: list[Aggregate] = field(default_factory=list)

    @classmethod
    def over(cls, store: TableStore, source: TableInfo) -> Aggregates:
        return cls(store, [m for m in _members(store, source) if isinstance(m, Aggregate)])

    def __bool__(self) -> bool:
        return bool(self.members)

    def __iter__(self) -> Iterator[Aggregate]:
        return iter(self.members)

    def update(self, net: Sequence[tuple[Key, Values | None, Values | None]]) -> None:
        for member in self.members:
            member.update(net)

    def rebuild(self, source: TableInfo) -> None:
        """Recompute every aggregate from ``source`` (its shape may have changed)."""
        changes = {m.info.name: m.changes for m in self.members}
        self.members = []
        for member in _members(self.store, source):
            if isinstance(member, Aggregate):
                member.changes = changes.get(member.info.name, [])
                member.rebuild()
                self.members.append(member)
            elif member.name in changes:  # it fitted the table before this change
                log.warning("%s", member.error.message)


@dataclass(frozen=True, slots=True)
class Unfit:
    """An aggregate that no longer fits its table, and the error reading it gives."""

    name: str
    error: ApplyError


def _members(store: TableStore, source: TableInfo) -> Iterator[Aggregate | Unfit]:
    """The aggregates over ``source``; one that no longer fits the table (a column it
    uses was dropped) as the error reading it gives. The table goes on being applied; a
    later schema change that makes the aggregate fit again recomputes it."""
    for info in store.infos().values():
        if info.source != "aggregate" or spec_of(info).source != source.name:
            continue
        try:
            yield Aggregate(store, info, source)
        except ConfigError as exc:
            yield Unfit(info.name, ApplyError(
                f"{exc.message}. The table changed under the aggregate, which is no longer "
                f"kept current; drop it with `duality aggregate {info.name} --drop` and "
                f"define it again."
            ))


def check_fits(store: TableStore, info: TableInfo) -> None:
    """Refuse to read an aggregate that no longer fits its table (exit 5)."""
    source = store.info(spec_of(info).source)
    if source is not None:
        for member in _members(store, source):
            if isinstance(member, Unfit) and member.name == info.name:
                raise member.error


def spec_of(info: TableInfo) -> AggregateSpec:
    return parse_spec(orjson.loads(info.spec or "{}"))


def check_name(name: str) -> None:
    """Refuse an aggregate name SQLite would take for one of the store's own names
    (``duality:rows:3`` is the table of the third topic)."""
    if reserved(name):
        rest = name[len(RESERVED):].lstrip(":") or "totals"
        raise ConfigError(
            f"aggregate name {name!r} starts with {RESERVED!r} (ignoring case), which the "
            f"table store keeps for its own tables; choose a name without it, such as {rest!r}"
        )


def define(store: TableStore, spec: AggregateSpec) -> TableInfo:
    """Create the aggregate (inside a store transaction) and compute it; an identical
    existing definition is kept as it is. Refuses names the store keeps for itself."""
    check_name(spec.name)
    source = store.info(spec.source)
    if source is None or source.source != "topic":
        raise ConfigError(f"aggregate {spec.name!r}: {spec.source!r} is not a table in the "
                          f"store yet; apply it first (duality table {spec.source} --log URL)")
    existing = store.info(spec.name)
    if existing is not None:
        if existing.source == "aggregate" and spec_of(existing) == spec:
            return existing
        drop = (f", or drop it (duality aggregate {spec.name} --drop)"
                if existing.source == "aggregate" else "")
        article = "an" if existing.source == "aggregate" else "a"
        raise ConfigError(f"{spec.name!r} already names {article} {existing.source} table in "
                          f"the store; choose another name{drop}")
    shape = aggregate_shape(spec, source.shape)
    if spec.where is not None:
        check_filter(store, source, spec.where)
    info = store.create(spec.name, "aggregate", Shape((), (), True),
                        spec=orjson.dumps(spec.to_json()).decode())
    store.conn.execute(_create_table(info.rows, shape))
    info = store.adopt(info, shape)
    Aggregate(store, info, source).rebuild()
    return info


def drop(store: TableStore, name: str) -> None:
    info = store.info(name)
    if info is None or info.source != "aggregate":
        raise ConfigError(f"there is no aggregate {name!r} in the store")
    store.drop(info)


def _create_table(table: str, shape: Shape) -> str:
    parts = [f"{GROUP} BLOB PRIMARY KEY"]
    parts += [f"{ddl.quote(c.sql)} {c.kind.sql_type}".rstrip() for c in shape.columns]
    parts += [f"{STATE} TEXT NOT NULL", f"{ddl.DEAD} INTEGER NOT NULL DEFAULT 0"]
    return f"CREATE TABLE {ddl.quote(table)} ({', '.join(parts)}) WITHOUT ROWID"


def measure_kind(measure: Measure, source: Kind | None) -> Kind:
    """The kind of a measure's column: counts are integers, min/max keep the column's
    kind, sums of decimals stay decimals, averages are floats (decimals for decimals)."""
    if measure.function == "count" or source is None:
        return Kind("int")
    if measure.function in ("min", "max"):
        return source
    if source.base == "decimal":
        return source if measure.function == "sum" else Kind("decimal")
    if measure.function == "avg" or source.base == "float":
        return Kind("float")
    return Kind("int") if source.base in ("int", "bool") else Kind("any")


def aggregate_shape(spec: AggregateSpec, source: Shape) -> Shape:
    """The aggregate table's shape: group columns (keyed), then one column per measure."""
    namer = SqlNamer(EMPTY, keep=())
    columns = []
    for name in spec.group_by:
        column = _column(spec, source, name)
        columns.append(Column(name, namer.name(name), column.kind))
    for measure in spec.measures:
        found = _column(spec, source, measure.field) if measure.field else None
        kind = measure_kind(measure, found.kind if found else None)
        columns.append(Column(measure.name, namer.name(measure.name), kind))
    return Shape(tuple(columns), spec.group_by, True)


def _column(spec: AggregateSpec, source: Shape, name: str) -> Column:
    column = source.column(name)
    if column is None:
        raise ConfigError(f"aggregate {spec.name!r}: column {name!r} is not in table "
                          f"{spec.source!r} (its columns: {sorted(source.fields)})")
    return column
