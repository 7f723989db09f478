"""The C encoder of snapshot reads and streamed changes (``duality._binarycopy``): where
it must stop and leave a record to the Python path, how changes collapse per key, and
the bytes it writes for values whose binary form is easy to get wrong (numeric digits
and weights, timestamps around the epochs).
That its rows equal the Python path's in PostgreSQL is
``tests/integration/test_replicate_binary.py``."""

from __future__ import annotations

import base64
import gc
import struct
from decimal import Decimal, localcontext
from typing import Any

import orjson
import pytest

from duality.events.model import Record
from duality.sinks.dialects import postgres_binary as pb

pytestmark = pytest.mark.skipif(
    pb.native is None,
    reason="the C extension duality._binarycopy is not built (an editable install); "
    "./scripts/test installs the package with it",
)

TAIL = b',"source":{"lsn":100},"op":"r","ts_ms":1}'
KINDS = {"i2": pb.INT2, "i4": pb.INT4, "i8": pb.INT8, "f": pb.BOOL, "t": pb.TEXT,
         "n": pb.NUMERIC, "tz": pb.TIMESTAMPTZ, "d": pb.DATE, "us": pb.TIMESTAMP_US,
         "ms": pb.TIMESTAMP_MS}
PLAN = pb.Plan(((b"id", pb.INT4, 0),),
               ((b"id", pb.SKIP, 0), *((k.encode(), v, 2 if k == "n" else 0)
                                       for k, v in KINDS.items())))


def record(offset: int, image: bytes, key: bytes | None = b'{"id":1}', schema_id: int = 7,
           tail: bytes = TAIL) -> Record:
    value = b'{"before":null,"after":' + image + tail
    return Record("t", 0, offset, 0, key, value, (), schema_id)


def image(**values: Any) -> bytes:
    row = {"id": 1, **dict.fromkeys(KINDS)}
    row.update(values)
    return orjson.dumps(row)


def encode(records: list[Record]) -> pb.Run | None:
    return pb.encode_run(records, 0, 7, PLAN, None)


def stop_at(second: Record) -> int:
    """Where a run of a good record and then ``second`` stops."""
    run = encode([record(0, image()), second])
    assert run is not None
    return run.stop


def test_plan_kinds_are_the_columns_sent() -> None:
    assert PLAN.kinds == (pb.INT4, *KINDS.values())


def test_a_run_of_good_records() -> None:
    records = [record(i, image(i4=i, t="x" * i)) for i in range(5)]
    run = encode(records)
    assert run is not None and (run.start, run.stop, run.position) == (0, 5, 200)


@pytest.mark.parametrize("values", [
    {"i2": 32768}, {"i2": -32769}, {"i4": 2**31}, {"i8": 2**63}, {"i4": 1.5}, {"i4": "1"},
    {"f": 1}, {"t": 5}, {"n": 1.5}, {"n": "AA=A"}, {"n": "A" * 24},
    {"tz": "10000-01-01T00:00:00Z"}, {"tz": "+10000-01-01T00:00:00Z"},
    {"tz": "2020-01-01T00:00:00+02:00"}, {"tz": "2020-01-01T00:00:00.1234567Z"},
    {"tz": "2020-02-30T00:00:00Z"}, {"tz": "2021-02-29T00:00:00Z"},
    {"tz": "2020-01-01T24:00:00Z"}, {"tz": "2020-01-01T00:00:60Z"}, {"tz": "infinity"},
    {"tz": "0000-01-01T00:00:00Z"}, {"d": -719163}, {"d": 2932897},
    {"us": 9_223_372_036_825_200_000}, {"ms": -62_135_596_800_001},
])
def test_stops_at_a_value_it_does_not_convert(values: dict[str, Any]) -> None:
    assert stop_at(record(1, image(**values))) == 1


@pytest.mark.parametrize("raw", [
    b'"nul \\u0000"', b'"lone \\ud800"', b'"low \\udc00"', b'"bad \\x"', b'"\xff"',
    b'"\xed\xa0\x80"', b'"\xc0\xaf"', b'"ctl \x01"', b'"ascii, then \xff"',
])
def test_stops_at_text_postgres_or_json_would_not_take(raw: bytes) -> None:
    bad = image(t="@@").replace(b'"@@"', raw)
    assert stop_at(record(1, bad)) == 1


@pytest.mark.parametrize("second", [
    record(1, image(), key=None),
    record(1, image(), key=b'{"id":null}'),
    record(1, image(), key=b'{"id":1,"x":2}'),
    record(1, image(), key=b'{"id": 1}'),
    record(1, image(), schema_id=8),
    record(1, image(), tail=TAIL.replace(b"100", b"101")),
    record(1, image().replace(b'"i2":null,"i4":null', b'"i4":null,"i2":null')),
    record(1, image()[:-1] + b',"extra":1}'),
    record(1, image().replace(b'"f":null', b'"f" :null')),
    Record("t", 0, 1, 0, b'{"id":1}', None, (), 7),
])
def test_stops_at_a_record_of_another_shape(second: Record) -> None:
    assert stop_at(second) == 1


def test_a_run_goes_on_where_only_the_events_own_time_changes() -> None:
    """Debezium's snapshot events differ in their ``ts_ms``: one run all the same."""
    records = [record(i, image(), tail=TAIL.replace(b'"ts_ms":1', b'"ts_ms":%d' % i))
               for i in range(4)]
    run = encode(records)
    assert run is not None and (run.stop, len(run.data)) == (4, 4 * len(one_tuple(records)))


@pytest.mark.parametrize("bad", [None, 2, 3, 6])
def test_a_run_is_encoded_a_window_at_a_time_as_in_one_call(
    bad: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C encoder is called a window of records at a time (so the applier thread gets
    the GIL between windows): the same tuples, and the same stop, as one call over all."""
    records = [record(i, image(i4=i, t="y" * i)) for i in range(7)]
    if bad is not None:
        records[bad] = record(bad, image(i2=40_000))
    whole = encode(records)
    monkeypatch.setattr(pb, "WINDOW", 2)
    windowed = encode(records)
    assert windowed == whole
    assert whole is not None and whole.stop == (7 if bad is None else bad)


def one_tuple(records: list[Record]) -> bytes:
    """The bytes of the first record's tuple."""
    run = encode(records[:1])
    assert run is not None
    return run.data


def test_no_run_where_the_first_record_is_not_a_snapshot_read() -> None:
    update = record(0, image(), tail=TAIL.replace(b'"r"', b'"u"'))
    assert encode([update, record(1, image())]) is None
    assert pb.encode_run([record(0, image())], 0, 7, PLAN, 200) is None  # stale


def fields(run: pb.Run) -> list[bytes | None]:
    """The values of a one-record run's tuple."""
    data, out = run.data, []
    (count,) = struct.unpack_from(">h", data)
    pos = 2
    for _ in range(count):
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        out.append(None if size < 0 else data[pos : pos + size])
        pos += max(size, 0)
    assert pos == len(data)
    return out


def numeric(b64: str) -> tuple[int, ...]:
    run = encode([record(0, image(n=b64))])
    assert run is not None
    value = fields(run)[6]
    assert value is not None
    return struct.unpack(f">{len(value) // 2}h", value)


@pytest.mark.parametrize(("unscaled", "expected"), [
    (1250, (2, 0, 0, 2, 12, 5000)),  # 12.50
    (0, (0, 0, 0, 2)),
    (-1, (1, -1, 0x4000, 2, 100)),  # -0.01
    (10**8, (1, 1, 0, 2, 100)),  # 1000000.00
    (-(2**127), None),
])
def test_numeric_digits(unscaled: int, expected: tuple[int, ...] | None) -> None:
    size = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8
    got = numeric(base64.b64encode(unscaled.to_bytes(size, "big", signed=True)).decode())
    if expected is not None:
        assert got == expected
    # the digits read back as the value, whatever the grouping
    ndigits, weight, sign, scale, *digits = got
    assert len(digits) == ndigits and scale == 2
    with localcontext() as exact:
        exact.prec = 100
        total = sum(Decimal(d) * Decimal(10_000) ** (weight - i) for i, d in enumerate(digits))
        assert total * 100 * (-1 if sign == 0x4000 else 1) == unscaled


@pytest.mark.parametrize(("kind", "value", "micros"), [
    ("tz", "2000-01-01T00:00:00Z", 0),
    ("tz", "1999-12-31T23:59:59.999999Z", -1),
    ("tz", "0001-01-01T00:00:00Z", -63_082_281_600_000_000),
    ("tz", "2000-01-01T00:00:00.5Z", 500_000),
    ("us", 946_684_800_000_000, 0),
    ("us", -1, -946_684_800_000_001),
    ("ms", 946_684_800_001, 1_000),
])
def test_timestamps(kind: str, value: Any, micros: int) -> None:
    run = encode([record(0, image(**{kind: value}))])
    assert run is not None
    got = fields(run)[list(KINDS).index(kind) + 1]
    assert got == struct.pack(">q", micros)


def test_dates_and_text() -> None:
    run = encode([record(0, image(d=-1, t="é\n\u2028😀", f=True, i2=-2))])
    assert run is not None
    out = fields(run)
    assert out[0] == struct.pack(">i", 1)
    assert out[1] == struct.pack(">h", -2)
    assert out[4] == b"\x01"
    assert out[5] == "é\n\u2028😀".encode()
    assert out[8] == struct.pack(">i", -10_958)
    assert out[2] is None


# --- streamed changes (encode_changes) ------------------------------------------------

SOURCE = {"version": "3.6.0.Final", "connector": "postgresql", "name": "t", "ts_ms": 1,
          "snapshot": "false", "db": "d", "sequence": '["1","2"]', "schema": "public",
          "table": "t", "txId": 5, "lsn": 100, "xmin": None}
PLACEHOLDER = b"__debezium_unavailable_value"


def change(offset: int, op: str = "u", key: int = 1, lsn: int = 100, partition: int = 0,
           headers: tuple[tuple[str, bytes | None], ...] = (), **values: Any) -> Record:
    """A streamed change as Debezium writes it (its whole source block, ``ts_us``...)."""
    after = None if op == "d" else orjson.loads(image(id=key, **values))
    value = {"before": {"id": key} if op == "d" else None, "after": after,
             "source": {**SOURCE, "lsn": lsn}, "transaction": None, "op": op,
             "ts_ms": 2, "ts_us": 2000, "ts_ns": 2000000}
    return Record("t", partition, offset, 0, orjson.dumps({"id": key}), orjson.dumps(value),
                  headers, 7)


def tombstone(offset: int, key: int = 1) -> Record:
    return Record("t", 0, offset, 0, orjson.dumps({"id": key}), None, (), None)


def changes(records: list[Record], watermark: int | None = None,
            carry: bytes | None = None) -> tuple[int, bytes | None, dict[bytes, Any]]:
    winners: dict[bytes, Any] = {}
    taken, after = pb.encode_changes(records, 0, -1, 7, PLAN, watermark, (PLACEHOLDER,), carry,
                                     winners)
    return taken, after, winners


def test_changes_collapse_per_key_to_the_newest() -> None:
    records = [change(0, "c", key=1, lsn=100, i4=1), change(1, "u", key=2, lsn=101, i4=2),
               change(2, "u", key=1, lsn=103, i4=3), change(3, "u", key=1, lsn=102, i4=4),
               change(4, "d", key=2, lsn=104), tombstone(5, key=2)]
    taken, carry, winners = changes(records)
    assert (taken, carry) == (6, None)
    assert {k: v[0] for k, v in winners.items()} == {
        b'{"id":1}': 207,  # lsn 103: the stale redelivery at lsn 102 does not replace it
        b'{"id":2}': 209,
    }
    assert winners[b'{"id":2}'][1].endswith(b"\x00\x00\x00\x01d")  # op d, values null
    # (position, tuple): atomic values, left out of the cyclic collector's scans
    assert not any(gc.is_tracked(entry) for entry in winners.values())


@pytest.mark.parametrize(("second", "carry"), [
    (change(1, "u", t=PLACEHOLDER.decode()), None),  # unchanged TOAST: folded in order
    (change(1, "c", t=PLACEHOLDER.decode()), None),
    (change(1, "u", t=PLACEHOLDER.decode())._replace(  # the same, spelled with an escape
        value=(change(1, "u", t=PLACEHOLDER.decode()).value or b"").replace(
            b'"__debezium', b'"\\u005f_debezium')), None),
    (change(1)._replace(value=(change(1).value or b"").replace(  # a second after field
        b'"source"', b'"after":null,"source"')), None),
    (change(1, "u", key=1, i4=5).
     _replace(value=orjson.dumps({**orjson.loads(change(1).value or b""),
                                  "after": orjson.loads(image(id=9))})), None),  # moves
    (change(1, "d", headers=(("__debezium.newkey", b'{"id":9}'),)), None),  # a moved row
    (change(1, "c", headers=(("__debezium.oldkey", b'{"id":9}'),)), None),
    (change(1, partition=1), None),
    (change(1, lsn=50), None),  # at or below the watermark (a position: lsn * 2 + 1)
    (change(1, "t"), None),
    (change(1, "m"), None),
    (change(1)._replace(key=b'{"id":\\u0031}'), None),
    (change(1)._replace(key=b'{"id":1}', value=(change(1).value or b"").replace(
        b'"lsn":100', b'"lsn":null')), None),
    (change(1)._replace(value=b'{"schema":{},"payload":' + (change(1).value or b"") + b"}"),
     None),
    (change(1)._replace(schema_id=8), None),
    (tombstone(1, key=3), None),  # not after the delete of its key
    (tombstone(1, key=1), b'{"id":2}'),  # after a delete of another key
])
def test_changes_stop_where_python_takes_over(second: Record, carry: bytes | None) -> None:
    first = change(0, "d" if carry else "u", key=2 if carry else 1)
    taken, _, _ = changes([first, second], watermark=150)
    assert taken == 1


@pytest.mark.parametrize("text", [
    PLACEHOLDER.decode() + "2", "_" + PLACEHOLDER.decode(), PLACEHOLDER.decode()[:-1],
    PLACEHOLDER.decode()[:-1] + "\n",
])
def test_text_that_only_looks_like_the_placeholder_is_taken(text: str) -> None:
    taken, _, winners = changes([change(0, "u", t=text)])
    assert taken == 1
    assert text.encode() in winners[b'{"id":1}'][1]


def test_a_tombstone_after_the_delete_before_the_call_is_taken() -> None:
    taken, carry, winners = changes([tombstone(0, key=4), change(1, "u", key=4)],
                                    carry=b'{"id":4}')
    assert (taken, carry, list(winners)) == (2, None, [b'{"id":4}'])
    taken, carry, _ = changes([change(0, "d", key=4)])
    assert (taken, carry) == (1, b'{"id":4}')
