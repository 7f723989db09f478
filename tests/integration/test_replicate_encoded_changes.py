"""Streamed changes sent to the target's stage as binary COPY rows encoded in C
(:func:`duality.sinks.dialects.postgres_binary.encode_changes`) give the target the same
rows as the Python path.

- End to end: inserts, updates and deletes (with their tombstones) of a table with a
  column of every kind the C code converts, a primary-key change, an unchanged-TOAST
  placeholder, a truncate and a stale redelivery, replicated in small batches (runs stop
  and start inside batches, a delete's tombstone in the next one) with the encoder on
  and off: both targets equal the source, and C took most records.
- Hypothesis: random changes (keys repeating, deletes with and without tombstones,
  older positions, placeholders, moved rows), encoded by C and decoded by the Python
  path in a real PostgreSQL: C takes exactly the records up to the first it must leave,
  and their collapsed rows are the Python path's.

Skipped where the extension is not built (an editable install).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duality.errors import ApplyError
from duality.events.model import Record
from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sinks.dialects import postgres_binary
from duality.sinks.dialects.postgres import POSTGRES
from duality.tables.batch import Pending
from duality.tables.decode import OLD_KEY, TableView, TopicDecoder
from duality.tables.shape import EMPTY, shape_from_schema
from tests.helpers import Database
from tests.integration.test_replicate_binary import (
    ROWS,
    TABLE,
    other_target,
    row_values,
    same_rows,
)
from tests.integration.test_replicate_binary import table_text as rows_of
from tests.replicate_support import capture_once

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(postgres_binary.native is None,
                       reason="the C extension duality._binarycopy is not built (an editable "
                       "install); ./scripts/test installs the package with it"),
]

EXAMPLES = 60 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 15
TOPIC = "t.public.native"
#: Capture writes truncates (Debezium's default skips them).
TRUNCATES = {"skipped.operations": "none"}
CHANGES = r"""
UPDATE native SET t = t || ' changed', n = n * 2, tz = tz + interval '1 day' WHERE id % 3 = 0;
DELETE FROM native WHERE id % 7 = 0;
INSERT INTO native (id, t, n0) SELECT g, 'new ' || g, g FROM generate_series(401, 450) g;
UPDATE native SET id = id + 1000 WHERE id = 11;
UPDATE native SET b = b + 1 WHERE id % 5 = 0;
UPDATE long SET n = n + 1;
DELETE FROM native WHERE id BETWEEN 401 AND 405;
"""
LONG = """
CREATE TABLE long (id int PRIMARY KEY, n int, body text);
INSERT INTO long SELECT g, g, repeat(md5(g::text), 400) FROM generate_series(1, 5) g;
"""


def replicate(log_url: str, target: Database, *, encode: bool) -> Replicator:
    with SqliteLog(log_url, create=False) as log:
        replicator = Replicator(log, target.url, once=True, encode=encode, batch_records=37)
        replicator.run()
        return replicator


def test_streamed_changes_encoded_equal_decoded(db: Database, target: Database,
                                                tmp_path: Path) -> None:
    db.execute(TABLE + ROWS + LONG)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url, **TRUNCATES)
    decoded = other_target(db, "decoded")
    try:
        replicate(log_url, target, encode=True)
        replicate(log_url, decoded, encode=False)
        db.execute(CHANGES)
        capture_once(db, log_url, **TRUNCATES)
        db.execute("TRUNCATE other; INSERT INTO other VALUES (1, 2.5, 'after truncate');"
                   "UPDATE native SET f = NOT f WHERE id < 30;")
        capture_once(db, log_url, **TRUNCATES)
        on = replicate(log_url, target, encode=True)
        off = replicate(log_url, decoded, encode=False)
        assert off.stats.changes_encoded == 0
        assert on.stats.changes_encoded > 250
        for table in ("native", "other", "long"):
            source = rows_of(db, table)
            assert (table, rows_of(decoded, table)) == (table, source)
            assert (table, rows_of(target, table)) == (table, source)
    finally:
        decoded.cleanup()


def test_a_replay_skips_encoded_rows_older_than_a_truncate(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """Replayed from the beginning, streamed changes from before a truncate must not
    come back (their positions went with the truncate; the table's watermark keeps them
    out: the encoder leaves them to the Python path, which skips them, and the sink
    drops any encoded row as old), and the target is left as it was."""
    db.execute("CREATE TABLE tr (id int PRIMARY KEY, n int)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url, **TRUNCATES)
    db.execute("INSERT INTO tr SELECT g, g FROM generate_series(1, 50) g")
    capture_once(db, log_url, **TRUNCATES)
    db.execute("TRUNCATE tr; INSERT INTO tr SELECT g, g FROM generate_series(100, 110) g")
    capture_once(db, log_url, **TRUNCATES)
    assert replicate(log_url, target, encode=True).stats.changes_encoded >= 50
    wanted = db.query("SELECT id, n FROM tr ORDER BY id")
    assert target.query("SELECT id, n FROM public.tr ORDER BY id") == wanted
    with SqliteLog(log_url, create=False) as log:
        again = Replicator(log, target.url, once=True, encode=True, batch_records=37,
                           from_beginning=True)
        again.run()
    assert (again.stats.records, again.stats.changes_encoded) == (62, 11)  # 50 + 1 + 11
    assert target.query("SELECT id, n FROM public.tr ORDER BY id") == wanted


# --- hypothesis: C against the Python path, record by record ------------------------

PLACEHOLDER = "__debezium_unavailable_value"


@st.composite
def changes(draw: st.DrawFn) -> list[tuple[str, int, int, dict[str, Any] | None, int]]:
    """(op, key, lsn, row values, odd) per record; lsn mostly grows, sometimes not. odd 0:
    an update moves its row (the image's key is not the record's), 1: the record has
    headers (as both halves of a moved row have), else nothing odd."""
    out = []
    lsn = 1000
    for _ in range(draw(st.integers(1, 30))):
        lsn += draw(st.sampled_from([1, 1, 1, 5, -3]))
        op = draw(st.sampled_from(["c", "u", "u", "d", "d", "r"]))
        values = None if op == "d" else draw(row_values)
        if values is not None and draw(st.integers(0, 12)) == 0:
            values = {**values, "t": PLACEHOLDER}
        out.append((op, draw(st.integers(0, 6)), lsn, values, draw(st.integers(0, 15))))
    return out


def test_encoder_takes_what_the_python_path_takes(db: Database, tmp_path: Path) -> None:
    db.execute(TABLE + "INSERT INTO native (id) VALUES (1);")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    with SqliteLog(log_url, create=False) as log:
        template = log.read(TOPIC, 0, 0, 10)[0]
        assert template.schema_id is not None
        schema = log.schema(template.schema_id)
    schema_id = template.schema_id
    shape = shape_from_schema(schema, EMPTY)
    plan = postgres_binary.plan(shape, schema, POSTGRES.fields(schema))
    assert plan is not None
    names = [*shape.key, *(c.field for c in shape.value_columns)]
    staged = ", ".join([*names, '"duality:position"', '"duality:op"'])
    types = "position bigint, op text"
    db.execute(f"CREATE TABLE encoded (LIKE native, {types}); "
               f"CREATE TABLE decoded (LIKE native, {types});")
    db.execute('ALTER TABLE encoded RENAME position TO "duality:position";'
               'ALTER TABLE encoded RENAME op TO "duality:op";'
               'ALTER TABLE decoded RENAME position TO "duality:position";'
               'ALTER TABLE decoded RENAME op TO "duality:op";')

    def record(offset: int, op: str, key: int, lsn: int, values: dict[str, Any] | None,
               odd: int) -> list[Record]:
        moved = odd == 0 and op == "u"
        headers = ((OLD_KEY, b'{"id":99}'),) if odd == 1 else ()
        row = None if values is None else {"id": key + 100 if moved else key, **{
            name: values[name] for name in names[1:]}}
        value = {"before": None if op != "d" else {"id": key}, "after": row,
                 "source": {"lsn": lsn, "txId": 1}, "op": op, "ts_ms": 1}
        made = [Record(TOPIC, 0, offset, 0, orjson.dumps({"id": key}), orjson.dumps(value),
                       headers, schema_id)]
        if op == "d":
            made.append(Record(TOPIC, 0, offset + 1, 0, orjson.dumps({"id": key}), None))
        return made

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(changes(), st.booleans())
    def check(drawn: list[tuple[str, int, int, dict[str, Any] | None, int]],
              tombstones: bool) -> None:
        records: list[Record] = []
        for op, key, lsn, values, odd in drawn:
            made = record(len(records), op, key, lsn, values, odd)
            records += made if tombstones else made[:1]
        winners: dict[bytes, tuple[int, bytes]] = {}
        marks = (PLACEHOLDER.encode(),)
        taken, carry = postgres_binary.encode_changes(records, 0, -1, schema_id, plan, None,
                                                      marks, None, winners)
        pending = Pending()
        decoder = TopicDecoder(TOPIC, TableView(shape, schema_id), lambda _id: schema,
                               POSTGRES.fields)
        decoder.feed(records, 0, pending, taken)
        # C stops exactly where the Python path's fast path would (at a placeholder: the
        # batch turns ordered; an update that moves its row), and at headers
        expected = next((i for i, r in enumerate(records) if r.headers or (
            r.value is not None and (PLACEHOLDER.encode() in r.value or _moves(r)))),
            len(records))
        assert taken == expected
        assert not pending.ordered
        assert decoder.counts.carry.get(0) == carry
        nulls = (None,) * (len(names) - 1)
        decoded = [(*params, "u") if params is not None else (*key, *nulls, position, "d")
                   for key, (params, position, _) in pending.winners.items()]
        assert same_rows(db, staged, b"".join(data for _, data in winners.values()), decoded)

    check()


def _moves(record: Record) -> bool:
    value, key = orjson.loads(record.value or b"null"), orjson.loads(record.key or b"null")
    return bool(value["op"] == "u" and value["after"]["id"] != key["id"])


def test_a_refused_record_is_named_from_a_step_of_several_encoder_calls(
    db: Database, target: Database, tmp_path: Path
) -> None:
    """The encoder takes 1,000 records a call into one step; naming a record the target
    refuses decodes the whole step again in Python (every call's records, in order)."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, n int); INSERT INTO t VALUES (0, 0)")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    capture_once(db, log_url)
    with SqliteLog(log_url, create=False) as log:
        Replicator(log, target.url, once=True).run()
    target.execute("ALTER TABLE t ADD CHECK (n < 2400)")
    db.execute("INSERT INTO t SELECT g, g FROM generate_series(1, 2500) g")  # 2400 refused
    capture_once(db, log_url)
    with SqliteLog(log_url, create=False) as log:
        replicator = Replicator(log, target.url, once=True, sessions=1)
        with pytest.raises(ApplyError, match=r'offset (\d+) key \{"id":(\d+)\}') as caught:
            replicator.run()
    match = re.search(r'offset (\d+) key \{"id":(\d+)\}', str(caught.value))
    assert match is not None
    with SqliteLog(log_url, create=False) as log:
        record = log.read(TOPIC.replace("native", "t"), 0, int(match[1]), 1)[0]
    assert orjson.loads(record.key or b"") == {"id": int(match[2])}
    assert int(match[2]) >= 2400  # one of the rows the check refuses
    assert replicator.stats.changes_encoded >= 2400
