"""Unchanged TOASTed numeric and bit-string columns: capture writes the placeholder in a
form that fits the column's schema, and the table store and replicate keep the row's
earlier value.

What real Debezium 3.6 does here (its embedded engine against the table below, an update
under REPLICA IDENTITY DEFAULT that leaves the columns unchanged, so pgoutput sends them
as unchanged TOAST): under ``decimal.handling.mode=string`` a numeric column gets the
placeholder string. Everywhere else the string fails the field's schema (``Decimal``,
``VariableScaleDecimal``, ``double``, ``Bits``): Debezium logs "Failed to properly
convert data value for 'public.scal.c_num' of type numeric" and writes null, which a
table would store over the value the row still has; on a NOT NULL column it stops the
connector ("Invalid value: null used for required field"). duality writes the forms of
:func:`duality.events.placeholders.scalar_placeholder` there (:data:`DEBEZIUM` records
what Debezium wrote).

A numeric(p,s) value is at most ~500 bytes, so a PLAIN ``pad`` column makes the row too
big to stay in line and PostgreSQL moves every EXTERNAL column out of line.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Database, records
from tests.replicate_support import assert_only_counter_moves, capture_once, replicate_once

pytestmark = pytest.mark.postgres

TOPIC = "t.public.scal"
PLACEHOLDER = "__debezium_unavailable_value"
_RAW = PLACEHOLDER.encode()
_B64 = base64.b64encode(_RAW).decode()
#: The placeholder's bytes as a big-endian integer, as a double (about 1e67).
_NUMBER = float(int.from_bytes(_RAW, "big", signed=True))

#: (column, type, a value; each is stored out of line).
COLUMNS = (
    ("c_num", "numeric(200,10)", "(repeat('123456789', 20) || '.0123456789')::numeric"),
    ("c_numvar", "numeric", "(repeat('987654321', 33) || '.5')::numeric"),
    ("c_varbit", "varbit", "repeat('10', 1500)::varbit"),
    ("c_bit", "bit(2000)", "repeat('1100', 500)::bit(2000)"),
    ("c_num_nn", "numeric(200,10) NOT NULL", "(repeat('123456789', 20) || '.5')::numeric"),
    ("c_varbit_nn", "varbit NOT NULL", "repeat('01', 1500)::varbit"),
)
MODES = ("precise", "string", "double")

#: What Debezium 3.6 wrote for each column's unchanged TOAST value, per
#: decimal.handling.mode (a table without the NOT NULL columns: with them it stopped).
DEBEZIUM: dict[str, dict[str, Any]] = {
    "precise": {"c_num": None, "c_numvar": None, "c_varbit": None, "c_bit": None},
    "string": {"c_num": PLACEHOLDER, "c_numvar": PLACEHOLDER, "c_varbit": None, "c_bit": None},
    "double": {"c_num": None, "c_numvar": None, "c_varbit": None, "c_bit": None},
}
_NUMERIC = {
    "precise": {"c_num": _B64, "c_numvar": {"scale": 0, "value": _B64}, "c_num_nn": _B64},
    "string": dict.fromkeys(("c_num", "c_numvar", "c_num_nn"), PLACEHOLDER),
    "double": dict.fromkeys(("c_num", "c_numvar", "c_num_nn"), _NUMBER),
}
#: What duality writes: Debezium's value where it fits the schema, else the form.
EXPECTED = {
    mode: {**dict.fromkeys(("c_varbit", "c_bit", "c_varbit_nn"), _B64), **_NUMERIC[mode]}
    for mode in MODES
}


def _props(mode: str) -> dict[str, str]:
    return {"decimal.handling.mode": mode}


def _setup(db: Database) -> None:
    columns = ", ".join(f"{c} {t}" for c, t, _ in COLUMNS)
    db.execute(
        f"CREATE TABLE scal (id integer PRIMARY KEY, counter integer, pad text, {columns});"
        "ALTER TABLE scal ALTER COLUMN pad SET STORAGE PLAIN;"
        + "".join(f"ALTER TABLE scal ALTER COLUMN {c} SET STORAGE EXTERNAL;" for c, *_ in COLUMNS)
    )
    names = ", ".join(c for c, *_ in COLUMNS)
    values = ", ".join(v for *_, v in COLUMNS)
    db.execute(
        f"INSERT INTO scal (id, counter, pad, {names}) "
        f"SELECT g, 0, repeat('p', 2100), {values} FROM generate_series(1, 2) g"
    )


def _update(db: Database, log_url: str, mode: str) -> None:
    db.execute("UPDATE scal SET counter = counter + 1 WHERE id IN (1, 2)")
    capture_once(db, log_url, **_props(mode))


@pytest.mark.parametrize("mode", MODES)
def test_capture_writes_placeholders_that_fit_the_schema(
    db: Database, tmp_path: Path, mode: str
) -> None:
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    _setup(db)
    capture_once(db, log_url, **_props(mode))
    _update(db, log_url, mode)
    updates = [value for _, value, _ in records(log_url, TOPIC) if value and value["op"] == "u"]
    assert len(updates) == 2
    for value in updates:
        after = value["after"]
        assert after["counter"] == 1 and after["pad"] == "p" * 2100
        got = {c: after[c] for c, *_ in COLUMNS}
        assert got == EXPECTED[mode]
        for column, theirs in DEBEZIUM[mode].items():
            assert theirs is None or got[column] == theirs, column
        if mode == "double":
            assert type(got["c_num"]) is float


@pytest.mark.parametrize("mode", MODES)
def test_table_and_replicate_keep_the_unchanged_values(
    db: Database, tmp_path: Path, mode: str
) -> None:
    """Fold after the snapshot, then after the update that leaves the columns unchanged:
    only ``counter`` moves, in the table store, a SQLite target, and a store that folds
    the whole log at once."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    _setup(db)
    capture_once(db, log_url, **_props(mode))
    before = assert_only_counter_moves(log_url, TOPIC, "scal", tmp_path,
                                       lambda: _update(db, log_url, mode))
    assert all(before[1][c] is not None for c, *_ in COLUMNS)


@pytest.mark.parametrize("mode", MODES)
def test_replicate_to_postgres_keeps_the_unchanged_values(
    db: Database, target: Database, tmp_path: Path, mode: str
) -> None:
    """The same on a PostgreSQL target: the update moves ``counter`` only."""
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    _setup(db)
    capture_once(db, log_url, **_props(mode))
    replicate_once(log_url, target.url)
    names = ", ".join(c for c, *_ in COLUMNS)
    before = target.query(f"SELECT id, counter, {names} FROM scal ORDER BY id")
    assert len(before) == 2 and None not in before[0]
    _update(db, log_url, mode)
    replicate_once(log_url, target.url)
    after = target.query(f"SELECT id, counter, {names} FROM scal ORDER BY id")
    assert after == [(r[0], r[1] + 1, *r[2:]) for r in before]
