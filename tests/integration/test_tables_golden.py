"""Tables folded from real Debezium 3.6 events: every scenario, every logical type.

Each golden scenario's records (``events_with_schema.jsonl.gz``: key and value as
``{"schema", "payload"}``, so the types travel with the records) are produced into a
log as they are and every topic is folded. Every table must equal the plain fold of the
events (latest ``after`` per key, deletes, tombstones, truncates, placeholders keeping
the earlier value), with each value rendered as an *independent* oracle — written with
the standard library's ``Decimal`` and ``datetime``, not duality's code — expects it.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog
from duality.tables.api import open_table

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "debezium"
SCENARIOS = sorted(p.parent.name for p in GOLDEN.glob("*/events_with_schema.jsonl.gz"))
PLACEHOLDER = "__debezium_unavailable_value"
EPOCH = dt.datetime(1970, 1, 1)
INFINITE = {-2_147_472_692: "infinity", -2_147_472_691: "-infinity"}
INFINITE_US = {9_223_372_036_825_200_000: "infinity", -9_223_372_036_832_400_000: "-infinity"}
UNITS = {"io.debezium.time.Time": 3, "org.apache.kafka.connect.data.Time": 3,
         "io.debezium.time.MicroTime": 6, "io.debezium.time.NanoTime": 9}
STAMPS = {"io.debezium.time.Timestamp": 3, "org.apache.kafka.connect.data.Timestamp": 3,
          "io.debezium.time.MicroTimestamp": 6, "io.debezium.time.NanoTimestamp": 9}


def _decimal(encoded: str, scale: int) -> Decimal:
    unscaled = int.from_bytes(base64.b64decode(encoded), "big", signed=True)
    return Decimal(unscaled).scaleb(-scale, Context(prec=1000))


def _when(units: int, digits: int, *, date: bool) -> str | None:
    """ISO text of epoch time, by datetime arithmetic (None: beyond datetime's years)."""
    try:
        moment = EPOCH + dt.timedelta(microseconds=units * 10**6 // 10**digits)
    except OverflowError:
        return None
    text = moment.isoformat(timespec="microseconds")
    fraction = f"{units % 10**digits:0{digits}d}"
    return text[:19] + "." + fraction if date else None


def oracle(schema: dict[str, Any], value: Any) -> Any:
    """What ``--json`` must print for ``value`` of a field with ``schema``."""
    if value is None:
        return None
    name, kind = schema.get("name"), schema["type"]
    if name == "org.apache.kafka.connect.data.Decimal":
        scale = int(schema["parameters"]["scale"])
        return f"{_decimal(value, scale):.{scale}f}"
    if name == "io.debezium.data.VariableScaleDecimal":
        return _decimal(value["value"], value["scale"])  # compared as a number
    if name in ("io.debezium.time.Date", "org.apache.kafka.connect.data.Date"):
        if value in INFINITE:
            return INFINITE[value]
        try:
            return (EPOCH + dt.timedelta(days=value)).date().isoformat()
        except OverflowError:
            return ...
    if name in UNITS:
        digits = UNITS[name]
        seconds, fraction = divmod(value, 10**digits)
        clock = (dt.datetime(2000, 1, 1) + dt.timedelta(seconds=seconds)).time().isoformat()
        return ("24:00:00" if seconds == 86400 else clock) + f".{fraction:0{digits}d}"
    if name in STAMPS:
        digits = STAMPS[name]
        micros = value * 10**6 // 10**digits
        if micros in INFINITE_US:
            return INFINITE_US[micros]
        return _when(value, digits, date=True) or ...
    if name == "io.debezium.time.MicroDuration":
        return dt.timedelta(microseconds=value)  # compared as a duration
    if kind == "array":
        return [oracle(schema["items"], x) for x in value]
    if kind == "map":
        return {k: oracle(schema["values"], x) for k, x in value.items()}
    if kind == "struct":
        fields = {f["field"]: f for f in schema["fields"]}
        return {k: oracle(fields[k], x) for k, x in value.items()}
    if isinstance(value, str):  # half a character becomes U+FFFD (text must be whole)
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def same(expected: Any, got: Any) -> bool:
    if expected is ...:
        return isinstance(got, str)  # beyond datetime's range: ISO text all the same
    if isinstance(expected, Decimal):
        return isinstance(got, str) and Decimal(got) == expected
    if isinstance(expected, dt.timedelta):
        return isinstance(got, str) and _duration(got) == expected
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(
            same(e, g) for e, g in zip(expected, got, strict=True))
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(
            same(expected[k], got[k]) for k in expected)
    return bool(expected == got)


def _duration(text: str) -> dt.timedelta:
    """``[-]PnDTnHnMn.nS`` → timedelta."""
    sign = -1 if text.startswith("-") else 1
    days, _, clock = text.lstrip("-").removeprefix("P").partition("DT")
    hours, _, rest = clock.partition("H")
    minutes, _, seconds = rest.partition("M")
    total = dt.timedelta(days=int(days), hours=int(hours), minutes=int(minutes),
                         seconds=float(Decimal(seconds.removesuffix("S"))))
    return sign * total


def _load(scenario: str) -> list[dict[str, Any]]:
    # The standard library reads the lone UTF-16 surrogates Debezium can write.
    with gzip.open(GOLDEN / scenario / "events_with_schema.jsonl.gz") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _produce(log: SqliteLog, events: list[dict[str, Any]]) -> None:
    for topic in dict.fromkeys(e["topic"] for e in events):
        log.create_topic(topic, 1, {"cleanup.policy": "delete"})
    log.append(
        NewRecord(
            e["topic"],
            None if e["key"] is None else json.dumps(e["key"]).encode(),
            None if e["value"] is None else json.dumps(e["value"]).encode(),
            tuple((k, v.encode()) for k, v in (e.get("headers") or {}).items()),
        )
        for e in events
    )
    log.flush()


def _is_placeholder(value: Any) -> bool:
    raw = PLACEHOLDER.encode()
    forms = (PLACEHOLDER, base64.b64encode(raw).decode(), [PLACEHOLDER])
    return any(value == form for form in forms)


def fold(events: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Latest row per key as (value, field schema it was written with) per field, in the
    shape of the last schema (a dropped column is gone, an added one is null), and the
    last schema's fields. Keys with a null component are skipped, as in the table."""
    rows: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for event in events:
        key = None if event["key"] is None else json.dumps(event["key"]["payload"])
        value = event["value"]
        if value is None:
            rows.pop(key or "", None)
            continue
        payload = value["payload"]
        if payload["op"] == "t":
            rows.clear()
        if key is None or None in event["key"]["payload"].values():
            continue
        if payload["op"] == "d":
            rows.pop(key, None)
        if payload["op"] not in ("c", "r", "u"):
            continue
        after_schema = next(f for f in value["schema"]["fields"] if f["field"] == "after")
        schemas = {f["field"]: f for f in after_schema["fields"]}
        previous = rows.get(key, {})
        rows[key] = {
            k: (previous.get(k, (None, None)) if payload["op"] == "u" and _is_placeholder(x)
                else (x, schemas[k]))
            for k, x in payload["after"].items()
        }
    shaped = {k: {f: row.get(f, (None, schemas[f])) for f in schemas} for k, row in rows.items()}
    return shaped, schemas


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_scenario_folds_to_its_table(tmp_path: Path, scenario: str) -> None:
    events = _load(scenario)
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    with SqliteLog(log_url) as log:
        _produce(log, events)
    envelope_topics = [
        t for t in dict.fromkeys(e["topic"] for e in events)
        if any(e["topic"] == t and e["value"] and "before" in e["value"]["payload"]
               for e in events)
    ]
    for topic in dict.fromkeys(e["topic"] for e in events):
        with open_table(topic, log=log_url) as table:
            got = list(table.json_rows())
            if topic not in envelope_topics:
                continue  # heartbeats, transactions, messages: folded, not compared
            mine = [e for e in events if e["topic"] == topic]
            expected, schemas = fold(mine)
            key_fields = list(table.key)
        by_key = {orjson.dumps({k: row[k] for k in key_fields}).decode(): row for row in got}
        assert len(by_key) == len(got)
        if not key_fields:  # a keyless table: every record was skipped and counted
            assert got == []
            continue
        assert sorted(_rekey(expected, key_fields, schemas)) == sorted(by_key), topic
        for key, row in _rekey(expected, key_fields, schemas).items():
            assert list(by_key[key]) == list(schemas), (topic, key)
            for name, (value, written_with) in row.items():
                if written_with is not None and written_with != schemas[name]:
                    continue  # the column's type changed since: the source rewrote it
                want = oracle(schemas[name], value)
                assert same(want, by_key[key][name]), (topic, key, name, value, by_key[key][name])


def _rekey(rows: dict[str, Any], key_fields: list[str], schemas: dict[str, Any]) -> dict[str, Any]:
    """Expected rows under the key as ``--json`` prints it (decoded key values)."""
    out = {}
    for row in rows.values():
        key = {k: _plain(oracle(schemas[k], row[k][0])) for k in key_fields}
        out[orjson.dumps(key).decode()] = row
    return out


def _plain(value: Any) -> Any:
    return f"{value}" if isinstance(value, Decimal) else value


def test_unchanged_toast_keeps_the_stored_value(tmp_path: Path) -> None:
    events = _load("toast_default")
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    with SqliteLog(log_url) as log:
        _produce(log, events)
    with open_table("golden.public.docs", log=log_url) as table:
        row = table.get(id=1)
    assert row is not None
    assert row["counter"] == 5 and row["big_text"] == "short now"
    assert len(row["big_bytea"]) == 2112 and row["big_arr"][1] == "x"
    assert PLACEHOLDER not in str(row)
