"""Aggregate definitions and the arithmetic of their incremental state.

An aggregate groups the rows of one table by some of its columns, optionally keeps only
rows matching a predicate, and computes ``count(*)``, ``count(col)``, ``sum``, ``avg``,
``min`` and ``max``. Its state per group is the row count plus, per measure, the number
of values it saw and (for sums and averages) their exact sum, so a row leaving a group
is subtracted exactly. Sums are exact: integers as integers, decimals and floats as
exact decimals (a float's exact binary value), so adding and then removing a value
gives back the same state. Values that are not numbers (text, NaN) are left out of
sums and averages; ``min``/``max`` order values as SQLite does (numbers before text
before bytes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any

import pydantic

from duality.errors import ConfigError

FUNCTIONS = ("count", "sum", "avg", "min", "max")
#: Exact for sums of any doubles (their exponents span ~2100 decimal digits).
EXACT = Context(prec=2500, Emax=999_999, Emin=-999_999)
AVERAGE = Context(prec=34)
_MEASURE = re.compile(
    r"^\s*(count|sum|avg|min|max)\s*\(\s*(\*|\"(?:[^\"]|\"\")+\"|[^()\"\s]+)\s*\)"
    r"(?:\s+as\s+(\"(?:[^\"]|\"\")+\"|[^\s\"]+))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Measure:
    function: str
    field: str | None  # None: count(*)
    name: str


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    name: str
    source: str
    group_by: tuple[str, ...]
    measures: tuple[Measure, ...]
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "from": self.source,
            "group_by": list(self.group_by),
            "select": [_measure_text(m) for m in self.measures],
            "where": self.where,
        }


def _measure_text(measure: Measure) -> str:
    inner = "*" if measure.field is None else '"' + measure.field.replace('"', '""') + '"'
    alias = '"' + measure.name.replace('"', '""') + '"'
    return f"{measure.function}({inner}) as {alias}"


def _unquote(text: str) -> str:
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def parse_measure(text: str) -> Measure:
    """``count(*)``, ``sum(balance)``, ``max("due date") as latest`` → a Measure."""
    match = _MEASURE.match(text)
    if match is None:
        raise ConfigError(
            f"aggregate {text!r} is not understood; write FUNCTION(COLUMN) [as NAME] with "
            f"FUNCTION one of {', '.join(FUNCTIONS)}, e.g. 'sum(balance) as total' or 'count(*)'"
        )
    function, target, alias = match.group(1).lower(), match.group(2), match.group(3)
    if target == "*" and function != "count":
        raise ConfigError(f"aggregate {text!r}: only count takes *; name a column")
    field = None if target == "*" else _unquote(target)
    name = _unquote(alias) if alias else (function if field is None else f"{function}_{field}")
    return Measure(function, field, name)


class _SpecModel(pydantic.BaseModel):
    """A spec as written in a file or on the command line (validated at the edge)."""

    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)
    name: str = pydantic.Field(min_length=1)
    source: str = pydantic.Field(alias="from", min_length=1)
    group_by: list[str] = []
    select: list[str] = pydantic.Field(min_length=1)
    where: str | None = None


def parse_spec(data: Any) -> AggregateSpec:
    """Validate an aggregate definition (a mapping with ``name``, ``from``, ``group_by``,
    ``select``, ``where``)."""
    try:
        model = _SpecModel.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"aggregate definition is not valid: {problems}") from None
    measures = tuple(parse_measure(m) for m in model.select)
    names = [m.name for m in measures] + model.group_by
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"aggregate {model.name!r}: column name(s) {duplicates} appear twice; "
                          f"give measures distinct names with 'as NAME'")
    return AggregateSpec(model.name, model.source, tuple(model.group_by), measures, model.where)


# --- the arithmetic ----------------------------------------------------------------------


def number(value: Any, decimal: bool = False) -> Decimal | int | None:
    """A stored value as an exact number, or None if it is not one (NULL, text, NaN).
    In a ``decimal`` column a float stands for the decimal it prints as (``0.02``);
    elsewhere it is its exact binary value."""
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if type(value) is int or type(value) is bool:
        return int(value)
    if type(value) is float:
        if value - value != 0:
            return None
        return Decimal(repr(value)) if decimal else Decimal(value)
    if type(value) is str:
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            return None
        return parsed if parsed.is_finite() else None
    return None


def add(total: Decimal | int, value: Decimal | int, sign: int) -> Decimal | int:
    if type(total) is int and type(value) is int:
        return total + sign * value
    return EXACT.add(Decimal(total), EXACT.multiply(Decimal(sign), Decimal(value)))


def order_key(value: Any) -> tuple[int, Any]:
    """SQLite's order of values of different types: numbers, then text, then bytes."""
    if type(value) in (int, float, bool) or isinstance(value, Decimal):
        return (0, value)
    if type(value) is str:
        return (1, value)
    return (2, value)


@dataclass(slots=True)
class GroupState:
    """One group: its row count; per measure the values counted, their exact sum, and
    the current min/max (None: to be recomputed from the table)."""

    rows: int
    counts: list[int]
    sums: list[Decimal | int]
    extremes: list[Any]

    @classmethod
    def empty(cls, measures: Sequence[Measure]) -> GroupState:
        n = len(measures)
        return cls(0, [0] * n, [0] * n, [None] * n)


def fold_value(state: GroupState, index: int, measure: Measure, value: Any, sign: int) -> bool:
    """Add (sign 1) or remove (sign -1) one row's value of ``measure``; True when the
    group's min/max can no longer be known without reading the table again."""
    function = measure.function
    if function in ("sum", "avg"):
        numeric = number(value)
        if numeric is not None:
            state.counts[index] += sign
            state.sums[index] = add(state.sums[index], numeric, sign)
        return False
    if value is None:
        return False
    state.counts[index] += sign
    if function == "count":
        return False
    if not state.counts[index]:
        state.extremes[index] = None
        return False
    current = state.extremes[index]
    lower = function == "min"
    if sign > 0:
        if current is None or _beats(order_key(value), order_key(current), lower):
            state.extremes[index] = value
        return False
    return current is None or not _beats(order_key(current), order_key(value), lower)


def _beats(a: tuple[int, Any], b: tuple[int, Any], lower: bool) -> bool:
    return bool(a < b) if lower else bool(a > b)
