"""What a target table must look like, and how to get it there: pure functions.

:func:`table_spec` turns a record schema into the columns a target table needs (the
dialect's type map decides each type; the primary key is the record key's columns).
:func:`plan` compares that with the table the target has, if any, and returns the DDL
actions to carry out:

- no table: create it (non-key columns nullable, whatever the source says: a target
  must take every row the log holds, and columns dropped later must become nullable);
- a column the source added: add it (nullable);
- a column the source dropped: it stays, and becomes nullable;
- a column whose type the source widened: alter it (``holds`` says which changes keep
  every value); a narrowed type leaves the wider target column as it is;
- anything else stops with a message naming the column and the choices.

A table that exists but was not created by duality is used only when it already has
every column, with types that hold the source's values, and a unique key on the key
columns; otherwise it is refused, saying what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from duality.errors import ApplyError, ConfigError
from duality.events.schema import ConnectSchema, RecordSchema
from duality.tables.shape import Shape, field_codecs

TypeMap = Callable[[ConnectSchema, "str | None"], str]
#: holds(existing type, wanted type): a column of the first type keeps every value of
#: the second unchanged.
Holds = Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Columns in table order; ``key`` names the primary-key columns in key order."""

    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]

    @property
    def staged(self) -> tuple[ColumnSpec, ...]:
        """Key columns (in key order), then the other columns: the order rows are sent in."""
        by_name = {c.name: c for c in self.columns}
        return (*(by_name[k] for k in self.key), *self.values)

    @property
    def values(self) -> tuple[ColumnSpec, ...]:
        keys = set(self.key)
        return tuple(c for c in self.columns if c.name not in keys)

    @property
    def key_columns(self) -> tuple[ColumnSpec, ...]:
        by_name = {c.name: c for c in self.columns}
        return tuple(by_name[k] for k in self.key)

    def to_json(self) -> dict[str, object]:
        return {"columns": [[c.name, c.type] for c in self.columns], "key": list(self.key)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TableSpec:
        columns = data["columns"]
        key = data["key"]
        assert isinstance(columns, list) and isinstance(key, list)
        return cls(tuple(ColumnSpec(str(n), str(t)) for n, t in columns), tuple(map(str, key)))


@dataclass(frozen=True, slots=True)
class ExistingColumn:
    name: str
    type: str
    not_null: bool = False
    has_default: bool = False


@dataclass(frozen=True, slots=True)
class ExistingTable:
    """A target table as the target's catalog describes it; ``unique_keys`` are the
    column lists of its primary key and unique indexes."""

    columns: tuple[ExistingColumn, ...]
    unique_keys: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> ExistingColumn | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None


@dataclass(frozen=True, slots=True)
class CreateTable:
    spec: TableSpec


@dataclass(frozen=True, slots=True)
class AddColumn:
    column: ColumnSpec


@dataclass(frozen=True, slots=True)
class AlterType:
    name: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class DropNotNull:
    name: str


Action = CreateTable | AddColumn | AlterType | DropNotNull


def table_spec(schema: RecordSchema, shape: Shape, column_type: TypeMap) -> TableSpec:
    """The target columns of a table of ``shape`` whose records have ``schema``."""
    codecs = field_codecs(schema)
    columns = []
    for column in shape.columns:
        codec = codecs.get(column.field)
        if codec is None:
            raise ConfigError(f"column {column.field!r} has no schema in its record schema")
        columns.append(ColumnSpec(column.field, column_type(codec.schema, codec.source_type)))
    return TableSpec(tuple(columns), shape.key)


@dataclass(frozen=True, slots=True)
class Context:
    """Names for messages: the target table, the topic, and where the record is."""

    table: str
    topic: str
    where: str


def plan(
    existing: ExistingTable | None, spec: TableSpec, holds: Holds, *, ours: bool,
    context: Context,
) -> list[Action]:
    """The actions that give the target table ``spec`` (see the module docstring)."""
    if not spec.key:
        raise ConfigError(
            f"topic {context.topic!r} has records without a key (its source table has no "
            f"primary key), so its rows cannot be matched in {context.table}; give the "
            f"source table a primary key, or leave the topic out (--topic)"
        )
    if existing is None:
        return [CreateTable(spec)]
    if not ours:
        _check_adoptable(existing, spec, holds, context)
    _check_key(existing, spec, ours, context)
    actions: list[Action] = []
    for column in spec.columns:
        found = existing.column(column.name)
        if found is None:
            actions.append(AddColumn(column))
        elif not holds(found.type, column.type):
            if not holds(column.type, found.type):
                raise _incompatible(context, column, found)
            actions.append(AlterType(column.name, found.type, column.type))
    wanted = {c.name for c in spec.columns}
    actions += [DropNotNull(c.name) for c in existing.columns
                if c.name not in wanted and c.not_null and not c.has_default]
    return actions


def _check_key(existing: ExistingTable, spec: TableSpec, ours: bool, context: Context) -> None:
    if any(set(key) == set(spec.key) for key in existing.unique_keys):
        return
    keys = ", ".join(spec.key)
    if ours:
        raise ApplyError(
            f"the primary key of the source of {context.table} changed to ({keys}) at "
            f"{context.where}, and the target table has no unique key on those columns. "
            f"Choices: give it one yourself (CREATE UNIQUE INDEX new_key ON "
            f"{context.table} ({keys})) and drop its old primary key where the source may "
            f"now repeat those values (PostgreSQL: ALTER TABLE {context.table} DROP "
            f"CONSTRAINT …; SQLite cannot drop one), then run replicate again; or replicate "
            f"the topic into another target (a new database or file; a topic keeps the "
            f"table it was first replicated into). Nothing of the batch was applied."
        )
    raise ConfigError(
        f"target table {context.table} already exists and has no primary key or unique "
        f"index on ({keys}), the key of topic {context.topic!r}; add one, or replicate "
        f"into another table (--map or --table-prefix)"
    )


def _check_adoptable(
    existing: ExistingTable, spec: TableSpec, holds: Holds, context: Context
) -> None:
    """A table duality did not create is used only if it needs no change."""
    problems = []
    for column in spec.columns:
        found = existing.column(column.name)
        if found is None:
            problems.append(f"no column {column.name!r} ({column.type})")
        elif not holds(found.type, column.type):
            problems.append(f"column {column.name!r} is {found.type}, not {column.type}")
    wanted = {c.name for c in spec.columns}
    problems += [f"column {c.name!r} is NOT NULL without a default and the source has "
                 f"no such column" for c in existing.columns
                 if c.name not in wanted and c.not_null and not c.has_default]
    if problems:
        raise ConfigError(
            f"target table {context.table} already exists with other columns than topic "
            f"{context.topic!r} needs: {'; '.join(problems)}. duality does not change "
            f"tables it did not create. Replicate into another table (--map or "
            f"--table-prefix), or drop or rename the existing one"
        )


def _incompatible(context: Context, column: ColumnSpec, found: ExistingColumn) -> ApplyError:
    return ApplyError(
        f"column {column.name!r} of {context.table} changed type in the source to "
        f"{column.type} at {context.where}, which the target column's type {found.type} "
        f"cannot hold and cannot be widened to. Choices: alter the target column yourself "
        f"(ALTER TABLE … ALTER COLUMN … TYPE {column.type} USING …) and run replicate "
        f"again; or replicate the topic into another target (a new database or file; a "
        f"topic keeps the table it was first replicated into). Nothing of the batch was "
        f"applied and the offset was not advanced."
    )


def quote_all(names: Sequence[str], quote: Callable[[str], str]) -> str:
    return ", ".join(quote(n) for n in names)
