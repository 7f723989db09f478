"""Snapshot reads sent as binary COPY rows encoded in C (``duality._binarycopy``, see
:mod:`duality.sinks.dialects.postgres_binary`) give the target the same rows as the
Python path's text COPY.

- End to end: a table with a column of every kind the C code converts, with extreme
  values and values it must leave to Python (``infinity``, a BC date, a decimal wider
  than 16 bytes), captured and replicated with the encoder on and off, in small batches
  (runs stop and restart inside and across batches): both targets equal the source.
- The encoder's rows fall back to the Python path where the table is not empty (a
  replay from the beginning) or its columns are of other types (a table the user made).
- Hypothesis: random values of every kind, encoded by C into one table and decoded by
  the Python path into another, in a real PostgreSQL: the same rows, and C took them all.

Skipped where the extension is not built (an editable install); the test command
builds it (``pip install .``), and ``test_extension_built`` fails if a compiled
install lacks it.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duality.events.model import Record
from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sinks.dialects import postgres_binary
from duality.sinks.dialects.postgres import POSTGRES
from duality.tables import decode as decode_module
from duality.tables.batch import Pending
from duality.tables.decode import TableView, TopicDecoder
from duality.tables.shape import EMPTY, shape_from_schema
from tests.helpers import Database
from tests.replicate_support import capture_once

pytestmark = pytest.mark.postgres
built = pytest.mark.skipif(
    postgres_binary.native is None,
    reason="the C extension duality._binarycopy is not built (an editable install); "
    "./scripts/test installs the package with it",
)

EXAMPLES = 40 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 10
TABLE = """
CREATE TABLE native (id int PRIMARY KEY, s smallint, b bigint, f boolean, t text,
                     v varchar(12), c char(4), n numeric(30,6), n0 numeric(20,0),
                     tz timestamptz, tz3 timestamptz(3), d date, ts timestamp,
                     ts3 timestamp(3), big numeric(60,10));
CREATE TABLE other (id int PRIMARY KEY, free numeric, t text);
"""
ROWS = r"""
INSERT INTO native (id) VALUES (1);
INSERT INTO native VALUES
 (2, -32768, -9223372036854775808, true, E'tab\there "q" \\ back é 😀 \u0001 \u2028', '',
  'ab', -123456789012345678901234.123456, 0, '0001-01-01 00:00:00+00',
  '2026-11-24 10:00:00.123+05:30', '0001-01-01', '9999-12-31 23:59:59.999999',
  '2000-02-29 12:00:00.5', 1.5),
 (3, 32767, 9223372036854775807, false, 'x', 'twelve chars', 'abcd', 0.000001,
  -99999999999999999999, '9999-12-31 23:59:59.999999+00', '1970-01-01 00:00:00+00',
  '9999-12-31', '1969-12-31 23:59:59.999999', '1900-01-01 00:00:00.001',
  12345678901234567890123456789012345678901234567890.0123456789),
 (4, 0, 0, true, 'infinity next', 'a', 'a', 1, 1, 'infinity', '-infinity', '2000-01-01',
  '2000-01-01', '2000-01-01', 0),
 (5, 1, 1, true, 'BC next', 'b', 'b', -1, -1, '2000-01-01 00:00:00.000001+00', NULL,
  '0044-03-15 BC', '0001-01-01 00:00:00', NULL, -0.0000000001);
INSERT INTO native SELECT g, g % 30000, g * 1234567891::bigint, g % 2 = 0, 'row ' || g || ' ü',
  left(md5(g::text), 12), left(md5(g::text), 3), g * 1.000001 - 50000, g - 300,
  timestamptz '2001-02-03 04:05:06.789+00' + g * interval '1 hour 7.001 seconds',
  timestamptz '1999-12-31 23:59:59+00' - g * interval '3 days 0.1 second',
  date '1970-01-01' - g * 7, timestamp '2024-02-28 23:00:00' + g * interval '61 minutes',
  timestamp '1950-06-01' + g * interval '1.5 seconds', g * 0.0000000003
FROM generate_series(6, 400) g;
INSERT INTO other SELECT g, g / 7.0, 'o' || g FROM generate_series(1, 50) g;
"""


def replicate(log_url: str, target: Database, *, encode: bool | None = None,
              **options: Any) -> Replicator:
    with SqliteLog(log_url, create=False) as log:
        replicator = Replicator(log, target.url, once=True, encode=encode, batch_records=37,
                                **options)
        replicator.run()
        return replicator


def table_text(db: Database, table: str) -> list[str]:
    with db.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return [row[0] for row in conn.execute(
            f"SELECT t::text FROM public.{table} AS t ORDER BY id".encode()).fetchall()]


def same_rows(db: Database, columns: str, encoded: bytes, decoded: Iterable[Sequence[Any]]
              ) -> bool:
    """Whether binary COPY tuples ``encoded`` and text COPY rows ``decoded`` of
    ``columns`` make the same rows (in the tables ``encoded`` and ``decoded``)."""
    with db.connect() as conn:
        conn.execute("TRUNCATE encoded, decoded")
        with conn.cursor().copy(
            f"COPY encoded ({columns}) FROM STDIN (FORMAT binary)".encode()
        ) as copy:
            copy.write(postgres_binary.SIGNATURE)
            copy.write(encoded)
        with conn.cursor().copy(f"COPY decoded ({columns}) FROM STDIN".encode()) as copy:
            for row in decoded:
                copy.write_row(row)
    return table_text(db, "encoded") == table_text(db, "decoded")


def other_target(db: Database, suffix: str) -> Database:
    database = Database(db.server, f"{db.name}_{suffix}")
    db.server.execute(f'CREATE DATABASE "{database.name}"')
    return database


@built
def test_snapshot_encoded_equals_decoded(
    db: Database, target: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.execute(TABLE + ROWS)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    decoded = other_target(db, "decoded")
    try:
        on = replicate(log_url, target)
        monkeypatch.setenv("DUALITY_BINARY_COPY", "0")
        off = replicate(log_url, decoded)
        monkeypatch.delenv("DUALITY_BINARY_COPY")
        assert off.stats.encoded == 0
        # all but the rows C leaves to Python (4, 5, 3: a decimal wider than 16 bytes)
        # and what follows each of them in its batch
        assert 300 < on.stats.encoded < 400
        for table in ("native", "other"):
            source = table_text(db, table)
            assert table_text(target, table) == source
            assert table_text(decoded, table) == source
        assert len(table_text(target, "native")) == 400

        # a replay from the beginning finds the table full: decoded, and nothing changes
        again = replicate(log_url, target, from_beginning=True)
        assert again.stats.encoded == on.stats.encoded
        assert table_text(target, "native") == table_text(db, "native")
    finally:
        decoded.cleanup()


@built
def test_table_of_other_types_takes_decoded_rows(db: Database, tmp_path: Path) -> None:
    """A table the user made, whose columns hold the values but read other binary
    forms (integer for smallint, text for varchar, timestamptz for timestamp)."""
    db.execute(TABLE + ROWS)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    made = other_target(db, "made")
    try:
        made.execute(TABLE.replace("s smallint", "s integer").replace("v varchar(12)", "v text"))
        on = replicate(log_url, made)
        assert on.stats.encoded > 300
        assert table_text(made, "native") == table_text(db, "native")
    finally:
        made.cleanup()


# --- hypothesis: C against the Python path, value by value ----------------------------


def _decimal(unscaled: int) -> str:
    """Base64 of the minimal two's complement, as Kafka Connect writes a Decimal."""
    size = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8
    return base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode()


def _zoned(moment: dt.datetime, digits: int) -> str:
    text = moment.replace(microsecond=0).isoformat()
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text + "Z"


EPOCH = dt.datetime(1970, 1, 1)
moments = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)


def _micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


row_values = st.fixed_dictionaries({
    "s": st.none() | st.integers(-(2**15), 2**15 - 1),
    "b": st.none() | st.integers(-(2**63), 2**63 - 1),
    "f": st.none() | st.booleans(),
    "t": st.none() | texts,
    "v": st.none() | texts,
    "c": st.none() | texts.map(lambda t: t[:4]),
    "n": st.none() | st.integers(-(10**30) + 1, 10**30 - 1).map(_decimal),
    "n0": st.none() | st.integers(-(10**20) + 1, 10**20 - 1).map(_decimal),
    "tz": st.none() | st.builds(_zoned, moments, st.integers(0, 6)),
    "tz3": st.none() | st.builds(_zoned, moments, st.sampled_from([0, 3, 6])),
    "d": st.none() | st.dates().map(lambda d: (d - EPOCH.date()).days),
    "ts": st.none() | moments.map(_micros),
    "ts3": st.none() | moments.map(lambda m: _micros(m) // 1000),
    "big": st.none() | st.integers(-(2**127), 2**127 - 1).map(_decimal),
})


@built
def test_encoded_rows_equal_decoded_rows(db: Database, tmp_path: Path) -> None:
    db.execute(TABLE + "INSERT INTO native (id) VALUES (1);")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    with SqliteLog(log_url, create=False) as log:
        template = log.read("t.public.native", 0, 0, 10)[0]
        assert template.schema_id is not None
        schema = log.schema(template.schema_id)
    shape = shape_from_schema(schema, EMPTY)
    fields = POSTGRES.fields(schema)
    plan = postgres_binary.plan(shape, schema, fields)
    assert plan is not None
    value = template.value or b""
    tail = value[value.index(b',"source":'):]
    names = [*shape.key, *(c.field for c in shape.value_columns)]
    columns = ", ".join(names)
    db.execute("CREATE TABLE encoded (LIKE native); CREATE TABLE decoded (LIKE native);")

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(row_values, min_size=1, max_size=20))
    def check(images: list[dict[str, Any]]) -> None:
        records = []
        for i, image in enumerate(images):
            after = orjson.dumps({"id": i, **{name: image[name] for name in names[1:]}})
            records.append(Record("t.public.native", 0, i, 0, orjson.dumps({"id": i}),
                                  b'{"before":null,"after":' + after + tail, (),
                                  template.schema_id))
        run = postgres_binary.encode_run(records, 0, template.schema_id or 0, plan, None)
        assert run is not None and run.stop == len(records)  # C took every one
        pending = Pending()
        decoder = TopicDecoder("t.public.native", TableView(shape, template.schema_id),
                               lambda _id: schema, POSTGRES.fields)
        assert decoder.feed(records, 0, pending) == (len(records), None)
        rows = [params[:-1] for params, _, _ in pending.winners.values() if params is not None]
        assert len(rows) == len(pending.winners)
        assert same_rows(db, columns, run.data, rows)

    check()


def test_extension_built() -> None:
    """A compiled install (``pip install .``, as the test command makes) has the C
    encoder: its absence would silently turn the fast path off."""
    if not decode_module.__file__ or decode_module.__file__.endswith(".py"):
        pytest.skip("an editable install, whose modules are not compiled")
    assert postgres_binary.native is not None
