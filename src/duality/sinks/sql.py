"""What every SQL sink does the same way: the order of a batch's work, positions, the
snapshot fast path, schema changes, truncates, and naming the record a target refuses.

:meth:`SqlSink.apply` carries out a batch in one target transaction:

1. each step in order — a schema change alters or creates the table (and its positions
   side table), a truncate empties it, rows are written;
2. the metadata of every table the batch touched;
3. the offsets the batch reaches;
4. commit.

Rows are written in one of two ways. A snapshot (all rows of the step at the snapshot's
position) going into a table that was empty is bulk-loaded as it is; after it, every
change at or before the snapshot is stale (the table's watermark). A sink may set the
primary key of a table it created aside while a snapshot loads into it (PostgreSQL: see
:meth:`SqlSink._unkey`); the key is back before a change or a schema change is written
to the table, at the end of the first batch of its topic that loads nothing into it or
of any batch after its topic was read to the end, and whenever replicate has applied
everything it read (:meth:`SqlSink.settle`). Everything else is
bulk-loaded into the table's stage and applied with set-based statements that skip each
row whose key holds a newer position (see :mod:`duality.sinks.statements`). A batch
whose operations keep stored values (an unchanged-TOAST placeholder) is folded in
order onto the stored rows first (:func:`duality.tables.batch.fold_ordered`).

When the target refuses a row (a constraint, a permission, a value), the batch is rolled
back and applied again row by row, without committing, to name the record.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from duality.errors import ApplyError, ConfigError
from duality.events.schema import RecordSchema
from duality.sinks import ddl
from duality.sinks.base import (
    Batch,
    EncodedRows,
    Load,
    Offsets,
    Rows,
    SchemaChange,
    Step,
    TableState,
    TargetName,
    TruncateRows,
)
from duality.sinks.dialects import Dialect
from duality.sinks.statements import TableSql
from duality.sinks.target import Target
from duality.tables.batch import Pending, Winner, fold_ordered
from duality.tables.decode import FieldCodecs
from duality.tables.fold import Key, RowState, Where, truncated
from duality.testing import crash_point

#: Keys per query when reading stored rows.
CHUNK = 400
#: A staged row: key values, column values, position, op (``u`` or ``d``).
Staged = tuple[Any, ...]
#: What puts back a primary key set aside (see :meth:`SqlSink._unkey`).
Rekey = Callable[[], None]


class RowRefused(Exception):
    """The target refused what a step wrote (raised inside :meth:`SqlSink.apply`)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


class LanesFailed(Exception):
    """Another session applying part of a batch failed (see
    :meth:`SqlSink._write_encoded`): the batch is applied again, in one session."""


class SqlSink(ABC):
    """The shared part of the SQL sinks (see the module docstring)."""

    dialect: Dialect
    binary_loads = False

    def __init__(self, url: str) -> None:
        self.url = url
        #: Whether the step being written may be split over several sessions: the first
        #: of a batch applied in parallel (nothing of the batch is written in this
        #: session yet, so no other session can come to wait for it).
        self._may_split = False
        self._targets: dict[str, Target] = {}
        self._offsets: Offsets = {}
        self._origins: dict[str, str] = {}
        self._sql: dict[int, TableSql] = {}
        #: The shape each stage table was created with (stages live for the session).
        self._stages: dict[str, ddl.TableSpec] = {}
        #: Target id → how to put back its primary key, set aside while a snapshot loads.
        self._unkeyed: dict[int, Rekey] = {}

    # -- the Sink seam --------------------------------------------------------------

    @property
    def fields(self) -> FieldCodecs:
        return self.dialect.fields

    def applied_offsets(self) -> Offsets:
        return dict(self._offsets)

    def origins(self) -> dict[str, str]:
        return dict(self._origins)

    def tables(self) -> dict[str, TableState]:
        return {topic: target.state for topic, target in self._targets.items()}

    def apply(self, batch: Batch) -> None:
        try:
            self._apply(batch, parallel=True)
        except LanesFailed:  # nothing of it committed here: all of it again, alone
            self._apply(batch, parallel=False)

    def settle(self) -> None:
        if not self._unkeyed:
            return
        saved = self._saved()
        try:
            with self._transaction():
                while self._unkeyed:
                    self._unkeyed.popitem()[1]()
                crash_point("replicate.keyed")
        except BaseException:
            self._restore(saved)
            raise

    def _saved(self) -> tuple[dict[str, Target], dict[int, Rekey]]:
        """What this sink holds of the target in memory, to restore when a transaction
        that changed it is rolled back."""
        return ({topic: target.copy() for topic, target in self._targets.items()},
                dict(self._unkeyed))

    def _restore(self, saved: tuple[dict[str, Target], dict[int, Rekey]]) -> None:
        self._targets, self._unkeyed = saved

    def _apply(self, batch: Batch, *, parallel: bool) -> None:
        saved = self._saved()
        try:
            with self._transaction():
                touched = self._steps(batch.steps, parallel=parallel)
                self._loads_over(batch, touched)
                crash_point("replicate.batch-written")
                for target in touched:
                    self._save_target(target)
                self._save_offsets(batch.offsets)  # 3
                if batch.origins:
                    self._save_origins(batch.origins)
                crash_point("replicate.before-commit")
        except RowRefused as refused:
            self._restore(saved)
            raise self._culprit(batch, refused) from None
        except BaseException:
            self._restore(saved)
            raise
        self._offsets.update(batch.offsets)
        self._origins.update(batch.origins)
        crash_point("replicate.committed")

    # -- steps ----------------------------------------------------------------------

    def _steps(self, steps: Sequence[Step], *, parallel: bool = False) -> list[Target]:
        touched: dict[int, Target] = {}
        for index, step in enumerate(steps):
            self._may_split = parallel and index == 0
            try:
                target = self._step(step)
            except (RowRefused, LanesFailed):
                raise
            except Exception as exc:
                reason = self._refusal(exc)
                if reason is None:
                    raise
                raise RowRefused(index, reason) from exc
            finally:
                self._may_split = False
            if target is not None:
                touched[target.id] = target
        return list(touched.values())

    def _step(self, step: Step) -> Target | None:
        if isinstance(step, SchemaChange):
            if step.topic in self._targets:
                self._keyed(self._targets[step.topic])
            return self._schema_change(step)
        target = self._targets.get(step.topic)
        if target is None or target.spec is None:
            if isinstance(step, TruncateRows):
                return None  # no table yet: nothing to empty
            raise ApplyError(
                f"topic {step.topic!r} has rows before any schema: replicate needs "
                f"registered schemas (or {{\"schema\", \"payload\"}} values) to create "
                f"its target table; leave the topic out with --topic"
            )
        if isinstance(step, TruncateRows):  # the key is back at the batch's end (empty)
            self._truncate(target, step.position)
        elif isinstance(step, EncodedRows):
            if self._keyed(target):  # the key is not committed: other sessions would wait
                self._may_split = False
            if not self._write_encoded(target, step):
                self._rows(target, step.decode())
        elif isinstance(step, Load):
            load: Load = step
            if not self._load_snapshot(target, load.position,
                                       lambda sql: self._load_encoded(target, sql, load)):
                self._rows(target, load.decode())
        else:
            self._rows(target, step.pending)
        return target

    def _rows(self, target: Target, pending: Pending) -> None:
        if not len(pending):
            return
        if not pending.ordered and self._bulk_load(target, pending.winners):
            return
        self._write(target, self._staged_rows(target, pending))

    def _staged_rows(self, target: Target, pending: Pending) -> list[tuple[Staged, Where]]:
        """The rows to stage (:meth:`_write` them next): the table's key is back first,
        for the stored rows looked up here and the upsert after."""
        assert target.spec is not None
        self._keyed(target)
        nulls = (None,) * len(target.spec.values)
        floor = target.watermark
        rows: list[tuple[Staged, Where]] = []
        if pending.ordered:
            ops = [(op, where) for op, where in pending.ops if not truncated(op.position, floor)]
            keys = list(dict.fromkeys(k for op, _ in ops for k in (op.key, _origin(op)) if k))
            stored = self._load_states(target, keys)
            for key, (state, where) in fold_ordered(ops, stored).finals.items():
                values = nulls if state.values is None else state.values
                rows.append(((*key, *values, state.position,
                              "d" if state.values is None else "u"), where))
            return rows
        for key, (params, position, where) in pending.winners.items():
            if truncated(position, floor):
                continue
            rows.append(((*params, "u") if params is not None
                         else (*key, *nulls, position, "d"), where))
        return rows

    def _write(self, target: Target, rows: Sequence[tuple[Staged, Where]]) -> None:
        sql = self._sql[target.id]
        positioned = [row for row, _ in rows if row[-2] is not None]
        plain = [row for row, _ in rows if row[-2] is None]
        for group, with_positions in ((positioned, True), (plain, False)):
            if group:
                self._stage(sql, group)
                self._apply_staged(sql, with_positions)
        if positioned:
            target.advance(max(row[-2] for row in positioned))
        target.loading = None

    def _bulk_load(self, target: Target, winners: dict[Key, Winner]) -> bool:
        """A snapshot going into an empty table: loaded as it is (see the module
        docstring). False when the step is not one, or a key turned out to be there."""
        snapshot = next(iter(winners.values()))[1]
        if snapshot is None:
            return False
        for params, position, _ in winners.values():
            if params is None or position != snapshot:
                return False
        return self._load_snapshot(target, snapshot, lambda sql: self._load(
            sql, [params[:-1] for params, _, _ in winners.values() if params is not None]))

    def _load_snapshot(
        self, target: Target, snapshot: int, load: Callable[[TableSql], bool]
    ) -> bool:
        """Rows all at the snapshot position ``snapshot`` loaded by ``load`` into the
        table itself, when it is empty or being loaded with this snapshot; False, with
        nothing written, when it is not, or ``load`` found a key already there."""
        if snapshot % 2 or truncated(snapshot, target.watermark):
            return False
        sql = self._sql[target.id]
        if target.loading != snapshot:
            if self._query(sql.occupied(), (snapshot,))[0][0]:
                return False
            rekey = self._unkey(sql) if target.created else None
            if rekey is not None:
                self._unkeyed[target.id] = rekey
        if not load(sql):
            target.loading = None
            return False
        target.loading = snapshot
        target.raise_watermark(snapshot - 1)
        target.advance(snapshot)
        return True

    def _loads_over(self, batch: Batch, touched: list[Target]) -> None:
        """Put back the keys set aside of the tables whose snapshot load is over: of a
        topic of ``batch`` that it loaded nothing into, or one the replicator has read
        to its end (a later part of the snapshot, if any, goes into the keyed table)."""
        loaded = {target.id for target in touched if target.loading is not None}
        for topic in {topic for topic, _ in batch.offsets} | batch.settled:
            target = self._targets.get(topic)
            if target is not None and target.id not in loaded:
                self._keyed(target)

    def _keyed(self, target: Target) -> bool:
        """Put back the primary key of ``target`` if it is set aside (see
        :meth:`_unkey`); whether it was."""
        rekey = self._unkeyed.pop(target.id, None)
        if rekey is None:
            return False
        rekey()
        return True

    def _load_states(self, target: Target, keys: Sequence[Key]) -> dict[Key, RowState]:
        """The stored rows of ``keys`` (a deleted key: its position only)."""
        sql = self._sql[target.id]
        floor = target.watermark
        out: dict[Key, RowState] = {}
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            params = [x for i, key in enumerate(chunk) for x in (i, *key)]
            for index, stored, present, *values in self._query(
                sql.load_states(len(chunk)), params
            ):
                position = stored
                if floor is not None and (stored is None or stored < floor):
                    position = floor
                if present:
                    out[chunk[index]] = RowState(tuple(values), position)
                elif position is not None:
                    out[chunk[index]] = RowState(None, position)
        return out

    def _truncate(self, target: Target, position: int | None) -> None:
        if truncated(position, target.watermark):
            return
        sql = self._sql[target.id]
        if position is None or target.high_water is None or target.high_water <= position:
            self._truncate_all(sql)
        else:  # some rows are newer (a redelivered truncate): only the older ones go
            for statement in sql.delete_older():
                self._execute(statement, (position,))
        if position is not None:
            target.raise_watermark(position)
        target.advance(position)
        target.loading = None

    # -- schema changes -------------------------------------------------------------

    def _schema_change(self, step: SchemaChange) -> Target:
        target = self._targets.get(step.topic)
        name = target.name if target is not None else step.name
        spec = ddl.table_spec(step.schema, step.shape, self.dialect.column_type)
        context = ddl.Context(self._shown(name), step.topic, where_text(step.topic, step.where))
        self._check_columns(spec, context)
        if target is None:
            self._check_free(name, step.topic)
        existing = self._describe(name)
        ours = target.created if target is not None else existing is None
        actions = ddl.plan(existing, spec, self.dialect.holds, ours=ours, context=context)
        if target is None:
            target = self._new_target(step.topic, name, created=existing is None)
            self._targets[step.topic] = target
        if any(isinstance(action, ddl.CreateTable) for action in actions):
            self._ensure_schema(name)
        sql = self._table_sql(target, spec)
        for action in actions:
            self._ddl(sql, action)
            if isinstance(action, ddl.AddColumn):
                self._fill(sql, step.schema, action.column.name)
        self._side_table(target, sql)
        target.spec, target.shape = spec, step.shape
        target.schema_id, target.schema_position = step.schema_id, step.position
        self._sql[target.id] = sql
        return target

    def _fill(self, sql: TableSql, schema: RecordSchema, column: str) -> None:
        """A column added with a default in the source holds that default in the rows
        that were there before (the source writes no change for them)."""
        codec = self.fields(schema).get(column)
        if codec is None or codec.schema.default is None:
            return
        value = codec.schema.default
        self._execute(sql.fill(column), (codec.decode(value) if codec.decode else value,))

    def _side_table(self, target: Target, sql: TableSql) -> None:
        """Create the positions table, or follow a change of the key's columns or types."""
        assert sql.spec is not None
        side = self._describe(self._side_name(target))
        key = set(sql.spec.key)
        if side is not None and not any(set(k) == key for k in side.unique_keys):
            self._execute(f"DROP TABLE {sql.side}")
            side = None
        if side is None:
            self._execute(sql.create_side(self.dialect.side_storage))
            return
        side_sql = self._table_sql(target, ddl.TableSpec(sql.spec.key_columns, sql.spec.key),
                                   table=sql.side)
        for column in sql.spec.key_columns:
            found = side.column(column.name)
            if found is not None and not self.dialect.holds(found.type, column.type):
                self._ddl(side_sql, ddl.AlterType(column.name, found.type, column.type))

    def _check_free(self, name: TargetName, topic: str) -> None:
        """No other topic goes to the table ``name`` is (on SQLite, names that differ
        only in ASCII case are one table)."""
        fold = self.dialect.fold
        if fold(name.table).startswith(self.dialect.own_names):
            raise ConfigError(
                f"topic {topic!r} would go to {self._shown(name)} in {self.describe()}, "
                f"where names starting with {' or '.join(self.dialect.own_names)} are "
                f"duality's own (its offsets, positions and stages); map it elsewhere with "
                f"--map or --table-prefix"
            )
        for other in self._targets.values():
            if other.topic != topic and fold(other.name.table) == fold(name.table) and (
                (other.name.schema or "") == (name.schema or "")
            ):
                also = "" if other.name == name else f" (as {self._shown(other.name)})"
                raise ConfigError(
                    f"topics {other.topic!r}{also} and {topic!r} would both go to "
                    f"{self._shown(name)} in {self.describe()}; send one elsewhere with "
                    f"--map or --table-prefix"
                )

    def _check_columns(self, spec: ddl.TableSpec, context: ddl.Context) -> None:
        """No two columns the target cannot tell apart (on SQLite: ASCII case)."""
        seen: dict[str, str] = {}
        for column in spec.columns:
            other = seen.setdefault(self.dialect.fold(column.name), column.name)
            if other != column.name:
                raise ConfigError(
                    f"{context.table} (topic {context.topic!r}) would have columns {other!r} "
                    f"and {column.name!r}, which {self.describe()} cannot tell apart (its "
                    f"names ignore ASCII case); replicate this table into PostgreSQL, or "
                    f"leave it out with --topic"
                )

    def _table_sql(self, target: Target, spec: ddl.TableSpec, table: str | None = None) -> TableSql:
        d = self.dialect
        return TableSql(d.quote, d.param, table or self._qualified(target.name),
                        self._qualified(self._side_name(target)), self._stage_name(target),
                        spec, d.casts, d.position_type, d.fold)

    def _qualified(self, name: TargetName) -> str:
        quote = self.dialect.quote
        table = quote(name.table)
        return table if name.schema is None else f"{quote(name.schema)}.{table}"

    def _shown(self, name: TargetName) -> str:
        return self._qualified(name)

    # -- naming a refused record ----------------------------------------------------

    def _culprit(self, batch: Batch, refused: RowRefused) -> ApplyError:
        step = batch.steps[refused.index]
        if isinstance(step, Load | EncodedRows):
            step = Rows(step.topic, step.decode())
        if not isinstance(step, Rows):
            return self._refusal_error(step.topic, step.where, refused.reason)
        saved = self._saved()
        try:
            with self._transaction(commit=False):
                self._steps(batch.steps[: refused.index])
                target = self._targets[step.topic]
                rows = self._staged_rows(target, step.pending)
                for row in rows:
                    try:
                        self._write(target, [row])
                    except Exception as exc:
                        reason = self._refusal(exc)
                        if reason is None:
                            raise
                        return self._refusal_error(step.topic, row[1], reason)
        except RowRefused as again:
            return self._refusal_error(step.topic, _first_where(step), again.reason)
        finally:
            self._restore(saved)
        return self._refusal_error(step.topic, _first_where(step), refused.reason)

    def _refusal_error(self, topic: str, where: Where, reason: str) -> ApplyError:
        target = self._targets.get(topic)
        table = f" to {self._shown(target.name)}" if target is not None else ""
        return ApplyError(
            f"cannot apply {where_text(topic, where)}{table} in {self.describe()}: "
            f"{reason}. Nothing of this batch was applied and the offset was not advanced; "
            f"fix the target (for example drop a conflicting unique index or grant the "
            f"missing privilege) and run replicate again."
        )

    def _empty_stage(self, sql: TableSql, empty: str) -> None:
        """Make the table's stage exist with the table's current shape, and empty: create
        it (again, when the shape changed) or run ``empty`` on it."""
        if self._stages.get(sql.stage) != sql.spec:
            self._execute(f"DROP TABLE IF EXISTS {sql.stage}")
            self._execute(f"CREATE TABLE {sql.stage} ({', '.join(sql.stage_columns())})")
            self._stages[sql.stage] = sql.spec
        else:
            self._execute(empty)

    # -- what each target implements ------------------------------------------------

    @abstractmethod
    def describe(self) -> str:
        """The target for messages (never with a password)."""

    @abstractmethod
    def _transaction(self, *, commit: bool = True) -> contextlib.AbstractContextManager[None]:
        """One target transaction: committed at the end (or rolled back with
        ``commit=False``), rolled back on an exception."""

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _refusal(self, exc: BaseException) -> str | None:
        """Why the target refused a row, if ``exc`` is such a refusal (None for anything
        else, such as a lost connection)."""

    @abstractmethod
    def _describe(self, name: TargetName) -> ddl.ExistingTable | None: ...

    @abstractmethod
    def _ddl(self, sql: TableSql, action: ddl.Action) -> None: ...

    @abstractmethod
    def _stage(self, sql: TableSql, rows: Sequence[Staged]) -> None:
        """Bulk-load ``rows`` into the table's (emptied) stage."""

    @abstractmethod
    def _apply_staged(self, sql: TableSql, with_positions: bool) -> None: ...

    @abstractmethod
    def _load(self, sql: TableSql, rows: Sequence[tuple[Any, ...]]) -> bool:
        """Bulk-load rows (key and column values) into the table itself; False, with
        nothing written, when one of the keys is already there."""

    def _load_encoded(self, target: Target, sql: TableSql, load: Load) -> bool:
        """Bulk-load a :class:`Load` step's encoded rows into the table itself, like
        :meth:`_load`; False as well where the table's columns do not read them (a
        sink with :attr:`binary_loads`)."""
        return False

    def _unkey(self, sql: TableSql) -> Rekey | None:
        """Set aside the primary key of an empty table this sink created, which a
        snapshot is about to be bulk-loaded into (in the same transaction), so that the
        load does not maintain its index row by row and the key is built once at the
        end; what puts it back, or None where it stays. Every row of one snapshot has
        its own key, so nothing the key would refuse goes in meanwhile (but for a
        snapshot the log holds twice at one position: putting the key back keeps one row
        of each key). A sink that cannot (SQLite: a primary key is part of the table)
        leaves it."""
        return None

    def _write_encoded(self, target: Target, step: EncodedRows) -> bool:
        """Write an :class:`EncodedRows` step's tuples through the table's stage, as
        :meth:`_write` does decoded rows; False, with nothing written, where the stage
        does not read them (a sink with :attr:`binary_loads`). Where
        :attr:`_may_split`, a sink may have other sessions apply and commit part of the
        rows (each key's row in one part), and raises :class:`LanesFailed` when one of
        them fails:
        what they committed is skipped when the batch is applied again, as every row
        has a position."""
        return False

    @abstractmethod
    def _truncate_all(self, sql: TableSql) -> None: ...

    @abstractmethod
    def _ensure_schema(self, name: TargetName) -> None:
        """Create the target schema of ``name`` if the target has schemas and lacks it."""

    @abstractmethod
    def _new_target(self, topic: str, name: TargetName, *, created: bool) -> Target: ...

    @abstractmethod
    def _save_target(self, target: Target) -> None: ...

    @abstractmethod
    def _save_offsets(self, offsets: Offsets) -> None: ...

    @abstractmethod
    def _save_origins(self, origins: dict[str, str]) -> None: ...

    @abstractmethod
    def _side_name(self, target: Target) -> TargetName: ...

    @abstractmethod
    def _stage_name(self, target: Target) -> str: ...


def where_text(topic: str, where: Where) -> str:
    partition, offset, key = where
    shown = "null" if key is None else key.decode("utf-8", "replace")
    return f"topic {topic!r} partition {partition} offset {offset} key {shown}"


def _origin(op: Any) -> Key | None:
    return getattr(op, "origin", None)


def _first_where(step: Rows) -> Where:
    pending = step.pending
    if pending.ordered:
        return pending.ops[0][1]
    return next(iter(pending.winners.values()))[2]

