"""Target dialects: what differs between target databases, as data and small pure
functions — identifier quoting, the type map, which type changes keep every value, and
how payload values are decoded for the target's driver. SQL templates are in
:mod:`duality.sinks.statements`; the I/O lives in the sink modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from duality.sinks.ddl import Holds, TypeMap
from duality.tables.decode import FieldCodecs


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    #: Whether the target has schemas (PostgreSQL) or table names alone (SQLite).
    with_schemas: bool
    quote: Callable[[str], str]
    column_type: TypeMap
    holds: Holds
    #: Field codecs whose decoders give the values the target's driver is sent.
    fields: FieldCodecs
    #: The driver's parameter placeholder.
    param: str
    #: Whether parameters in VALUES lists need a cast to their column type.
    casts: bool
    position_type: str
    #: A name as the target compares it: two names that fold alike are one table or
    #: column there (SQLite ignores ASCII case; PostgreSQL's quoted names are exact).
    fold: Callable[[str], str]
    #: Storage options of the positions tables, after their column list.
    side_storage: str = ""
    #: Prefixes (folded) of the table names the sink keeps for its own tables and
    #: statements, where they share the namespace of the replicated tables (SQLite).
    own_names: tuple[str, ...] = ()
