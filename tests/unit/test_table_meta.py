"""TableMeta's JSON form (schemas registered before a field existed keep their ids) and
the type under a domain that capture records in it."""

from __future__ import annotations

from duality.events.schema import TableMeta
from duality.sources.postgres.types_model import PgType

NUMERIC = PgType(1700, "numeric")
AMOUNT = PgType(9001, "amount", "public", typtype="d", base=NUMERIC, typmod=524295,
                base_name="numeric(8,3)")
SMALL = PgType(9002, "small_amount", "public", typtype="d", base=AMOUNT,
               base_name="amount")
SMALLS = PgType(9003, "_small_amount", "public", category="A", element=SMALL)


def test_base_types_round_trip_and_stay_out_when_there_are_none() -> None:
    meta = TableMeta(table="public.t", source_types={"a": "amount"},
                     base_types={"a": "numeric(8,3)"})
    assert TableMeta.from_json(meta.to_json()) == meta
    plain = TableMeta(table="public.t", source_types={"a": "integer"})
    assert "base_types" not in plain.to_json()
    assert TableMeta.from_json(plain.to_json()) == plain


def test_the_type_under_domains() -> None:
    assert AMOUNT.under_domains() == "numeric(8,3)"
    assert SMALL.under_domains() == "numeric(8,3)"  # a domain over a domain: the innermost
    assert SMALLS.under_domains() == "numeric(8,3)[]"
    assert NUMERIC.under_domains() is None
    assert PgType(1231, "_numeric", category="A", element=NUMERIC).under_domains() is None
